"""The one table that reads and writes each allocation setting: real cgroup v1 files of this
machine, and a cgroup2 tree laid out like the kernel's (this machine's cgroup2 has no cpu or
cpuset controller)."""
import os

import pytest

from allocation_fixtures import V2Tree, read
from wca.allocators import AllocationType as A
from wca.cgroups import CgroupLayout
from wca.cgroups.settings import (MAX_SHARES, SETTINGS, SettingRefused, TaskSettings, Units,
                                  shares_from_weight, weight_from_shares)

UNITS = Units(cpus=2, quota_period=100000, shares_unit=1000)


def test_the_table_has_each_setting_on_v1_and_v2():
    rows = {(s.kind, s.controller): s.files for s in SETTINGS}
    assert rows == {
        (A.QUOTA, 'cpu'): ('cpu.cfs_quota_us', 'cpu.cfs_period_us'), (A.QUOTA, 'v2:cpu'): ('cpu.max',),
        (A.SHARES, 'cpu'): ('cpu.shares',), (A.SHARES, 'v2:cpu'): ('cpu.weight',),
        (A.CPUSET_CPUS, 'cpuset'): ('cpuset.cpus',),
        (A.CPUSET_CPUS, 'v2:cpuset'): ('cpuset.cpus', 'cpuset.cpus.effective'),
        (A.CPUSET_MEMS, 'cpuset'): ('cpuset.mems',),
        (A.CPUSET_MEMS, 'v2:cpuset'): ('cpuset.mems', 'cpuset.mems.effective'),
        (A.CPUSET_MEMORY_MIGRATE, 'cpuset'): ('cpuset.memory_migrate',),
        (A.CPUSET_MEMORY_MIGRATE, 'v2:cpuset'): (),
    }


def test_shares_and_weight_convert_as_the_oci_runtimes_do():
    assert weight_from_shares(2) == 1 and weight_from_shares(MAX_SHARES) == 10000
    assert weight_from_shares(1024) == 39  # runc, crun and the kubelet agree
    for weight in range(1, 10001):
        assert weight_from_shares(shares_from_weight(weight)) == weight
    assert shares_from_weight(1) == 2 and shares_from_weight(10000) == MAX_SHARES


def settings_of(layout, path, subcgroups=(), units=UNITS):
    made = TaskSettings(path, list(subcgroups), layout, units)
    return made, made.read()


def test_real_v1_settings_read_in_the_contracts_units(cgroups):
    path = cgroups.create('limited')
    cpu, cpuset = cgroups.layout.v1['cpu'] + path, cgroups.layout.v1['cpuset'] + path
    for filename, value in (('cpu.cfs_period_us', '100000'), ('cpu.cfs_quota_us', '50000'),
                            ('cpu.shares', '2048')):
        with open(os.path.join(cpu, filename), 'w') as f:
            f.write(value)
    with open(os.path.join(cpuset, 'cpuset.cpus'), 'w') as f:
        f.write('0')
    settings, current = settings_of(cgroups.layout, path)
    assert settings.values(current) == {
        A.QUOTA: 0.25,  # half a CPU of two
        A.SHARES: 2.048, A.CPUSET_CPUS: '0', A.CPUSET_MEMS: '0', A.CPUSET_MEMORY_MIGRATE: 0}
    free = cgroups.create('free')
    settings, current = settings_of(cgroups.layout, free, units=Units(2, 1000, 1024))
    assert settings.values(current)[A.QUOTA] == 1.0  # unlimited is the whole platform
    assert settings.values(current)[A.SHARES] == 1.0  # 1024 shares, the default


