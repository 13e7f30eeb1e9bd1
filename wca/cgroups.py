"""One task's cgroup files, on cgroup v1 (controllers mounted together or apart) and v2.

CgroupLayout says where each controller is mounted (detected from /proc/self/mounts, or given
by a test); TaskCgroup works out once, when a task appears, exactly which files to read, and
reads each of them once per iteration.
"""
import errno
import logging
import os
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass, field

from wca import fsutil
from wca.metrics import MetricName, Measurements

log = logging.getLogger(__name__)

V1_CONTROLLERS = ('cpu', 'cpuacct', 'cpuset', 'memory', 'perf_event')
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')
_GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH)


class CgroupNotFound(Exception):
    """The task's cgroup exists in none of the hierarchies the agent reads."""

    def __init__(self, cgroup_path, searched):
        super().__init__('cgroup %s not found under %s' % (cgroup_path, ', '.join(searched)))
        self.cgroup_path = cgroup_path


class CgroupVanished(Exception):
    """The task's cgroup was removed while the agent was reading it."""

    def __init__(self, cgroup_path, filename):
        super().__init__('cgroup %s vanished (%s)' % (cgroup_path, filename))
        self.cgroup_path = cgroup_path


@dataclass(frozen=True)
class CgroupLayout:
    """Mount points: v1 controller -> mount, and the cgroup2 (unified) mount, if any."""
    v1: Dict[str, str] = field(default_factory=dict)
    unified: Optional[str] = None
    unified_controllers: FrozenSet[str] = frozenset()

    @classmethod
    def detect(cls, mounts_file: str = '/proc/self/mounts') -> 'CgroupLayout':
        v1, unified = {}, None
        for line in fsutil.read_text(mounts_file).splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            fstype, mount_point, options = fields[2], _unescape(fields[1]), fields[3].split(',')
            if fstype == 'cgroup':
                for option in options:
                    if option in V1_CONTROLLERS:
                        v1.setdefault(option, mount_point)
            elif fstype == 'cgroup2' and unified is None:
                unified = mount_point
        return cls.with_unified(v1, unified)

    @classmethod
    def with_unified(cls, v1: Dict[str, str], unified: Optional[str]) -> 'CgroupLayout':
        controllers = frozenset()
        if unified:
            try:
                controllers = frozenset(fsutil.read_text(
                    os.path.join(unified, 'cgroup.controllers')).split())
            except OSError:
                pass
        return cls(dict(v1), unified, controllers)

    def v2_has(self, controller: str) -> bool:
        return bool(self.unified) and controller in self.unified_controllers \
            and controller not in self.v1

    def hierarchies(self) -> List[str]:
        """Distinct mount points the agent measures from (for discovery)."""
        mounts = [self.v1[c] for c in ('cpuacct', 'cpu', 'memory') if c in self.v1]
        if self.unified:
            mounts.append(self.unified)
        return list(dict.fromkeys(mounts))

    def directories(self, cgroup_path: str) -> List[str]:
        return [_join(mount, cgroup_path) for mount in self.hierarchies()]

    def list_cgroups(self, root: str = '/', max_depth: int = 1) -> List[str]:
        """Child cgroups of `root` (relative paths like '/a/b') in any hierarchy, sorted."""
        found = set()  # type: Set[str]
        for mount in self.hierarchies():
            _walk(_join(mount, root), root.rstrip('/'), max_depth, found)
        return sorted(found)

    def pids(self, cgroup_path: str) -> List[int]:
        """Processes in the cgroup (from the first hierarchy that has it)."""
        for directory in self.directories(cgroup_path):
            try:
                return [int(p) for p in fsutil.read_bytes(
                    os.path.join(directory, 'cgroup.procs')).split()]
            except OSError:
                continue
        return []


def _unescape(path):
    return path.replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')


def _join(mount, cgroup_path):
    return mount.rstrip('/') + '/' + cgroup_path.strip('/') if cgroup_path.strip('/') else mount


def _walk(directory, relative, depth, found):
    if depth <= 0:
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        child = relative + '/' + entry.name
        found.add(child)
        _walk(entry.path, child, depth - 1, found)


# ---------------------------------------------------------------------------------------------
# Parsers: each fills measurements from one file's bytes.

Parser = Callable[[bytes, Measurements], None]


def _single(name, scale=None):
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


def _v2_limit(name):
    def parse(data, m):
        data = data.strip()
        if data != b'max':
            m[name] = int(data)
    return parse


