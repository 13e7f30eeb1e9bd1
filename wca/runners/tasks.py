"""The task lifecycle: what the runner keeps per task is opened when the task appears and
closed the moment it leaves, or when the agent stops.

Each sync closes before it opens: a task relaunched under a new id on the cgroup path of one
that left finds that path's resources (resctrl groups, perf descriptors) released, not held
twice. A task whose cgroup was removed and made again under the same name (its directory's
identity changed) is a new task for its sources: they are closed and opened again, since a
perf descriptor or a held file of the old cgroup would go on reading the old one (or nothing).
"""
import logging
from typing import Callable, Dict, List, Optional, Set  # noqa: F401 (type comments)

from wca.cgroups.layout import CgroupNotFound
from wca.nodes.base import Task
from wca.sources import TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)


class TrackedTask:
    """One task between iterations: its sources (open files, descriptors, groups) and its
    label set, worked out once."""
    __slots__ = ('task', 'sources', 'labels', 'identity')

    def __init__(self, task: Task, sources: List[TaskSource], labels: Dict[str, str],
                 identity=None):
        self.task = task
        self.sources = sources
        self.labels = labels
        self.identity = identity  # of the task's cgroup directory when the sources were opened


class TaskTracker:
    """Matches each iteration's tasks with what is kept for them, by task id."""

    def __init__(self, factories: List[TaskSourceFactory],
                 labels_of: Callable[[Task], Dict[str, str]], count_error: Callable[[str], None],
                 identity: Optional[Callable[[Task], object]] = None):
        """`identity(task)`: what tells the task's cgroup from one made again under its name
        (the directory's device and inode), None when it cannot be told (gone). It is asked
        only while a factory besides the first is configured: the first (the cgroup files) reads
        by path and follows a cgroup made again; the others may hold what they made for the old
        one (perf descriptors, resctrl groups). One stat() per task: ~3 ms per 1000 tasks."""
        self.factories = factories
        self.labels_of = labels_of
        self.count_error = count_error
        self.identity = identity
        self.tracked = {}  # type: Dict[str, TrackedTask]
        self._waiting = set()  # type: Set[str]  tasks whose cgroup does not exist yet

    def __len__(self):
        return len(self.tracked)

    @property
    def waiting(self) -> int:
        """Tasks of the last sync not measured because their cgroup does not exist (yet)."""
        return len(self._waiting)

    def sync(self, tasks: List[Task]) -> Dict[str, TrackedTask]:
        """The tracked state of this iteration's tasks. Tasks that left, changed or whose cgroup
        was made again are closed first; then new tasks are opened. A task id listed twice is
        taken once (the first)."""
        listed = {}  # type: Dict[str, Task]
        for task in tasks:
            listed.setdefault(task.task_id, task)
        for task_id, state in list(self.tracked.items()):
            task = listed.get(task_id)
            if task is None or (state.task is not task and state.task != task) or \
                    self._remade(state):
                self._close(state)
                del self.tracked[task_id]
        tracked, waiting = {}, set()
        for task_id, task in listed.items():
            state = self.tracked.get(task_id)
            if state is None:
                state = self._open(task)
                if state is None:
                    waiting.add(task_id)
                    continue
            tracked[task_id] = state
        self.tracked = tracked
        self._waiting = waiting
        return tracked

    def _identity(self, task: Task):
        return self.identity(task) if self.identity is not None and len(self.factories) > 1 \
            else None

    def _remade(self, state: TrackedTask) -> bool:
        if state.identity is None:
            return False
        now = self._identity(state.task)
        if now is None or now == state.identity:
            return False  # gone: its sources say so when measured
        log.info('task %s: its cgroup %s was removed and made again: measured anew',
                 state.task.task_id, state.task.cgroup_path)
        return True

    def drop(self, task_id: str):
        """Forgets a task whose cgroup vanished during the iteration."""
        state = self.tracked.pop(task_id, None)
        if state is not None:
            self._close(state)

    def close(self):
        for state in self.tracked.values():
            self._close(state)
        self.tracked = {}
        for factory in self.factories:
            _close_quietly(factory, 'source factory %s' % type(factory).__name__)

    def _open(self, task: Task):
        identity = self._identity(task)
        sources = []
        for factory in self.factories:
            try:
                source = factory.open(task)
            except CgroupNotFound as e:
                for opened in sources:
                    _close_quietly(opened, 'task %s' % task.task_id)
                if task.task_id not in self._waiting:
                    log.warning('task %s: %s; not measured until it appears', task.task_id, e)
                return None
            except Exception:  # a bug in a source: that source is left out, the task measured
                self.count_error('measurement')
                log.exception('task %s: cannot open %s; its metrics are left out',
                              task.task_id, type(factory).__name__)
                continue
            if source is not None:
                sources.append(source)
        return TrackedTask(task, sources, self.labels_of(task), identity)

    @staticmethod
    def _close(state: TrackedTask):
        for source in state.sources:
            _close_quietly(source, 'task %s' % state.task.task_id)
        state.sources = []


def _close_quietly(closable, what):
    try:
        closable.close()
    except Exception:
        log.exception('%s: closing %s failed', what, type(closable).__name__)
