"""A task whose cgroup is removed and made again under the same name between two iterations is
a new task for its sources: the next iteration measures the new cgroup (its files, and perf
counters on it), not the dead one, and nothing is counted as vanished."""
import time

from testing.recording import Recording
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner

BUSY = ['sh', '-c', 'while :; do :; done']


def write(cgroups, controller, path, name, value):
    with open(cgroups.layout.v1[controller] + path + '/' + name, 'w') as f:
        f.write(value)


def test_a_cgroup_made_again_is_measured_anew_in_the_next_iteration(cgroups):
    path = cgroups.create('t')
    write(cgroups, 'memory', path, 'memory.limit_in_bytes', str(64 << 20))
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage,
                               interval=0, rdt_enabled=False, gather_hw_mm_topology=False)
    runner.iterate()
    assert storage.value('task_mem_limit_bytes') == 64 << 20
    cgroups.remove(path)
    assert cgroups.create('t') == path  # the same name, a new cgroup
    write(cgroups, 'memory', path, 'memory.limit_in_bytes', str(32 << 20))
    runner.iterate()
    assert storage.value('task_up') == 1
    assert storage.value('task_mem_limit_bytes') == 32 << 20
    assert storage.value('wca_tasks_vanished_total') == 0
    runner.close()


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in USER_HZ


def test_perf_counters_of_a_cgroup_made_again_count_its_new_processes(perf_cgroups):
    """A perf descriptor of a removed cgroup fails nothing: it just stops counting. Reopened,
    the counters follow the new cgroup's busy process."""
    cgroups = perf_cgroups
    path = cgroups.create('t')  # a sleeping process
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage,
                               interval=0, rdt_enabled=False, gather_hw_mm_topology=False,
                               event_names=['task_task_clock_seconds_total'],
                               cgroup_layout=cgroups.layout)
    runner.iterate()
    cgroups.remove(path)
    cgroups.create('t', processes=0)
    runner.iterate()  # the new cgroup's counters open here
    busy = cgroups.add_process(path, BUSY)
    start, deadline = cpu_seconds(busy.pid), time.monotonic() + 30
    while cpu_seconds(busy.pid) - start < 0.2 and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.iterate()
    assert storage.value('task_task_clock_seconds_total') >= 0.15
    assert storage.value('wca_perf_tasks') == 1  # this iteration's figure, the old one closed
    assert storage.value('wca_tasks_vanished_total') == 0
    runner.close()


def test_the_perf_self_metrics_are_those_of_the_iteration_they_are_stored_in(perf_cgroups):
    """wca_perf_tasks and wca_perf_descriptors count the tasks the iteration opened and closed
    (they used to show the previous iteration's)."""
    path = perf_cgroups.create('t')
    node, storage = StaticNode(tasks=[path]), Recording()
    runner = MeasurementRunner(node=node, metrics_storage=storage, interval=0,
                               rdt_enabled=False, gather_hw_mm_topology=False,
                               event_names=['task_task_clock_seconds_total'],
                               cgroup_layout=perf_cgroups.layout)
    runner.iterate()
    cpus = len(runner._platform.topology.online_cpus)
    assert storage.value('wca_perf_tasks') == 1 and storage.value('wca_perf_descriptors') == cpus
    runner.config.node = StaticNode(tasks=[])
    runner.iterate()
    assert storage.value('wca_perf_tasks') == 0 and storage.value('wca_perf_descriptors') == 0
    runner.close()
