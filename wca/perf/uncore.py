"""Platform (uncore) counters: memory controller (uncore_imc_*), UPI link (uncore_upi_*) and
caching agent (uncore_cha_*) PMUs, discovered under /sys/bus/event_source/devices (each has a
`type` to open events with and a `cpumask` of the CPUs to open them on, one per socket).

`uncore_event_names` lists known names (platform_cas_count_reads, ...) or custom events written
`name/uncore_imc/event=0x04,umask=0x03[,config1=0x..]/`; a list of lists makes separate groups.
One group per PMU and CPU of its cpumask (pid -1); metrics are labelled with the CPU's socket
and the PMU's type.
"""
import logging
import os
import struct
import time
from typing import Dict, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass

from wca import fsutil
from wca.metrics import Measurements, MetricName
from wca.perf.counters import UNSUPPORTED, PerfStatus, open_group, scaled
from wca.perf.events import Event, suggest
from wca.perf.syscall import (PERF_FLAG_FD_CLOEXEC, PerfOpenError, close_all, group_read_size,
                              group_reader, reset_and_enable)
from wca.sources import PlatformSource

log = logging.getLogger(__name__)

PMU_KINDS = ('uncore_imc', 'uncore_upi', 'uncore_cha')
# name -> (PMU kind, event, umask)
KNOWN = {
    MetricName.PLATFORM_CAS_COUNT_READS: ('uncore_imc', 0x04, 0x03),
    MetricName.PLATFORM_CAS_COUNT_WRITES: ('uncore_imc', 0x04, 0x0C),
    MetricName.PLATFORM_PMM_BANDWIDTH_READS: ('uncore_imc', 0xE3, 0),
    MetricName.PLATFORM_PMM_BANDWIDTH_WRITES: ('uncore_imc', 0xE7, 0),
    MetricName.PLATFORM_RPQ_OCCUPANCY: ('uncore_imc', 0x80, 0),
    MetricName.PLATFORM_RPQ_INSERTS: ('uncore_imc', 0x10, 0),
    MetricName.PLATFORM_IMC_CLOCKTICKS: ('uncore_imc', 0x00, 0),
    MetricName.PLATFORM_UPI_RXL_FLITS: ('uncore_upi', 0x03, 0x0F),
    MetricName.PLATFORM_UPI_TXL_FLITS: ('uncore_upi', 0x02, 0x0F),
}
_KNOWN = {str(name): spec for name, spec in KNOWN.items()}
CACHE_LINE = 64  # bytes per CAS operation (and per PMM access)


@dataclass(frozen=True)
class UncoreEvent:
    name: str
    pmu: str  # a PMU kind (uncore_imc: every instance) or one instance (uncore_imc_2)
    config: int
    config1: int = 0


@dataclass(frozen=True)
class Pmu:
    name: str  # uncore_imc_0
    type: int
    cpus: Tuple[int, ...]


def parse(name: str) -> UncoreEvent:
    """A known name or `name/pmu/event=..,umask=..[,config1=..]/`; ValueError otherwise."""
    if not isinstance(name, str):
        raise ValueError('expected event names (strings), not %r' % (name,))
    if '/' not in name:
        spec = _KNOWN.get(name)
        if spec is None:
            raise ValueError('unknown uncore event %r%s; known: %s, or a custom event written '
                             'name/uncore_imc/event=0x..,umask=0x..[,config1=0x..]/' % (
                                 name, suggest(name, sorted(_KNOWN)), ', '.join(sorted(_KNOWN))))
        kind, event, umask = spec
        return UncoreEvent(name, kind, event | umask << 8)
    parts = name.split('/')
    if len(parts) != 4 or parts[3] != '' or not parts[0] or not parts[2]:
        raise ValueError('%r: a custom uncore event is written name/pmu/event=0x..,umask=0x..'
                         '[,config1=0x..]/' % name)
    metric, pmu, terms = parts[0], parts[1], parts[2]
    if not all(c.isalnum() or c == '_' for c in metric) or metric[0].isdigit():
        raise ValueError('%r: %r is not a metric name (letters, digits, _)' % (name, metric))
    if _kind(pmu) is None:
        raise ValueError('%r: PMU %r is not one of %s (or an instance such as uncore_imc_0)' % (
            name, pmu, ', '.join(PMU_KINDS)))
    values = {'event': 0, 'umask': 0, 'config1': 0}
    for term in terms.split(','):
        key, sep, value = term.partition('=')
        if not sep or key.strip() not in values:
            raise ValueError('%r: %r: expected event=, umask= or config1=' % (name, term))
        try:
            values[key.strip()] = int(value.strip(), 0)
        except ValueError:
            raise ValueError('%r: %r is not a number (0x.. or decimal)' % (name, value))
    if values['event'] > 0xFF or values['umask'] > 0xFF:
        raise ValueError('%r: event and umask are one byte each' % name)
    return UncoreEvent(metric, pmu, values['event'] | values['umask'] << 8, values['config1'])


