"""The AllocationRunner applies allocations to this machine's cgroup v1 hierarchies, with real
processes in real cgroups: each type read back from the files, nothing written when the kernel
holds it already, a setting reset behind the agent's back written again, invalid and refused
allocations rejected alone."""
import logging

from allocation_fixtures import FixedAllocator, ListNode, counters, read, rejected, runner, task, written
from conftest import promtool_check
from testing.recording import Recording
from wca.allocators import AllocationType as A, NOPAllocator
from wca.config import load_config_text
from wca.exposition import encode
from wca.nodes.static import StaticNode
from wca.runners import AllocationRunner


def files(cgroups, path):
    cpu, cpuset = cgroups.layout.v1['cpu'] + path, cgroups.layout.v1['cpuset'] + path
    return {'quota': read(cpu + '/cpu.cfs_quota_us'), 'period': read(cpu + '/cpu.cfs_period_us'),
            'shares': read(cpu + '/cpu.shares'), 'cpus': read(cpuset + '/cpuset.cpus'),
            'mems': read(cpuset + '/cpuset.mems'),
            'migrate': read(cpuset + '/cpuset.memory_migrate')}


def write(cgroups, controller, path, name, value):
    with open(cgroups.layout.v1[controller] + path + '/' + name, 'w') as f:
        f.write(value)


ALL = {A.QUOTA: 0.75, A.SHARES: 0.5, A.CPUSET_CPUS: '1', A.CPUSET_MEMS: '0',
       A.CPUSET_MEMORY_MIGRATE: 1, A.MIGRATE_PAGES: 0}


def test_each_type_is_applied_once_and_read_back(cgroups):
    path = cgroups.create('task')
    task_id = path.strip('/')
    allocator = FixedAllocator(lambda tasks_data: {task_id: dict(ALL)})
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]), allocator)
    made.iterate()
    assert files(cgroups, path) == {'quota': '1500', 'period': '1000', 'shares': '500',
                                    'cpus': '1', 'mems': '0', 'migrate': '1'}
    # 0.75 of 2 CPUs with the default 1000 us period; cpuset.mems held '0' already, and all the
    # task's pages are on node 0 already (one node here): nothing to migrate
    first = written(stored)
    assert first == {'cpu_quota': 1, 'cpu_shares': 1, 'cpuset_cpus': 1, 'cpuset_mems': 0,
                     'cpuset_memory_migrate': 1, 'migrate_pages': 0, 'rdt': 0}
    assert stored.value('allocation_cpu_quota', task_id=task_id) == 0.75
    assert stored.value('allocation_cpuset_cpus_number_of_cpus', task_id=task_id) == 1
    assert stored.value('allocations_count') == 6 and stored.value('allocations_errors') == 0
    # the next iteration: the allocator sees what the kernel holds, and nothing is written
    made.iterate()
    assert allocator.seen[task_id] == {A.QUOTA: 0.75, A.SHARES: 0.5, A.CPUSET_CPUS: '1',
                                       A.CPUSET_MEMS: '0', A.CPUSET_MEMORY_MIGRATE: 1}
    assert written(stored) == first
    assert stored.value('allocations_count') == 12
    text, dropped = encode(stored.batches[-1])
    assert dropped == 0
    promtool_check(text.encode())
    made.close()


def test_a_setting_reset_behind_the_agents_back_is_written_again(cgroups):
    path = cgroups.create('pod')
    task_id = path.strip('/')
    made, metrics, anomalies, stored = runner(
        StaticNode(tasks=[path]),
        FixedAllocator({task_id: {A.QUOTA: 0.5, A.SHARES: 2, A.CPUSET_CPUS: '0'}}))
    made.iterate()
    assert (files(cgroups, path)['quota'], files(cgroups, path)['shares']) == ('1000', '2000')
    # the kubelet reconciles: everything back to what it wants
    write(cgroups, 'cpu', path, 'cpu.cfs_quota_us', '-1')
    write(cgroups, 'cpu', path, 'cpu.shares', '1024')
    write(cgroups, 'cpuset', path, 'cpuset.cpus', '0-1')
    made.iterate()
    assert files(cgroups, path)['quota'] == '1000'
    assert files(cgroups, path)['shares'] == '2000'
    assert files(cgroups, path)['cpus'] == '0'
    assert written(stored)['cpu_quota'] == 2 and written(stored)['cpu_shares'] == 2
    assert written(stored)['cpuset_cpus'] == 2
    made.iterate()  # and not again while it stays
    assert written(stored)['cpu_quota'] == 2
    made.close()


