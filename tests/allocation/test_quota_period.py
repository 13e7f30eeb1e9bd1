"""A cap takes effect as computed: where cpu_quota_period (1 ms by default) cannot express a
quota (the kernel's least is 1000 us), the cgroup's period is lengthened so that the ratio
holds; the quota is compared with the kernel's by ratio, so it is written once and again only
after a reset. Real cgroup v1 with a real busy process; cgroup2 as a tree laid out like the
kernel's (this machine's cgroup2 has no cpu controller)."""
import os
import sys
import time

import pytest

from allocation_fixtures import V2Tree, read, runner, task, written, ListNode
from wca.allocators import Allocator, AllocationType as A
from wca.cgroups import CgroupLayout
from wca.cgroups.settings import MAX_PERIOD_US, MIN_QUOTA_US, quota_period
from wca.nodes.static import StaticNode


class CpusAllocator(Allocator):
    """Gives each task `cpus[task_id]` CPUs as a cpu_quota (a fraction of the platform)."""

    def __init__(self, cpus):
        self.cpus = cpus

    def allocate(self, platform, tasks_data):
        return {task_id: {A.QUOTA: cpus / platform.cpus} for task_id, cpus in self.cpus.items()
                if task_id in tasks_data}, [], []


@pytest.mark.parametrize('cpus, period, expected', [
    (0.1, 1000, (1000, 10000)),  # the case: a tenth of a CPU with the 1 ms default
    (0.6, 1000, (1200, 2000)),  # the shortest multiple of the period that can hold it
    (1.5, 1000, (1500, 1000)),  # expressible: the configured period
    (0.25, 100000, (25000, 100000)),
    (0.002, 300000, (1200, 600000)),
    (0.0012, 600000, (1200, MAX_PERIOD_US)),  # the next multiple is above 1 s: 1 s
    (0.0005, 1000, (MIN_QUOTA_US, MAX_PERIOD_US)),  # below 1 ms per second: the least
    (0.0, 1000, (MIN_QUOTA_US, MAX_PERIOD_US)),
])
def test_the_period_is_lengthened_where_the_quota_would_be_below_1ms(cpus, period, expected):
    assert quota_period(cpus, period) == expected


def test_every_ratio_from_a_thousandth_of_a_cpu_is_held_within_the_kernels_rounding():
    for period in (1000, 1500, 20000, 100000, 999999, 1000000):
        for step in range(1, 4001):
            cpus = step / 1000.0
            quota, made = quota_period(cpus, period)
            assert quota >= MIN_QUOTA_US and 1000 <= made <= MAX_PERIOD_US, (cpus, period)
            assert abs(quota / made - cpus) <= cpus * 1e-3, (cpus, period, quota, made)


def v1_files(cgroups, path):
    cpu = cgroups.layout.v1['cpu'] + path
    return read(cpu + '/cpu.cfs_quota_us'), read(cpu + '/cpu.cfs_period_us')


def write_v1(cgroups, path, name, value):
    with open(cgroups.layout.v1['cpu'] + path + '/' + name, 'w') as f:
        f.write(value)


def cpu_share(cgroups, path, seconds=2.0):
    """CPUs the cgroup used over `seconds` of wall time (cpuacct.usage)."""
    usage = cgroups.layout.v1['cpuacct'] + path + '/cpuacct.usage'
    start, used = time.monotonic(), int(read(usage))
    while time.monotonic() - start < seconds:  # a measuring window, not a wait for a state
        time.sleep(0.05)
    return (int(read(usage)) - used) / 1e9 / (time.monotonic() - start)


