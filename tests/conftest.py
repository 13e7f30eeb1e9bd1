"""Shared fixtures: real cgroups with real processes, tool lookup with the CI no-skip rule."""
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

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
    from wca.metrics import LEGACY_COUNTERS
    promtool = require_tool('promtool', 'tools/install-test-tools')
    result = subprocess.run([promtool, 'check', 'metrics'], input=text, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    output = result.stdout.decode()
    assert result.returncode in (0, 3), output  # 1: the text could not be parsed
    for line in output.splitlines():
        name, _, problem = line.partition(' ')
        assert name in LEGACY_COUNTERS and problem in (
            'counter metrics should have "_total" suffix',
            'non-histogram and non-summary metrics should not have "_count" suffix'), line
    return output


def require_root():
    if os.geteuid() != 0:
        message = 'creating real cgroups needs root; run the tests as root (sudo make test)'
        if CI:
            pytest.fail(message)
        pytest.skip(message)


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


class Cgroups:
    """Creates real cgroups (every measured v1 hierarchy, and cgroup2) under one test-owned
    parent, puts sleeping processes in them, and removes everything afterwards."""

    def __init__(self):
        require_root()
        self.layout = CgroupLayout.detect()
        self.parent = '/wca-test-%s' % uuid.uuid4().hex[:10]
        self.processes = []
        self.created = []  # relative paths, parents first
        self._mkdir(self.parent)

    def mounts(self):
        mounts = [self.layout.v1[c] for c in ('cpu', 'cpuacct', 'memory', 'cpuset')
                  if c in self.layout.v1]
        if self.layout.unified:
            mounts.append(self.layout.unified)
        return list(dict.fromkeys(mounts))

    def _mkdir(self, relative):
        for mount in self.mounts():
            path = mount + relative
            os.mkdir(path)
            if mount == self.layout.v1.get('cpuset'):
                parent = os.path.dirname(path)
                for name in ('cpuset.cpus', 'cpuset.mems'):
                    with open(os.path.join(parent, name)) as src:
                        value = src.read().strip()
                    with open(os.path.join(path, name), 'w') as dst:
                        dst.write(value)
        self.created.append(relative)

    def create(self, name, processes=1):
        """A cgroup '<parent>/<name>' with `processes` sleeping processes; its relative path."""
        relative = self.parent + '/' + name
        self._mkdir(relative)
        for _ in range(processes):
            self.add_process(relative)
        return relative

    def add_process(self, relative, command=None):
        process = subprocess.Popen(command or ['sleep', '600'], stdin=subprocess.DEVNULL)
        self.processes.append(process)
        for mount in self.mounts():
            with open(mount + relative + '/cgroup.procs', 'w') as f:
                f.write(str(process.pid))
        return process

    def remove(self, relative):
        """Kills the cgroup's processes and removes it from every hierarchy."""
        pids = set()
        for mount in self.mounts():
            try:
                with open(mount + relative + '/cgroup.procs') as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
        for process in self.processes:
            if process.pid in pids:
                process.kill()
                process.wait()
        for mount in self.mounts():
            _rmdir(mount + relative)
        if relative in self.created:
            self.created.remove(relative)

    def cleanup(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for relative in reversed(self.created):
            for mount in self.mounts():
                _rmdir(mount + relative)


def _rmdir(path):
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the killed processes are reaped
            time.sleep(0.02)
    os.rmdir(path)


@pytest.fixture
def cgroups():
    made = Cgroups()
    try:
        yield made
    finally:
        made.cleanup()


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
