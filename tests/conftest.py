"""Shared fixtures: real cgroups with real processes, tool lookup with the CI no-skip rule."""
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import pytest

from testing.cgroups import Cgroups
from wca.cgroups import CgroupLayout
from wca.components import register_components

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CI = os.environ.get('CI') == 'true'
PLUGINS = os.path.join(REPO, 'tests', 'plugins')

register_components()


def require_tool(name, install):
    """The tool's path; in CI a missing tool fails the test, elsewhere it skips saying how to
    install it."""
    path = shutil.which(name) or shutil.which(name, path=os.path.join(REPO, '.tools', 'bin'))
    if path:
        return path
    message = '%s is missing; install it with: %s' % (name, install)
    if CI:
        pytest.fail('CI must not skip: ' + message)
    pytest.skip(message)


def promtool_check(text: bytes):
    """Runs `promtool check metrics` on exposition text; fails the test on any error, and on
    any lint finding other than the known one: original counter names without _total."""
    from wca.metrics import LEGACY_COUNTERS, LEGACY_GAUGES
    promtool = require_tool('promtool', 'tools/install-test-tools')
    result = subprocess.run([promtool, 'check', 'metrics'], input=text, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    output = result.stdout.decode()
    assert result.returncode in (0, 3), output  # 1: the text could not be parsed
    for line in output.splitlines():
        name, _, problem = line.partition(' ')
        assert (name in LEGACY_COUNTERS and problem in (
            'counter metrics should have "_total" suffix',
            'non-histogram and non-summary metrics should not have "_count" suffix')) or (
            name in LEGACY_GAUGES and problem == (
                'non-histogram and non-summary metrics should not have "_count" suffix')), line
    return output


def require_root():
    if os.geteuid() != 0:
        message = 'creating real cgroups needs root; run the tests as root (sudo make test)'
        if CI:
            pytest.fail(message)
        pytest.skip(message)


NOBODY = 65534  # the unprivileged user of the privilege tests


@pytest.fixture
def shared_dir():
    """A 0755 directory (with a 0777 'out' for the agent's files) that uid 65534 can read."""
    path = tempfile.mkdtemp(prefix='wca-test-')
    os.chmod(path, 0o755)
    out = os.path.join(path, 'out')
    os.mkdir(out)
    os.chmod(out, 0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _setpriv():
    return require_tool('setpriv', 'apt-get install util-linux (Debian) or yum install '
                                   'util-linux (CentOS)')


@functools.lru_cache(maxsize=None)
def _needs_read_search():
    """Whether uid 65534 cannot start this interpreter with wca importable on its own (a pyenv
    under /root, 0700); CAP_DAC_READ_SEARCH then lets it read files, and nothing more: it is
    none of the privileges the agent checks, so the checks see what an unprivileged user's would."""
    result = subprocess.run(
        [_setpriv(), '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups',
         sys.executable, '-c', 'import wca, yaml'],
        env=plugin_env(), cwd='/', stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return result.returncode != 0


def unprivileged(args, caps=(), securebits=None, cwd=None, env=None, uid=NOBODY):
    """Runs a command as uid/gid `uid` (setpriv) with only `caps` (names like 'dac_override')
    as ambient capabilities, and `securebits` (like '+no_setuid_fixup')."""
    if os.geteuid() != 0:
        pytest.fail('the privilege tests switch users with setpriv and must run as root')
    caps = list(caps)
    if _needs_read_search():
        caps.append('dac_read_search')
    command = [_setpriv(), '--reuid=%d' % uid, '--regid=%d' % uid, '--clear-groups']
    if caps:
        listed = ','.join('+' + c for c in caps)
        command += ['--inh-caps=' + listed, '--ambient-caps=' + listed]
    if securebits:
        command += ['--securebits=' + securebits]
    return subprocess.run(command + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=cwd or '/', env=env or plugin_env(),
                          timeout=60)


def wca_command(*args):
    """The agent as a user runs it (python -m wca), with the test plugins importable."""
    return [sys.executable, '-m', 'wca'] + list(args)


def plugin_env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (PLUGINS, REPO, env.get('PYTHONPATH')) if p)
    env.update(extra)
    return env


def write_config(path, text, mode=0o644):
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


@pytest.fixture
def cgroups():
    """Real cgroups with real processes (testing.cgroups.Cgroups), removed afterwards."""
    require_root()
    made = Cgroups()
    try:
        yield made
    finally:
        made.cleanup()


class PerfCgroups(Cgroups):
    """Cgroups made in the v1 perf_event hierarchy too."""

    def mounts(self):
        return super().mounts() + [self.layout.v1['perf_event']]


@pytest.fixture
def perf_cgroups():
    """Like `cgroups`, in the perf_event hierarchy too: when it is not mounted (as on the test
    machines) it is mounted in a temporary directory and unmounted after the test."""
    require_root()
    mount = CgroupLayout.detect().v1.get('perf_event')
    temporary = None
    bound_elsewhere = _perf_event_hierarchy()[0] != 0  # a hierarchy mounted only elsewhere
    if mount is None:
        temporary = tempfile.mkdtemp(prefix='wca-test-perf-')
        subprocess.check_call(['mount', '-t', 'cgroup', '-o', 'perf_event', 'none', temporary])
    others = _perf_event_hierarchy()[1]  # cgroups not the test's (the root, a container's...)
    try:
        made = PerfCgroups()
        try:
            yield made
        finally:
            made.cleanup()
    finally:
        if temporary:
            # The hierarchy goes at unmount only if no cgroup, not even a dying one, is left in
            # it (the kernel frees removed cgroups asynchronously); then perf_event returns to
            # cgroup2. A container started meanwhile may have mounted it too, and keeps it.
            _wait_for(lambda: _perf_event_hierarchy()[1] <= others, 5.0)
            subprocess.check_call(['umount', temporary])
            os.rmdir(temporary)
            if not bound_elsewhere and not _wait_for(lambda: _perf_event_hierarchy()[0] == 0, 10.0):
                warnings.warn('perf_event is still bound to a v1 hierarchy after the test unmounted '
                              'it (mounted elsewhere too, by a container started meanwhile?)')


def _perf_event_hierarchy():
    """(hierarchy id, number of cgroups) of perf_event in /proc/cgroups."""
    with open('/proc/cgroups') as f:
        for line in f:
            fields = line.split()
            if fields[0] == 'perf_event':
                return int(fields[1]), int(fields[2])
    return 0, 0


def _wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_process(process, sig=signal.SIGTERM, timeout=10):
    """Stops a child by pid; returns its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope='session')
def pki(tmp_path_factory):
    """A throwaway CA with server (127.0.0.1, localhost) and client certificates (tests/tls_ca.py),
    made once per test session."""
    require_tool('openssl', 'apt-get install -y openssl')
    from tls_ca import make_pki
    return make_pki(str(tmp_path_factory.mktemp('pki')))


@pytest.fixture
def storages():
    """Makes KafkaStorages (with the given arguments) and closes them after the test."""
    from wca.storage.kafka import KafkaStorage
    made = []

    def make(**kwargs):
        storage = KafkaStorage(**kwargs)
        made.append(storage)
        return storage
    yield make
    for storage in made:
        storage.close(timeout=0)


@pytest.fixture
def kafka_broker(tmp_path):
    """A real Kafka-protocol broker (Tansu, in memory) on a free port of 127.0.0.1, stopped by pid
    afterwards (tests/kafka_broker.py)."""
    from kafka_broker import Broker
    broker = Broker(require_tool('tansu', 'tools/install-test-tools'), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
