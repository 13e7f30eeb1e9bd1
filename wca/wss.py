"""Working set size of a task: how much of its memory its processes touched recently.

The kernel marks a page referenced when it is used; `Referenced:` in /proc/<pid>/smaps_rollup
(Linux 4.14+; /proc/<pid>/smaps, summed over its mappings, on older kernels) is what the process
touched since the marks were last cleared by writing 1 to /proc/<pid>/clear_refs.

- task_wss_referenced_bytes: Referenced summed over the task's processes (kB are 1024 bytes);
- every `wss_reset_cycles` iterations (0: never) the marks of the task's processes are cleared;
- with `wss_stable_cycles` and `wss_membw_threshold` (and RDT memory bandwidth): when the
  referenced bytes grow, for wss_stable_cycles iterations in a row, by less than
  wss_membw_threshold of the task's memory traffic (task_mem_bandwidth_bytes) over the same
  time, the working set is stable: task_working_set_size_bytes is the mean of the referenced
  bytes at the start and the end of that period. With wss_reset_cycles 0 and a positive
  wss_stable_cycles the marks are cleared each time the size is stable (a negative
  wss_stable_cycles never clears them on stability);
- task_wss_measure_overhead_seconds: the wall time spent reading smaps and clearing, in total
  (walking page tables costs the kernel time in proportion to the task's memory).

Reading another user's smaps needs CAP_SYS_PTRACE (the kernel checks PTRACE_MODE_READ), and
clear_refs is a file only its owner may write (CAP_DAC_OVERRIDE): see wca.security.
"""
import errno
import logging
import os
import time
from typing import Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.cgroups.layout import GONE, CgroupLayout, CgroupVanished, member_listings
from wca.metrics import Measurements, MetricName
from wca.nodes.base import Task
from wca.procfs import read_all
from wca.sources import TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)

_ENDED = (errno.ENOENT, errno.ESRCH)  # a process that exited after cgroup.procs was read
_REFERENCED = b'\nReferenced:'
_WRITE = os.O_WRONLY | getattr(os, 'O_CLOEXEC', 0)
_DECREASE_TOLERATED = 50  # referenced bytes may drop by up to 1/50 (2%) and still be stable


def check(reset_cycles: Optional[int], stable_cycles: int, membw_threshold: Optional[float],
          rdt_enabled: Optional[bool]) -> None:
    """The config checks of the wss_* options; ValueError('<option>: problem')."""
    if reset_cycles is not None and reset_cycles < 0:
        raise ValueError('wss_reset_cycles: expected 0 (never reset) or a number of iterations, '
                         'got %d' % reset_cycles)
    stability = bool(stable_cycles) or membw_threshold is not None
    if reset_cycles is None and stability:
        raise ValueError('%s: the working set size is measured only with wss_reset_cycles '
                         '(0: no periodic reset); set it too' % (
                             'wss_stable_cycles' if stable_cycles else 'wss_membw_threshold'))
    if stable_cycles and membw_threshold is None:
        raise ValueError('wss_stable_cycles: needs wss_membw_threshold (the growth of the '
                         'referenced bytes allowed, as a fraction of the memory traffic: e.g. 0.01)')
    if membw_threshold is not None and not stable_cycles:
        raise ValueError('wss_membw_threshold: needs wss_stable_cycles (how many iterations the '
                         'referenced bytes must stay stable, e.g. 5)')
    if stability and rdt_enabled is False:
        raise ValueError('wss_stable_cycles: the working set size stability check needs RDT memory '
                         'bandwidth (task_mem_bandwidth_bytes), and rdt_enabled is false')


def referenced_bytes(data: bytes) -> int:
    """The sum of the `Referenced:` lines of an smaps or smaps_rollup file, in bytes."""
    total = 0
    at = data.find(_REFERENCED)
    while at >= 0:
        start = at + len(_REFERENCED)
        end = data.find(b'\n', start)
        total += int(data[start:end].split()[0] if end >= 0 else data[start:].split()[0])
        at = data.find(_REFERENCED, start)
    return total * 1024


