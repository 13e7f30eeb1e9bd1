"""Per-task cgroup measurements: real v1 and v2 cgroups on this machine, and a cgroup v2 tree
laid out like the kernel's for the controllers this machine keeps in v1."""
import os
import subprocess

import pytest

from wca.cgroups import CgroupLayout, CgroupNotFound, CgroupVanished, TaskCgroup
from wca.cgroups.measure import PAGE_SIZE
from wca.metrics import MetricName as M


def test_layout_detects_this_machines_mounts():
    layout = CgroupLayout.detect()
    with open('/proc/self/mounts') as f:
        mounts = f.read()
    for controller in ('cpu', 'cpuacct', 'memory'):
        if ' cgroup ' in mounts and '/sys/fs/cgroup/%s ' % controller in mounts:
            assert layout.v1[controller] == '/sys/fs/cgroup/%s' % controller
    if ' cgroup2 ' in mounts:
        assert layout.unified and layout.unified in mounts


def test_layout_with_cpu_and_cpuacct_mounted_together(tmp_path):
    mounts = tmp_path / 'mounts'
    mounts.write_text(
        'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n'
        'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n'
        'cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0\n')
    layout = CgroupLayout.detect(str(mounts))
    assert layout.v1 == {'cpu': '/sys/fs/cgroup/cpu,cpuacct', 'cpuacct': '/sys/fs/cgroup/cpu,cpuacct',
                         'memory': '/sys/fs/cgroup/memory'}
    assert layout.unified is None
    assert layout.hierarchies() == ['/sys/fs/cgroup/cpu,cpuacct', '/sys/fs/cgroup/memory']


def test_real_v1_cgroup_measures_cpu_and_memory(cgroups):
    path = cgroups.create('busy', processes=0)
    # a process that uses CPU and touches memory, then sleeps
    cgroups.add_process(path, ['python3', '-c', 'import time\nx = bytearray(8 << 20)\n'
                               'while time.process_time() < 0.3: pass\n'
                               'time.sleep(600)'])
    task = TaskCgroup(path, cgroups.layout)
    # each measured file is read from the hierarchy its controller lives in
    assert any(f.endswith('cpuacct/%s/cpuacct.usage' % path.strip('/')) for f in task.files)
    assert any(f.endswith('memory/%s/memory.numa_stat' % path.strip('/')) for f in task.files)
    m = {}
    for _ in range(200):  # until the process has burnt its 0.3 s of CPU
        m = task.measure()
        if m[M.TASK_CPU_USAGE_SECONDS] > 0.2 and m[M.TASK_MEM_USAGE_BYTES] > 8 << 20:
            break
        subprocess.call(['sleep', '0.1'])
    assert m[M.TASK_CPU_USAGE_SECONDS] > 0.2  # most of the 0.3 s burnt after joining the cgroup
    assert m[M.TASK_MEM_USAGE_BYTES] > 8 << 20
    assert m[M.TASK_MEM_MAX_USAGE_BYTES] >= m[M.TASK_MEM_USAGE_BYTES]
    assert m[M.TASK_MEM_PAGE_FAULTS] > 1000  # 8 MiB of fresh pages
    assert sum(m[M.TASK_MEM_NUMA_PAGES].values()) * PAGE_SIZE >= 8 << 20
    assert M.TASK_MEM_LIMIT_BYTES not in m  # unlimited: left out, as v2 "max" is
    assert M.TASK_MEM_SOFT_LIMIT_BYTES not in m
    for key in (M.TASK_CPU_PERIODS, M.TASK_CPU_THROTTLED_PERIODS, M.TASK_CPU_THROTTLED_SECONDS):
        assert m[key] == 0  # no quota set


def test_real_v1_limits_are_read(cgroups):
    path = cgroups.create('limited')
    memory = cgroups.layout.v1['memory'] + path
    with open(memory + '/memory.limit_in_bytes', 'w') as f:
        f.write(str(256 << 20))
    with open(memory + '/memory.soft_limit_in_bytes', 'w') as f:
        f.write(str(128 << 20))
    m = TaskCgroup(path, cgroups.layout).measure()
    assert m[M.TASK_MEM_LIMIT_BYTES] == 256 << 20
    assert m[M.TASK_MEM_SOFT_LIMIT_BYTES] == 128 << 20


def test_real_v1_throttling(cgroups):
    path = cgroups.create('throttled', processes=0)
    cpu = cgroups.layout.v1['cpu'] + path
    with open(cpu + '/cpu.cfs_period_us', 'w') as f:
        f.write('10000')
    with open(cpu + '/cpu.cfs_quota_us', 'w') as f:
        f.write('1000')  # 10% of a CPU
    cgroups.add_process(path, ['python3', '-c', 'while True: pass'])
    task = TaskCgroup(path, cgroups.layout)
    m = {}
    for _ in range(100):
        m = task.measure()
        if m[M.TASK_CPU_THROTTLED_PERIODS] >= 5:
            break
        subprocess.call(['sleep', '0.05'])
    assert m[M.TASK_CPU_PERIODS] >= m[M.TASK_CPU_THROTTLED_PERIODS] >= 5
    assert m[M.TASK_CPU_THROTTLED_SECONDS] > 0


