"""Each task's victim signal and CPU usage, per iteration, from the deltas of its counters.

- cpi: cycles / instructions (perf task_cycles, task_instructions), CPI2's signal;
- cpu_pressure: seconds per second some thread of the task waited for a CPU (cgroup v2
  cpu.pressure `some`, task_pressure_cpu_waiting_seconds_total);
- runqueue_delay: seconds per second the task's threads waited in a run queue (the second
  field of /proc/<tid>/schedstat summed over the threads, task_runqueue_delay_seconds_total;
  the MeasurementRunner reads it with `runqueue_delay: true`).

`auto` takes the first of them the task's measurements hold. The evidence that names the
contended resource comes along: LLC occupancy, cache misses per kilo-instruction and memory
bandwidth, where measured.
"""
from enum import Enum
from typing import Dict, NamedTuple, Optional

from wca.metrics import MetricName

CPI, CPU_PRESSURE, RUNQUEUE_DELAY, AUTO = 'cpi', 'cpu_pressure', 'runqueue_delay', 'auto'


class Signal(str, Enum):
    """The `signal` option."""
    AUTO = AUTO
    CPI = CPI
    CPU_PRESSURE = CPU_PRESSURE
    RUNQUEUE_DELAY = RUNQUEUE_DELAY

    def __repr__(self):
        return repr(self.value)


USAGE = MetricName.TASK_CPU_USAGE_SECONDS.value
CYCLES = MetricName.TASK_CYCLES.value
INSTRUCTIONS = MetricName.TASK_INSTRUCTIONS.value
CACHE_MISSES = MetricName.TASK_CACHE_MISSES.value
PRESSURE = MetricName.TASK_PRESSURE_CPU_WAITING.value
# Added with the per-task run-queue wait (MeasurementRunner `runqueue_delay: true`).
RUNQUEUE = 'task_runqueue_delay_seconds_total'
LLC = MetricName.TASK_LLC_OCCUPANCY_BYTES.value
MBM = MetricName.TASK_MEM_BANDWIDTH_BYTES.value

_COUNTERS = (USAGE, CYCLES, INSTRUCTIONS, CACHE_MISSES, PRESSURE, RUNQUEUE, MBM)


class Sample(NamedTuple):
    time: float
    signal: Optional[str]  # which signal `value` is; None: no signal is measured
    value: Optional[float]
    usage: float  # CPUs (CPU-seconds per second)
    llc: Optional[float] = None  # bytes
    mpki: Optional[float] = None
    mbw: Optional[float] = None  # bytes per second


def total(value) -> Optional[float]:
    """A measurement as one number: per-CPU (nested) values are summed."""
    if isinstance(value, dict):
        values = [total(v) for v in value.values()]
        values = [v for v in values if v is not None]
        return sum(values) if values else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def choose(wanted: str, measurements: Dict) -> Optional[str]:
    """The signal to use for a task: `wanted`, or with auto the first one measured."""
    has = {name for name in (CYCLES, INSTRUCTIONS, PRESSURE, RUNQUEUE) if name in measurements}
    available = [signal for signal, needs in ((CPI, {CYCLES, INSTRUCTIONS}),
                                              (CPU_PRESSURE, {PRESSURE}),
                                              (RUNQUEUE_DELAY, {RUNQUEUE})) if needs <= has]
    if wanted == AUTO:
        return available[0] if available else None
    return wanted if wanted in available else None


class Deltas:
    """The previous counters of each task, to turn counters into rates."""

    def __init__(self):
        self._last = {}  # type: Dict[str, tuple]  task id -> (time, counters)

    def sample(self, task_id: str, now: float, measurements: Dict, wanted: str
               ) -> Optional[Sample]:
        """This iteration's sample of a task; None for its first iteration (no delta yet), or
        when time did not advance or a counter went back (the cgroup was made again)."""
        counters = {name: total(measurements.get(name)) for name in _COUNTERS}
        last = self._last.get(task_id)
        self._last[task_id] = (now, counters)
        if last is None:
            return None
        then, before = last
        elapsed = now - then
        if elapsed <= 0:
            return None

        def delta(name):
            a, b = before.get(name), counters.get(name)
            if a is None or b is None or b < a:
                return None
            return b - a

        usage = delta(USAGE)
        if usage is None:
            return None
        signal = choose(wanted, measurements)
        value = None
        cycles, instructions, misses = delta(CYCLES), delta(INSTRUCTIONS), delta(CACHE_MISSES)
        if signal == CPI:
            value = cycles / instructions if cycles is not None and instructions else None
        elif signal == CPU_PRESSURE:
            waited = delta(PRESSURE)
            value = waited / elapsed if waited is not None else None
        elif signal == RUNQUEUE_DELAY:
            waited = delta(RUNQUEUE)
            value = waited / elapsed if waited is not None else None
        mpki = 1000.0 * misses / instructions if misses is not None and instructions else None
        mbm = delta(MBM)
        return Sample(time=now, signal=signal if value is not None else None, value=value,
                      usage=usage / elapsed, llc=total(measurements.get(LLC)), mpki=mpki,
                      mbw=mbm / elapsed if mbm is not None else None)

    def forget_others(self, task_ids) -> None:
        """Drops the tasks that are gone."""
        for task_id in set(self._last) - set(task_ids):
            del self._last[task_id]
