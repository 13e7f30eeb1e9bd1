"""Moving threads: one id per write(), ESRCH is normal, a missing group is an error; on real
cgroup `tasks` files (they take thread ids the same way, and answer ESRCH the same way) and on
the fixture tree's."""
import errno
import os
import subprocess
import sys
import threading

import pytest

from resctrl_tree import resctrl_tree
from wca.resctrl.tasks import TasksWriter


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