def test_task_only_in_cgroup2_uses_cpu_stat(cgroups):
    """Hybrid hosts: a cgroup that exists only in the unified hierarchy still gets CPU usage."""
    if not cgroups.layout.unified:
        pytest.skip('this machine has no cgroup2 mount')
    relative = cgroups.parent + '/only-v2'
    os.mkdir(cgroups.layout.unified + relative)
    cgroups.created.append(relative)  # cleanup removes it (rmdir of missing v1 dirs is a no-op)
    process = subprocess.Popen(['python3', '-c', 'import time\n'
                                'while time.process_time() < 0.2: pass\ntime.sleep(600)'])
    cgroups.processes.append(process)
    with open(cgroups.layout.unified + relative + '/cgroup.procs', 'w') as f:
        f.write(str(process.pid))
    task = TaskCgroup(relative, cgroups.layout)
    directory = cgroups.layout.unified + relative
    # cpu.stat (and pressure stall information, which this kernel keeps in cgroup2 too)
    assert task.files == [directory + '/' + name for name in (
        'cpu.stat', 'cpu.pressure', 'memory.pressure', 'io.pressure')
        if os.path.exists(directory + '/' + name)]
    assert task.files[0] == directory + '/cpu.stat'
    m = {}
    for _ in range(200):
        m = task.measure()
        if m[M.TASK_CPU_USAGE_SECONDS] > 0.1:
            break
        subprocess.call(['sleep', '0.1'])
    assert m[M.TASK_CPU_USAGE_SECONDS] > 0.1


def test_missing_cgroup_is_reported(cgroups):
    with pytest.raises(CgroupNotFound) as error:
        TaskCgroup(cgroups.parent + '/does-not-exist', cgroups.layout)
    assert 'does-not-exist' in str(error.value)


def test_removed_cgroup_raises_vanished(cgroups):
    path = cgroups.create('short-lived')
    task = TaskCgroup(path, cgroups.layout)
    task.measure()
    cgroups.remove(path)
    with pytest.raises(CgroupVanished):
        task.measure()


# --- cgroup v2 as the kernel lays it out (memory and cpu enabled in v2) ----------------------

V2_CPU_STAT = (b'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n'
               b'core_sched.force_idle_usec 0\nnr_periods 40\nnr_throttled 7\n'
               b'throttled_usec 350000\nnr_bursts 0\nburst_usec 0\n')
V2_MEMORY_STAT = (b'anon 1048576\nfile 2097152\nkernel 65536\nkernel_stack 16384\n'
                  b'pagetables 4096\nshmem 0\nfile_mapped 0\npgscan 0\npgsteal 0\n'
                  b'pgfault 4242\npgmajfault 3\n')
V2_NUMA_STAT = ('anon N0=%d N1=%d\nfile N0=%d N1=0\nkernel_stack N0=16384 N1=0\n'
                % (PAGE_SIZE * 10, PAGE_SIZE * 2, PAGE_SIZE * 5)).encode()


def make_v2_tree(root, name='task1', peak=True, memory_max=b'max\n', enabled=b'cpu memory'):
    """A cgroup2 mount laid out as the kernel does: the root's controllers and subtree_control,
    and a task directory whose cgroup.controllers lists what its parent enabled for it."""
    (root / 'cgroup.controllers').write_bytes(b'cpuset cpu io memory pids\n')
    (root / 'cgroup.subtree_control').write_bytes(enabled + b'\n')
    task = root / name
    task.mkdir()
    files = {'cgroup.controllers': enabled + b'\n', 'cgroup.procs': b'', 'cpu.stat': V2_CPU_STAT,
             'memory.current': b'3211264\n',
             'memory.max': memory_max, 'memory.low': b'1048576\n', 'memory.stat': V2_MEMORY_STAT,
             'memory.numa_stat': V2_NUMA_STAT}
    if peak:
        files['memory.peak'] = b'4194304\n'
    for filename, content in files.items():
        (task / filename).write_bytes(content)
    return CgroupLayout.with_unified({}, str(root))


def test_v2_tree_measures_every_metric(tmp_path):
    layout = make_v2_tree(tmp_path, memory_max=b'536870912\n')
    assert layout.unified_controllers >= {'cpu', 'memory'}
    m = TaskCgroup('/task1', layout).measure()
    assert m[M.TASK_CPU_USAGE_SECONDS] == 2.5
    assert m[M.TASK_CPU_PERIODS] == 40
    assert m[M.TASK_CPU_THROTTLED_PERIODS] == 7
    assert m[M.TASK_CPU_THROTTLED_SECONDS] == 0.35
    assert m[M.TASK_MEM_USAGE_BYTES] == 3211264
    assert m[M.TASK_MEM_MAX_USAGE_BYTES] == 4194304
    assert m[M.TASK_MEM_LIMIT_BYTES] == 536870912
    assert m[M.TASK_MEM_SOFT_LIMIT_BYTES] == 1048576
    assert m[M.TASK_MEM_PAGE_FAULTS] == 4242
    assert m[M.TASK_MEM_NUMA_PAGES] == {0: 15, 1: 2}


