"""The scheduler's statistics of a task's threads: /proc/<tid>/sched summed over the threads of
the task's cgroup (option `sched`: true for every key, or a regular expression choosing keys).

A sched file looks like

    memcached (4242, #threads: 4)
    -------------------------------------------------------------------
    se.exec_start                                :       1192093.760338
    se.sum_exec_runtime                          :             0.024878
    nr_switches                                  :                    1
    ...
    current_node=0, numa_group_id=0
    numa_faults node=0 task_private=0 task_shared=0 group_private=0 group_shared=0

Each `key : value` line becomes task_sched_stat{key} (summed over the threads; per-thread values
such as prio or se.exec_start are summed too, as the original agent did), each numa_faults line
task_sched_stat_numa_faults{numa_node,fault_type}. The threads are the ids in the cgroup's
`tasks` file (cgroup v1) or `cgroup.threads` (cgroup v2), read every iteration, so threads
that start or end are followed. Which keys the regular expression takes is decided once per key.
"""
import errno
import logging
import os
from operator import itemgetter
from typing import Callable, Dict, List, Optional, Pattern, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.cgroups.layout import GONE, CgroupLayout, CgroupVanished, member_listings
from wca.metrics import Measurements, MetricName
from wca.nodes.base import Task
from wca.procfs import KeyFilter, read_all
from wca.sources import TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)

_DASHES = b'-' * 20  # the line under the header; a command name (15 bytes at most) cannot hold it
ENDED = (errno.ENOENT, errno.ESRCH)  # a thread that ended after the tasks file was read


def split_sched(data: bytes) -> Tuple[List[bytes], List[bytes], bytes]:
    """(keys, values, numa lines) of one sched file. The `key : value` lines come first, the
    NUMA lines (current_node=..., numa_faults ...) last, so the first part splits into
    key, ':', value triples in one call; a line of another shape is taken line by line."""
    start = data.find(_DASHES)
    if start < 0:
        raise ValueError('no header line')
    start = data.find(b'\n', start) + 1
    end = data.find(b'\ncurrent_node=', start)
    if end < 0:
        end = data.find(b'\nnuma_faults ', start)
    body, numa = (data[start:end], data[end:]) if end >= 0 else (data[start:], b'')
    words = body.split()
    keys, values = words[0::3], words[2::3]
    colons = words[1::3]
    if len(keys) != len(values) or colons.count(b':') != len(colons):
        keys, values = [], []  # a key with a space, or a value next to its colon
        for line in body.split(b'\n'):
            key, colon, value = line.partition(b':')
            if colon:
                keys.append(key.strip())
                values.append(value.strip())
    return keys, values, numa


# Numbers as printed -> as floats. Most values of a sleeping thread do not change between
# iterations, and many are equal across threads (0, 1, 120, 1048576), so converting each text
# once saves most of the parsing; bounded, and emptied when full.
_NUMBERS = {}  # type: Dict[bytes, float]
_NUMBERS_LIMIT = 16384


def numbers(texts) -> List[float]:
    """float() of each text (ValueError when one is not a number), through _NUMBERS."""
    found = list(map(_NUMBERS.get, texts))
    if None in found:
        if len(_NUMBERS) > _NUMBERS_LIMIT:
            _NUMBERS.clear()
        for i, value in enumerate(found):
            if value is None:
                text = texts[i]
                found[i] = _NUMBERS[text] = float(text)
    return found


def _pick(indexes: List[int]) -> Callable[[List[bytes]], tuple]:
    if len(indexes) == 1:
        index = indexes[0]
        return lambda values: (values[index],)
    if not indexes:
        return lambda values: ()
    return itemgetter(*indexes)