def _kind(pmu: str) -> Optional[str]:
    for kind in PMU_KINDS:
        if pmu == kind or (pmu.startswith(kind + '_') and pmu[len(kind) + 1:].isdigit()):
            return kind
    return None


def parse_groups(value) -> List[List[UncoreEvent]]:
    """uncore_event_names (a list of names, or a list of lists: separate groups) as groups of
    events; ValueError names the first problem."""
    if not isinstance(value, list):
        raise ValueError('expected a list of event names, or a list of lists of them')
    if all(isinstance(v, list) for v in value):
        lists = value
    elif any(isinstance(v, list) for v in value):
        raise ValueError('give either event names or lists of event names (groups), not both')
    else:
        lists = [value]
    groups, seen = [], set()
    for names in lists:
        group = []
        for name in names:
            event = parse(name)
            if event.name in seen:
                raise ValueError('uncore event %r is given twice' % event.name)
            seen.add(event.name)
            group.append(event)
        if group:
            groups.append(group)
    return groups


def discover(devices: str, pmu: str) -> List[Pmu]:
    """The PMUs `pmu` stands for (every uncore_imc_<n> for uncore_imc; one instance for
    uncore_imc_2), sorted by name; a PMU whose files cannot be read is left out."""
    try:
        names = sorted(os.listdir(devices))
    except OSError:
        return []
    found = []
    for name in names:
        if name != pmu and not (name.startswith(pmu + '_') and name[len(pmu) + 1:].isdigit()):
            continue
        base = os.path.join(devices, name)
        try:
            pmu_type = fsutil.read_int(os.path.join(base, 'type'))
            cpus = sorted(fsutil.parse_cpu_list(fsutil.read_text(os.path.join(base, 'cpumask'))))
        except (OSError, ValueError) as e:
            log.warning('uncore PMU %s: cannot read its type or cpumask: %s', base, e)
            continue
        found.append(Pmu(name, pmu_type, tuple(cpus)))
    return sorted(found, key=lambda p: (len(p.name), p.name))


class _Group:
    __slots__ = ('names', 'socket', 'pmu_type', 'fds', 'leader', 'size', 'unpack')

    def __init__(self, names, socket, pmu, fds):
        self.names = names
        self.socket = socket
        self.pmu_type = pmu.type
        self.fds = fds
        self.leader = fds[0]
        self.size = group_read_size(len(names))
        self.unpack = group_reader(len(names)).unpack


