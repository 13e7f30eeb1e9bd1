"""NUMAAllocator on a two-node platform: /sys/devices/system/{cpu,node} laid out like the
kernel's (this machine has one node), read by the PlatformCollector; and applied to real
cgroups by the AllocationRunner, one task per iteration."""
import pytest

from allocation_fixtures import (ListNode, NumaSys, proc_tree, read, rejected, runner,
                                 written)
from conftest import promtool_check
from wca.allocators import AllocationType as A
from wca.config import load_config_text
from wca.detectors import TaskData
from wca.exposition import encode
from wca.metrics import MetricName as M
from wca.nodes.base import Task
from wca.numa_allocator import NUMAAlgorithm, NUMAAllocator
from wca.platforms import PlatformCollector
from wca.runners.algorithm import stamp_metrics

GIB = 1 << 30


@pytest.fixture
def platform(tmp_path):
    numa = NumaSys(str(tmp_path / 'sys'), {0: [0, 1], 1: [2, 3]}, free={0: 10 * GIB, 1: 20 * GIB},
                   used={0: 6 * GIB, 1: 2 * GIB})
    return PlatformCollector('/proc', numa.root).collect()


def data(task_id, memory, pages=None, cpus=None, labels=None):
    allocations = None if cpus is False else {A.CPUSET_CPUS: cpus or '0-3'}
    measurements = {M.TASK_MEM_USAGE_BYTES: memory}
    if pages is not None:
        measurements[M.TASK_MEM_NUMA_PAGES] = pages
    return TaskData(name=task_id, task_id=task_id, cgroup_path='/' + task_id,
                    labels=dict(labels or {}), measurements=measurements,
                    allocations=allocations)


def tasks(*items):
    return {item.task_id: item for item in items}


def by_name(metrics):
    found = {}
    for metric in metrics:
        found.setdefault(metric.name, []).append(metric)
    return found


def test_the_platform_has_two_nodes(platform):
    assert platform.node_cpus == {0: {0, 1}, 1: {2, 3}}
    assert platform.measurements[M.PLATFORM_MEM_NUMA_FREE_BYTES] == {0: 10 * GIB, 1: 20 * GIB}


def test_fill_biggest_first_places_the_biggest_task_on_the_least_loaded_node(platform):
    allocator = NUMAAllocator(migrate_pages=False)
    answer, anomalies, metrics = allocator.allocate(platform, tasks(
        data('pinned', 4 * GIB, {0: 1000}, cpus='0-1'),  # node 0 holds 4 GiB of pinned tasks
        data('big', 3 * GIB, {0: 700, 1: 300}),
        data('small', GIB, {1: 100})))
    assert answer == {'big': {A.CPUSET_CPUS: '2-3'}}  # one task per iteration, to node 1
    metrics = by_name(metrics)
    assert {m.labels['numa_node']: m.value for m in metrics['numa__balanced_memory_tasks']} == {
        '0': 1, '1': 0}
    assert {m.labels['numa_node']: m.value for m in metrics['numa__balanced_memory_size']} == {
        '0': 4 * GIB, '1': 0}
    assert {m.labels['task_id']: m.value for m in metrics['numa__task_current_node']} == {
        'pinned': 0, 'big': -1, 'small': -1}
    assert [m.value for m in metrics['numa__task_tasks_count']] == [3]


def test_memory_binding_migration_and_pages_to_move(platform):
    allocator = NUMAAllocator(cgroups_memory_binding=True, cgroups_memory_migrate=True)
    answer, _, metrics = allocator.allocate(platform, tasks(data('t', GIB, {0: 700, 1: 300})))
    assert answer == {'t': {A.CPUSET_CPUS: '0-1', A.CPUSET_MEMS: '0',
                            A.CPUSET_MEMORY_MIGRATE: 1, A.MIGRATE_PAGES: 0}}
    metrics = by_name(metrics)
    assert [m.value for m in metrics['numa__task_pages_to_move']] == [300]
    assert [m.value for m in metrics['numa__total_pages_to_move']] == [300]
    text, dropped = encode(stamp_metrics(list(metrics['numa__task_pages_to_move']) +
                                         [m for ms in metrics.values() for m in ms
                                          if m.name != 'numa__task_pages_to_move'], {'host': 'h'}))
    assert dropped == 0
    promtool_check(text.encode())