class Layout:
    """One list of keys a kernel prints (a deadline or real-time thread prints more), with the
    keys the filter takes and their names: worked out once, shared by every task."""
    __slots__ = ('keys', 'names', 'pick')

    def __init__(self, keys: List[bytes], choose: KeyFilter):
        self.keys = keys
        taken = [(i, choose(key)) for i, key in enumerate(keys)]
        taken = [(i, name) for i, name in taken if name is not None]
        self.names = [name for _, name in taken]
        self.pick = _pick([i for i, _ in taken])


class Layouts:
    """The layouts seen so far (a handful): the last one is tried first."""

    def __init__(self, choose: KeyFilter):
        self.choose = choose
        self.known = []  # type: List[Layout]
        self.last = None  # type: Optional[Layout]

    def of(self, keys: List[bytes]) -> Layout:
        last = self.last
        if last is not None and last.keys == keys:
            return last
        for layout in self.known:
            if layout.keys == keys:
                self.last = layout
                return layout
        layout = self.last = Layout(keys, self.choose)
        if len(self.known) < 64:
            self.known.append(layout)
        return layout


class SchedSums:
    """The sums of a task's threads' sched files, added as vectors per layout and named once
    at the end."""
    __slots__ = ('layouts', 'sums', 'faults')

    def __init__(self, layouts: Layouts):
        self.layouts = layouts
        self.sums = {}  # type: Dict[Layout, List[float]]
        self.faults = {}  # type: Dict[bytes, Dict[bytes, float]]

    def add(self, data: bytes) -> None:
        """One thread's file; ValueError (and nothing added) when it cannot be read."""
        keys, values, numa = split_sched(data)
        layout = self.layouts.of(keys)
        taken = numbers(layout.pick(values))
        faults = _numa_faults(numa) if numa else ()
        sums = self.sums.get(layout)
        self.sums[layout] = taken if sums is None else [a + b for a, b in zip(sums, taken)]
        for node, kinds, counts in faults:
            mine = self.faults.setdefault(node, {})
            for kind, count in zip(kinds, counts):
                mine[kind] = mine.get(kind, 0) + count

    def totals(self) -> Dict[str, float]:
        totals = {}  # type: Dict[str, float]
        for layout, sums in self.sums.items():
            for name, value in zip(layout.names, sums):
                totals[name] = totals.get(name, 0.0) + value
        return totals

    def numa_faults(self) -> Dict[str, Dict[str, int]]:
        return {str(int(node)): {kind.decode(): int(count) for kind, count in kinds.items()}
                for node, kinds in self.faults.items()}


def _numa_faults(numa: bytes) -> List[Tuple[bytes, List[bytes], List[float]]]:
    """(node, kinds, counts) of the `numa_faults node=0 task_private=1 ...` lines."""
    found = []
    for line in numa.split(b'\n'):
        if line.startswith(b'numa_faults '):
            words = line.replace(b'=', b' ').split()  # numa_faults node 0 task_private 1 ...
            found.append((words[2], words[3::2], numbers(words[4::2])))
    return found


def parse_sched(data: bytes, choose: KeyFilter) -> Tuple[Dict[str, float], Dict[str, Dict[str, int]]]:
    """One sched file's values (the keys `choose` takes) and NUMA faults."""
    sums = SchedSums(Layouts(choose))
    sums.add(data)
    return sums.totals(), sums.numa_faults()


