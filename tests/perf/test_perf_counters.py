"""Per-task perf counters on real cgroups with real processes: software events counted at the
rate the processes run (compared with cpuacct, /proc/<pid>/stat and /proc/<pid>/status), on
the v1 perf_event hierarchy (mounted by the test) and on cgroup2, summed or per CPU, for a
pod over its containers; hardware events this machine cannot count; descriptors running out;
a task whose perf_event cgroup comes later."""
import logging
import os
import resource
import sys
import time

import pytest

from conftest import CI, promtool_check
from testing.cgroups import Cgroups
from testing.recording import Recording
from wca.cgroups import CgroupLayout
from wca.exposition import encode
from wca.nodes.base import Node, Task
from wca.nodes.static import StaticNode
from wca.perf.counters import PerfSourceFactory, PerfStatus
from wca.perf.events import Event
from wca.perf.setup import perf_event_hierarchy
from wca.perf.syscall import PERF_TYPE_SOFTWARE
from wca.runners.measurement import MeasurementRunner

SOFTWARE = ['task_task_clock_seconds_total', 'task_context_switches_total',
            'task_cpu_migrations_total', 'task_page_faults_total']
BUSY = ['sh', '-c', 'while :; do :; done']
# Sleeps 2 ms at a time (context switches) and writes a fresh mapping of 1 MiB each time (256
# page faults).
FAULTING = [sys.executable, '-c', 'import mmap, time\nwhile True:\n    m = mmap.mmap(-1, 1 << 20)\n'
            '    m.write(bytes(1 << 20))\n    m.close()\n    time.sleep(0.002)\n']
TICK = os.sysconf('SC_CLK_TCK')


class Pods(Node):
    def __init__(self, tasks):
        self.tasks = tasks

    def get_tasks(self):
        return list(self.tasks)


def make_runner(node, storage, **kwargs):
    return MeasurementRunner(node=node, metrics_storage=storage, interval=0,
                             cgroup_layout=CgroupLayout.detect(), **kwargs)


def proc_stat(pid):
    """(CPU seconds, page faults) of a process."""
    with open('/proc/%d/stat' % pid) as f:
        rest = f.read().rpartition(')')[2].split()
    return (int(rest[11]) + int(rest[12])) / TICK, int(rest[7]) + int(rest[9])


def context_switches(pid):
    total = 0
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(('voluntary_ctxt_switches', 'nonvoluntary_ctxt_switches')):
                total += int(line.split()[1])
    return total


def sleeping_task(cgroups, name):
    """A cgroup whose process sleeps already (loading `sleep` is running too)."""
    path = cgroups.create(name, processes=0)
    process = cgroups.add_process(path, ['sleep', '3600'])
    for _ in range(500):
        with open('/proc/%d/wchan' % process.pid) as f:
            if 'nanosleep' in f.read():
                break
        time.sleep(0.01)
    return path


def values(storage, name, task):
    return [m.value for m in storage.last(name) if m.labels['task_id'] == task.strip('/')]


