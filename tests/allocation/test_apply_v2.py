"""The AllocationRunner on cgroup v2: a cgroup2 tree laid out like the kernel's with the cpu and
cpuset controllers enabled (this machine's cgroup2 has neither), written through cpu.max,
cpu.weight, cpuset.cpus and cpuset.mems."""
import os

from allocation_fixtures import FixedAllocator, ListNode, V2Tree, read, rejected, runner, task, written
from wca.allocators import AllocationType as A
from wca.cgroups import CgroupLayout


def v2_runner(tmp_path, tasks, answer, **options):
    tree = V2Tree(str(tmp_path / 'cgroup2'))
    for path in tasks:
        tree.make(path)
    layout = CgroupLayout.with_unified({}, tree.root)
    node = ListNode([task(path) for path in tasks])
    made = runner(node, FixedAllocator(answer), cgroup_layout=layout, **options)
    return (tree,) + made


def test_each_v2_setting_written_once_and_again_after_a_reset(tmp_path):
    answer = {'a': {A.QUOTA: 0.5, A.SHARES: 0.25, A.CPUSET_CPUS: '1', A.CPUSET_MEMS: '0',
                    A.CPUSET_MEMORY_MIGRATE: 1}}
    tree, made, metrics, anomalies, stored = v2_runner(tmp_path, ['/a'], answer)
    directory = os.path.join(tree.root, 'a')
    made.iterate()
    assert read(directory + '/cpu.max') == '1000 1000'  # 0.5 of 2 CPUs, period 1000 us
    assert read(directory + '/cpu.weight') == '10'  # 250 shares
    assert read(directory + '/cpuset.cpus') == '1'
    assert read(directory + '/cpuset.mems') == ''  # the effective set held it already
    first = written(stored)
    assert first == {'cpu_quota': 1, 'cpu_shares': 1, 'cpuset_cpus': 1, 'cpuset_mems': 0,
                     'cpuset_memory_migrate': 0, 'migrate_pages': 0, 'rdt': 0}
    made.iterate()
    assert written(stored) == first  # the kernel holds it all
    assert stored.value('allocation_cpu_shares', task_id='a') == 0.25
    with open(directory + '/cpu.max', 'w') as f:
        f.write('max 100000\n')  # reset by someone else
    with open(directory + '/cpu.weight', 'w') as f:
        f.write('100\n')
    made.iterate()
    assert read(directory + '/cpu.max') == '1000 1000' and read(directory + '/cpu.weight') == '10'
    assert written(stored)['cpu_quota'] == 2 and written(stored)['cpu_shares'] == 2
    made.close()


def test_v2_invalid_and_unsupported_allocations_are_rejected_alone(tmp_path):
    answer = {'a': {A.QUOTA: 1.5, A.SHARES: 2, A.CPUSET_MEMORY_MIGRATE: 0},
              'b': {A.CPUSET_CPUS: '0', A.CPUSET_MEMS: '1-0', A.QUOTA: 1.0}}
    tree, made, metrics, anomalies, stored = v2_runner(tmp_path, ['/a', '/b'], answer)
    for path in ('/a', '/b'):
        with open(os.path.join(tree.root, path.strip('/'), 'cpu.max'), 'w') as f:
            f.write('50000 100000\n')
    made.iterate()
    assert rejected(stored) == {('cpu_quota', 'invalid'): 1, ('cpuset_mems', 'invalid'): 1,
                                ('cpuset_memory_migrate', 'unsupported'): 1}
    assert read(tree.root + '/a/cpu.max') == '50000 100000'
    assert read(tree.root + '/a/cpu.weight') == '77'  # 2000 shares
    assert read(tree.root + '/b/cpu.max') == 'max 1000'
    assert read(tree.root + '/b/cpuset.cpus') == '0'
    made.close()


def test_v2_pod(tmp_path):
    tree = V2Tree(str(tmp_path / 'cgroup2'))
    for path in ('/pod', '/pod/c1', '/pod/c2'):
        tree.make(path, cpu_max='20000 100000')
    layout = CgroupLayout.with_unified({}, tree.root)
    node = ListNode([task('/pod', ['/pod/c1', '/pod/c2'], task_id='uid')])
    made, metrics, anomalies, stored = runner(
        node, FixedAllocator({'uid': {A.QUOTA: 1.0, A.CPUSET_CPUS: '0'}}), cgroup_layout=layout)
    made.iterate()
    assert read(tree.root + '/pod/cpu.max') == 'max 1000'
    assert read(tree.root + '/pod/c1/cpu.max') == read(tree.root + '/pod/c2/cpu.max') == \
        'max 100000'
    assert read(tree.root + '/pod/c1/cpuset.cpus') == read(tree.root + '/pod/c2/cpuset.cpus') == '0'
    assert read(tree.root + '/pod/cpuset.cpus') == ''
    made.close()