class ThreadsSource(TaskSource):
    """A task source that reads a /proc file of each thread of the task's cgroups (and its
    subcgroups): the thread ids come from their `tasks` (v1) or `cgroup.threads` (v2) files,
    read every iteration. `what` names the metrics a failure drops, in its log line."""
    what = 'sched metrics'

    def __init__(self, task: Task, listings: List[Tuple[str, str]], proc: str,
                 errors: Dict[str, int]):
        self.task_id = task.task_id
        self.cgroup_path = task.cgroup_path
        self.listings = listings  # (cgroup directory, its tasks file), the task's and subcgroups'
        self.proc = proc
        self.errors = errors
        self._read = []  # type: List[str]  the files the last measure() read
        self._failing = set()  # type: set

    @property
    def files(self) -> List[str]:
        return list(self._read)

    def _failure(self, what: str, reason):
        self.errors['measurement'] = self.errors.get('measurement', 0) + 1
        if what not in self._failing:
            self._failing.add(what)
            log.warning('task %s: cannot read %s: %s (%s of it are dropped)',
                        self.task_id, what, reason, self.what)

    def threads(self) -> Tuple[List[bytes], bool]:
        """(the thread ids of the task's cgroups, whether every listing was read)."""
        tids = []  # type: List[bytes]
        whole = True
        for directory, listing in self.listings:
            try:
                data = read_all(listing)  # a record per thread: not one read() when long
            except OSError as e:
                if e.errno in GONE and not os.path.isdir(directory):
                    raise CgroupVanished(self.cgroup_path, listing)
                self._failure(listing, e.strerror or e)
                whole = False
                continue
            self._read.append(listing)
            tids.extend(data.split())
        return tids, whole

    def read_thread(self, path: str, kind: str) -> Optional[bytes]:
        """A thread's file, or None when it cannot be read: a thread that ended after its
        cgroup's listing was read is no error (ENOENT, ESRCH), anything else is counted and
        logged once per `kind` (such as '/proc/<tid>/sched')."""
        try:
            data = fsutil.read_bytes(path)  # one record (single_open): one read() is all
        except OSError as e:
            if e.errno not in ENDED:
                self._failure(kind, e.strerror or e)
            return None
        self._read.append(path)
        return data


def open_listings(layout: CgroupLayout, task: Task, what: str) -> List[Tuple[str, str]]:
    """The (cgroup directory, thread listing) pairs of a task's cgroup and subcgroups; empty
    (and said) when there are none."""
    listings = member_listings(layout, [task.cgroup_path] + list(task.subcgroups_paths),
                               ('cpu', 'cpuacct', 'memory'), 'tasks', 'cgroup.threads')
    if not listings:
        log.warning('task %s: cgroup %s has no tasks file in the cpu, cpuacct or memory '
                    'hierarchy nor in cgroup2: no %s', task.task_id, task.cgroup_path, what)
    return listings


class SchedSource(ThreadsSource):
    """One task's threads' sched files, summed."""

    def __init__(self, task: Task, listings: List[Tuple[str, str]], layouts: Layouts,
                 proc: str, errors: Dict[str, int]):
        super().__init__(task, listings, proc, errors)
        self.layouts = layouts

    def measure(self, measurements: Measurements) -> None:
        self._read = []
        sums = SchedSums(self.layouts)
        sched_file = self.proc + '/%s/sched'
        for tid in self.threads()[0]:
            path = sched_file % tid.decode()
            data = self.read_thread(path, '/proc/<tid>/sched')
            if data is None:
                continue
            try:
                sums.add(data)
            except (ValueError, IndexError) as e:
                self._failure(path, 'cannot parse: %s' % e)
        totals = sums.totals()
        if totals:
            measurements[MetricName.TASK_SCHED_STAT] = totals
        if sums.faults:
            measurements[MetricName.TASK_SCHED_STAT_NUMA_FAULTS] = sums.numa_faults()


class SchedSourceFactory(TaskSourceFactory):
    """Opens a SchedSource for each task (option `sched`)."""

    def __init__(self, pattern: Optional[Pattern], layout: CgroupLayout, proc: str = '/proc',
                 errors: Optional[Dict[str, int]] = None):
        self.layouts = Layouts(KeyFilter(pattern))  # shared by the tasks: the kernel's keys
        self.layout = layout
        self.proc = proc
        self.errors = errors if errors is not None else {}

    def open(self, task: Task) -> Optional[SchedSource]:
        listings = open_listings(self.layout, task, 'sched metrics')
        if not listings:
            return None
        return SchedSource(task, listings, self.layouts, self.proc, self.errors)