def test_software_counts_rise_at_the_rate_the_processes_run(perf_cgroups):
    busy = perf_cgroups.create('busy', processes=0)
    spinner = perf_cgroups.add_process(busy, BUSY)
    faulting = perf_cgroups.create('faulting', processes=0)
    sleeper = perf_cgroups.add_process(faulting, FAULTING)
    storage = Recording()
    runner = make_runner(StaticNode(tasks=[busy, faulting]), storage, event_names=SOFTWARE)
    try:
        runner.iterate()  # opens the counters
        time.sleep(0.3)
        samples = []
        for _ in range(2):
            runner.iterate()
            samples.append({
                'clock': storage.value('task_task_clock_seconds_total', task_id=busy.strip('/')),
                'usage': storage.value('task_cpu_usage_seconds', task_id=busy.strip('/')),
                'stat': proc_stat(spinner.pid)[0],
                'switches': storage.value('task_context_switches_total',
                                          task_id=faulting.strip('/')),
                'proc_switches': context_switches(sleeper.pid),
                'faults': storage.value('task_page_faults_total', task_id=faulting.strip('/')),
                'proc_faults': proc_stat(sleeper.pid)[1]})
            if len(samples) == 1:
                time.sleep(1.0)
        text, dropped = encode(storage.batches[-1])
    finally:
        runner.close()
    delta = {key: samples[1][key] - samples[0][key] for key in samples[0]}
    # the task clock is the CPU time cpuacct saw, read a few microseconds apart
    assert delta['usage'] > 0.05, delta
    # (both are read within microseconds, unless the agent is preempted in between: some slack)
    assert abs(delta['clock'] - delta['usage']) < 0.03 * delta['usage'] + 0.02, delta
    assert abs(delta['clock'] - delta['stat']) < 0.1 * delta['stat'] + 0.03, delta
    assert delta['proc_switches'] > 20, delta  # about 500 per second, fewer on a busy machine
    assert abs(delta['switches'] - delta['proc_switches']) <= 0.05 * delta['proc_switches'] + 5, delta
    assert delta['proc_faults'] > 500, delta  # 256 a megabyte
    assert abs(delta['faults'] - delta['proc_faults']) <= 0.05 * delta['proc_faults'] + 10, delta
    for task in (busy, faulting):
        assert values(storage, 'task_cpu_migrations_total', task)[0] >= 0
        assert values(storage, 'task_scaling_factor_avg', task) == [1.0]
        assert values(storage, 'task_scaling_factor_max', task) == [1.0]
    cpus = len(runner._platform.topology.online_cpus)
    assert storage.value('wca_perf_descriptors') == 2 * 4 * cpus
    assert dropped == 0
    promtool_check(text.encode())


def test_counters_on_cgroup2_directories():
    """perf_event not mounted as v1 (the machines here): the task's cgroup2 directory is used.

    A test before may have mounted perf_event as v1 and unmounted it: the kernel gives the
    controller back to cgroup2 asynchronously, and cgroups made before that have no perf_event
    state. So wait for it first, then make this test's cgroups."""
    deadline = time.monotonic() + 20
    while perf_event_hierarchy() != (0, True) and time.monotonic() < deadline:
        time.sleep(0.1)
    layout = CgroupLayout.detect()
    hierarchy = perf_event_hierarchy()
    if 'perf_event' in layout.v1 or hierarchy != (0, True):
        message = ('perf_event is bound to a v1 hierarchy (%s), not to cgroup2: mounted by someone '
                   'else, or by a container that mounted the one a test mounted' % (hierarchy,))
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    cgroups = Cgroups()
    try:
        _count_on_cgroup2(cgroups, layout)
    finally:
        cgroups.cleanup()


def iterate_until_counted(runner, storage, name='task_task_clock_seconds_total', seconds=10):
    """Iterates until the task's processes have run, so that its counters have a sample (a
    group that never ran gives none); a loaded machine may take a while to schedule them."""
    deadline = time.monotonic() + seconds
    while True:
        runner.iterate()
        if storage.last(name) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _count_on_cgroup2(cgroups, layout):
    assert layout.unified
    busy = cgroups.create('busy', processes=0)
    cgroups.add_process(busy, BUSY)
    storage = Recording()
    runner = make_runner(StaticNode(tasks=[busy]), storage, event_names=['task-clock'])
    try:
        iterate_until_counted(runner, storage)
        first = (storage.value('task_task_clock_seconds_total'), storage.value('task_cpu_usage_seconds'))
        time.sleep(0.5)
        runner.iterate()
        second = (storage.value('task_task_clock_seconds_total'), storage.value('task_cpu_usage_seconds'))
    finally:
        runner.close()
    clock, usage = second[0] - first[0], second[1] - first[1]
    assert usage > 0.1 and abs(clock - usage) < 0.03 * usage + 0.02, (clock, usage)


def test_per_cpu_samples_carry_a_cpu_label(perf_cgroups):
    busy = perf_cgroups.create('busy', processes=0)
    perf_cgroups.add_process(busy, BUSY)
    storage = Recording()
    runner = make_runner(StaticNode(tasks=[busy]), storage, event_names=SOFTWARE,
                         perf_aggregate_cpus=False)
    try:
        iterate_until_counted(runner, storage)
        before_usage = storage.value('task_cpu_usage_seconds')
        before = {m.labels['cpu']: m.value for m in storage.last('task_task_clock_seconds_total')}
        time.sleep(0.6)
        runner.iterate()
        usage = storage.value('task_cpu_usage_seconds') - before_usage
        after = {m.labels['cpu']: m.value for m in storage.last('task_task_clock_seconds_total')}
        text, dropped = encode(storage.batches[-1])
    finally:
        runner.close()
    online = {str(cpu) for cpu in runner._platform.topology.online_cpus}
    assert set(after) <= online and after
    clock = sum(after.values()) - sum(before.get(cpu, 0) for cpu in after)
    assert abs(clock - usage) < 0.03 * usage + 0.02, (clock, usage)
    factors = storage.last('task_scaling_factor_avg')
    assert {m.labels['cpu'] for m in factors} == set(after) and all(m.value == 1.0 for m in factors)
    for name in SOFTWARE:
        assert {m.labels['cpu'] for m in storage.last(name)} == set(after), name
    assert dropped == 0
    promtool_check(text.encode())


