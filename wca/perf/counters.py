"""Per-task perf counters: one group per online CPU on the task's perf_event cgroup, opened when
the task appears and closed the moment it leaves; scaling, sums over CPUs, derived metrics.

Each iteration reads each group once (os.read on its leader: PERF_FORMAT_GROUP gives every
event with the group's enabled and running times) and unpacks it with one struct call.
"""
import logging
import os
import resource
import struct
import time
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: F401 (type comments)

from wca.metrics import Measurements, MetricName
from wca.nodes.base import Task
from wca.perf.events import Event
from wca.perf.syscall import (OUT_OF_DESCRIPTORS, PERF_FLAG_FD_CLOEXEC, PERF_FLAG_PID_CGROUP,
                              PerfOpenError, attr_bytes, close_all, group_read_size, group_reader,
                              perf_event_open, reset_and_enable)
from wca.sources import PlatformSource, TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, 'O_CLOEXEC', 0)
_CGROUP_FLAGS = PERF_FLAG_PID_CGROUP | PERF_FLAG_FD_CLOEXEC
# Reasons a perf_event_open failed, as counted in wca_perf_open_failures_total.
UNSUPPORTED, DESCRIPTORS, NO_CGROUP, ERROR = 'unsupported', 'descriptors', 'no_cgroup', 'error'
_WARNINGS_PER_REASON = 10  # then further tasks failing the same way are logged at debug level


class PerfStatus(PlatformSource):
    """The agent's own perf figures, exported with the platform metrics: failed opens by
    reason, descriptors held, tasks counted; collected after the tasks phase, so they are
    this iteration's (the tasks that appeared or left in it included)."""

    after_tasks = True

    def __init__(self):
        self.failures = {UNSUPPORTED: 0, DESCRIPTORS: 0, NO_CGROUP: 0, ERROR: 0}
        self.descriptors = 0
        self.tasks = 0
        self._warned = {}  # type: Dict[str, int]

    def failure(self, reason: str, message: str, count: int = 1):
        """Counts a failure; logs it as a warning, except after many of the same reason."""
        self.failures[reason] += count
        warned = self._warned.get(reason, 0)
        self._warned[reason] = warned + 1
        if warned < _WARNINGS_PER_REASON:
            log.warning('%s%s', message, '' if warned + 1 < _WARNINGS_PER_REASON else
                        ' (further failures of this kind are logged at debug level and counted '
                        'in wca_perf_open_failures_total{reason="%s"})' % reason)
        else:
            log.debug('%s', message)

    def collect(self, measurements: Measurements) -> None:
        measurements[MetricName.WCA_PERF_OPEN_FAILURES] = dict(self.failures)
        measurements[MetricName.WCA_PERF_DESCRIPTORS] = self.descriptors
        measurements[MetricName.WCA_PERF_TASKS] = self.tasks


def open_group(events: Sequence[Event], pid: int, cpu: int, flags: int) -> List[int]:
    """The descriptors of one group (leader first, disabled until reset_and_enable), or
    PerfOpenError with nothing left open."""
    fds = []  # type: List[int]
    try:
        leader = -1
        for event in events:
            fd = perf_event_open(attr_bytes(event.type, event.config, event.config1,
                                            disabled=leader < 0),
                                 pid, cpu, leader, flags, event.name)
            fds.append(fd)
            if leader < 0:
                leader = fd
    except BaseException:
        close_all(fds)
        raise
    return fds


def probe(events: Sequence[Event], directory: str,
          cpu: int) -> Tuple[List[Event], List[Tuple[Event, PerfOpenError]]]:
    """Which events this machine can count on a cgroup (each opened alone, once, on
    `directory`, the root of the perf_event hierarchy), and why the others cannot."""
    usable, failed = [], []
    dir_fd = os.open(directory, _DIR_FLAGS)
    try:
        for event in events:
            try:
                close_all(open_group([event], dir_fd, cpu, _CGROUP_FLAGS))
                usable.append(event)
            except PerfOpenError as e:
                failed.append((event, e))
    finally:
        os.close(dir_fd)
    return usable, failed


