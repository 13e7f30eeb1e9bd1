"""Pressure stall information (PSI): how long tasks wait for CPU, memory and I/O.

The kernel keeps, per resource, the time during which some (at least one) or all (full)
runnable tasks were stalled on it, as lines of

    some avg10=0.00 avg60=0.00 avg300=0.00 total=1234
    full avg10=0.00 avg60=0.00 avg300=0.00 total=567

in /proc/pressure/{cpu,memory,io,irq} for the node and <cgroup2>/{cpu,memory,io}.pressure per
cgroup (total= in microseconds). Only the totals are exported, as counters in seconds, named as
node_exporter (node_pressure_*) and cAdvisor (container_pressure_*) name them: `some` is
"waiting", `full` is "stalled". The averages are rates of those totals: rate() gives them.

The per-task files are rows of the cgroup file table (wca.cgroups.measure), read in the same
pass as the other cgroup files; the node's files are read by PressureSource.
"""
import logging
import os
from typing import Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.metrics import Measurements, MetricName
from wca.sources import PlatformSource

log = logging.getLogger(__name__)

RESOURCES = ('cpu', 'memory', 'io', 'irq')


def totals(data: bytes) -> Tuple[Optional[int], Optional[int]]:
    """(some, full) total= values of a pressure file in microseconds; None for a line the
    file lacks (cpu before Linux 5.13 has no full line; irq has only full)."""
    some = full = None
    for line in data.split(b'\n'):
        kind = line[:5]
        # total= is the last field; a field appended after it would fail int(), not be misread
        if kind == b'some ':
            some = int(line[line.index(b'total=') + 6:])
        elif kind == b'full ':
            full = int(line[line.index(b'total=') + 6:])
    return some, full


def parser(waiting: Optional[str], stalled: Optional[str]):
    """A parser of one pressure file into its waiting (some) and stalled (full) counters, in
    seconds; a None name leaves that line out."""
    def parse(data: bytes, m: Measurements):
        some, full = totals(data)
        if some is None and full is None:
            raise ValueError('no some or full line')
        if waiting and some is not None:
            m[waiting] = some / 1e6
        if stalled and full is not None:
            m[stalled] = full / 1e6
    return parse


# Per cgroup (the rows of wca.cgroups.measure._SOURCES use these).
TASK_CPU = parser(MetricName.TASK_PRESSURE_CPU_WAITING, MetricName.TASK_PRESSURE_CPU_STALLED)
TASK_MEMORY = parser(MetricName.TASK_PRESSURE_MEMORY_WAITING,
                     MetricName.TASK_PRESSURE_MEMORY_STALLED)
TASK_IO = parser(MetricName.TASK_PRESSURE_IO_WAITING, MetricName.TASK_PRESSURE_IO_STALLED)

# For the node, as node_exporter does: CPU full is left out (the kernel reports it as 0 at the
# system level since Linux 5.13: it is undefined there), irq has only full.
_PLATFORM = {
    'cpu': parser(MetricName.PLATFORM_PRESSURE_CPU_WAITING, None),
    'memory': parser(MetricName.PLATFORM_PRESSURE_MEMORY_WAITING,
                     MetricName.PLATFORM_PRESSURE_MEMORY_STALLED),
    'io': parser(MetricName.PLATFORM_PRESSURE_IO_WAITING, MetricName.PLATFORM_PRESSURE_IO_STALLED),
    'irq': parser(None, MetricName.PLATFORM_PRESSURE_IRQ_STALLED),
}


class PressureSource(PlatformSource):
    """The node's pressure from /proc/pressure. A file the kernel lacks (no PSI: CONFIG_PSI off
    or psi=0; irq without CONFIG_IRQ_TIME_ACCOUNTING) is not read; one that fails drops only
    its own metrics (logged once, counted)."""

    def __init__(self, proc: str = '/proc', errors: Optional[Dict[str, int]] = None):
        self.errors = errors if errors is not None else {}
        self._reads = []  # type: List[Tuple[str, object]]
        for resource in RESOURCES:
            path = os.path.join(proc, 'pressure', resource)
            if os.path.exists(path):
                self._reads.append((path, _PLATFORM[resource]))
        self._failed = set()
        if self._reads:
            log.debug('pressure stall information from %s', ', '.join(self.files))
        else:
            log.info('no pressure stall information in %s/pressure (a kernel without '
                     'CONFIG_PSI, or booted with psi=0): no platform_pressure_* metrics', proc)

    @property
    def files(self) -> List[str]:
        return [path for path, _ in self._reads]

    def collect(self, measurements: Measurements) -> None:
        for path, parse in self._reads:
            try:
                parse(fsutil.read_bytes(path), measurements)
            except (OSError, ValueError) as e:
                self.errors['measurement'] = self.errors.get('measurement', 0) + 1
                if path not in self._failed:
                    self._failed.add(path)
                    log.warning('cannot read %s: %s (its metrics are dropped)', path,
                                getattr(e, 'strerror', None) or e)