class UncoreCounters(PlatformSource):
    """The configured uncore groups, opened at start and read every iteration."""

    def __init__(self, groups: List[List[UncoreEvent]], devices: str, socket_of: Dict[int, int],
                 derived: bool, status: PerfStatus):
        self.status = status
        self.derived = derived
        self._groups = []  # type: List[_Group]
        self._previous = None  # (monotonic time, {(name, socket, pmu_type): value})
        self._read_failed = False
        unsupported = {}  # type: Dict[str, str]  event -> why
        missing = {}  # type: Dict[str, List[str]]  PMU -> events that had none
        for group in groups:
            by_pmu = {}  # type: Dict[str, List[UncoreEvent]]
            for event in group:
                by_pmu.setdefault(event.pmu, []).append(event)
            for pmu_name, events in by_pmu.items():
                pmus = discover(devices, pmu_name)
                if not pmus:
                    missing.setdefault(pmu_name, []).extend(e.name for e in events)
                    continue
                for pmu in pmus:
                    self._open(pmu, events, socket_of, unsupported)
        if missing:
            log.warning('uncore_event_names: no %s PMU under %s (not an Intel server CPU, or a '
                        'virtual machine): %s not measured', ' or '.join(sorted(missing)), devices,
                        ', '.join(n for names in missing.values() for n in names))
        if unsupported:
            status.failure(UNSUPPORTED, 'uncore_event_names: this machine cannot count %s; the '
                           'other events are measured' % '; '.join(
                               '%s (%s)' % item for item in sorted(unsupported.items())),
                           count=len(unsupported))

    def _open(self, pmu: Pmu, events: List[UncoreEvent], socket_of, unsupported):
        if not pmu.cpus:
            return
        usable = []
        for event in events:  # each alone first, so one bad event does not sink the group
            try:
                close_all(open_group([_as_event(pmu, event)], -1, pmu.cpus[0], PERF_FLAG_FD_CLOEXEC))
                usable.append(event)
            except PerfOpenError as e:
                unsupported.setdefault(event.name, '%s: %s' % (pmu.name, os.strerror(e.errno)))
        if not usable:
            return
        names = [e.name for e in usable]
        for cpu in pmu.cpus:
            try:
                fds = open_group([_as_event(pmu, e) for e in usable], -1, cpu, PERF_FLAG_FD_CLOEXEC)
                reset_and_enable(fds[0])
            except OSError as e:
                self.status.failure('error', 'uncore PMU %s, CPU %d: cannot open %s: %s' % (
                    pmu.name, cpu, ', '.join(names), e))
                continue
            self.status.descriptors += len(fds)
            self._groups.append(_Group(names, socket_of.get(cpu, 0), pmu, fds))

    @property
    def groups(self) -> int:
        return len(self._groups)

    def collect(self, m: Measurements) -> None:
        if not self._groups:
            return
        read = os.read
        factors = []
        flat = {}  # type: Dict[Tuple[str, int, int], int]
        for group in self._groups:
            try:
                result = scaled(group.unpack(read(group.leader, group.size)))
            except (OSError, struct.error) as e:
                if not self._read_failed:
                    self._read_failed = True
                    self.status.failure('error', 'cannot read uncore counters: %s' % e)
                continue
            if result is None:
                continue
            values, factor = result
            factors.append(factor)
            for name, value in zip(group.names, values):
                key = (name, group.socket, group.pmu_type)
                flat[key] = flat.get(key, 0) + value
        for (name, socket, pmu_type), value in flat.items():
            m.setdefault(name, {}).setdefault(socket, {})[pmu_type] = value
        if factors:
            m[MetricName.PLATFORM_SCALING_UNCORE_FACTOR] = sum(factors) / len(factors)
        if self.derived and flat:
            now = time.monotonic()
            previous, self._previous = self._previous, (now, flat)
            if previous is not None and now > previous[0]:
                derive_uncore(m, flat, previous[1], now - previous[0])

    def close(self) -> None:
        for group in self._groups:
            close_all(group.fds)
            self.status.descriptors -= len(group.fds)
        self._groups = []


def _as_event(pmu: Pmu, event: UncoreEvent) -> Event:
    return Event(event.name, pmu.type, event.config, event.config1)


