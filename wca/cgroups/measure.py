"""One task's cgroup metrics: the files to read (chosen when the task appears, and looked for
again while missing) and their parsers, on cgroup v1 and v2."""
import logging
import os
from typing import Callable, Dict, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from wca import fsutil, pressure
from wca.cgroups.layout import GONE, CgroupLayout, CgroupNotFound, CgroupVanished, source_directory
from wca.metrics import MetricName, Measurements
from wca.sources import TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')


# ---------------------------------------------------------------------------------------------
# Parsers: each fills measurements from one file's bytes.

Parser = Callable[[bytes, Measurements], None]


def single(name, scale=None):
    if scale is None:
        def parse(data, m):
            m[name] = int(data)
    else:
        def parse(data, m):
            m[name] = int(data) / scale
    return parse


def _words(data):
    """A short `key value` per line file (cpu.stat) as {key: value}, both bytes."""
    words = data.split()
    return dict(zip(words[::2], words[1::2]))


def _v1_cpu_stat(data, m):
    words = data.split()
    at = words.index  # keys and values alternate; ValueError when a key is missing
    m[MetricName.TASK_CPU_PERIODS] = int(words[at(b'nr_periods') + 1])
    m[MetricName.TASK_CPU_THROTTLED_PERIODS] = int(words[at(b'nr_throttled') + 1])
    m[MetricName.TASK_CPU_THROTTLED_SECONDS] = int(words[at(b'throttled_time') + 1]) / 1e9


def _v2_cpu_stat(data, m):
    stat = _words(data)
    m[MetricName.TASK_CPU_USAGE_SECONDS] = int(stat[b'usage_usec']) / 1e6
    if b'nr_periods' in stat:  # only with the cpu controller enabled for this cgroup
        m[MetricName.TASK_CPU_PERIODS] = int(stat[b'nr_periods'])
        m[MetricName.TASK_CPU_THROTTLED_PERIODS] = int(stat[b'nr_throttled'])
        m[MetricName.TASK_CPU_THROTTLED_SECONDS] = int(stat[b'throttled_usec']) / 1e6


def _v1_memory_stat(data, m):
    value = fsutil.stat_value(data, b'total_pgfault')
    m[MetricName.TASK_MEM_PAGE_FAULTS] = value if value is not None else fsutil.stat_value(
        data, b'pgfault')


def _v2_memory_stat(data, m):
    m[MetricName.TASK_MEM_PAGE_FAULTS] = fsutil.stat_value(data, b'pgfault')


def _node_values(fields):
    """[b'N0=12', b'N1=3'] -> {0: 12, 1: 3}"""
    values = {}
    for f in fields:
        if f[:1] == b'N':
            node, _, value = f[1:].partition(b'=')
            values[int(node)] = int(value)
    return values


def _rest_of_line(data, needle):
    """What follows `needle` up to the end of its line, or None when it is not there."""
    start = data.find(needle)
    if start < 0:
        return None
    start += len(needle)
    end = data.find(b'\n', start)
    return data[start:end] if end >= 0 else data[start:]


def _v1_numa_stat(data, m):
    """hierarchical_total=... N0=... in pages (total=... when the kernel lacks hierarchical_)."""
    line = _rest_of_line(data, b'\nhierarchical_total=')
    if line is None:
        line = _rest_of_line(b'\n' + data, b'\ntotal=')  # total= is the first line
    if line is not None:
        m[MetricName.TASK_MEM_NUMA_PAGES] = _node_values(line.split()[1:])


def _v2_numa_stat(data, m):
    """anon and file N<node>=<bytes> lines summed into pages per node."""
    pages = {}
    for line in data.split(b'\n'):
        key, _, rest = line.partition(b' ')
        if key in (b'anon', b'file'):
            for node, value in _node_values(rest.split()).items():
                pages[node] = pages.get(node, 0) + value // PAGE_SIZE
    m[MetricName.TASK_MEM_NUMA_PAGES] = pages


# v1 reports "no limit" as the largest page-aligned counter (9223372036854771712 with 4 KiB
# pages); v2 says "max". Both mean the same: the metric is left out. No real limit is near 2^62.
_V1_UNLIMITED = 1 << 62


def _v1_limit(name):
    def parse(data, m):
        value = int(data)
        if value < _V1_UNLIMITED:
            m[name] = value
    return parse


def _v2_limit(name):
    def parse(data, m):
        data = data.strip()
        if data != b'max':
            m[name] = int(data)
    return parse


# (group, controller or 'v2:<controller>', file, parser): per group the first source whose
# directory exists wins, so a task present only in the unified hierarchy still gets measured.
_SOURCES = [
    ('cpu_usage', 'cpuacct', 'cpuacct.usage', single(MetricName.TASK_CPU_USAGE_SECONDS, 1e9)),
    ('cpu_usage', 'v2:', 'cpu.stat', _v2_cpu_stat),
    ('cpu_throttling', 'cpu', 'cpu.stat', _v1_cpu_stat),
    ('memory_usage', 'memory', 'memory.usage_in_bytes', single(MetricName.TASK_MEM_USAGE_BYTES)),
    ('memory_usage', 'v2:memory', 'memory.current', single(MetricName.TASK_MEM_USAGE_BYTES)),
    ('memory_max_usage', 'memory', 'memory.max_usage_in_bytes',
     single(MetricName.TASK_MEM_MAX_USAGE_BYTES)),
    ('memory_max_usage', 'v2:memory', 'memory.peak', single(MetricName.TASK_MEM_MAX_USAGE_BYTES)),
    ('memory_limit', 'memory', 'memory.limit_in_bytes', _v1_limit(MetricName.TASK_MEM_LIMIT_BYTES)),
    ('memory_limit', 'v2:memory', 'memory.max', _v2_limit(MetricName.TASK_MEM_LIMIT_BYTES)),
    ('memory_soft_limit', 'memory', 'memory.soft_limit_in_bytes',
     _v1_limit(MetricName.TASK_MEM_SOFT_LIMIT_BYTES)),
    ('memory_soft_limit', 'v2:memory', 'memory.low', _v2_limit(MetricName.TASK_MEM_SOFT_LIMIT_BYTES)),
    ('memory_stat', 'memory', 'memory.stat', _v1_memory_stat),
    ('memory_stat', 'v2:memory', 'memory.stat', _v2_memory_stat),
    ('memory_numa', 'memory', 'memory.numa_stat', _v1_numa_stat),
    ('memory_numa', 'v2:memory', 'memory.numa_stat', _v2_numa_stat),
    # Pressure stall information: in every cgroup2 directory of a kernel with PSI, whatever
    # controllers are enabled there (also for v1 tasks of a hybrid host: PSI follows the task's
    # cgroup2 directory).
    ('cpu_pressure', 'v2:', 'cpu.pressure', pressure.TASK_CPU),
    ('memory_pressure', 'v2:', 'memory.pressure', pressure.TASK_MEMORY),
    ('io_pressure', 'v2:', 'io.pressure', pressure.TASK_IO),
]


