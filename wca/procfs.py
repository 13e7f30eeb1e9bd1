"""The kernel's memory counters for the whole node: /proc/vmstat, each NUMA node's
/sys/devices/system/node/node<N>/vmstat, and /proc/zoneinfo (options `vmstat` and `zoneinfo`).

`vmstat: true` (the default) exports six counters, each taken by its exact key (the original
agent matched prefixes, so numa_hint_faults also picked up numa_hint_faults_local's line);
`vmstat: '<regex>'` adds every key of /proc/vmstat that the regular expression matches as
platform_vmstat{key}, and the same keys per NUMA node as platform_node_vmstat{numa_node,key}.
`zoneinfo: true` (the default) exports platform_zoneinfo{numa_node,zone,key} for the simple
`key value` lines of every zone; `zoneinfo: '<regex>'` chooses them with a regular expression
of two groups (key, value), matched against each line as the original agent did.

Regular expressions are compiled when the config is loaded and never run on the hot path: the
keys a kernel prints do not change while it runs, so whether a key is taken (and under which
name) is decided the first time the key is seen and then looked up in a dict. Each file is read
and split once per iteration.
"""
import logging
import os
import re
from typing import Callable, Dict, List, Optional, Pattern, Tuple, Union  # noqa: F401

from wca import fsutil
from wca.metrics import Measurements, MetricName
from wca.sources import PlatformSource

log = logging.getLogger(__name__)

# Exported whenever vmstat is on, each from exactly this key.
FIXED_VMSTAT = {
    b'numa_pages_migrated': MetricName.PLATFORM_VMSTAT_NUMA_PAGES_MIGRATED,
    b'pgmigrate_success': MetricName.PLATFORM_VMSTAT_PGMIGRATE_SUCCESS,
    b'pgmigrate_fail': MetricName.PLATFORM_VMSTAT_PGMIGRATE_FAIL,
    b'numa_hint_faults': MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS,
    b'numa_hint_faults_local': MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS_LOCAL,
    b'pgfault': MetricName.PLATFORM_VMSTAT_PGFAULTS,
}

# The original agent's default for `zoneinfo: true`: an indented lowercase key and a number.
DEFAULT_ZONEINFO_REGEX = r'\s+([a-z_]+)\s+(\d+)'
PER_NODE_STATS = 'per-node-stats'  # the zone label of a node's `per-node stats` block
_CACHE_LIMIT = 4096  # decisions kept per filter; a kernel prints a few hundred keys
_UNSEEN = object()


_READ = os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0)


def read_all(path: str) -> bytes:
    """The whole of a multi-record seq_file (/proc/zoneinfo: a record per node; /proc/vmstat: a
    record per line; /proc/<pid>/smaps: a record per mapping), read until read() returns
    nothing. The kernel ends a read early where the next record does not fit, so a short read
    is not the end of such a file (fsutil.read_bytes stops at one: right only for files of a
    single record, such as cgroup files, sysfs files, /proc/<pid>/sched or smaps_rollup)."""
    fd = os.open(path, _READ)
    try:
        parts = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                return b''.join(parts)
            parts.append(data)
    finally:
        os.close(fd)


def compile_option(name: str, value: Union[bool, str, None], groups: int = 0) -> Optional[Pattern]:
    """A `true | false | '<regex>'` option, checked and compiled when the config is loaded:
    the pattern, or None for a boolean. ValueError('<name>: problem') when the text is not a
    regular expression, or (groups > 0) has another number of groups."""
    if value is None or isinstance(value, bool):
        return None
    if not value:
        raise ValueError('%s: an empty regular expression matches everything; use true' % name)
    try:
        pattern = re.compile(value)
    except re.error as e:
        raise ValueError('%s: %r is not a valid regular expression: %s' % (name, value, e))
    if groups and pattern.groups != groups:
        raise ValueError('%s: the regular expression %r must have exactly %d groups (the key and '
                         'its value), it has %d' % (name, value, groups, pattern.groups))
    return pattern


class KeyFilter:
    """Which keys a regular expression takes (re.match: from the start of the key), decided
    once per key and then looked up. Keys are bytes as read; the answer is the key as text,
    or None. Without a pattern every key is taken."""
    __slots__ = ('pattern', 'decisions')

    def __init__(self, pattern: Optional[Pattern]):
        self.pattern = pattern
        self.decisions = {}  # type: Dict[bytes, Optional[str]]

    def __call__(self, key: bytes) -> Optional[str]:
        try:
            return self.decisions[key]
        except KeyError:
            pass
        text = key.strip().decode('ascii', 'replace')
        decision = text if self.pattern is None or self.pattern.match(text) else None
        if len(self.decisions) < _CACHE_LIMIT:
            self.decisions[key] = decision
        return decision


