"""Per-task perf event names: what `event_names` may say, and what each name is counted with.

- generic hardware events: task_instructions, task_cycles, task_cache_misses,
  task_cache_references (the original 1.x spellings instructions, cycles, ... are aliases);
- software events, which every kernel counts (also without a hardware PMU): task clock,
  context switches, CPU migrations, page faults, named like node_exporter's perf collector;
- predefined raw events whose encoding depends on the CPU model (Skylake, Cascade Lake,
  Broadwell); on another CPU such an event is dropped with a warning;
- raw events written `<name>__r<EEUU>`, `<name>__r<EEUUCC>` or `<name>__r<EEUUCC><config1>`.

The metric of an event is named as the event (after its alias is resolved).
"""
import difflib
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass

from wca import fsutil
from wca.metrics import MetricName
from wca.perf.syscall import PERF_TYPE_HARDWARE, PERF_TYPE_RAW, PERF_TYPE_SOFTWARE

log = logging.getLogger(__name__)

SKYLAKE, CASCADE_LAKE, BROADWELL, UNKNOWN = 'Skylake', 'Cascade Lake', 'Broadwell', 'unknown'


@dataclass(frozen=True)
class Event:
    name: str  # the metric name
    type: int  # perf_event_attr.type
    config: int
    config1: int = 0
    scale: float = 1  # the metric is value * scale (the task clock counts nanoseconds)

    @property
    def software(self) -> bool:
        return self.type == PERF_TYPE_SOFTWARE

    @property
    def programmable(self) -> bool:
        """Whether it takes a programmable PMU counter: instructions and cycles have fixed
        counters, software events none."""
        return not self.software and self.name not in FIXED_COUNTER_EVENTS


FIXED_COUNTER_EVENTS = frozenset((MetricName.TASK_INSTRUCTIONS.value, MetricName.TASK_CYCLES.value))