def test_exactly_the_valid_allocations_are_applied(cgroups, caplog):
    a, b = cgroups.create('a'), cgroups.create('b')
    a_id, b_id = a.strip('/'), b.strip('/')
    answer = {
        a_id: {A.QUOTA: float('nan'), A.SHARES: 3, A.CPUSET_CPUS: '1-0', A.CPUSET_MEMS: '0',
               'no_such_type': 1},
        b_id: {A.QUOTA: 0.5, A.SHARES: float('inf'), A.CPUSET_CPUS: [1], A.MIGRATE_PAGES: 7},
        'no-such-task': {A.QUOTA: 0.5},
    }
    allocator = FixedAllocator(answer)
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[a, b]), allocator)
    for _ in range(3):
        made.iterate()
    assert files(cgroups, a)['quota'] == '-1' and files(cgroups, a)['shares'] == '3000'
    assert files(cgroups, a)['cpus'] == '0-1'
    assert files(cgroups, b)['quota'] == '1000' and files(cgroups, b)['shares'] == '1024'
    assert files(cgroups, b)['cpus'] == '1'
    assert rejected(stored) == {('cpu_quota', 'invalid'): 3, ('cpuset_cpus', 'invalid'): 3,
                                ('unknown', 'unknown_type'): 3, ('cpu_shares', 'invalid'): 3,
                                ('migrate_pages', 'invalid'): 3, ('cpu_quota', 'unknown_task'): 3}
    assert stored.value('allocations_errors') == 18 and stored.value('allocations_count') == 30
    # what each task holds: its rejected values are not shown as allocated
    assert stored.value('allocation_cpu_quota', task_id=a_id) == 1.0
    assert stored.value('allocation_cpu_quota', task_id=b_id) == 0.5
    assert not stored.last('allocation_migrate_pages')
    # one log line per rejection while it repeats, naming the task, the type and the reason
    lines = [r.getMessage() for r in caplog.records if 'allocation rejected' in r.getMessage()]
    assert len(lines) == 6, lines
    assert "allocation rejected (invalid): task %r: cpuset_cpus: reversed range '1-0' in cpu " \
           "list '1-0'" % a_id in lines
    assert "allocation rejected (invalid): task %r: cpu_quota: cpu_quota must be a finite " \
           "number, got nan" % a_id in lines
    assert "allocation rejected (unknown_task): task 'no-such-task': cpu_quota: not a task of " \
           "this iteration" in lines
    # the allocator fixes one of them: said once
    caplog.clear()
    caplog.set_level(logging.INFO)
    answer[a_id][A.CPUSET_CPUS] = '0'
    made.iterate()
    assert files(cgroups, a)['cpus'] == '0'
    assert [r.getMessage() for r in caplog.records if 'no longer rejected' in r.getMessage()] == [
        'allocation of task %r: cpuset_cpus is no longer rejected' % a_id]
    assert not [r for r in caplog.records if 'allocation rejected' in r.getMessage()]
    made.close()


