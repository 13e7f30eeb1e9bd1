"""Helpers of the procfs, sched, working set size, hardware memory and label generator tests:
the two-node fixture tree, real processes with several threads, config checks through the
command line, and running a command as another user."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, plugin_env, wca_command, write_config

# A two-node machine (4 CPUs) as Linux 6.x lays out /proc/zoneinfo, /proc/vmstat and
# /sys/devices/system/node/node<N>/vmstat; see tests/fixtures/numa2/README.
NUMA2 = os.path.join(REPO, 'tests', 'fixtures', 'numa2')
NUMA2_PROC = os.path.join(NUMA2, 'proc')
NUMA2_SYS = os.path.join(NUMA2, 'sys')

# A Python process with `threads` threads in all (the main one included), each blocked, so
# that their scheduler statistics stay still while a test reads them. It allocates and
# touches `touch` MiB, and touches them again on each SIGUSR1; after each pass it writes the
# number of passes to the file `done` (a rename, so a reader sees all of it or nothing).
THREADED = '''\
import os, signal, sys, threading
threads, touch, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
memory = bytearray(touch << 20)
passes = [0]
def touch_all(*_):
    for i in range(0, len(memory), 4096):
        memory[i] = (memory[i] + 1) & 255
    passes[0] += 1
    with open(done + '.tmp', 'w') as f:
        f.write(str(passes[0]))
    os.rename(done + '.tmp', done)
stop = threading.Event()
for _ in range(threads - 1):
    threading.Thread(target=stop.wait, daemon=True).start()
signal.signal(signal.SIGUSR1, touch_all)
touch_all()
while True:
    signal.pause()
'''


class Threaded:
    """A THREADED child started inside a real cgroup (made with the `cgroups` fixture);
    `state_dir` is a directory for its `done` file."""

    def __init__(self, cgroups, cgroup_path, state_dir, threads=4, touch_mib=0):
        self.done = os.path.join(str(state_dir), 'done-%s' % os.path.basename(cgroup_path))
        self.process = cgroups.add_process(
            cgroup_path, [sys.executable, '-c', THREADED, str(threads), str(touch_mib), self.done])
        self.pid = self.process.pid
        self.threads = threads
        self._wait(lambda: self.passes() >= 1 and len(self.tids()) == threads)

    def _wait(self, ready, timeout=20):
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise AssertionError('the child exited with %s' % self.process.returncode)
            if time.monotonic() > deadline:
                raise AssertionError('the child is not ready after %ds' % timeout)
            time.sleep(0.01)

    def passes(self):
        try:
            with open(self.done) as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def tids(self):
        try:
            return sorted(int(t) for t in os.listdir('/proc/%d/task' % self.pid))
        except OSError:
            return []

    def touch(self):
        """Makes the child touch its memory again, and waits until it has."""
        before = self.passes()
        os.kill(self.pid, signal.SIGUSR1)
        self._wait(lambda: self.passes() > before)


def referenced_from_smaps_rollup(pid):
    """Referenced: of a process's smaps_rollup in bytes, read the plain way (for comparisons)."""
    with open('/proc/%d/smaps_rollup' % pid) as f:
        for line in f:
            if line.startswith('Referenced:'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no Referenced: line')


def check_config(tmp_path, text, env=None, name='wca.yaml'):
    """Writes the config and runs `python -m wca -c FILE --check-config` on it."""
    path = write_config(tmp_path / name, textwrap.dedent(text))
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True,
                            env=env or plugin_env(), cwd=REPO, timeout=60)
    return path, result


def config_error(tmp_path, text, env=None):
    """The one `wca: error: ...` line of a config that must be refused with exit status 2."""
    path, result = check_config(tmp_path, text, env)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('wca: error: '), result.stderr
    return path, lines[0]


def load_error(text):
    """The ConfigError of a config loaded in this process ('<config>:LINE: KEY.PATH: ...'), for
    the variants of a case whose exit status a config_error() test already shows."""
    from wca.config import ConfigError, load_config_text
    from wca.runners import Runner
    with pytest.raises(ConfigError) as error:
        load_config_text(textwrap.dedent(text), root_type=Runner)
    return str(error.value)


def assert_located(line, path, lineno, key_path, *expected):
    prefix = 'wca: error: %s:%d: %s: ' % (path, lineno, key_path)
    assert line.startswith(prefix), '%r does not start with %r' % (line, prefix)
    for text in expected:
        assert text in line, '%r not in %r' % (text, line)
