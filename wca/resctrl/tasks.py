"""Moving threads into a resctrl group: thread ids written to the group's `tasks` file, one id
per write() (the kernel stops at the first id it cannot move, so a batch would hide which).

resctrl moves a thread only for its owner or for effective uid 0 (a capability is not
enough). An agent that is not root therefore needs CAP_SETUID, to take effective uid 0 for the
write and give it back right after, and SECBIT_NO_SETUID_FIXUP, so that giving it back does not
also drop its capabilities (the kernel's "fix-up" clears them when the effective uid leaves 0,
and the next move would fail). packaging/systemd/wca.service grants both. os.seteuid() changes
the uid of every thread of the process (glibc), for the few microseconds of the write.

Which threads to write (sync_threads): the task's threads its cgroup lists, less those the group
holds. What the group holds is read back from the kernel (its own `tasks` file), so that a thread
someone moved out is moved back; but reading a resctrl group's `tasks` walks every thread of the
system (the kernel keeps no list per group: some milliseconds on a busy node), so each group is
read back once per VERIFY_SECONDS (Verification, the groups spread over that time), and in
between the threads the agent wrote are taken as held.

A thread id is only a number: one that exits between the read of the cgroup and the write can be
reused by an unrelated thread, which the write (effective uid 0 skips resctrl's owner check)
would move. So after a write the cgroup is read again, and a moved id it no longer lists that the
group does list is a stranger: written back into the parent group (the root group, or the
monitoring group's control group), counted and logged.
"""
import errno
import logging
import os
import random
import time
from typing import Dict, Iterable, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from wca import fsutil, security
from wca.cgroups.layout import GONE, CgroupLayout, CgroupNotFound, CgroupVanished, join
from wca.nodes.base import Task
from wca.resctrl.info import ResctrlUnavailable

log = logging.getLogger(__name__)

_FLAGS = os.O_WRONLY | os.O_APPEND | getattr(os, 'O_CLOEXEC', 0)
VERIFY_SECONDS = 30.0


class MissingPrivileges(ResctrlUnavailable):
    """The agent is not root and lacks what moving threads needs; the message names it."""

    def __init__(self, missing):
        super().__init__(security.describe_missing(missing))
        self.missing = missing


class TasksWriter:
    """Writes thread ids into `tasks` files, as root or, when not root, with effective uid 0
    around each file's writes."""

    def __init__(self, proc: str = '/proc'):
        self.uid = os.geteuid()
        self.switch = self.uid != 0
        if self.switch:
            missing = security.missing_privileges([security.SETUID, security.NO_SETUID_FIXUP],
                                                  proc)
            if missing:
                raise MissingPrivileges(missing)

    def write(self, tasks_file: str,
              ids: Iterable[int]) -> Tuple[List[int], List[int], Dict[int, OSError]]:
        """(moved, gone, failed): ids the kernel took, ids of threads that exited meanwhile
        (ESRCH: normal), and the others with their error. OSError when the file cannot be
        opened (ENOENT: the group is gone)."""
        moved, gone, failed = [], [], {}
        if self.switch:
            self._become_root()
        try:
            fd = os.open(tasks_file, _FLAGS)
            try:
                for tid in ids:
                    try:
                        os.write(fd, b'%d\n' % tid)
                        moved.append(tid)
                    except OSError as e:
                        if e.errno == errno.ESRCH:
                            gone.append(tid)
                        else:
                            failed[tid] = e
            finally:
                os.close(fd)
        finally:
            if self.switch:
                os.seteuid(self.uid)  # back to the agent's own uid
        return moved, gone, failed

    def _become_root(self):
        try:
            os.seteuid(0)
        except PermissionError:
            missing = security.missing_privileges(
                [security.SETUID, security.NO_SETUID_FIXUP]) or [security.SETUID]
            raise MissingPrivileges(missing)


# The hierarchies whose `tasks` file lists a task's threads, in the order they are looked in.
THREAD_HIERARCHIES = ('cpu', 'cpuacct', 'memory', 'cpuset')


