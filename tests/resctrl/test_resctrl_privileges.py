"""Moving threads as an unprivileged user: uid 65534 (setpriv, as tests/test_security.py does)
writes into a root-owned fixture `tasks` file with CAP_SETUID and SECBIT_NO_SETUID_FIXUP
(effective uid 0 only around the write), and is refused, naming what it lacks, without them.

A capability does not pass resctrl's own check (the thread's owner or euid 0), so the writer
takes euid 0; SECBIT_NO_SETUID_FIXUP is what lets it do that more than once: shown here too.
"""
import os
import shutil
import sys
import tempfile

import pytest

from conftest import NOBODY, unprivileged, wca_command
from wca.resctrl.info import find_mount

WRITE = '''
import os, sys
from wca.resctrl.tasks import MissingPrivileges, TasksWriter
try:
    writer = TasksWriter()
except MissingPrivileges as e:
    print(e)
    sys.exit(3)
for tid in (101, 102):  # two moves: the second needs the capabilities the first kept
    assert writer.write(sys.argv[1], [tid]) == ([tid], [], {})
    assert os.geteuid() == %d, os.geteuid()
try:
    open(sys.argv[1], 'a')
    print('wrote as its own uid')
except PermissionError:
    print('moved 2 threads; its own uid cannot write there')
''' % NOBODY

# Without the securebit, giving up euid 0 drops every capability: the next seteuid(0) fails.
FIXUP = '''
import os
os.seteuid(0); os.seteuid(%d)
try:
    os.seteuid(0)
    print('again')
except PermissionError:
    print('capabilities gone')
''' % NOBODY


@pytest.fixture
def tasks_file():
    """A root-owned 0644 `tasks` file of a monitoring group, in a directory uid 65534 can reach."""
    directory = tempfile.mkdtemp(prefix='wca-test-resctrl-')
    try:
        os.chmod(directory, 0o755)
        group = os.path.join(directory, 'mon_groups', 't')
        os.makedirs(group, 0o755)
        path = os.path.join(group, 'tasks')
        with open(path, 'w'):
            pass
        os.chmod(path, 0o644)
        yield path
    finally:
        shutil.rmtree(directory)


def written(path):
    with open(path) as f:
        return f.read().split()


def test_setuid_with_no_setuid_fixup_writes_as_euid_0_only_around_the_write(tasks_file):
    result = unprivileged([sys.executable, '-c', WRITE, tasks_file], caps=['setuid'],
                          securebits='+no_setuid_fixup')
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == 'moved 2 threads; its own uid cannot write there\n'
    assert written(tasks_file) == ['101', '102']


@pytest.mark.parametrize('caps, securebits, named', [
    ((), None, ['CAP_SETUID', 'SECBIT_NO_SETUID_FIXUP']),
    (('setuid',), None, ['SECBIT_NO_SETUID_FIXUP']),
    ((), '+no_setuid_fixup', ['CAP_SETUID']),
], ids=['nothing', 'no-securebit', 'no-setuid'])
def test_missing_privileges_are_named(tasks_file, caps, securebits, named):
    result = unprivileged([sys.executable, '-c', WRITE, tasks_file], caps=caps,
                          securebits=securebits)
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('missing privilege')
    assert [line.split(',')[0].strip() for line in lines[1:]] == named
    assert written(tasks_file) == []


def test_without_the_securebit_the_second_switch_fails():
    result = unprivileged([sys.executable, '-c', FIXUP], caps=['setuid'])
    assert (result.returncode, result.stdout) == (0, 'capabilities gone\n'), result.stderr
    result = unprivileged([sys.executable, '-c', FIXUP], caps=['setuid'],
                          securebits='+no_setuid_fixup')
    assert (result.returncode, result.stdout) == (0, 'again\n'), result.stderr


CONFIG = '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: []
  rdt_enabled: true
  iterations: 1
'''


def agent_unprivileged(**privileges):
    """The agent with CONFIG, run as uid 65534 (the config in a directory it can read)."""
    directory = tempfile.mkdtemp(prefix='wca-test-resctrl-')
    try:
        os.chmod(directory, 0o755)
        path = os.path.join(directory, 'wca.yaml')
        with open(path, 'w') as f:
            f.write(CONFIG)
        os.chmod(path, 0o644)
        return unprivileged(wca_command('-c', path), **privileges)
    finally:
        shutil.rmtree(directory)


def test_agent_with_rdt_names_the_missing_privileges():
    result = agent_unprivileged()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == 'wca: missing privileges (or run as root with --root):'
    assert [line.split(',')[0].strip() for line in lines[1:]] == [
        'CAP_DAC_OVERRIDE', 'CAP_SETUID', 'SECBIT_NO_SETUID_FIXUP']
    assert 'SecureBits=no-setuid-fixup' in result.stderr
    # Granted, it gets as far as looking for resctrl (which this machine lacks).
    result = agent_unprivileged(caps=['dac_override', 'setuid'], securebits='+no_setuid_fixup')
    assert 'missing privilege' not in result.stderr and 'Traceback' not in result.stderr
    if find_mount() is None:
        assert result.returncode == 1, result.stderr
        assert 'rdt_enabled is true, but resctrl is not mounted' in result.stderr
    else:
        assert result.returncode == 0, result.stderr
