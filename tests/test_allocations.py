"""Current allocations read from cgroups (v1 for real, v2 as the kernel lays it out), in the
contract's units."""
import os

from wca.allocations import current_allocations
from wca.allocators import AllocationType as A
from wca.cgroups import CgroupLayout, TaskCgroup
from wca.cgroups.settings import ALLOCATION_SOURCES


def test_real_v1_settings(cgroups):
    path = cgroups.create('limited')
    cpu, cpuset = cgroups.layout.v1['cpu'] + path, cgroups.layout.v1['cpuset'] + path
    for filename, value in (('cpu.cfs_period_us', '100000'), ('cpu.cfs_quota_us', '50000'),
                            ('cpu.shares', '2048')):
        with open(os.path.join(cpu, filename), 'w') as f:
            f.write(value)
    with open(os.path.join(cpuset, 'cpuset.cpus'), 'w') as f:
        f.write('0')
    raw = TaskCgroup(path, cgroups.layout, sources=ALLOCATION_SOURCES).measure()
    allocations = current_allocations(raw, cpus=2, shares_unit=1000)
    assert allocations[A.QUOTA] == 0.25  # half a CPU of two
    assert allocations[A.SHARES] == 2.048
    assert allocations[A.CPUSET_CPUS] == '0'
    assert allocations[A.CPUSET_MEMS] == '0'
    assert allocations[A.CPUSET_MEMORY_MIGRATE] == 0


def test_real_v1_unlimited_quota_is_the_whole_platform(cgroups):
    path = cgroups.create('free')
    raw = TaskCgroup(path, cgroups.layout, sources=ALLOCATION_SOURCES).measure()
    assert current_allocations(raw, cpus=2, shares_unit=1024)[A.QUOTA] == 1.0
    assert current_allocations(raw, cpus=2, shares_unit=1024)[A.SHARES] == 1.0  # 1024 default


def test_v2_settings(tmp_path):
    (tmp_path / 'cgroup.controllers').write_text('cpuset cpu io memory pids\n')
    task = tmp_path / 'task'
    task.mkdir()
    for filename, value in (('cgroup.controllers', 'cpuset cpu io memory pids\n'),
                            ('cpu.max', '150000 100000\n'), ('cpu.weight', '100\n'),
                            ('cpuset.cpus', '\n'), ('cpuset.cpus.effective', '0-3\n'),
                            ('cpuset.mems.effective', '0\n')):
        (task / filename).write_text(value)
    layout = CgroupLayout.with_unified({}, str(tmp_path))
    raw = TaskCgroup('/task', layout, sources=ALLOCATION_SOURCES).measure()
    allocations = current_allocations(raw, cpus=4, shares_unit=1024)
    assert allocations[A.QUOTA] == 0.375  # 1.5 CPUs of 4
    assert allocations[A.SHARES] == 1.0  # weight 100 is 1024 shares
    assert allocations[A.CPUSET_CPUS] == '0-3'  # effective: an empty cpuset.cpus inherits
    assert allocations[A.CPUSET_MEMS] == '0'
    (task / 'cpu.max').write_text('max 100000\n')
    raw = TaskCgroup('/task', layout, sources=ALLOCATION_SOURCES).measure()
    assert current_allocations(raw, cpus=4, shares_unit=1024)[A.QUOTA] == 1.0
