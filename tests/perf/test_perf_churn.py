"""Task churn under a running agent with perf counters: thousands of task cgroups created and
removed (some while still listed by the node: vanished mid-iteration) leave the agent's open
descriptors where they were, and no perf counters behind."""
import collections
import os

import pytest

from wca.cgroups import CgroupLayout
from wca.nodes.base import Node, Task
from wca.runners.measurement import MeasurementRunner
from wca.storage.base import Storage

SOFTWARE = ['task_task_clock_seconds_total', 'task_context_switches_total',
            'task_cpu_migrations_total', 'task_page_faults_total']


class Listed(Node):
    """The tasks the test lists now."""

    def __init__(self):
        self.paths = {}  # path -> Task

    def get_tasks(self):
        return list(self.paths.values())


class Last(Storage):
    """Keeps the last batch only (a long churn would pile up every batch)."""

    def __init__(self):
        self.metrics = []

    def store(self, metrics):
        self.metrics = metrics

    def value(self, name, **labels):
        found = [m.value for m in self.metrics if m.name == name
                 and all(m.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (name, found)
        return found[0]


def open_descriptors():
    return len(os.listdir('/proc/self/fd'))


def churn(cgroups, cycles, per_iteration=20, window=40):
    """Creates `cycles` task cgroups, `per_iteration` before each agent iteration, keeping
    about `window` alive; of the tasks removed after an iteration, half are removed after the
    node stopped listing them, half while still listed (the next iteration finds their cgroups
    gone). Every tenth task has a process in it."""
    node, storage = Listed(), Last()
    before = open_descriptors()
    runner = MeasurementRunner(node=node, metrics_storage=storage, interval=0,
                               event_names=SOFTWARE, cgroup_layout=CgroupLayout.detect())
    runner.setup()
    per_task = len(SOFTWARE) * len(runner._platform.topology.online_cpus)
    own = open_descriptors() - before  # what setup() holds (none expected)
    live = collections.deque()
    vanishing = []  # removed while listed: the next iteration finds them gone
    created = peak = 0
    try:
        while created < cycles:
            for _ in range(min(per_iteration, cycles - created)):
                path = cgroups.create('t%06d' % created, processes=1 if created % 10 == 0 else 0)
                node.paths[path] = Task(name=path, task_id=path, cgroup_path=path)
                live.append(path)
                created += 1
            runner.iterate()
            peak = max(peak, open_descriptors())
            assert open_descriptors() <= before + own + len(node.paths) * per_task + 10
            for path in vanishing:
                del node.paths[path]
            leaving = [live.popleft() for _ in range(max(0, len(live) - window))]
            for path in leaving[::2]:  # no longer listed, then removed
                del node.paths[path]
                cgroups.remove(path)
            vanishing = leaving[1::2]
            for path in vanishing:
                cgroups.remove(path)
        for path in vanishing:
            del node.paths[path]
        while live:
            path = live.popleft()
            del node.paths[path]
            cgroups.remove(path)
        runner.iterate()
        runner.iterate()  # wca_perf_* are taken at the start of an iteration
        assert storage.value('wca_perf_descriptors') == 0 and storage.value('wca_perf_tasks') == 0
        assert storage.value('wca_tasks') == 0
        assert storage.value('wca_tasks_vanished_total') >= (cycles - window) // 2 - per_iteration
        assert storage.value('wca_perf_open_failures_total', reason='descriptors') == 0
        assert storage.value('wca_perf_open_failures_total', reason='error') == 0
        assert open_descriptors() == before + own
        assert peak > before + own + window * per_task // 2  # the counters were open meanwhile
    finally:
        runner.close()
    assert open_descriptors() == before


def test_churn_of_2000_tasks_leaves_descriptors_where_they_were(perf_cgroups):
    churn(perf_cgroups, 2000)


@pytest.mark.slow
def test_long_churn(perf_cgroups):
    churn(perf_cgroups, int(os.environ.get('WCA_PERF_CHURN_CYCLES', '20000')), window=200)
