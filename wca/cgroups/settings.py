"""Each allocation setting's cgroup files on v1 and v2, read and written from one table.

SETTINGS holds, per allocation type and cgroup version: the controller, the files read (and
their parser into a "kernel value"), the conversions between the kernel value and the
contract's units (wca.allocators), and how a target is written:

    cpu_quota     v1 cpu.cfs_quota_us + cpu.cfs_period_us      v2 cpu.max
    cpu_shares    v1 cpu.shares                                 v2 cpu.weight
    cpuset_cpus   v1 cpuset.cpus                                v2 cpuset.cpus (read: also .effective)
    cpuset_mems   v1 cpuset.mems                                v2 cpuset.mems (read: also .effective)
    cpuset_memory_migrate  v1 cpuset.memory_migrate             v2: none (always migrates)

Units: cpu_quota is a fraction of the whole platform (quota / period / CPUs; unlimited, -1 or
"max", is 1.0), and 1.0 or more is written as unlimited. The kernel takes a quota of at least
1000 us and a period of 1000 us to 1 s: where cpu_quota_period cannot hold the ratio (with the
default 1 ms, any quota under one CPU), that cgroup's period is lengthened to the shortest
multiple of it that can (at most 1 s), so a cap takes effect as computed; below 1 ms per second
the least quota is written (and said once). A quota is held when the kernel's ratio
quota / period is within the tolerance (relative) of the target's, whatever the period.
cpu_shares is cpu.shares / cpu_shares_unit, written as at least 2 and at most 262144 shares; on
v2 shares and weight convert as the OCI runtimes and the kubelet do
(weight = 1 + (shares - 2) * 9999 / 262142; read back with the inverse that gives the same
weight again).

TaskSettings applies the table to one task: for a pod (a task with subcgroups_paths) quota,
shares and memory_migrate live on the pod's cgroup and the containers' quotas are made
unlimited (the pod's quota is the limit), and the cpusets live on every container's cgroup,
where the kubelet puts them.
"""
import errno
import logging
import math
import os
from typing import Any, Callable, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass

from wca import fsutil
from wca.allocators import AllocationType
from wca.cgroups.layout import GONE, CgroupLayout, source_directory

log = logging.getLogger(__name__)

QUOTA, SHARES = AllocationType.QUOTA, AllocationType.SHARES
CPUS, MEMS = AllocationType.CPUSET_CPUS, AllocationType.CPUSET_MEMS
MIGRATE = AllocationType.CPUSET_MEMORY_MIGRATE
KINDS = (QUOTA, SHARES, MIGRATE, CPUS, MEMS)  # also the order of writes: memory_migrate first,
# so that a cpuset.mems written in the same iteration moves the memory
UNLIMITED = -1
MIN_QUOTA_US, MAX_PERIOD_US = 1000, 1000000  # the kernel's limits (v1 and cpu.max)
MIN_SHARES, MAX_SHARES = 2, 262144
MIN_WEIGHT, MAX_WEIGHT = 1, 10000

# Reasons (labels of allocations_rejected_total; the same words as wca.allocations).
UNSUPPORTED, KERNEL_REFUSED, PERMISSION, VANISHED = (
    'unsupported', 'kernel_refused', 'permission', 'vanished')


@dataclass(frozen=True)
class Units:
    """What converts contract values to kernel values: the platform's CPUs and the
    AllocationConfiguration."""
    cpus: int
    quota_period: int = 1000
    shares_unit: float = 1000


