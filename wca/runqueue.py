"""How long a task's threads waited on a CPU run queue (option `runqueue_delay`):
task_runqueue_delay_seconds_total, from /proc/<tid>/schedstat of each thread of the task's
cgroup, the same threads wca.sched follows.

A schedstat file is one line of three numbers,

    1221391447 60473520 1205

the thread's time on a CPU (ns), its time runnable but waiting on a run queue (ns), and the
number of times it ran. The second is summed. The kernel keeps it per thread only: cgroup v1
has no such figure per cgroup, and cgroup2's cpu.stat holds usage, user, system and throttling
but no run-queue wait (cpu.pressure `some` is a different figure: the time at least one thread
waited, not the sum of the waits). Every kernel with CONFIG_SCHED_INFO (schedstats or delay
accounting) fills it; others print zeros.

Threads come and go, and an ended thread's file goes with it, so a plain sum would go back.
The counter stays monotonic: the last value of each thread is kept, and when a thread is no
longer listed (it ended, or moved to another cgroup), or its value falls (its id was taken by
a new thread), its last value moves into a carried total. The counter is therefore the waits
of the threads since the agent first saw the task (a thread's wait before it was first seen
included), not the waits of threads that ended before that. A thread id reused by a new
thread between two iterations whose value already exceeds the old thread's is not told
apart: the old thread's wait after the last iteration is then lost (the counter still does
not go back).
"""
import logging
import os
from typing import Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from wca.cgroups.layout import CgroupLayout
from wca.metrics import Measurements, MetricName
from wca.nodes.base import Task
from wca.sched import ThreadsSource, open_listings
from wca.sources import TaskSourceFactory

log = logging.getLogger(__name__)

KIND = '/proc/<tid>/schedstat'


def run_delay(data: bytes) -> int:
    """The second field of a schedstat line, in nanoseconds; ValueError when it has not
    three numbers."""
    fields = data.split()
    if len(fields) != 3:
        raise ValueError('expected 3 numbers, got %d fields' % len(fields))
    value = int(fields[1])
    if value < 0:
        raise ValueError('negative run delay %d' % value)
    return value


class RunqueueSource(ThreadsSource):
    """One task's threads' run-queue waits, summed, never going back."""
    what = 'run-queue delay'

    def __init__(self, task: Task, listings: List[Tuple[str, str]], proc: str,
                 errors: Dict[str, int]):
        super().__init__(task, listings, proc, errors)
        self.last = {}  # type: Dict[bytes, int]  thread id -> its last value (ns)
        self.carried = 0  # ns of threads no longer listed, and of reused ids' former threads

    def measure(self, measurements: Measurements) -> None:
        self._read = []
        tids, whole = self.threads()
        if not self._read:
            return  # no listing could be read: nothing known this iteration
        last, carried = self.last, self.carried
        now = {}  # type: Dict[bytes, int]
        path = self.proc + '/%s/schedstat'
        for tid in tids:
            data = self.read_thread(path % tid.decode(), KIND)
            if data is None:
                if tid in last and os.path.exists(self.proc + '/' + tid.decode()):
                    now[tid] = last[tid]  # unreadable, not ended: kept, not carried
                continue  # ended meanwhile: its last value is carried below
            try:
                value = run_delay(data)
            except ValueError as e:
                self._failure(KIND, 'cannot parse %r: %s' % (data[:80], e))
                if tid in last:
                    now[tid] = last[tid]  # keep what it had: not carried, not lost
                continue
            before = last.get(tid)
            if before is not None and value < before:
                carried += before  # a new thread with the id of one that ended
            now[tid] = value
        for tid, value in last.items():
            if tid not in now:
                if whole:
                    carried += value  # ended, or left the cgroup
                else:
                    now[tid] = value  # perhaps in the listing that could not be read
        self.last, self.carried = now, carried
        measurements[MetricName.TASK_RUNQUEUE_DELAY_SECONDS] = (carried + sum(now.values())) / 1e9


class RunqueueSourceFactory(TaskSourceFactory):
    """Opens a RunqueueSource for each task (option `runqueue_delay`)."""

    def __init__(self, layout: CgroupLayout, proc: str = '/proc',
                 errors: Optional[Dict[str, int]] = None):
        self.layout = layout
        self.proc = proc
        self.errors = errors if errors is not None else {}

    def open(self, task: Task) -> Optional[RunqueueSource]:
        listings = open_listings(self.layout, task, 'run-queue delay')
        if not listings:
            return None
        return RunqueueSource(task, listings, self.proc, self.errors)