def test_real_v1_settings_written_and_read_back(cgroups):
    path = cgroups.create('task')
    cpu, cpuset = cgroups.layout.v1['cpu'] + path, cgroups.layout.v1['cpuset'] + path
    settings, current = settings_of(cgroups.layout, path, units=Units(2, 20000, 1000))
    assert settings.apply(A.QUOTA, 0.25, current, 0.05) == 1
    assert (read(cpu + '/cpu.cfs_quota_us'), read(cpu + '/cpu.cfs_period_us')) == ('10000', '20000')
    assert settings.apply(A.SHARES, 0.5, current, 0.05) == 1
    assert read(cpu + '/cpu.shares') == '500'
    assert settings.apply(A.CPUSET_CPUS, '1', current, 0.05) == 1
    assert read(cpuset + '/cpuset.cpus') == '1'
    assert settings.apply(A.CPUSET_MEMORY_MIGRATE, 1, current, 0.05) == 1
    assert read(cpuset + '/cpuset.memory_migrate') == '1'
    assert settings.apply(A.CPUSET_MEMS, '0', current, 0.05) == 0  # held already
    current = settings.read()
    assert settings.values(current) == {A.QUOTA: 0.25, A.SHARES: 0.5, A.CPUSET_CPUS: '1',
                                        A.CPUSET_MEMS: '0', A.CPUSET_MEMORY_MIGRATE: 1}
    # what is held (within 0.05 for numbers) is not written again
    for kind, value in ((A.QUOTA, 0.26), (A.SHARES, 0.5), (A.CPUSET_CPUS, '1'),
                        (A.CPUSET_MEMORY_MIGRATE, 1)):
        assert settings.apply(kind, value, current, 0.05) == 0, kind
    # the edges: unlimited, the least quota, the shares' range
    assert settings.apply(A.QUOTA, 1.0, current, 0.05) == 1
    assert read(cpu + '/cpu.cfs_quota_us') == '-1'
    assert settings.apply(A.QUOTA, 0.0, settings.read(), 0.05) == 1
    assert read(cpu + '/cpu.cfs_quota_us') == '1000'  # at least 1 ms per period
    assert settings.apply(A.SHARES, 0, settings.read(), 0.05) == 1
    assert read(cpu + '/cpu.shares') == '2'
    assert settings.apply(A.SHARES, 10000, settings.read(), 0.05) == 1
    assert read(cpu + '/cpu.shares') == '262144'


def test_a_write_the_kernel_refuses_is_a_clear_error(cgroups):
    parent = cgroups.create('parent', processes=0)
    child = cgroups.create('parent/child')
    mount = cgroups.layout.v1['cpu']
    with open(mount + parent + '/cpu.cfs_quota_us', 'w') as f:
        f.write('1000')  # the parent may use 1 % of a CPU: a child may not have more
    settings, current = settings_of(cgroups.layout, child, units=Units(2, 100000, 1000))
    with pytest.raises(SettingRefused) as refused:
        settings.apply(A.QUOTA, 0.5, current, 0.05)
    assert refused.value.reason == 'kernel_refused'
    assert str(refused.value) == 'writing 100000 to %s%s/cpu.cfs_quota_us failed: Invalid argument' % (
        mount, child)


def test_a_pod_quota_on_the_pod_and_its_cpusets_on_the_containers(cgroups):
    pod = cgroups.create('pod', processes=0)
    containers = [cgroups.create('pod/c1'), cgroups.create('pod/c2')]
    cpu, cpuset = cgroups.layout.v1['cpu'], cgroups.layout.v1['cpuset']
    for container in containers:  # as the kubelet limits its containers
        with open(cpu + container + '/cpu.cfs_quota_us', 'w') as f:
            f.write('20000')
    settings, current = settings_of(cgroups.layout, pod, containers, Units(2, 100000, 1000))
    assert settings.apply(A.QUOTA, 0.25, current, 0.05) == 1
    assert read(cpu + pod + '/cpu.cfs_quota_us') == '50000'
    assert [read(cpu + c + '/cpu.cfs_quota_us') for c in containers] == ['-1', '-1']
    assert settings.apply(A.CPUSET_CPUS, '1', current, 0.05) == 2
    assert [read(cpuset + c + '/cpuset.cpus') for c in containers] == ['1', '1']
    assert read(cpuset + pod + '/cpuset.cpus') == '0-1'  # the pod's own is left alone
    assert settings.apply(A.SHARES, 2, current, 0.05) == 1
    assert read(cpu + pod + '/cpu.shares') == '2000'
    current = settings.read()
    assert settings.values(current)[A.CPUSET_CPUS] == '1'
    # the kubelet sets a container's quota again: the next quota allocation unlimits it
    with open(cpu + containers[1] + '/cpu.cfs_quota_us', 'w') as f:
        f.write('20000')
    assert settings.apply(A.QUOTA, 0.25, current, 0.05) == 0  # the pod's own is held
    assert read(cpu + containers[1] + '/cpu.cfs_quota_us') == '-1'