_GENERIC = {
    MetricName.TASK_CYCLES: 0,  # PERF_COUNT_HW_CPU_CYCLES
    MetricName.TASK_INSTRUCTIONS: 1,
    MetricName.TASK_CACHE_REFERENCES: 2,
    MetricName.TASK_CACHE_MISSES: 3,
}
_SOFTWARE = {  # name -> (PERF_COUNT_SW_*, scale)
    MetricName.TASK_CPU_CLOCK_SECONDS: (0, 1e-9),
    MetricName.TASK_TASK_CLOCK_SECONDS: (1, 1e-9),
    MetricName.TASK_PAGE_FAULTS: (2, 1),
    MetricName.TASK_CONTEXT_SWITCHES: (3, 1),
    MetricName.TASK_CPU_MIGRATIONS: (4, 1),
    MetricName.TASK_MINOR_FAULTS: (5, 1),
    MetricName.TASK_MAJOR_FAULTS: (6, 1),
}
# (event, umask, cmask) per CPU model; a model missing from a row does not have that event.
PREDEFINED = {
    MetricName.TASK_STALLED_MEM_LOADS: {SKYLAKE: (0xA3, 0x14, 20), CASCADE_LAKE: (0xA3, 0x14, 20),
                                        BROADWELL: (0xA3, 0x06, 6)},
    MetricName.TASK_OFFCORE_REQUESTS_L3_MISS_DEMAND_DATA_RD: {SKYLAKE: (0xB0, 0x10, 0),
                                                              CASCADE_LAKE: (0xB0, 0x10, 0)},
    MetricName.TASK_OFFCORE_REQUESTS_DEMAND_DATA_RD: {SKYLAKE: (0xB0, 0x01, 0),
                                                      CASCADE_LAKE: (0xB0, 0x01, 0)},
    MetricName.TASK_OFFCORE_REQUESTS_DEMAND_RFO: {SKYLAKE: (0xB0, 0x04, 0),
                                                  CASCADE_LAKE: (0xB0, 0x04, 0)},
    MetricName.TASK_OFFCORE_REQUESTS_OUTSTANDING_L3_MISS_DEMAND_DATA_RD: {
        SKYLAKE: (0x60, 0x10, 0), CASCADE_LAKE: (0x60, 0x10, 0)},
    MetricName.TASK_MEM_LOAD_RETIRED_LOCAL_PMM: {CASCADE_LAKE: (0xD1, 0x80, 0)},
    MetricName.TASK_MEM_LOAD_RETIRED_LOCAL_DRAM: {SKYLAKE: (0xD3, 0x01, 0),
                                                  CASCADE_LAKE: (0xD3, 0x01, 0)},
    MetricName.TASK_MEM_LOAD_RETIRED_REMOTE_DRAM: {SKYLAKE: (0xD3, 0x02, 0),
                                                   CASCADE_LAKE: (0xD3, 0x02, 0)},
    MetricName.TASK_MEM_INST_RETIRED_LOADS: {SKYLAKE: (0xD0, 0x81, 0), CASCADE_LAKE: (0xD0, 0x81, 0)},
    MetricName.TASK_MEM_INST_RETIRED_STORES: {SKYLAKE: (0xD0, 0x82, 0),
                                              CASCADE_LAKE: (0xD0, 0x82, 0)},
    MetricName.TASK_DTLB_LOAD_MISSES: {SKYLAKE: (0x08, 0x0E, 0), CASCADE_LAKE: (0x08, 0x0E, 0)},
}
ALIASES = {
    # the original 1.x names
    'instructions': MetricName.TASK_INSTRUCTIONS, 'cycles': MetricName.TASK_CYCLES,
    'cache_misses': MetricName.TASK_CACHE_MISSES, 'cache_references': MetricName.TASK_CACHE_REFERENCES,
    'stalls_mem_load': MetricName.TASK_STALLED_MEM_LOADS,
    # perf(1) spellings of the software events, and the same with underscores
    'task-clock': MetricName.TASK_TASK_CLOCK_SECONDS, 'task_clock': MetricName.TASK_TASK_CLOCK_SECONDS,
    'cpu-clock': MetricName.TASK_CPU_CLOCK_SECONDS, 'cpu_clock': MetricName.TASK_CPU_CLOCK_SECONDS,
    'context-switches': MetricName.TASK_CONTEXT_SWITCHES, 'cs': MetricName.TASK_CONTEXT_SWITCHES,
    'context_switches': MetricName.TASK_CONTEXT_SWITCHES,
    'cpu-migrations': MetricName.TASK_CPU_MIGRATIONS, 'migrations': MetricName.TASK_CPU_MIGRATIONS,
    'cpu_migrations': MetricName.TASK_CPU_MIGRATIONS,
    'page-faults': MetricName.TASK_PAGE_FAULTS, 'faults': MetricName.TASK_PAGE_FAULTS,
    'page_faults': MetricName.TASK_PAGE_FAULTS,
    'minor-faults': MetricName.TASK_MINOR_FAULTS, 'minor_faults': MetricName.TASK_MINOR_FAULTS,
    'major-faults': MetricName.TASK_MAJOR_FAULTS, 'major_faults': MetricName.TASK_MAJOR_FAULTS,
}
KNOWN_NAMES = sorted([str(n) for n in _GENERIC] + [str(n) for n in _SOFTWARE]
                     + [str(n) for n in PREDEFINED] + list(ALIASES))


@dataclass(frozen=True)
class CpuId:
    vendor: str = ''
    family: int = 0
    model: int = 0
    stepping: int = 0

    @property
    def codename(self) -> str:
        """Which predefined raw event table applies (the original's rule)."""
        if self.vendor != 'GenuineIntel' or self.family != 6:
            return UNKNOWN
        if self.model in (0x4E, 0x5E, 0x55):
            return SKYLAKE if self.stepping <= 4 else CASCADE_LAKE
        if self.model in (0x3D, 0x47, 0x4F, 0x56):
            return BROADWELL
        return UNKNOWN

    def __str__(self):
        return '%s family %d model 0x%X stepping %d' % (
            self.vendor or 'unknown vendor', self.family, self.model, self.stepping)


def read_cpuid(proc: str = '/proc') -> CpuId:
    """Vendor, family, model and stepping of the first CPU in /proc/cpuinfo (zeros when the
    file says nothing of them, as on most non-x86 machines)."""
    fields = {}  # type: Dict[str, str]
    try:
        text = fsutil.read_text(os.path.join(proc, 'cpuinfo'))
    except OSError:
        return CpuId()
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())

    def number(key):
        try:
            return int(fields.get(key, '0'), 0)
        except ValueError:
            return 0
    return CpuId(fields.get('vendor_id', ''), number('cpu family'), number('model'),
                 number('stepping'))