# ---------------------------------------------------------------------------------------------
# Scaling and sums (pure: tests feed them group reads of their own).

def scaled(row) -> Optional[Tuple[List[int], float]]:
    """(values, factor) of one group read (nr, enabled, running, value...): a group that never
    ran gives None; one that ran part of the time is scaled to its enabled time."""
    running = row[2]
    if not running:
        return None
    enabled = row[1]
    if running == enabled:
        return list(row[3:]), 1.0
    factor = enabled / running
    return [round(value * factor) for value in row[3:]], factor


def sum_groups(rows) -> Tuple[Optional[List[int]], List[float]]:
    """Scaled values summed over groups, and the factors of the groups that ran; (None, [])
    when none ran."""
    columns = list(zip(*rows))
    if not columns or not any(columns[2]):
        return None, []
    if columns[1] == columns[2]:  # nothing multiplexed (always so for software events)
        return [sum(c) for c in columns[3:]], [1.0] * sum(1 for r in columns[2] if r)
    totals, factors = [0] * (len(columns) - 3), []
    for row in rows:
        result = scaled(row)
        if result is None:
            continue
        values, factor = result
        factors.append(factor)
        totals = [a + b for a, b in zip(totals, values)]
    return totals, factors


def derive(current: Sequence[int], previous: Sequence[int], seconds: float,
           index: Dict[str, int]) -> Dict[str, float]:
    """task_ipc, task_ips, task_cache_misses_per_kilo_instructions, task_cache_hit_ratio from
    the deltas since the previous values: a metric whose denominator did not grow (an idle
    task), or whose deltas went backwards, gives no sample."""
    out = {}
    i, c = index.get(MetricName.TASK_INSTRUCTIONS), index.get(MetricName.TASK_CYCLES)
    miss, ref = index.get(MetricName.TASK_CACHE_MISSES), index.get(MetricName.TASK_CACHE_REFERENCES)
    di = current[i] - previous[i] if i is not None else None
    dm = current[miss] - previous[miss] if miss is not None else None
    if di is not None and di > 0:
        if seconds > 0:
            out[MetricName.TASK_IPS] = di / seconds
        if dm is not None and dm >= 0:
            out[MetricName.TASK_CACHE_MISSES_PER_KILO_INSTRUCTIONS] = 1000.0 * dm / di
    if c is not None and di is not None and di >= 0:
        dc = current[c] - previous[c]
        if dc > 0:
            out[MetricName.TASK_IPC] = di / dc
    if ref is not None and dm is not None and dm >= 0:
        dr = current[ref] - previous[ref]
        if dr > 0:
            # Misses are a subset of references, but with multiplexing each is scaled from its
            # own share of the time (or sampled in another group): misses can come out above
            # references. Then the ratio is 0, not negative.
            out[MetricName.TASK_CACHE_HIT_RATIO] = max(0.0, min(1.0, (dr - dm) / dr))
    return out


# ---------------------------------------------------------------------------------------------
# Per task.

class PerfSourceFactory(TaskSourceFactory):
    """Opens each new task's counter groups: `events` (the first leads) on every CPU of `cpus`,
    on the task's directory under `cgroup_root` (a pod's: each of its containers')."""

    def __init__(self, events: List[Event], cgroup_root: str, cpus: List[int], aggregate: bool,
                 derived: bool, status: PerfStatus):
        self.events = events
        self.cgroup_root = cgroup_root.rstrip('/')
        self.cpus = list(cpus)
        self.aggregate = aggregate
        self.status = status
        self.read_size = group_read_size(len(events))
        self.unpack = group_reader(len(events)).unpack
        self.outputs = [(e.name, e.scale if e.scale != 1 else None) for e in events]
        self.names = [e.name for e in events]
        self.scaled = [(n, e.name, e.scale) for n, e in enumerate(events) if e.scale != 1]
        index = {e.name: n for n, e in enumerate(events)}
        self.derived_index = index if derived and any(
            name in index for name in (MetricName.TASK_INSTRUCTIONS, MetricName.TASK_CACHE_REFERENCES)
        ) else None
        self.per_task = len(events) * len(self.cpus)  # descriptors per cgroup

    def directory(self, cgroup_path: str) -> str:
        relative = cgroup_path.strip('/')
        return self.cgroup_root + '/' + relative if relative else self.cgroup_root

    def open(self, task: Task) -> Optional['PerfTaskSource']:
        source = PerfTaskSource(self, task)
        if source.failed:
            return None  # logged and counted; the task is measured without perf counters
        source.counted = True
        self.status.tasks += 1
        return source


