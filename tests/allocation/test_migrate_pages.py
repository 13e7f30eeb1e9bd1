"""migrate_pages(2) through ctypes, on real processes (this machine has one NUMA node: moving
to it works, to a second one the kernel refuses), and as the allocation migrate_pages."""
import errno
import os
import subprocess
import time

import pytest

from allocation_fixtures import FixedAllocator, NumaSys, proc_tree, rejected, runner, written
from wca import migrate
from wca.allocators import AllocationType as A
from wca.nodes.static import StaticNode

GIB = 1 << 30


def test_a_real_process_to_the_only_node():
    child = subprocess.Popen(['sleep', '60'])
    try:
        assert migrate.migrate_pages(child.pid, [0], [0]) == 0
        assert migrate.migrate_pages(os.getpid(), [], [0]) == 0
    finally:
        child.kill()
        child.wait()


def test_the_kernels_errors():
    with pytest.raises(OSError) as error:
        migrate.migrate_pages(os.getpid(), [0], [1])  # node 1 has no memory here
    assert error.value.errno == errno.EINVAL
    dead = subprocess.Popen(['true'])
    dead.wait()
    with pytest.raises(OSError) as error:
        migrate.migrate_pages(dead.pid, [0], [0])
    assert error.value.errno == errno.ESRCH
    with pytest.raises(migrate.MigrateUnsupported) as error:
        migrate.syscall_number('riscv64')
    assert 'no system call number known for riscv64' in str(error.value)
    assert migrate.syscall_number('aarch64') == 238 and migrate.syscall_number('x86_64') == 256


def test_node_masks_are_unsigned_long_arrays():
    mask = migrate.nodemask([0, 2, 65])
    assert list(mask) == [0b101, 0b10]
    assert list(migrate.nodemask([1], words=3)) == [2, 0, 0]
    with pytest.raises(ValueError):
        migrate.nodemask([-1])


def rejection_lines(caplog):
    return [r.getMessage() for r in caplog.records if 'allocation rejected' in r.getMessage()]


def two_nodes(tmp_path, **proc):
    """A sys tree with two NUMA nodes, one CPU each (this machine's two CPUs), and a proc."""
    NumaSys(str(tmp_path / 'sys'), {0: [0], 1: [1]}, free={0: 8 * GIB, 1: 8 * GIB},
            used={0: GIB, 1: GIB})
    return dict(sys_root=str(tmp_path / 'sys'), proc_root=proc_tree(str(tmp_path / 'proc'),
                                                                    **proc))


def wait_for_pages(cgroups, path, deadline=10.0):
    """Until the task's process has pages charged to its cgroup and counted (it joins before
    exec), so the agent sees pages to move."""
    numa_stat = cgroups.layout.v1['memory'] + path + '/memory.numa_stat'
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        with open(numa_stat) as f:
            if int(f.readline().split()[0].partition('=')[2]) > 0:
                return
        time.sleep(0.02)
    raise AssertionError('no pages in %s' % numa_stat)


def test_the_allocation_on_a_real_task(cgroups, tmp_path, caplog):
    # A process with 8 MiB of its own pages: a `sleep` has so few that they can stay in the
    # kernel's per-CPU LRU batches, where memory.numa_stat does not count them.
    path = cgroups.create('task', processes=0)
    cgroups.add_process(path, ['python3', '-c', 'import time\nb = bytearray(8 << 20)\n'
                                                'time.sleep(600)'])
    wait_for_pages(cgroups, path)
    task_id = path.strip('/')
    answer = {task_id: {A.MIGRATE_PAGES: 0}}
    made, metrics, anomalies, stored = runner(StaticNode(tasks=[path]), FixedAllocator(answer),
                                              **two_nodes(tmp_path))
    made.iterate()
    assert written(stored)['migrate_pages'] == 0  # its pages are all on node 0 already
    assert stored.value('allocation_migrate_pages', task_id=task_id) == 0
    answer[task_id] = {A.MIGRATE_PAGES: 1, A.SHARES: 2}
    made.iterate()
    assert rejected(stored) == {('migrate_pages', 'kernel_refused'): 1}
    [line] = rejection_lines(caplog)
    assert line.startswith("allocation rejected (kernel_refused): task %r: migrate_pages: "
                           "migrate_pages of process " % task_id)
    assert line.endswith(' to node 1: Invalid argument')
    assert written(stored)['cpu_shares'] == 1  # the task's other allocation applied
    made.close()


def test_refused_while_swap_is_on(cgroups, tmp_path, caplog):
    path = cgroups.create('task')
    made, metrics, anomalies, stored = runner(
        StaticNode(tasks=[path]), FixedAllocator({path.strip('/'): {A.MIGRATE_PAGES: 1}}),
        **two_nodes(tmp_path, swap_bytes=GIB))
    made.iterate()
    assert rejected(stored) == {('migrate_pages', 'unsupported'): 1}
    [line] = rejection_lines(caplog)
    assert 'swap is on: pages are not migrated' in line
    made.close()