def parse_raw(name: str) -> Event:
    """`<name>__r<hex>`: 4 digits EEUU, 6 EEUUCC, or 16 EEUUCC followed by 10 digits of config1;
    config = EE | UU << 8 | CC << 24. ValueError says what is wrong."""
    prefix, _, digits = name.rpartition('__r')
    if not prefix:
        raise ValueError('%r: a raw event is written <name>__r<hex digits>' % name)
    if len(digits) not in (4, 6, 16):
        raise ValueError('%r: a raw event needs 4 (EEUU), 6 (EEUUCC) or 16 (EEUUCC + 10 of '
                         'config1) hex digits after __r, not %d' % (name, len(digits)))
    try:
        values = [int(digits[i:i + 2], 16) for i in (0, 2, 4) if i < len(digits)]
        config1 = int(digits[6:], 16) if len(digits) == 16 else 0
    except ValueError:
        raise ValueError('%r: %r is not hexadecimal' % (name, digits))
    if not all(c.isalnum() or c == '_' for c in prefix) or prefix[0].isdigit():
        raise ValueError('%r: the name before __r must be letters, digits and _ (a metric name)'
                         % name)
    event, umask = values[0], values[1]
    cmask = values[2] if len(values) > 2 else 0
    return Event(name, PERF_TYPE_RAW, event | umask << 8 | cmask << 24, config1)


def suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.8)
    return ' (did you mean %s?)' % ' or '.join(close) if close else ''


def canonical(name: str) -> str:
    """The metric name an event name stands for (aliases resolved); raw names unchanged."""
    alias = ALIASES.get(name)
    return str(alias) if alias is not None else name


def check_names(names) -> None:
    """Raises ValueError naming the first unknown or malformed event, or a duplicate."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError('expected a list of event names')
    seen = {}  # type: Dict[str, str]
    for name in names:
        metric = canonical(name)
        if '__r' in name:
            parse_raw(name)
        elif metric not in _BY_NAME and metric not in PREDEFINED_NAMES:
            hint = suggest(name, KNOWN_NAMES)
            raise ValueError('unknown event %r%s; %s' % (name, hint, (
                'known events are listed in docs/perf.md' if hint else
                'known events: %s, the predefined raw events (docs/perf.md), or raw events written '
                '<name>__rEEUU[CC]' % ', '.join(str(n) for n in list(_GENERIC) + list(_SOFTWARE)))))
        if metric in seen:
            raise ValueError('event %r is given twice (%r and %r)' % (metric, seen[metric], name))
        seen[metric] = name


def resolve(names: List[str], cpu: CpuId) -> Tuple[List[Event], List[str]]:
    """The events to count, in the given order, and the predefined events this CPU does not
    have (dropped). The names must have passed check_names."""
    events, dropped = [], []
    codename = cpu.codename
    for name in names:
        metric = canonical(name)
        if '__r' in name:
            events.append(parse_raw(name))
        elif metric in _BY_NAME:
            events.append(_BY_NAME[metric])
        else:
            encoding = _PREDEFINED_BY_NAME[metric].get(codename)
            if encoding is None:
                dropped.append(metric)
                continue
            event, umask, cmask = encoding
            events.append(Event(metric, PERF_TYPE_RAW, event | umask << 8 | cmask << 24))
    return events, dropped


def counter_budget(hyperthreading: bool) -> int:
    """Programmable counters a core has for one task at once (instructions and cycles aside)."""
    return 4 if hyperthreading else 8


def check_budget(events: List[Event], hyperthreading: bool) -> None:
    programmable = [e.name for e in events if e.programmable]
    budget = counter_budget(hyperthreading)
    if len(programmable) > budget:
        raise ValueError(
            '%d programmable events (%s) but the PMU counts at most %d at once with '
            'hyper-threading %s; task_instructions and task_cycles (fixed counters) and software '
            'events do not count against this budget: leave out %d' % (
                len(programmable), ', '.join(programmable), budget,
                'on (more logical CPUs than cores)' if hyperthreading else 'off',
                len(programmable) - budget))


_BY_NAME = {}  # type: Dict[str, Event]
for _name, _config in _GENERIC.items():
    _BY_NAME[str(_name)] = Event(str(_name), PERF_TYPE_HARDWARE, _config)
for _name, (_config, _scale) in _SOFTWARE.items():
    _BY_NAME[str(_name)] = Event(str(_name), PERF_TYPE_SOFTWARE, _config, scale=_scale)
_PREDEFINED_BY_NAME = {str(n): table for n, table in PREDEFINED.items()}
PREDEFINED_NAMES = sorted(_PREDEFINED_BY_NAME)
del _name, _config, _scale