def test_a_task_that_never_ran_has_no_perf_sample(perf_cgroups):
    sleeping = sleeping_task(perf_cgroups, 'sleeping')
    storage = Recording()
    runner = make_runner(StaticNode(tasks=[sleeping]), storage, event_names=SOFTWARE)
    try:
        for _ in range(3):
            runner.iterate()
    finally:
        runner.close()
    assert storage.value('task_up') == 1
    for name in SOFTWARE + ['task_scaling_factor_avg', 'task_scaling_factor_max']:
        assert storage.last(name) == [], name  # no group ran: no sample, not a zero


def test_a_pod_is_the_sum_of_its_containers(perf_cgroups):
    pod = perf_cgroups.create('pod', processes=0)
    containers = [perf_cgroups.create('pod/c%d' % n, processes=0) for n in range(2)]
    for container in containers:
        perf_cgroups.add_process(container, BUSY)
    task = Task(name='default/pod', task_id='pod-uid', cgroup_path=pod,
                subcgroups_paths=containers)
    storage = Recording()
    runner = make_runner(Pods([task]), storage, event_names=['task_task_clock_seconds_total'])
    try:
        iterate_until_counted(runner, storage)
        first = (storage.value('task_task_clock_seconds_total'), storage.value('task_cpu_usage_seconds'))
        time.sleep(0.6)
        runner.iterate()
        second = (storage.value('task_task_clock_seconds_total'), storage.value('task_cpu_usage_seconds'))
        cpus = len(runner._platform.topology.online_cpus)
        assert storage.value('wca_perf_descriptors') == 2 * cpus  # a group per container and CPU
    finally:
        runner.close()
    clock, usage = second[0] - first[0], second[1] - first[1]
    # the pod's cpuacct includes both containers: neither left out nor counted twice
    assert usage > 0.1 and abs(clock - usage) < 0.03 * usage + 0.02, (clock, usage)


def test_hardware_events_this_machine_cannot_count_are_one_warning(perf_cgroups, caplog):
    busy = perf_cgroups.create('busy', processes=0)
    perf_cgroups.add_process(busy, BUSY)
    storage = Recording()
    caplog.set_level(logging.INFO)
    runner = make_runner(StaticNode(tasks=[busy]), storage,
                         event_names=['task_instructions', 'task_cycles', 'task_cache_misses',
                                      'task_task_clock_seconds_total', 'cs'])
    try:  # until the busy task has run in its cgroup (a loaded machine may not let it at once)
        deadline = time.monotonic() + 20
        while True:
            runner.iterate()
            clock = storage.last('task_task_clock_seconds_total')
            if (clock and clock[0].value > 0) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        runner.close()
    assert storage.last('task_task_clock_seconds_total')[0].value > 0
    assert storage.last('task_context_switches_total')
    perf_warnings = [r for r in caplog.records if r.levelno >= logging.WARNING
                     and r.name.startswith('wca.perf')]
    has_pmu = any(os.path.exists('/sys/bus/event_source/devices/' + pmu)
                  for pmu in ('cpu', 'cpu_core', 'armv8_pmuv3'))
    unsupported = storage.value('wca_perf_open_failures_total', reason='unsupported')
    if has_pmu:  # a machine with a PMU counts them
        assert storage.last('task_instructions') and storage.last('task_cycles')
        assert unsupported == 0 and perf_warnings == []
    else:  # as here: no PMU (ENOENT); one warning at start names the three, the rest is counted
        assert len(perf_warnings) == 1, [r.getMessage() for r in perf_warnings]
        message = perf_warnings[0].getMessage()
        for name in ('task_instructions', 'task_cycles', 'task_cache_misses'):
            assert name in message and not storage.last(name)
        assert 'No such file or directory' in message and 'the other events are counted' in message
        assert unsupported == 3
    assert [r for r in caplog.records if 'about' in r.getMessage() and 'tasks fit' in r.getMessage()]


