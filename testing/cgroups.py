"""Real cgroups with real processes, for the tests and the benchmarks.

Cgroups made here live under one parent, /<prefix>-<random>, in every hierarchy the agent
measures (v1 cpu, cpuacct, memory, cpuset, and cgroup2), and are removed by cleanup(), with
their processes, also after a failure. Needs root.
"""
import os
import signal
import subprocess
import time
import uuid
from typing import List, Optional

from wca.cgroups import CgroupLayout


class Cgroups:
    def __init__(self, prefix: str = 'wca-test', layout: Optional[CgroupLayout] = None):
        self.layout = layout or CgroupLayout.detect()
        self.parent = '/%s-%s' % (prefix, uuid.uuid4().hex[:10])
        self.processes = []  # type: List[subprocess.Popen]
        self.created = []  # relative paths, parents first
        self._mkdir(self.parent)

    def mounts(self) -> List[str]:
        mounts = [self.layout.v1[c] for c in ('cpu', 'cpuacct', 'memory', 'cpuset')
                  if c in self.layout.v1]
        if self.layout.unified:
            mounts.append(self.layout.unified)
        return list(dict.fromkeys(mounts))

    def _mkdir(self, relative):
        for mount in self.mounts():
            path = mount + relative
            os.mkdir(path)
            if mount == self.layout.v1.get('cpuset'):  # a v1 cpuset starts empty: inherit
                parent = os.path.dirname(path)
                for name in ('cpuset.cpus', 'cpuset.mems'):
                    with open(os.path.join(parent, name)) as src:
                        value = src.read().strip()
                    with open(os.path.join(path, name), 'w') as dst:
                        dst.write(value)
        self.created.append(relative)

    def create(self, name: str, processes: int = 1) -> str:
        """A cgroup '<parent>/<name>' with `processes` sleeping processes; its relative path."""
        relative = self.parent + '/' + name
        self._mkdir(relative)
        for _ in range(processes):
            self.add_process(relative)
        return relative

    def add_process(self, relative: str, command=None) -> subprocess.Popen:
        """Starts `command` (default: a long sleep) inside the cgroup: the child joins every
        hierarchy before it runs the command, so nothing of it runs outside."""
        targets = [mount + relative + '/cgroup.procs' for mount in self.mounts()]

        def enter():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
            for target in targets:
                with open(target, 'w') as f:
                    f.write('0')
        process = subprocess.Popen(command or ['sleep', '3600'], stdin=subprocess.DEVNULL,
                                   preexec_fn=enter, close_fds=True)
        self.processes.append(process)
        return process

    def remove(self, relative: str):
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
        for process in self.processes:
            process.wait()
        self.processes = []
        for relative in reversed(self.created):
            for mount in self.mounts():
                _rmdir(mount + relative)
        self.created = []


def _rmdir(path):
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY until the killed processes are reaped
            time.sleep(0.02)
    os.rmdir(path)