def test_writes_the_kernel_refuses_and_vanished_cgroups_are_rejected_alone(cgroups):
    parent = cgroups.create('parent', processes=0)
    limited, gone, fine = (cgroups.create('parent/limited'), cgroups.create('parent/gone'),
                           cgroups.create('parent/fine'))
    write(cgroups, 'cpu', parent, 'cpu.cfs_period_us', '100000')
    write(cgroups, 'cpu', parent, 'cpu.cfs_quota_us', '1000')  # 1 % of a CPU for its children

    def answer(tasks_data):
        if gone.strip('/') in tasks_data and len(cgroups.created) > 4:
            cgroups.remove(gone)  # between reading and writing
        return {limited.strip('/'): {A.QUOTA: 0.5, A.SHARES: 3},
                gone.strip('/'): {A.SHARES: 3},
                fine.strip('/'): {A.CPUSET_CPUS: '1', A.SHARES: 3}}
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[limited, gone, fine]),
                                              FixedAllocator(answer))
    made.iterate()
    assert rejected(stored) == {('cpu_quota', 'kernel_refused'): 1, ('cpu_shares', 'vanished'): 1}
    assert files(cgroups, limited)['quota'] == '-1'  # refused: left as it was
    assert files(cgroups, limited)['shares'] == '3000'  # the task's other allocation applies
    assert files(cgroups, fine)['cpus'] == '1' and files(cgroups, fine)['shares'] == '3000'
    made.close()


def test_dry_run_checks_and_stores_and_writes_nothing(cgroups):
    path = cgroups.create('task')
    before = files(cgroups, path)
    made, metrics, anomalies, stored = runner(
        StaticNode(tasks=[path]), FixedAllocator({path.strip('/'): dict(ALL, cpu_quota=2.0)}),
        dry_run=True)
    made.iterate()
    assert files(cgroups, path) == before
    assert sum(written(stored).values()) == 0
    assert stored.value('allocation_cpu_shares', task_id=path.strip('/')) == 0.5  # would be
    assert rejected(stored) == {('cpu_quota', 'invalid'): 1}
    made.close()


def test_a_pods_quota_goes_to_the_pod_and_its_cpusets_to_the_containers(cgroups):
    pod = cgroups.create('pod', processes=0)
    containers = [cgroups.create('pod/c1'), cgroups.create('pod/c2')]
    for container in containers:
        write(cgroups, 'cpu', container, 'cpu.cfs_quota_us', '20000')
    node = ListNode([task(pod, containers, task_id='pod-uid')])
    made, metrics, anomalies, stored = runner(
        node, FixedAllocator({'pod-uid': {A.QUOTA: 0.5, A.CPUSET_CPUS: '1',
                                          A.CPUSET_MEMORY_MIGRATE: 1}}))
    made.iterate()
    assert files(cgroups, pod)['quota'] == '1000' and files(cgroups, pod)['migrate'] == '1'
    assert [files(cgroups, c)['quota'] for c in containers] == ['-1', '-1']
    assert [files(cgroups, c)['cpus'] for c in containers] == ['1', '1']
    assert [files(cgroups, c)['migrate'] for c in containers] == ['0', '0']
    labels = stored.last('allocation_cpu_quota')[0].labels
    assert labels['container_name'] == pod.strip('/').replace('/', '-')
    assert labels['task'] == labels['task_id'] == 'pod-uid'
    made.close()


def test_allocation_configuration_in_the_20_composition_shape(cgroups):
    path = cgroups.create('task')
    config = load_config_text('''\
runner: !AllocationRunner
  measurement_runner: !MeasurementRunner
    node: !StaticNode {tasks: [%s]}
    allocation_configuration: !AllocationConfiguration
      cpu_quota_period: 20000
      cpu_shares_unit: 1024
  allocator: !NOPAllocator
''' % path)
    made = config['runner']
    assert isinstance(made, AllocationRunner)
    assert made.allocation_configuration.cpu_quota_period == 20000
    made.config.metrics_storage = made.config.allocations_storage = Recording()
    made.config.anomalies_storage = made.config.metrics_storage
    made.config.allocator = FixedAllocator({path.strip('/'): {A.QUOTA: 0.5, A.SHARES: 2}})
    made.iterate()
    assert (files(cgroups, path)['quota'], files(cgroups, path)['period']) == ('20000', '20000')
    assert files(cgroups, path)['shares'] == '2048'
    made.close()


def test_nop_allocator_reads_and_writes_nothing(cgroups):
    path = cgroups.create('task')
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]), NOPAllocator())
    made.iterate()
    assert sum(written(stored).values()) == 0 and not stored.last('allocations_rejected_total')
    assert counters(stored, 'allocation_cpu_quota', 'task_id') == {path.strip('/'): 1.0}
    made.close()