def parse_vmstat(data: bytes, keep: Optional[KeyFilter]) -> Tuple[Dict[str, int], Dict[str, int]]:
    """(fixed, kept) of a vmstat file (`key value` lines): the FIXED_VMSTAT metrics found, and
    the values of the keys `keep` takes (nothing without a filter)."""
    fixed, kept = {}, {}
    if keep is None:  # six finds instead of a loop over some 200 lines
        for key, name in FIXED_VMSTAT.items():
            value = fsutil.stat_value(data, key)
            if value is not None:
                fixed[name] = value
        return fixed, kept
    for line in data.split(b'\n'):
        key, _, value = line.partition(b' ')
        if not value:
            continue
        name = FIXED_VMSTAT.get(key)
        if name is not None:
            fixed[name] = int(value)
        if keep is not None:
            label = keep(key)
            if label is not None:
                kept[label] = int(value)
    return fixed, kept


class ZoneinfoKeys:
    """The key name (group 1 of the zoneinfo regex) of each key of /proc/zoneinfo, or None
    when the regex does not take its line; decided on the key's first line, then looked up."""
    __slots__ = ('pattern', 'decisions')

    def __init__(self, pattern: Pattern):
        self.pattern = pattern
        self.decisions = {}  # type: Dict[bytes, Optional[str]]

    def __call__(self, key: bytes, line: bytes) -> Optional[str]:
        try:
            return self.decisions[key]
        except KeyError:
            pass
        match = self.pattern.match(line.decode('ascii', 'replace'))
        decision = match.group(1) if match else None
        if len(self.decisions) < _CACHE_LIMIT:
            self.decisions[key] = decision
        return decision


def parse_zoneinfo(data: bytes, keys: Callable[[bytes, bytes], Optional[str]]
                   ) -> Dict[str, Dict[str, Dict[str, int]]]:
    """/proc/zoneinfo as {numa_node: {zone: {key: value}}}. A node's `per-node stats` block is
    the zone 'per-node-stats'; `pages free N` is the key 'free' (as the original read it).
    Lines that are not one key and one number (protection, pagesets, cpu:, ...) are left out
    unless `keys` takes them."""
    nodes = {}  # type: Dict[str, Dict[str, Dict[str, int]]]
    values = zone_values = None  # type: Optional[Dict[str, int]]
    decisions = getattr(keys, 'decisions', None)  # ZoneinfoKeys' cache, looked up inline
    decided = decisions.get if decisions is not None else None
    for line in data.split(b'\n'):
        if line.startswith(b'Node '):  # b'Node 0, zone   Normal'
            words = line.split()
            node = words[1].rstrip(b',').decode()
            zones = nodes.setdefault(node, {})
            values = zone_values = zones.setdefault(words[3].decode(), {})
            continue
        if values is None:
            continue
        words = line.split()
        if len(words) == 2:
            key, value = words
            if key == b'per-node' and value == b'stats':
                values = zones.setdefault(PER_NODE_STATS, {})
                continue
        elif len(words) == 3 and words[0] == b'pages':  # b'  pages free     3840'
            key, value = words[1], words[2]
            line = b' ' + line.lstrip()[5:].lstrip()  # b' free     3840', as the original read it
            values = zone_values  # the zone's own lines follow a per-node block
        else:
            continue
        name = decided(key, _UNSEEN) if decided else _UNSEEN
        if name is _UNSEEN:
            name = keys(key, line)
        if name is None:
            continue
        try:
            values[name] = int(value)
        except ValueError:
            continue  # a line the regex takes whose second word is not a number
    for zones in nodes.values():  # zones where the regex took nothing
        for zone in [z for z, taken in zones.items() if not taken]:
            del zones[zone]
    return nodes


def numa_nodes(sys: str = '/sys') -> List[int]:
    """The NUMA nodes of /sys/devices/system/node (none on a kernel without NUMA)."""
    try:
        names = os.listdir(os.path.join(sys, 'devices/system/node'))
    except OSError:
        return []
    return sorted(int(n[4:]) for n in names if n.startswith('node') and n[4:].isdigit())