def test_v2_unlimited_memory_has_no_limit_metric_and_old_kernels_no_peak(tmp_path):
    layout = make_v2_tree(tmp_path, peak=False)
    task = TaskCgroup('/task1', layout)
    m = task.measure()
    assert M.TASK_MEM_LIMIT_BYTES not in m
    assert M.TASK_MEM_MAX_USAGE_BYTES not in m
    assert m[M.TASK_MEM_USAGE_BYTES] == 3211264


def test_a_file_that_fails_drops_only_its_metrics(tmp_path, caplog):
    layout = make_v2_tree(tmp_path)
    errors = {}
    task = TaskCgroup('/task1', layout, errors)
    (tmp_path / 'task1' / 'memory.stat').write_bytes(b'pgfault not-a-number\n')
    os.unlink(str(tmp_path / 'task1' / 'memory.current'))
    for _ in range(3):
        m = task.measure()
    assert M.TASK_MEM_PAGE_FAULTS not in m and M.TASK_MEM_USAGE_BYTES not in m
    assert m[M.TASK_CPU_USAGE_SECONDS] == 2.5 and m[M.TASK_MEM_NUMA_PAGES] == {0: 15, 1: 2}
    assert errors['measurement'] == 6  # two files, three iterations: each failure is counted
    warnings = [r for r in caplog.records if 'memory.current' in r.getMessage()]
    assert len(warnings) == 1  # but logged once


def test_v2_tree_removed_directory_is_vanished(tmp_path):
    layout = make_v2_tree(tmp_path)
    task = TaskCgroup('/task1', layout)
    for child in (tmp_path / 'task1').iterdir():
        child.unlink()
    (tmp_path / 'task1').rmdir()
    with pytest.raises(CgroupVanished):
        task.measure()


def test_list_cgroups_unions_hierarchies(tmp_path):
    for mount, paths in (('cpu', ['a', 'a/x', 'b']), ('memory', ['a', 'c'])):
        for p in paths:
            (tmp_path / mount / p).mkdir(parents=True)
    layout = CgroupLayout({'cpu': str(tmp_path / 'cpu'), 'memory': str(tmp_path / 'memory')})
    assert layout.list_cgroups('/', 1) == ['/a', '/b', '/c']
    assert layout.list_cgroups('/', 2) == ['/a', '/a/x', '/b', '/c']
    assert layout.list_cgroups('/a', 1) == ['/a/x']


def test_v2_controller_enabled_later_is_measured_from_then_on(tmp_path):
    """Runtimes enable controllers (cgroup.subtree_control) after making the directory: until
    memory is enabled its files are absent; once it is, its metrics appear."""
    layout = make_v2_tree(tmp_path, enabled=b'cpu')
    task_dir = tmp_path / 'task1'
    memory_files = {name: (task_dir / name).read_bytes() for name in os.listdir(str(task_dir))
                    if name.startswith('memory.')}
    for name in memory_files:
        (task_dir / name).unlink()
    task = TaskCgroup('/task1', layout)
    m = task.measure()
    assert M.TASK_CPU_USAGE_SECONDS in m and M.TASK_MEM_USAGE_BYTES not in m
    assert task.measure().keys() == m.keys()  # still waiting, nothing new
    for name, content in memory_files.items():
        (task_dir / name).write_bytes(content)
    (task_dir / 'cgroup.controllers').write_bytes(b'cpu memory\n')
    m = task.measure()
    assert m[M.TASK_MEM_USAGE_BYTES] == 3211264 and m[M.TASK_MEM_NUMA_PAGES] == {0: 15, 1: 2}


def test_v2_file_the_kernel_lacks_is_not_looked_for_again(tmp_path):
    layout = make_v2_tree(tmp_path, peak=False)
    task = TaskCgroup('/task1', layout)
    assert not any(f.endswith('memory.peak') for f in task.files)
    (tmp_path / 'task1' / 'memory.peak').write_bytes(b'1\n')  # not a kernel that grows files
    assert M.TASK_MEM_MAX_USAGE_BYTES not in task.measure()


def test_v1_hierarchy_created_later_is_measured_from_then_on(cgroups):
    """A real cgroup made in cpuacct first and in memory afterwards, as container runtimes do
    one hierarchy after another: memory metrics appear once the memory directory exists."""
    relative = cgroups.parent + '/late'
    cpuacct = cgroups.layout.v1['cpuacct'] + relative
    memory = cgroups.layout.v1['memory'] + relative
    os.mkdir(cpuacct)
    try:
        task = TaskCgroup(relative, CgroupLayout(dict(cgroups.layout.v1)))
        m = task.measure()
        assert M.TASK_CPU_USAGE_SECONDS in m and M.TASK_MEM_USAGE_BYTES not in m
        os.mkdir(memory)
        try:
            m = task.measure()
            assert m[M.TASK_MEM_USAGE_BYTES] >= 0 and M.TASK_MEM_PAGE_FAULTS in m
        finally:
            os.rmdir(memory)
    finally:
        os.rmdir(cpuacct)