class PerfTaskSource(TaskSource):
    """One task's groups: a group per CPU, per cgroup (the task's, or each container's of a
    pod). Values are summed over all of them, or kept per CPU."""

    def __init__(self, factory: PerfSourceFactory, task: Task):
        self.factory = factory
        self.task_id = task.task_id
        self.fds = []  # type: List[int]  every descriptor (leaders and members)
        self.leaders = []  # type: List[int]
        self.leader_cpus = []  # type: List[int]
        self.pending = list(task.subcgroups_paths or [task.cgroup_path])
        self.failed = False
        self.counted = False  # in PerfStatus.tasks
        self._missing_reported = False
        self._read_failed = False
        self._previous = None  # (monotonic time, values) for the derived metrics
        self._open_pending()

    def _open_pending(self):
        """Opens the groups of each cgroup not opened yet; a cgroup not in the perf_event
        hierarchy (yet) is tried again next iteration."""
        f = self.factory
        still = []
        for cgroup_path in self.pending:
            directory = f.directory(cgroup_path)
            try:
                dir_fd = os.open(directory, _DIR_FLAGS)
            except OSError as e:
                if e.errno in OUT_OF_DESCRIPTORS:
                    return self._fail(DESCRIPTORS, e)
                still.append(cgroup_path)
                if not self._missing_reported:
                    self._missing_reported = True
                    f.status.failure(NO_CGROUP, 'task %s: no cgroup %s in the perf_event hierarchy '
                                     '(%s); its perf counters start when it appears' % (
                                         self.task_id, directory, e.strerror or e))
                continue
            try:
                for cpu in f.cpus:
                    group = open_group(f.events, dir_fd, cpu, _CGROUP_FLAGS)
                    self.fds.extend(group)
                    f.status.descriptors += len(group)
                    self.leaders.append(group[0])
                    self.leader_cpus.append(cpu)
                    reset_and_enable(group[0])
            except OSError as e:
                os.close(dir_fd)
                return self._fail(DESCRIPTORS if e.errno in OUT_OF_DESCRIPTORS else ERROR, e)
            os.close(dir_fd)
        self.pending = still

    def _fail(self, reason: str, error: OSError):
        """Gives up on this task's perf counters (the rest of its metrics go on)."""
        self.close()
        self.failed = True
        self.pending = []
        f = self.factory
        if reason == DESCRIPTORS:
            message = ('task %s: out of file descriptors (%s): measured without perf counters; '
                       'each task needs %d (%d events x %d CPUs per cgroup): raise the limit '
                       '(LimitNOFILE= in the systemd unit, ulimit -n) or count fewer events' % (
                           self.task_id, error.strerror or error, f.per_task, len(f.events),
                           len(f.cpus)))
        else:
            message = 'task %s: cannot open perf counters: %s; measured without them' % (
                self.task_id, error)
        f.status.failure(reason, message)

    def measure(self, measurements: Measurements) -> None:
        if self.pending:
            self._open_pending()
        leaders = self.leaders
        if not leaders:
            return
        f = self.factory
        read, size, unpack = os.read, f.read_size, f.unpack
        try:
            rows = [unpack(read(fd, size)) for fd in leaders]
        except (OSError, struct.error) as e:
            if not self._read_failed:
                self._read_failed = True
                f.status.failure(ERROR, 'task %s: cannot read perf counters: %s' % (self.task_id, e))
            return
        if f.aggregate:
            self._aggregated(rows, measurements)
        else:
            self._per_cpu(rows, measurements)

    def _aggregated(self, rows, m):
        # Column sums: (nr, enabled, running, values...). A group never runs longer than it is
        # enabled, so equal sums mean no group was multiplexed (software events never are).
        totals = list(map(sum, zip(*rows)))
        running = totals[2]
        if totals[1] == running:
            if not running:
                return  # no group has run yet: no sample rather than a zero
            values = totals[3:]
            m[MetricName.TASK_SCALING_FACTOR_AVG] = m[MetricName.TASK_SCALING_FACTOR_MAX] = 1.0
        else:
            values, factors = sum_groups(rows)
            if values is None:
                return
            m[MetricName.TASK_SCALING_FACTOR_AVG] = sum(factors) / len(factors)
            m[MetricName.TASK_SCALING_FACTOR_MAX] = max(factors)
        f = self.factory
        m.update(zip(f.names, values))
        for position, name, scale in f.scaled:
            m[name] = values[position] * scale
        if f.derived_index is not None:
            now = time.monotonic()
            previous, self._previous = self._previous, (now, values)
            if previous is not None:
                m.update(derive(values, previous[1], now - previous[0], f.derived_index))

    def _per_cpu(self, rows, m):
        per_cpu = {}  # type: Dict[int, Tuple[List[int], List[float]]]
        for cpu, row in zip(self.leader_cpus, rows):
            result = scaled(row)
            if result is None:
                continue
            values, factor = result
            known = per_cpu.get(cpu)
            if known is None:
                per_cpu[cpu] = (values, [factor])
            else:  # another cgroup of a pod, on the same CPU
                per_cpu[cpu] = ([a + b for a, b in zip(known[0], values)], known[1] + [factor])
        if not per_cpu:
            return
        outputs = self.factory.outputs
        for position, (name, scale) in enumerate(outputs):
            m[name] = {cpu: (v[position] if scale is None else v[position] * scale)
                       for cpu, (v, _) in per_cpu.items()}
        m[MetricName.TASK_SCALING_FACTOR_AVG] = {cpu: sum(fs) / len(fs)
                                                 for cpu, (_, fs) in per_cpu.items()}
        m[MetricName.TASK_SCALING_FACTOR_MAX] = {cpu: max(fs) for cpu, (_, fs) in per_cpu.items()}
        index = self.factory.derived_index
        if index is not None:
            now = time.monotonic()
            current = {cpu: values for cpu, (values, _) in per_cpu.items()}
            previous, self._previous = self._previous, (now, current)
            if previous is not None:
                seconds = now - previous[0]
                for cpu, values in current.items():
                    before = previous[1].get(cpu)
                    if before is None:
                        continue
                    for name, value in derive(values, before, seconds, index).items():
                        m.setdefault(name, {})[cpu] = value

    def close(self) -> None:
        if self.fds:
            close_all(self.fds)
            self.factory.status.descriptors -= len(self.fds)
            self.fds = []
            self.leaders = []
            self.leader_cpus = []
        if self.counted:
            self.counted = False
            self.factory.status.tasks -= 1
        self.pending = []


def descriptors_fit(per_task: int, proc: str = '/proc') -> Tuple[int, int, int]:
    """(tasks that fit, soft limit, descriptors open now) under RLIMIT_NOFILE, keeping some
    room for the files and sockets the agent opens meanwhile."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        open_now = len(os.listdir(os.path.join(proc, 'self/fd')))
    except OSError:
        open_now = 0
    if soft == resource.RLIM_INFINITY:
        return -1, soft, open_now
    room = soft - open_now - 64
    return max(0, room // per_task) if per_task else -1, soft, open_now