class _Failures:
    """A file that cannot be read or parsed: logged once (and again after it recovers),
    counted every time in errors['measurement']."""

    def __init__(self, errors: Optional[Dict[str, int]]):
        self.errors = errors if errors is not None else {}
        self.failing = set()

    def failed(self, path: str, reason):
        self.errors['measurement'] = self.errors.get('measurement', 0) + 1
        if path not in self.failing:
            self.failing.add(path)
            log.warning('cannot read %s: %s (its metrics are dropped)', path, reason)

    def ok(self, path: str):
        if self.failing and path in self.failing:
            self.failing.discard(path)
            log.info('%s can be read again', path)


class VmstatSource(PlatformSource):
    """platform_vmstat_* from /proc/vmstat; with a filter also platform_vmstat{key} and, from
    each NUMA node's vmstat, platform_node_vmstat{numa_node,key}."""

    def __init__(self, pattern: Optional[Pattern] = None, proc: str = '/proc', sys: str = '/sys',
                 errors: Optional[Dict[str, int]] = None):
        self.vmstat = os.path.join(proc, 'vmstat')
        self.filter = KeyFilter(pattern) if pattern is not None else None
        self.nodes = []  # type: List[Tuple[str, str]]
        if self.filter is not None:
            for node in numa_nodes(sys):
                path = os.path.join(sys, 'devices/system/node/node%d/vmstat' % node)
                if os.path.exists(path):  # since Linux 2.6.30 (and only with CONFIG_NUMA)
                    self.nodes.append((str(node), path))
        self._failures = _Failures(errors)

    @property
    def files(self) -> List[str]:
        return [self.vmstat] + [path for _, path in self.nodes]

    def _read(self, path: str):
        try:
            data = read_all(path) if path == self.vmstat else fsutil.read_bytes(path)  # sysfs: one
        except OSError as e:
            self._failures.failed(path, e.strerror or e)
            return None
        return data

    def collect(self, measurements: Measurements) -> None:
        data = self._read(self.vmstat)
        if data is not None:
            try:
                fixed, kept = parse_vmstat(data, self.filter)
            except ValueError as e:
                self._failures.failed(self.vmstat, 'cannot parse: %s' % e)
            else:
                self._failures.ok(self.vmstat)
                measurements.update(fixed)
                if self.filter is not None:
                    measurements[MetricName.PLATFORM_VMSTAT] = kept
        if not self.nodes:
            return
        per_node = {}
        for node, path in self.nodes:
            data = self._read(path)
            if data is None:
                continue
            try:
                per_node[node] = parse_vmstat(data, self.filter)[1]
            except ValueError as e:
                self._failures.failed(path, 'cannot parse: %s' % e)
            else:
                self._failures.ok(path)
        if per_node:
            measurements[MetricName.PLATFORM_NODE_VMSTAT] = per_node


class ZoneinfoSource(PlatformSource):
    """platform_zoneinfo{numa_node,zone,key} from /proc/zoneinfo."""

    def __init__(self, pattern: Optional[Pattern] = None, proc: str = '/proc',
                 errors: Optional[Dict[str, int]] = None):
        self.zoneinfo = os.path.join(proc, 'zoneinfo')
        self.keys = ZoneinfoKeys(pattern or re.compile(DEFAULT_ZONEINFO_REGEX))
        self._failures = _Failures(errors)

    @property
    def files(self) -> List[str]:
        return [self.zoneinfo]

    def collect(self, measurements: Measurements) -> None:
        try:
            data = read_all(self.zoneinfo)
        except OSError as e:
            self._failures.failed(self.zoneinfo, e.strerror or e)
            return
        try:
            zones = parse_zoneinfo(data, self.keys)
        except (ValueError, IndexError) as e:
            self._failures.failed(self.zoneinfo, 'cannot parse: %s' % e)
            return
        self._failures.ok(self.zoneinfo)
        measurements[MetricName.PLATFORM_ZONEINFO] = zones


def platform_sources(vmstat, zoneinfo, proc: str = '/proc', sys: str = '/sys',
                     errors: Optional[Dict[str, int]] = None) -> List[PlatformSource]:
    """The sources the `vmstat` and `zoneinfo` options ask for (true, false or a regex)."""
    sources = []  # type: List[PlatformSource]
    if vmstat is not False:
        sources.append(VmstatSource(compile_option('vmstat', vmstat), proc, sys, errors))
    if zoneinfo is not False:
        sources.append(ZoneinfoSource(compile_option('zoneinfo', zoneinfo, 2), proc, errors))
    return sources
