"""Moving threads: one id per write(), ESRCH is normal, a missing group is an error; on real
cgroup `tasks` files (they take thread ids the same way, and answer ESRCH the same way) and on
the fixture tree's. A thread id reused between the read of a cgroup and the write (issue 22),
made to happen for real with ns_last_pid."""
import errno
import os
import subprocess
import sys
import threading

import pytest

from conftest import require_root
from resctrl_tree import resctrl_tree
from testing.recording import Recording
from wca.nodes.static import StaticNode
from wca.resctrl.groups import group_name
from wca.resctrl.tasks import TasksWriter, read_ids, sync_threads
from wca.runners.measurement import MeasurementRunner


def write_syscalls():
    """write() calls of this thread so far (/proc/thread-self/io, syscw)."""
    with open('/proc/thread-self/io') as f:
        for line in f:
            if line.startswith('syscw:'):
                return int(line.split()[1])
    raise AssertionError('no syscw in /proc/thread-self/io')


def test_one_id_per_write(tmp_path):
    with resctrl_tree(str(tmp_path / 'r')) as tree:
        tree.mkdir('mon_groups/t')
        writer = TasksWriter()
        ids = [os.getpid(), 7, 8, 9]
        before = write_syscalls()
        moved, gone, failed = writer.write(tree.path('mon_groups/t/tasks'), ids)
        assert write_syscalls() - before == len(ids)
        assert (moved, gone, failed) == (ids, [], {})
        assert tree.tasks('mon_groups/t') == ids
        writer.write(tree.path('mon_groups/t/tasks'), [10])  # appended, never overwritten
        assert tree.tasks('mon_groups/t') == ids + [10]


def test_exited_thread_is_normal_and_live_threads_move(cgroups):
    source, target = cgroups.create('source', processes=0), cgroups.create('target', processes=0)
    process = cgroups.add_process(source, [sys.executable, '-c', 'import threading, time; '
                                           '[threading.Thread(target=time.sleep, args=(60,)).start()'
                                           ' for _ in range(2)]; time.sleep(60)'])
    cpu = cgroups.layout.v1['cpu']
    finished = subprocess.Popen(['true'])
    finished.wait()  # its pid is free now: ESRCH
    for _ in range(100):
        with open(cpu + source + '/tasks') as f:
            threads = [int(t) for t in f.read().split()]
        if len(threads) == 3:
            break
        threading.Event().wait(0.02)
    assert len(threads) == 3 and process.pid in threads
    moved, gone, failed = TasksWriter().write(cpu + target + '/tasks',
                                              threads + [finished.pid])
    assert (sorted(moved), gone, failed) == (sorted(threads), [finished.pid], {})
    with open(cpu + target + '/tasks') as f:
        assert sorted(int(t) for t in f.read().split()) == sorted(threads)


def test_other_errors_are_returned_per_id(cgroups):
    target = cgroups.create('target', processes=0)
    sleeper = cgroups.add_process(cgroups.create('sleeper', processes=0))
    path = cgroups.layout.v1['cpu'] + target + '/tasks'
    # A kernel thread (kthreadd) cannot leave the root cgroup: an error for that id only.
    moved, gone, failed = TasksWriter().write(path, [2, sleeper.pid])
    assert moved == [sleeper.pid] and gone == []
    assert list(failed) == [2] and failed[2].errno in (errno.EINVAL, errno.EPERM)


def test_missing_group_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        TasksWriter().write(str(tmp_path / 'mon_groups' / 'gone' / 'tasks'), [1])


def spawn_with_pid(pid, attempts=200):
    """An unrelated process (a sleep outside any test cgroup) that gets `pid`: the kernel's next
    pid set with ns_last_pid (other processes on the machine may take it first: tried again)."""
    for _ in range(attempts):
        with open('/proc/sys/kernel/ns_last_pid', 'w') as f:
            f.write(str(pid - 1))
        process = subprocess.Popen(['sleep', '600'], stdin=subprocess.DEVNULL)
        if process.pid == pid:
            return process
        process.kill()
        process.wait()
    pytest.skip('pid %d was always taken by another process first' % pid)


class ReusingIdsWriter(TasksWriter):
    """The race of issue 22, for real: right before the first write, the task's process exits and
    an unrelated process is started with its id."""

    def __init__(self, victim):
        super().__init__()
        self.victim = victim
        self.stranger = None

    def write(self, tasks_file, ids):
        if self.stranger is None:
            self.victim.kill()
            self.victim.wait()
            self.stranger = spawn_with_pid(self.victim.pid)
        return super().write(tasks_file, ids)


def test_a_reused_thread_id_is_not_left_in_the_group(cgroups, tmp_path):
    """The id read from the task's cgroup now names an unrelated process; the write (euid 0 skips
    resctrl's owner check) moves it; the check after the write finds it is not the task's and
    moves it back to the parent group."""
    require_root()
    task = cgroups.create('task', processes=0)
    victim = cgroups.add_process(task)
    tasks = cgroups.layout.v1['cpu'] + task + '/tasks'
    for _ in range(500):  # the child joins the cgroup before it runs sleep
        if read_ids(tasks) == {victim.pid}:
            break
        threading.Event().wait(0.01)
    writer = ReusingIdsWriter(victim)
    with resctrl_tree(str(tmp_path / 'r')) as tree:
        tree.mkdir('mon_groups/t')
        try:
            synced = sync_threads(writer, [tasks], task, tree.path('mon_groups/t/tasks'),
                                  tree.path('tasks'))
            stranger = writer.stranger.pid
            assert stranger == victim.pid and stranger not in read_ids(tasks)
            assert synced.moved == [stranger]  # the write took it (this is the race) ...
            assert synced.strangers == [stranger]  # ... and it was moved back out:
            assert tree.tasks('') == [1, stranger]  # written into the root group after
        finally:
            if writer.stranger is not None:
                writer.stranger.kill()
                writer.stranger.wait()


def test_the_agent_counts_and_names_a_reused_id(cgroups, tmp_path, caplog):
    require_root()
    path = cgroups.create('task', processes=0)
    victim = cgroups.add_process(path)
    keeper = cgroups.add_process(path)
    tasks = cgroups.layout.v1['cpu'] + path + '/tasks'
    for _ in range(500):
        if read_ids(tasks) == {victim.pid, keeper.pid}:
            break
        threading.Event().wait(0.01)
    storage = Recording()
    with resctrl_tree(str(tmp_path / 'r')) as tree:
        runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage,
                                   interval=0, resctrl=tree, rdt_groups_file=None)
        runner.setup()
        writer = runner._rdt.monitoring.writer = ReusingIdsWriter(victim)
        try:
            runner.iterate()
            stranger = writer.stranger.pid
            assert storage.value('wca_rdt_repairs_total', what='strangers_moved_out') == 1
            assert tree.tasks('') == [1, stranger]
            assert ('resctrl: task %s: thread %d, moved into mon_groups/%s, is not the task\'s (its'
                    ' id was reused after a thread of the task exited): moved back to the root '
                    'group' % (path.strip('/'), stranger, group_name(path))) in caplog.text
            runner.iterate()  # the task's own thread stays where it is
            assert storage.value('wca_rdt_repairs_total', what='strangers_moved_out') == 1
            assert keeper.pid in tree.tasks('mon_groups/' + group_name(path))
        finally:
            runner.close()
            if writer.stranger is not None:
                writer.stranger.kill()
                writer.stranger.wait()