def thread_files(layout: CgroupLayout, task: Task) -> List[str]:
    """The files listing the threads of a task's cgroup and of its subcgroups (a pod's
    containers): `tasks` in the first v1 hierarchy that has the task's cgroup, else cgroup2's
    `cgroup.threads`. CgroupNotFound when none has it."""
    paths = [task.cgroup_path] + list(task.subcgroups_paths)
    for controller in THREAD_HIERARCHIES:
        mount = layout.v1.get(controller)
        if mount and os.path.isdir(join(mount, task.cgroup_path)):
            return [join(mount, path) + '/tasks' for path in paths]
    if layout.unified and os.path.isdir(join(layout.unified, task.cgroup_path)):
        return [join(layout.unified, path) + '/cgroup.threads' for path in paths]
    raise CgroupNotFound(task.cgroup_path, layout.hierarchies() or ['(no cgroup mounts)'])


def read_ids(path: str) -> Set[int]:
    """The thread ids a `tasks` (or `cgroup.threads`) file lists; OSError as the read fails."""
    ids = set()  # type: Set[int]
    for word in fsutil.read_bytes(path).split():
        try:
            ids.add(int(word))
        except ValueError:
            continue
    return ids


class Synced:
    """What sync_threads found and did."""
    __slots__ = ('ids', 'moved', 'gone', 'failed', 'strangers', 'unreadable')

    def __init__(self):
        self.ids = set()  # type: Set[int]  the task's threads (as its cgroup lists them)
        self.moved = []  # type: List[int]
        self.gone = []  # type: List[int]
        self.failed = {}  # type: Dict[int, OSError]
        self.strangers = []  # type: List[int]  moved, not the task's: written back to the parent
        self.unreadable = []  # type: List[Tuple[str, OSError]]  thread files (not GONE)


def task_threads(thread_files: List[str], cgroup_path: str, synced: Synced) -> Set[int]:
    """The threads the task's cgroup files list. CgroupVanished when its own cgroup is gone (a
    container's gone is normal: its threads went with it)."""
    ids = set()  # type: Set[int]
    for path in thread_files:
        try:
            ids.update(read_ids(path))
        except OSError as e:
            if e.errno not in GONE:
                synced.unreadable.append((path, e))
            elif path is thread_files[0]:
                raise CgroupVanished(cgroup_path, path)
    return ids


class Verification:
    """When a group's members are next read back from the kernel: once per VERIFY_SECONDS, the
    first time at a random point of that period (so the groups spread)."""

    def __init__(self):
        self.due = time.monotonic() + random.uniform(0, VERIFY_SECONDS)

    def now(self) -> bool:
        now = time.monotonic()
        if now < self.due:
            return False
        self.due = now + VERIFY_SECONDS
        return True


def sync_threads(writer: TasksWriter, thread_files: List[str], cgroup_path: str,
                 tasks_file: str, parent_tasks_file: str, known: Optional[Set[int]] = None,
                 refused: Iterable[int] = ()) -> Synced:
    """Writes into a group (`tasks_file`) the task's threads that the group does not hold (but
    those it `refused` already: tried once per thread, so counted once), and moves back to the
    parent group any thread moved that is not the task's (a reused id). What the group holds:
    `known`, or when None what its `tasks` file lists. CgroupVanished as task_threads; OSError
    when the group's file cannot be read or opened (in GONE: the group is gone);
    MissingPrivileges."""
    synced = Synced()
    synced.ids = task_threads(thread_files, cgroup_path, synced)
    held = read_ids(tasks_file) if known is None else known
    missing = synced.ids.difference(held).difference(refused)
    if not missing:
        return synced
    synced.moved, synced.gone, synced.failed = writer.write(tasks_file, sorted(missing))
    if synced.moved:
        try:
            again = task_threads(thread_files, cgroup_path, Synced())
        except CgroupVanished:
            again = set()
        suspects = set(synced.moved).difference(again)
        if suspects:  # exited since, or reused: only those the group holds are strangers
            strangers = suspects.intersection(read_ids(tasks_file))
            if strangers:
                synced.strangers = writer.write(parent_tasks_file, sorted(strangers))[0]
    return synced


class Bookkeeping:
    """Counting a failure and warning about it once, for the RDT classes (which set `errors`,
    the runner's counters, and `_warned`, the keys already warned about)."""
    errors = None  # type: Dict[str, int]
    repairs = None  # type: Dict[str, int]
    _warned = None  # type: set

    def count_error(self):
        self.errors['measurement'] = self.errors.get('measurement', 0) + 1

    def warn_once(self, key, message, *args):
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def repaired(self, what: str, count: int = 1):
        """Counts what the agent set right after someone else changed it (wca_rdt_repairs_total
        {what}); `repairs` is RDT's shared dict."""
        self.repairs[what] = self.repairs.get(what, 0) + count