def v2_layout(tmp_path):
    tree = V2Tree(str(tmp_path))
    return tree, CgroupLayout.with_unified({}, str(tmp_path))


def test_v2_settings_read(tmp_path):
    tree, layout = v2_layout(tmp_path)
    tree.make('/task', cpu_max='150000 100000', weight=100, cpus='', mems='')
    settings, current = settings_of(layout, '/task', units=Units(4, 100000, 1024))
    assert settings.values(current) == {
        A.QUOTA: 0.375,  # 1.5 CPUs of 4
        A.SHARES: shares_from_weight(100) / 1024,
        A.CPUSET_CPUS: '0-1',  # effective: an empty cpuset.cpus inherits the parent's
        A.CPUSET_MEMS: '0',
        A.CPUSET_MEMORY_MIGRATE: 1}  # v2 always moves memory with cpuset.mems
    with open(str(tmp_path / 'task' / 'cpu.max'), 'w') as f:
        f.write('max 100000\n')
    assert settings.values(settings.read())[A.QUOTA] == 1.0


def test_v2_settings_written(tmp_path):
    tree, layout = v2_layout(tmp_path)
    directory = tree.make('/task')
    settings, current = settings_of(layout, '/task', units=Units(2, 100000, 1000))
    assert settings.apply(A.QUOTA, 0.5, current, 0.05) == 1
    assert read(directory + '/cpu.max') == '100000 100000'
    assert settings.apply(A.SHARES, 1.024, current, 0.05) == 1
    assert read(directory + '/cpu.weight') == '39'
    assert settings.apply(A.CPUSET_CPUS, '1', current, 0.05) == 1
    assert read(directory + '/cpuset.cpus') == '1'
    assert settings.apply(A.CPUSET_MEMS, '0', current, 0.05) == 0  # effective holds it already
    assert settings.apply(A.CPUSET_MEMORY_MIGRATE, 1, current, 0.05) == 0
    with pytest.raises(SettingRefused) as refused:
        settings.apply(A.CPUSET_MEMORY_MIGRATE, 0, current, 0.05)
    assert refused.value.reason == 'unsupported'
    assert 'cgroup v2 has no cpuset.memory_migrate' in str(refused.value)
    current = settings.read()
    assert settings.values(current)[A.QUOTA] == 0.5
    assert settings.values(current)[A.SHARES] == pytest.approx(1.024, abs=0.03)
    # written cpuset.cpus is held even where the parent narrows the effective set
    assert settings.apply(A.CPUSET_CPUS, '1', current, 0.05) == 0
    assert settings.apply(A.QUOTA, 1.0, current, 0.05) == 1
    assert read(directory + '/cpu.max') == 'max 100000'


def test_a_controller_not_enabled_is_unsupported_until_it_is(tmp_path):
    tree, layout = v2_layout(tmp_path)
    tree.make('/task', controllers='memory pids')
    settings, current = settings_of(layout, '/task')
    assert settings.values(current) == {}
    with pytest.raises(SettingRefused) as refused:
        settings.apply(A.QUOTA, 0.5, current, 0.05)
    assert refused.value.reason == 'unsupported'
    assert str(refused.value) == ('cgroup /task has no cpu_quota setting: the cpu controller is '
                                  'neither mounted in v1 nor enabled for it in cgroup2')
    with open(str(tmp_path / 'task' / 'cgroup.controllers'), 'w') as f:
        f.write(V2Tree.CONTROLLERS)
    assert settings.values(settings.read())[A.QUOTA] == 1.0  # looked for again, found
