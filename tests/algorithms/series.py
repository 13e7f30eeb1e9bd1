"""Recorded series fed through the public API: each step gives every task's counters as the
MeasurementRunner measures them (cumulative), with the platform's timestamp."""
import dataclasses

from wca.detectors import TaskData
from wca.metrics import MetricName as M
from wca.platforms import PlatformCollector

INTERVAL = 10.0


class Series:
    """Cumulative counters per task, advanced one interval per step()."""

    def __init__(self, start: float = 1000.0):
        self.platform = PlatformCollector('/proc', '/sys').collect()
        self.now = start
        self.counters = {}  # task id -> {metric: value}
        self.labels = {}
        self.allocations = {}

    def task(self, task_id, labels=None, allocations=None):
        self.counters[task_id] = {}
        self.labels[task_id] = dict(labels or {})
        self.allocations[task_id] = allocations

    def remove(self, task_id):
        del self.counters[task_id]

    def step(self, **rates):
        """rates: task id -> {'usage': CPUs, 'cpi': .., 'pressure': s/s, 'runqueue': s/s,
        'llc': bytes, 'instructions': per second}; every listed task advances."""
        self.now += INTERVAL
        for task_id, rate in rates.items():
            c = self.counters[task_id]
            c[M.TASK_CPU_USAGE_SECONDS] = c.get(M.TASK_CPU_USAGE_SECONDS, 0) + \
                rate.get('usage', 0) * INTERVAL
            if 'cpi' in rate:
                instructions = rate.get('instructions', 1e9) * INTERVAL
                c[M.TASK_INSTRUCTIONS] = c.get(M.TASK_INSTRUCTIONS, 0) + instructions
                c[M.TASK_CYCLES] = c.get(M.TASK_CYCLES, 0) + instructions * rate['cpi']
            if 'pressure' in rate:
                c[M.TASK_PRESSURE_CPU_WAITING] = c.get(M.TASK_PRESSURE_CPU_WAITING, 0) + \
                    rate['pressure'] * INTERVAL
            if 'runqueue' in rate:
                key = 'task_runqueue_delay_seconds_total'
                c[key] = c.get(key, 0) + rate['runqueue'] * INTERVAL
            if 'llc' in rate:
                c[M.TASK_LLC_OCCUPANCY_BYTES] = rate['llc']
        return self.data()

    def data(self):
        platform = dataclasses.replace(self.platform, timestamp=self.now)
        tasks = {task_id: TaskData(name=task_id, task_id=task_id, cgroup_path='/' + task_id,
                                   labels=dict(self.labels[task_id]),
                                   measurements={str(k): v for k, v in c.items()},
                                   allocations=self.allocations[task_id])
                 for task_id, c in self.counters.items()}
        return platform, tasks