class WssSource(TaskSource):
    """One task's working set size (see the module's docstring)."""

    def __init__(self, task: Task, listings: List[Tuple[str, str]], factory: 'WssSourceFactory'):
        self.task_id = task.task_id
        self.cgroup_path = task.cgroup_path
        self.listings = listings
        self.f = factory
        self.cycle = 0
        self.overhead = 0.0
        self._read = []  # type: List[str]
        self._failing = set()  # type: set
        # stability of the referenced bytes against memory traffic
        self.prev_referenced = None  # type: Optional[int]
        self.prev_membw = None  # type: Optional[float]
        self.stable_cycles = 0
        self.first_stable = None  # type: Optional[int]
        self.last_stable_wss = None  # type: Optional[float]

    @property
    def files(self) -> List[str]:
        return list(self._read)

    def _failure(self, what: str, reason):
        errors = self.f.errors
        errors['measurement'] = errors.get('measurement', 0) + 1
        if what not in self._failing:
            self._failing.add(what)
            log.warning('task %s: %s: %s (working set size)', self.task_id, what, reason)

    def pids(self) -> List[bytes]:
        pids = []  # type: List[bytes]
        for directory, listing in self.listings:
            try:
                data = read_all(listing)  # a record per process: not one read() when long
            except OSError as e:
                if e.errno in GONE and not os.path.isdir(directory):
                    raise CgroupVanished(self.cgroup_path, listing)
                self._failure('cannot read ' + listing, e.strerror or e)
                continue
            self._read.append(listing)
            pids.extend(data.split())
        return pids

    def referenced(self, pids: List[bytes]) -> int:
        total = 0
        smaps = self.f.proc + '/%s/' + self.f.smaps
        read = self.f.read  # smaps_rollup is one record; smaps one per mapping: read to the end
        for pid in pids:
            path = smaps % pid.decode()
            try:
                data = read(path)
            except OSError as e:
                if e.errno not in _ENDED:
                    self._failure('cannot read /proc/<pid>/' + self.f.smaps, e.strerror or e)
                continue
            self._read.append(path)
            try:
                total += referenced_bytes(data)
            except (ValueError, IndexError) as e:
                self._failure('cannot parse ' + path, e)
        return total

    def clear(self, pids: List[bytes]):
        clear_refs = self.f.proc + '/%s/clear_refs'
        for pid in pids:
            try:
                fd = os.open(clear_refs % pid.decode(), _WRITE)
                try:
                    os.write(fd, b'1')
                finally:
                    os.close(fd)
            except OSError as e:
                if e.errno not in _ENDED:
                    self._failure('cannot write /proc/<pid>/clear_refs', e.strerror or e)

    def measure(self, measurements: Measurements) -> None:
        self._read = []
        self.cycle += 1
        started = time.monotonic()
        pids = self.pids()
        referenced = self.referenced(pids)
        self.overhead += time.monotonic() - started
        measurements[MetricName.TASK_WSS_REFERENCED_BYTES] = referenced
        reset = False
        f = self.f
        if f.stable_cycles and f.membw_threshold is not None:
            membw = measurements.get(MetricName.TASK_MEM_BANDWIDTH_BYTES)
            if membw is None:
                f.no_bandwidth(self.task_id)
            else:
                reset = self._stability(referenced, membw)
            if self.last_stable_wss is not None:
                measurements[MetricName.TASK_WORKING_SET_SIZE_BYTES] = self.last_stable_wss
        if f.reset_cycles and self.cycle % f.reset_cycles == 0:
            reset = True
        if reset:
            started = time.monotonic()
            self.clear(pids)
            self.overhead += time.monotonic() - started
            self.stable_cycles = 0
            self.prev_referenced = None
        measurements[MetricName.TASK_WSS_MEASURE_OVERHEAD_SECONDS] = self.overhead

    def _stability(self, referenced: int, membw) -> bool:
        """Counts stable iterations; True when the marks are to be cleared now."""
        limit = abs(self.f.stable_cycles)
        if (self.prev_referenced is not None and self.prev_membw is not None
                and self.stable_cycles < limit):
            growth = referenced - self.prev_referenced
            allowed = (membw - self.prev_membw) * self.f.membw_threshold
            if growth < 0 and -growth < referenced / _DECREASE_TOLERATED:
                growth = 0  # referenced sometimes drops a little, for no reason the kernel says
            if 0 <= growth < allowed:
                if self.stable_cycles == 0:
                    self.first_stable = referenced
                self.stable_cycles += 1
            else:
                self.stable_cycles = 0
        self.prev_referenced, self.prev_membw = referenced, membw
        if self.stable_cycles == limit:
            self.last_stable_wss = (self.first_stable + referenced) / 2
            self.stable_cycles += 1  # stable once per period: no new size until it restarts
            log.debug('task %s: working set stable at %d bytes', self.task_id, self.last_stable_wss)
            return self.f.reset_cycles == 0 and self.f.stable_cycles > 0
        return False


class WssSourceFactory(TaskSourceFactory):
    """Opens a WssSource for each task (option wss_reset_cycles)."""

    def __init__(self, layout: CgroupLayout, reset_cycles: int, stable_cycles: int = 0,
                 membw_threshold: Optional[float] = None, proc: str = '/proc',
                 errors: Optional[Dict[str, int]] = None):
        self.layout = layout
        self.reset_cycles = reset_cycles
        self.stable_cycles = stable_cycles
        self.membw_threshold = membw_threshold
        self.proc = proc
        self.errors = errors if errors is not None else {}
        rollup = os.path.exists(os.path.join(proc, 'self/smaps_rollup'))
        self.smaps = 'smaps_rollup' if rollup else 'smaps'
        self.read = fsutil.read_bytes if rollup else read_all
        self._warned_bandwidth = False
        if not rollup:
            log.info('%s/self/smaps_rollup does not exist (Linux before 4.14): the working set size '
                     'is read from smaps, which costs more', proc)

    def no_bandwidth(self, task_id: str):
        if not self._warned_bandwidth:
            self._warned_bandwidth = True
            log.warning('task %s has no task_mem_bandwidth_bytes (RDT memory bandwidth monitoring):'
                        ' task_working_set_size_bytes needs it (wss_stable_cycles, '
                        'wss_membw_threshold); tasks without it get only task_wss_referenced_bytes',
                        task_id)

    def open(self, task: Task) -> Optional[WssSource]:
        listings = member_listings(self.layout, [task.cgroup_path] + list(task.subcgroups_paths),
                                   ('memory', 'cpuacct', 'cpu'), 'cgroup.procs', 'cgroup.procs')
        if not listings:
            log.warning('task %s: cgroup %s is in none of the memory, cpuacct, cpu or cgroup2 '
                        'hierarchies: no working set size', task.task_id, task.cgroup_path)
            return None
        return WssSource(task, listings, self)