def test_minimize_migration_keeps_a_task_where_its_memory_is(platform):
    for name in ('minimize_migration', 'minimize_migrations'):
        allocator = NUMAAllocator(algorithm=name, migrate_pages=False)
        assert allocator.algorithm is NUMAAlgorithm.MINIMIZE_MIGRATIONS
        answer, _, _ = allocator.allocate(platform, tasks(data('t', GIB, {0: 900, 1: 100})))
        assert answer == {'t': {A.CPUSET_CPUS: '0-1'}}
    allocator = NUMAAllocator(algorithm='minimize_migration', loop_min_task_balance=0.95,
                              migrate_pages=False)
    answer, _, _ = allocator.allocate(platform, tasks(data('t', GIB, {0: 900, 1: 100})))
    assert answer == {}  # 90 % on one node is below loop_min_task_balance


def test_free_space_check_skips_a_node_without_room(platform):
    allocator = NUMAAllocator(free_space_check=True, migrate_pages=False)
    answer, _, _ = allocator.allocate(platform, tasks(
        data('huge', 25 * GIB, {0: 10}), data('fits', 2 * GIB, {0: 10})))
    assert answer == {'fits': {A.CPUSET_CPUS: '0-1'}}  # both nodes are empty: node 0 first


def test_the_originals_crashes_are_not_carried_over(platform):
    allocator = NUMAAllocator(cgroups_memory_binding=False, cgroups_memory_migrate=True,
                              free_space_check=True)
    answer, _, metrics = allocator.allocate(platform, tasks(
        data('no-allocations', GIB, {0: 1}, cpus=False),  # allocations None
        data('no-numa-stat', 2 * GIB),  # no task_mem_numa_pages
        data('empty', 0, {})))
    assert answer == {'no-numa-stat': {A.CPUSET_CPUS: '0-1', A.MIGRATE_PAGES: 0}}
    assert {m.labels['task_id']: m.value for m in by_name(metrics)['numa__task_current_node']} \
        == {'no-allocations': -1, 'no-numa-stat': -1, 'empty': -1}


def test_unbalanced_pinned_tasks_get_their_pages_migrated(platform):
    allocator = NUMAAllocator()
    answer, _, _ = allocator.allocate(platform, tasks(
        data('spread', GIB, {0: 200, 1: 800}, cpus='2-3'),  # node 1 has most free memory
        data('fine', GIB, {0: 1000}, cpus='0-1')))
    assert answer == {'spread': {A.MIGRATE_PAGES: 1}}


def test_dryrun_only_reports(platform):
    answer, _, metrics = NUMAAllocator(dryrun=True).allocate(platform, tasks(data('t', GIB, {0: 1})))
    assert answer == {} and by_name(metrics)['numa__task_current_node'][0].value == -1


def test_the_shipped_configs_options_load():
    config = load_config_text('''\
runner: !AllocationRunner
  node: !StaticNode {tasks: []}
  allocator: !NUMAAllocator
    algorithm: minimize_migrations
    loop_min_task_balance: 0.5
    free_space_check: true
    migrate_pages: false
    migrate_pages_min_task_balance: null
    cgroups_memory_binding: true
    cgroups_memory_migrate: true
    dryrun: false
''')
    allocator = config['runner'].config.allocator
    assert allocator.algorithm is NUMAAlgorithm.MINIMIZE_MIGRATIONS
    assert allocator.migrate_pages_min_task_balance is None


def test_applied_to_real_tasks_one_per_iteration(cgroups, tmp_path):
    numa = NumaSys(str(tmp_path / 'sys'), {0: [0], 1: [1]}, free={0: 8 * GIB, 1: 8 * GIB},
                   used={0: GIB, 1: GIB})
    paths = [cgroups.create('big'), cgroups.create('small')]
    node = ListNode([Task(name=p, task_id=p.strip('/'), cgroup_path=p, resources={'mem': mem})
                     for p, mem in zip(paths, (3 * GIB, GIB))])
    made, metrics, anomalies, stored = runner(
        node, NUMAAllocator(migrate_pages=False), sys_root=numa.root,
        proc_root=proc_tree(str(tmp_path / 'proc')))
    cpuset = cgroups.layout.v1['cpuset']
    made.iterate()
    assert [read(cpuset + p + '/cpuset.cpus') for p in paths] == ['0', '0-1']
    made.iterate()
    assert [read(cpuset + p + '/cpuset.cpus') for p in paths] == ['0', '1']  # the other node
    made.iterate()
    assert written(stored)['cpuset_cpus'] == 2 and rejected(stored) == {}
    assert anomalies.value('numa__task_current_node', task_id=paths[1].strip('/')) == 1
    made.close()