# (group, controller or 'v2:<controller>', file, parser): per group the first source whose
# directory exists wins, so a task present only in the unified hierarchy still gets measured.
_SOURCES = [
    ('cpu_usage', 'cpuacct', 'cpuacct.usage', _single(MetricName.TASK_CPU_USAGE_SECONDS, 1e9)),
    ('cpu_usage', 'v2:', 'cpu.stat', _v2_cpu_stat),
    ('cpu_throttling', 'cpu', 'cpu.stat', _v1_cpu_stat),
    ('memory_usage', 'memory', 'memory.usage_in_bytes', _single(MetricName.TASK_MEM_USAGE_BYTES)),
    ('memory_usage', 'v2:memory', 'memory.current', _single(MetricName.TASK_MEM_USAGE_BYTES)),
    ('memory_max_usage', 'memory', 'memory.max_usage_in_bytes',
     _single(MetricName.TASK_MEM_MAX_USAGE_BYTES)),
    ('memory_max_usage', 'v2:memory', 'memory.peak', _single(MetricName.TASK_MEM_MAX_USAGE_BYTES)),
    ('memory_limit', 'memory', 'memory.limit_in_bytes', _single(MetricName.TASK_MEM_LIMIT_BYTES)),
    ('memory_limit', 'v2:memory', 'memory.max', _v2_limit(MetricName.TASK_MEM_LIMIT_BYTES)),
    ('memory_soft_limit', 'memory', 'memory.soft_limit_in_bytes',
     _single(MetricName.TASK_MEM_SOFT_LIMIT_BYTES)),
    ('memory_soft_limit', 'v2:memory', 'memory.low', _v2_limit(MetricName.TASK_MEM_SOFT_LIMIT_BYTES)),
    ('memory_stat', 'memory', 'memory.stat', _v1_memory_stat),
    ('memory_stat', 'v2:memory', 'memory.stat', _v2_memory_stat),
    ('memory_numa', 'memory', 'memory.numa_stat', _v1_numa_stat),
    ('memory_numa', 'v2:memory', 'memory.numa_stat', _v2_numa_stat),
]


# What a task is given now (for TaskData.allocations), raw as the kernel has it; see
# wca.allocations.current_allocations for the contract's units.
QUOTA_US, PERIOD_US, SHARES = 'cpu_quota_us', 'cpu_period_us', 'cpu_shares_v1'


def _text(key):
    def parse(data, m):
        m[key] = data.decode().strip()
    return parse


def _v2_cpu_max(data, m):
    """'max 100000' or '50000 100000'; unlimited is -1 as in v1's cpu.cfs_quota_us."""
    quota, period = data.split()
    m[QUOTA_US] = -1 if quota == b'max' else int(quota)
    m[PERIOD_US] = int(period)


def _v2_cpu_weight(data, m):
    """cpu.weight as v1 shares: the scheduler weight is shares, or weight * 1024 / 100 (so the
    defaults, 1024 shares and weight 100, are equal)."""
    m[SHARES] = int(data) * 1024 // 100


ALLOCATION_SOURCES = [
    ('quota', 'cpu', 'cpu.cfs_quota_us', _single(QUOTA_US)),
    ('quota', 'v2:cpu', 'cpu.max', _v2_cpu_max),
    ('period', 'cpu', 'cpu.cfs_period_us', _single(PERIOD_US)),
    ('shares', 'cpu', 'cpu.shares', _single(SHARES)),
    ('shares', 'v2:cpu', 'cpu.weight', _v2_cpu_weight),
    ('cpuset_cpus', 'cpuset', 'cpuset.cpus', _text('cpuset_cpus')),
    ('cpuset_cpus', 'v2:cpuset', 'cpuset.cpus.effective', _text('cpuset_cpus')),
    ('cpuset_mems', 'cpuset', 'cpuset.mems', _text('cpuset_mems')),
    ('cpuset_mems', 'v2:cpuset', 'cpuset.mems.effective', _text('cpuset_mems')),
    ('memory_migrate', 'cpuset', 'cpuset.memory_migrate', _single('cpuset_memory_migrate')),
]


def _source_directory(layout: CgroupLayout, controller: str, cgroup_path: str) -> Optional[str]:
    if controller.startswith('v2:'):
        wanted = controller[3:]
        if not layout.unified or (wanted and not layout.v2_has(wanted)):
            return None
        return _join(layout.unified, cgroup_path)
    mount = layout.v1.get(controller)
    return _join(mount, cgroup_path) if mount else None


class TaskCgroup:
    """Reads one task's cgroup metrics (or, with ALLOCATION_SOURCES, its current settings):
    the file list is fixed when the task first appears."""

    def __init__(self, cgroup_path: str, layout: CgroupLayout, errors: Optional[Dict] = None,
                 sources=None):
        self.cgroup_path = cgroup_path
        self.layout = layout
        self.errors = errors if errors is not None else {}
        self._reads = []  # type: List[Tuple[str, str, Parser]]
        self._failed = set()  # type: Set[str]  files already reported as failing
        exists = {}  # directory -> bool, one stat per directory
        chosen = set()
        for group, controller, filename, parser in (sources or _SOURCES):
            if group in chosen:
                continue
            directory = _source_directory(layout, controller, cgroup_path)
            if directory is None:
                continue
            if directory not in exists:
                exists[directory] = os.path.isdir(directory)
            if not exists[directory]:
                continue
            path = directory + '/' + filename
            if os.path.exists(path):
                chosen.add(group)
                self._reads.append((path, directory, parser))
        if not any(exists.values()):
            raise CgroupNotFound(cgroup_path, layout.hierarchies() or ['(no cgroup mounts)'])

    @property
    def files(self) -> List[str]:
        return [path for path, _, _ in self._reads]

    def measure(self) -> Measurements:
        """Reads every file once. A file that fails drops only its own metrics."""
        measurements = {}  # type: Measurements
        for path, directory, parser in self._reads:
            try:
                data = fsutil.read_bytes(path)
            except OSError as e:
                if e.errno in _GONE and not os.path.isdir(directory):
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