def test_a_tenth_of_a_cpu_with_the_default_period_caps_a_real_hog(cgroups):
    path = cgroups.create('hog', processes=0)
    cgroups.add_process(path, [sys.executable, '-c', 'while True: pass'])
    task_id = path.strip('/')
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]),
                                              CpusAllocator({task_id: 0.1}))
    made.iterate()
    assert v1_files(cgroups, path) == ('1000', '10000')  # 1 ms in 10 ms, not a whole 1 ms of 1 ms
    share = cpu_share(cgroups, path)
    assert 0.02 < share < 0.2, share  # about a tenth of a CPU (the machine is shared)
    throttled = read(cgroups.layout.v1['cpu'] + path + '/cpu.stat')
    assert int(throttled.split('nr_throttled ')[1].split()[0]) > 0
    # what the task holds, in the contract's units, is what was asked
    assert stored.value('allocation_cpu_quota', task_id=task_id) == pytest.approx(
        0.1 / made._platform.topology.cpus)
    # an identical iteration writes nothing: the lengthened period holds the ratio
    made.iterate()
    assert written(stored)['cpu_quota'] == 1
    made.close()


def test_a_kubelet_reset_is_written_again_and_an_equal_ratio_is_held(cgroups):
    path = cgroups.create('pod')
    task_id = path.strip('/')
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]),
                                              CpusAllocator({task_id: 0.1}))
    made.iterate()
    assert v1_files(cgroups, path) == ('1000', '10000')
    # the kubelet puts its own back: its period, then no limit
    write_v1(cgroups, path, 'cpu.cfs_period_us', '100000')
    write_v1(cgroups, path, 'cpu.cfs_quota_us', '-1')
    made.iterate()
    assert v1_files(cgroups, path) == ('1000', '10000')
    assert written(stored)['cpu_quota'] == 2
    made.iterate()
    assert written(stored)['cpu_quota'] == 2
    # the same ratio with another period is held: not written
    write_v1(cgroups, path, 'cpu.cfs_quota_us', '-1')
    write_v1(cgroups, path, 'cpu.cfs_period_us', '100000')
    write_v1(cgroups, path, 'cpu.cfs_quota_us', '10000')
    made.iterate()
    assert v1_files(cgroups, path) == ('10000', '100000')
    assert written(stored)['cpu_quota'] == 2
    made.close()


def test_a_small_cap_that_changes_is_written(cgroups):
    # 0.05 and 0.1 CPU differ by less than 0.05 of the platform (the original's tolerance,
    # which shares keep) but by half: a cap is compared by ratio, relatively
    path = cgroups.create('be')
    task_id = path.strip('/')
    allocator = CpusAllocator({task_id: 0.1})
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]), allocator)
    made.iterate()
    allocator.cpus[task_id] = 0.05
    made.iterate()
    assert v1_files(cgroups, path) == ('1000', '20000')
    allocator.cpus[task_id] = 0.051  # within 5 % of what is held: not written
    made.iterate()
    assert v1_files(cgroups, path) == ('1000', '20000')
    assert written(stored)['cpu_quota'] == 2
    made.close()


def test_on_cgroup2_cpu_max_holds_the_lengthened_period(tmp_path):
    tree = V2Tree(str(tmp_path / 'cgroup2'))
    directory = tree.make('/be')
    layout = CgroupLayout.with_unified({}, tree.root)
    made, metrics, anomalies, stored = runner(ListNode([task('/be')]), CpusAllocator({'be': 0.1}),
                                              cgroup_layout=layout)
    made.iterate()
    assert read(directory + '/cpu.max') == '1000 10000'
    made.iterate()
    assert written(stored)['cpu_quota'] == 1
    with open(os.path.join(directory, 'cpu.max'), 'w') as f:
        f.write('max 100000\n')  # reset by the kubelet
    made.iterate()
    assert read(directory + '/cpu.max') == '1000 10000'
    assert written(stored)['cpu_quota'] == 2
    made.close()


def test_below_1ms_per_second_the_least_quota_is_written_and_said_once(cgroups, caplog):
    path = cgroups.create('idle')
    task_id = path.strip('/')
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]),
                                              CpusAllocator({task_id: 0.0}))
    for _ in range(2):
        made.iterate()
    assert v1_files(cgroups, path) == ('1000', '1000000')
    assert written(stored)['cpu_quota'] == 1
    said = [r.getMessage() for r in caplog.records if 'least quota' in r.getMessage()]
    assert len(said) == 1 and 'cpu_quota 0.0 is 0 us per second' in said[0], said
    made.close()