class SettingRefused(Exception):
    """A setting could not be written (or cannot be on this host); reason is a rejection
    reason, the message says what and why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def weight_from_shares(shares: int) -> int:
    return 1 + ((shares - MIN_SHARES) * 9999) // 262142


def shares_from_weight(weight: int) -> int:
    """The fewest shares that give this weight (so weight -> shares -> weight is stable)."""
    return MIN_SHARES + -((-(weight - MIN_WEIGHT) * 262142) // 9999)


def _shares(value: float, units: Units) -> int:
    return min(MAX_SHARES, max(MIN_SHARES, int(value * units.shares_unit)))


def _quota_value(kernel, units: Units) -> float:
    quota, period = kernel
    if quota < 0 or period <= 0:
        return 1.0
    return min(1.0, quota / period / max(units.cpus, 1))


def _quota_target(value: float, units: Units):
    if value >= 1.0:
        return UNLIMITED, units.quota_period
    return quota_period(value * units.cpus, units.quota_period)


def quota_period(cpus: float, period: int) -> Tuple[int, int]:
    """(quota, period) in microseconds that give `cpus` CPUs: with `period` where the quota is
    at least the kernel's least (1000 us), else with the shortest multiple of `period` (at most
    1 s) where it is; below 1 ms per second, the least the kernel can hold."""
    quota = cpus * period
    if quota < MIN_QUOTA_US:
        if cpus * MAX_PERIOD_US <= MIN_QUOTA_US:
            return MIN_QUOTA_US, MAX_PERIOD_US
        period = min(MAX_PERIOD_US, period * int(math.ceil(MIN_QUOTA_US / quota - 1e-9)))
        quota = cpus * period
    return max(MIN_QUOTA_US, int(round(quota))), period


def _quota_holds(target, current, tolerance) -> bool:
    """Both unlimited, or both limited with ratios within `tolerance` of the target's
    (relative): a period lengthened for a small quota, or another one with the same ratio,
    is not written again."""
    if target[0] == UNLIMITED or current[0] < 0 or current[1] <= 0:
        return target[0] == UNLIMITED and current[0] < 0
    wanted = target[0] / target[1]
    return abs(current[0] / current[1] - wanted) <= tolerance * wanted


def _v1_quota_parse(data):
    return int(data[0]), int(data[1])


def _v1_quota_render(target, current):
    if current is not None and current[1] == target[1]:
        return [('cpu.cfs_quota_us', b'%d' % target[0])]
    # A new period: unlimited first, so that neither the old quota with the new period nor the
    # new one with the old period is ever checked against the parent's limit.
    writes = [('cpu.cfs_quota_us', b'-1'), ('cpu.cfs_period_us', b'%d' % target[1])]
    if target[0] != UNLIMITED:
        writes.append(('cpu.cfs_quota_us', b'%d' % target[0]))
    return writes


def _v2_quota_parse(data):
    quota, period = data[0].split()
    return (UNLIMITED if quota == b'max' else int(quota)), int(period)


def _v2_quota_render(target, current):
    quota = b'max' if target[0] == UNLIMITED else b'%d' % target[0]
    return [('cpu.max', quota + b' %d' % target[1])]


def _list(data) -> frozenset:
    return frozenset(fsutil.parse_cpu_list(data.decode()))


def _list_text(members) -> bytes:
    return fsutil.format_cpu_list(members).encode()


def _v2_list_parse(data):
    """(cpuset.X, cpuset.X.effective): what was written (empty: inherited) and what holds."""
    return _list(data[0]), _list(data[1])


def _v2_list_value(kernel, units):
    configured, effective = kernel
    return fsutil.format_cpu_list(effective or configured)


def _v2_list_holds(target, current, tolerance) -> bool:
    # The effective set is the written one within the parent's: once written, what was asked
    # is held even where the parent narrows it (else it would be written again every time).
    return target == current[1] or target == current[0]


def _no_v2_memory_migrate(target, current):
    if target == 1:
        return []
    raise SettingRefused(UNSUPPORTED, 'cgroup v2 has no cpuset.memory_migrate: memory always '
                                      'moves with cpuset.mems there, it cannot be turned off')


@dataclass(frozen=True)
class Setting:
    kind: AllocationType
    controller: str  # a v1 controller, or 'v2:<controller>' (see layout.source_directory)
    files: Tuple[str, ...]  # read, in this order, and handed to parse
    parse: Callable[[List[bytes]], Any]  # -> the kernel value
    value: Callable[[Any, Units], Any]  # kernel value -> contract value
    target: Callable[[Any, Units], Any]  # contract value -> kernel value
    render: Callable[[Any, Any], List[Tuple[str, bytes]]]  # (target, current or None) -> writes
    # (target, current, tolerance) -> whether the kernel holds the target already
    holds: Callable[[Any, Any, float], bool] = lambda target, current, tolerance: target == current


def _single(name, parse, value, target):
    return Setting(
        kind=name[0], controller=name[1], files=(name[2],), parse=lambda data: parse(data[0]),
        value=value, target=target,
        render=lambda t, c, f=name[2], text=name[3]: [(f, text(t))])


_format_int = b'%d'.__mod__
_set_value = (lambda kernel, units: fsutil.format_cpu_list(kernel))
_set_target = (lambda value, units: _list(value.encode()))

SETTINGS = (
    Setting(QUOTA, 'cpu', ('cpu.cfs_quota_us', 'cpu.cfs_period_us'), _v1_quota_parse,
            _quota_value, _quota_target, _v1_quota_render, _quota_holds),
    Setting(QUOTA, 'v2:cpu', ('cpu.max',), _v2_quota_parse, _quota_value, _quota_target,
            _v2_quota_render, _quota_holds),
    _single((SHARES, 'cpu', 'cpu.shares', _format_int), int,
            lambda kernel, units: kernel / units.shares_unit, _shares),
    _single((SHARES, 'v2:cpu', 'cpu.weight', _format_int), int,
            lambda kernel, units: shares_from_weight(kernel) / units.shares_unit,
            lambda value, units: weight_from_shares(_shares(value, units))),
    _single((MIGRATE, 'cpuset', 'cpuset.memory_migrate', _format_int), int,
            lambda kernel, units: kernel, lambda value, units: int(value)),
    Setting(MIGRATE, 'v2:cpuset', (), lambda data: 1, lambda kernel, units: kernel,
            lambda value, units: int(value), _no_v2_memory_migrate),
    _single((CPUS, 'cpuset', 'cpuset.cpus', _list_text), _list, _set_value, _set_target),
    Setting(CPUS, 'v2:cpuset', ('cpuset.cpus', 'cpuset.cpus.effective'), _v2_list_parse,
            _v2_list_value, _set_target, lambda t, c: [('cpuset.cpus', _list_text(t))],
            _v2_list_holds),
    _single((MEMS, 'cpuset', 'cpuset.mems', _list_text), _list, _set_value, _set_target),
    Setting(MEMS, 'v2:cpuset', ('cpuset.mems', 'cpuset.mems.effective'), _v2_list_parse,
            _v2_list_value, _set_target, lambda t, c: [('cpuset.mems', _list_text(t))],
            _v2_list_holds),
)


class Place:
    """One setting of one cgroup directory: the table row that applies there."""
    __slots__ = ('setting', 'directory')

    def __init__(self, setting: Setting, directory: str):
        self.setting = setting
        self.directory = directory

    def read(self):
        """The kernel value, or None when a file cannot be read or parsed (then a write is not
        skipped: what the kernel holds is not known)."""
        try:
            return self.setting.parse([fsutil.read_bytes(self.directory + '/' + name)
                                       for name in self.setting.files])
        except (OSError, ValueError, IndexError):
            return None

    def write(self, target, current) -> None:
        for name, data in self.setting.render(target, current):
            path = self.directory + '/' + name
            try:
                _write(path, data)
            except OSError as e:
                if e.errno in GONE and not os.path.isdir(self.directory):
                    raise SettingRefused(VANISHED, 'cgroup %s vanished' % self.directory)
                reason = PERMISSION if e.errno in (errno.EACCES, errno.EPERM) else KERNEL_REFUSED
                raise SettingRefused(reason, 'writing %s to %s failed: %s' % (
                    data.decode(errors='replace'), path, e.strerror or e))


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | getattr(os, 'O_CLOEXEC', 0))
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.EIO, 'short write (%d of %d bytes)' % (written, len(data)))
    finally:
        os.close(fd)


# Current values of a task: per kind, the kernel value of each of its places (None: unknown).
Current = Dict[AllocationType, List[Any]]


class TaskSettings:
    """One task's settings: where each lives (chosen when the task appears; a setting whose
    directory does not exist yet is looked for again at every read), read every iteration,
    written only where the kernel does not hold the target already."""

    def __init__(self, cgroup_path: str, subcgroups_paths: List[str], layout: CgroupLayout,
                 units: Units):
        self.cgroup_path = cgroup_path
        self.subcgroups_paths = list(subcgroups_paths)
        self.layout = layout
        self.units = units
        self.places = {}  # type: Dict[AllocationType, List[Place]]
        self.unlimit = []  # type: List[Place]  a pod's containers' quotas, made unlimited
        self._pending = set(KINDS)
        self._told_minimum = False
        self._resolve()

    def _paths(self, kind) -> List[str]:
        if kind in (CPUS, MEMS) and self.subcgroups_paths:
            return self.subcgroups_paths
        return [self.cgroup_path]

    def _resolve(self):
        available = {}  # type: Dict[Tuple[str, str], bool]
        for kind in list(self._pending):
            places = []
            for path in self._paths(kind):
                place = _place(self.layout, kind, path, available)
                if place is None:
                    break
                places.append(place)
            else:
                self.places[kind] = places
                self._pending.discard(kind)
        if QUOTA in self.places and self.subcgroups_paths and not self.unlimit:
            setting = self.places[QUOTA][0].setting
            self.unlimit = [Place(setting, source_directory(self.layout, setting.controller, path))
                            for path in self.subcgroups_paths]

    def read(self) -> Current:
        if self._pending:
            self._resolve()
        current = {kind: [place.read() for place in places]
                   for kind, places in self.places.items()}  # type: Current
        return current

    def values(self, current: Current) -> Dict[AllocationType, Any]:
        """The contract's values of what the kernel holds (of the first place: a pod's first
        container for the cpusets)."""
        values = {}
        for kind, kernel in current.items():
            if kernel and kernel[0] is not None:
                values[kind] = self.places[kind][0].setting.value(kernel[0], self.units)
        return values

    def apply(self, kind: AllocationType, value, current: Current, tolerance: float) -> int:
        """Writes `value` where the kernel does not hold it; returns the number of cgroups
        written (0: it held it already). Shares within `tolerance` of the ones held, and a
        quota whose ratio is within `tolerance` of the held one's (relative), are not written.
        Raises SettingRefused."""
        places = self.places.get(kind)
        if not places:
            raise SettingRefused(UNSUPPORTED, 'cgroup %s has no %s setting: the %s controller is '
                                 'neither mounted in v1 nor enabled for it in cgroup2' % (
                                     self._paths(kind)[0], kind.value, _CONTROLLER[kind]))
        written = 0
        if kind is QUOTA and self.unlimit:  # first: a container's limit above the pod's fails
            for place in self.unlimit:
                held = place.read()
                if held is None and not os.path.isdir(place.directory):
                    continue  # a container not made yet, or gone: nothing to unlimit
                if held is None or held[0] != UNLIMITED:
                    target = (UNLIMITED, held[1] if held else self.units.quota_period)
                    place.write(target, held)
        kernel = current.get(kind) or [None] * len(places)
        for place, held in zip(places, kernel):
            setting = place.setting
            if held is not None and kind is SHARES and \
                    abs(setting.value(held, self.units) - value) <= tolerance:
                continue
            target = setting.target(value, self.units)
            if held is not None and setting.holds(target, held, tolerance):
                continue
            if kind is QUOTA and not self._told_minimum and \
                    value * self.units.cpus * MAX_PERIOD_US < MIN_QUOTA_US:
                self._told_minimum = True
                log.warning('cgroup %s: cpu_quota %r is %.3g us per second, below the kernel\'s '
                            'least quota of 1 ms per period of at most 1 s: 1000 us per second '
                            'written (cpu_quota %.3g)', self.cgroup_path, value,
                            value * self.units.cpus * MAX_PERIOD_US,
                            MIN_QUOTA_US / MAX_PERIOD_US / self.units.cpus)
            place.write(target, held)
            written += 1
        return written


_CONTROLLER = {QUOTA: 'cpu', SHARES: 'cpu', CPUS: 'cpuset', MEMS: 'cpuset', MIGRATE: 'cpuset'}


def _place(layout: CgroupLayout, kind, path: str, available) -> Optional[Place]:
    """The first setting of `kind` whose directory exists for `path` (v1, then v2 where the
    controller is enabled for the cgroup), or None."""
    for setting in SETTINGS:
        if setting.kind is not kind:
            continue
        directory = source_directory(layout, setting.controller, path)
        if directory is None:
            continue
        key = (directory, setting.controller)
        if key not in available:
            available[key] = _usable(directory, setting.controller)
        if available[key]:
            return Place(setting, directory)
    return None


def _usable(directory: str, controller: str) -> bool:
    """The directory exists, and on v2 the controller is enabled for it."""
    if not os.path.isdir(directory):
        return False
    if not controller.startswith('v2:'):
        return True
    try:
        return controller[3:] in fsutil.read_bytes(directory + '/cgroup.controllers').decode().split()
    except OSError:
        return False