def derive_uncore(m: Measurements, current, previous, seconds: float) -> None:
    """DRAM and PMM bandwidth, DRAM hit ratio, UPI bandwidth (per socket and PMU) and RPQ read
    latency (per socket) from the deltas since the previous iteration."""
    def delta(name):
        out = {}
        for key, value in current.items():
            if key[0] == name:
                before = previous.get(key)
                if before is not None and value >= before:
                    out[key[1:]] = value - before
        return out

    def put(name, per_key):
        for (socket, pmu_type), value in per_key.items():
            m.setdefault(name, {}).setdefault(socket, {})[pmu_type] = value

    totals = {}
    for kind, reads_name, writes_name, names in (
            ('dram', MetricName.PLATFORM_CAS_COUNT_READS, MetricName.PLATFORM_CAS_COUNT_WRITES,
             (MetricName.PLATFORM_DRAM_READS_BYTES_PER_SECOND,
              MetricName.PLATFORM_DRAM_WRITES_BYTES_PER_SECOND,
              MetricName.PLATFORM_DRAM_TOTAL_BYTES_PER_SECOND)),
            ('pmm', MetricName.PLATFORM_PMM_BANDWIDTH_READS, MetricName.PLATFORM_PMM_BANDWIDTH_WRITES,
             (MetricName.PLATFORM_PMM_READS_BYTES_PER_SECOND,
              MetricName.PLATFORM_PMM_WRITES_BYTES_PER_SECOND,
              MetricName.PLATFORM_PMM_TOTAL_BYTES_PER_SECOND))):
        reads, writes = delta(str(reads_name)), delta(str(writes_name))
        both = set(reads) & set(writes)
        if not both:
            continue
        rate = {k: (reads[k] * CACHE_LINE / seconds, writes[k] * CACHE_LINE / seconds) for k in both}
        put(names[0], {k: r for k, (r, _) in rate.items()})
        put(names[1], {k: w for k, (_, w) in rate.items()})
        totals[kind] = {k: r + w for k, (r, w) in rate.items()}
        put(names[2], totals[kind])
    if 'dram' in totals and 'pmm' in totals:
        ratio = {}
        for key, dram in totals['dram'].items():
            pmm = totals['pmm'].get(key)
            if pmm is not None and dram + pmm > 0:
                ratio[key] = dram / (dram + pmm)
        put(MetricName.PLATFORM_DRAM_HIT_RATIO, ratio)
    rx, tx = delta(str(MetricName.PLATFORM_UPI_RXL_FLITS)), delta(str(MetricName.PLATFORM_UPI_TXL_FLITS))
    put(MetricName.PLATFORM_UPI_BANDWIDTH_BYTES_PER_SECOND,
        {k: (rx[k] + tx[k]) / seconds / 9 * 64 for k in set(rx) & set(tx)})
    occupancy = delta(str(MetricName.PLATFORM_RPQ_OCCUPANCY))
    inserts = delta(str(MetricName.PLATFORM_RPQ_INSERTS))
    ticks = delta(str(MetricName.PLATFORM_IMC_CLOCKTICKS))
    per_socket = {}  # type: Dict[int, List[float]]
    for key in set(occupancy) & set(inserts) & set(ticks):
        sums = per_socket.setdefault(key[0], [0, 0, 0, 0])
        sums[0] += occupancy[key]
        sums[1] += inserts[key]
        sums[2] += ticks[key]
        sums[3] += 1  # channels (IMC PMUs) of the socket
    for socket, (occ, ins, clk, channels) in per_socket.items():
        if ins > 0 and clk > 0:
            # (cycles a read waits) / (IMC clock ticks per second per channel): seconds
            m.setdefault(MetricName.PLATFORM_RPQ_READ_LATENCY_SECONDS, {})[socket] = (
                (occ / ins) / (clk / channels / seconds))


def socket_of_cpus(topology) -> Dict[int, int]:
    """CPU -> socket (physical package), from the platform's topology."""
    out = {}
    for socket, cores in topology.topology.items():
        for cpus in cores.values():
            for cpu in cpus:
                out[cpu] = socket
    return out