class TaskCgroup(TaskSource):
    """Reads one task's cgroup metrics (the `sources` table: default _SOURCES).

    The files are chosen when the task first appears: per group, the first source whose file
    exists. A group whose directory does not exist yet (container runtimes create the v1
    hierarchies one after another), or whose v2 controller is not enabled yet, is looked for
    again on every later iteration until it is found; a file the kernel lacks is not."""

    def __init__(self, cgroup_path: str, layout: CgroupLayout, errors: Optional[Dict] = None,
                 sources=None):
        self.cgroup_path = cgroup_path
        self.layout = layout
        self.errors = errors if errors is not None else {}
        self._table = sources or _SOURCES
        self._reads = []  # type: List[Tuple[str, str, Parser]]
        self._failed = set()  # type: Set[str]  files already reported as failing
        self._pending = {group for group, _, _, _ in self._table}
        if not self._resolve():
            raise CgroupNotFound(cgroup_path, layout.hierarchies() or ['(no cgroup mounts)'])
        if self._pending:
            log.debug('cgroup %s: waiting for %s', cgroup_path, ', '.join(sorted(self._pending)))

    def _resolve(self) -> bool:
        """Chooses a file for each pending group that can be read now; a group stays pending
        while a source of it may still appear. True when any directory of the task exists."""
        available = {}  # (directory, controller) -> bool: one check each
        chosen, waiting, any_directory = set(), set(), False
        for group, controller, filename, parser in self._table:
            if group not in self._pending or group in chosen:
                continue
            directory = source_directory(self.layout, controller, self.cgroup_path)
            if directory is None:
                continue
            key = (directory, controller)
            if key not in available:
                available[key] = _available(directory, controller)
            if available[key] is None:
                waiting.add(group)  # the directory or its v2 controller may still come
                continue
            any_directory = True
            if not available[key]:
                waiting.add(group)
                continue
            path = directory + '/' + filename
            if os.path.exists(path):
                chosen.add(group)
                self._reads.append((path, directory, parser))
        self._pending = waiting - chosen
        return any_directory or bool(self._reads)

    @property
    def files(self) -> List[str]:
        return [path for path, _, _ in self._reads]

    def measure(self, measurements: Optional[Measurements] = None) -> Measurements:
        """Reads every file once. A file that fails drops only its own metrics."""
        if measurements is None:
            measurements = {}
        if self._pending:
            before = len(self._reads)
            self._resolve()
            for path, _, _ in self._reads[before:]:
                log.info('cgroup %s: %s exists now; its metrics are measured from now on',
                         self.cgroup_path, path)
        for path, directory, parser in self._reads:
            try:
                data = fsutil.read_bytes(path)
            except OSError as e:
                if e.errno in GONE and not os.path.isdir(directory):
                    raise CgroupVanished(self.cgroup_path, path)
                self._failure(path, e.strerror or str(e))
                continue
            try:
                parser(data, measurements)
            except (ValueError, TypeError, LookupError) as e:
                self._failure(path, 'cannot parse: %s' % e)
        return measurements

    def _failure(self, path, reason):
        self.errors['measurement'] = self.errors.get('measurement', 0) + 1
        if path not in self._failed:  # once per file, not once per iteration
            self._failed.add(path)
            log.warning('cannot read %s: %s (its metrics are dropped)', path, reason)


def _available(directory: str, controller: str) -> Optional[bool]:
    """None: the directory does not exist; False: it does, but the v2 controller is not
    enabled in it (yet); True: its files can be read."""
    if not os.path.isdir(directory):
        return None
    wanted = controller[3:] if controller.startswith('v2:') else ''
    if not wanted:
        return True
    try:
        return wanted in fsutil.read_bytes(directory + '/cgroup.controllers').decode().split()
    except OSError:
        return False


PRESSURE_GROUPS = frozenset(['cpu_pressure', 'memory_pressure', 'io_pressure'])


class CgroupSourceFactory(TaskSourceFactory):
    """Each task's cgroup files (the default metric set; without pressure stall information
    when `pressure` is false: three files per task fewer)."""

    def __init__(self, layout: CgroupLayout, errors: Dict[str, int], pressure: bool = True):
        self.layout = layout
        self.errors = errors
        self.sources = _SOURCES if pressure else [
            row for row in _SOURCES if row[0] not in PRESSURE_GROUPS]

    def open(self, task) -> TaskCgroup:
        return TaskCgroup(task.cgroup_path, self.layout, self.errors, self.sources)