def test_running_out_of_descriptors_leaves_only_that_task_without_perf(perf_cgroups, caplog):
    paths = [perf_cgroups.create('t%d' % n, processes=0) for n in range(5)]
    storage = Recording()
    runner = make_runner(StaticNode(tasks=paths), storage, event_names=SOFTWARE)
    runner.setup()
    per_task = 4 * len(runner._platform.topology.online_cpus)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir('/proc/self/fd'))
    # room for two tasks' counters and a few files more (the cgroup files read meanwhile)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 2 * per_task + 6, hard))
    try:
        runner.iterate()
        runner.iterate()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert storage.value('wca_perf_tasks') == 2
        assert storage.value('wca_perf_descriptors') == 2 * per_task
        assert storage.value('wca_perf_open_failures_total', reason='descriptors') == 3
        # every task is measured: cgroup metrics for all, nothing else affected
        assert len(storage.last('task_up')) == 5 and len(storage.last('task_cpu_usage_seconds')) == 5
        assert storage.value('wca_measurement_errors_total') == 0
        logged = [r.getMessage() for r in caplog.records if 'out of file descriptors' in r.getMessage()]
        assert len(logged) == 3 and 'LimitNOFILE' in logged[0]  # once per task, not per iteration
    finally:
        runner.close()


def test_a_task_without_a_perf_event_cgroup_is_counted_once_it_appears(perf_cgroups, caplog):
    late = perf_cgroups.create('late', processes=0)
    perf_dir = perf_cgroups.layout.v1['perf_event'] + late
    os.rmdir(perf_dir)  # as if the container runtime had not made it yet
    storage = Recording()
    runner = make_runner(StaticNode(tasks=[late]), storage, event_names=SOFTWARE)
    try:
        runner.iterate()
        runner.iterate()
        assert storage.value('task_up') == 1
        assert storage.value('wca_perf_open_failures_total', reason='no_cgroup') == 1
        assert storage.value('wca_perf_descriptors') == 0
        os.mkdir(perf_dir)
        perf_cgroups.add_process(late, BUSY)
        iterate_until_counted(runner, storage)
        assert storage.last('task_task_clock_seconds_total')[0].value > 0
        assert storage.value('wca_perf_open_failures_total', reason='no_cgroup') == 1
        assert len([r for r in caplog.records if 'no cgroup' in r.getMessage()]) == 1
    finally:
        runner.close()


def test_derived_metrics_from_real_counts_and_none_for_an_idle_task(perf_cgroups):
    """No hardware PMU here: two software clocks stand in for instructions and cycles (the
    formulas do not care), so task_ipc is task clock / CPU clock, about 1."""
    busy = perf_cgroups.create('busy', processes=0)
    perf_cgroups.add_process(busy, BUSY)
    idle = sleeping_task(perf_cgroups, 'idle')
    status = PerfStatus()
    events = [Event('task_instructions', PERF_TYPE_SOFTWARE, 1), Event('task_cycles', PERF_TYPE_SOFTWARE, 0)]
    cpus = sorted(os.sched_getaffinity(0))
    factory = PerfSourceFactory(events, perf_cgroups.layout.v1['perf_event'], cpus, aggregate=True,
                                derived=True, status=status)
    sources = {path: factory.open(Task(path, path, path)) for path in (busy, idle)}
    try:
        measured = []
        for _ in range(3):
            time.sleep(0.3)
            measured.append({})
            for path, source in sources.items():
                measured[-1][path] = m = {}
                source.measure(m)
    finally:
        for source in sources.values():
            source.close()
    assert status.descriptors == 0 and status.tasks == 0
    last = measured[-1][busy]
    assert 0.9 < last['task_ipc'] < 1.1, last
    assert last['task_ips'] > 1e8  # "instructions" are nanoseconds of task clock: 1e9 a CPU second
    assert 'task_cache_hit_ratio' not in last  # no cache events counted
    for m in (step[idle] for step in measured):
        assert 'task_ipc' not in m and 'task_ips' not in m  # idle: no sample, no exception
