"""The task lifecycle: what the runner keeps per task is opened when the task appears and
closed the moment it leaves, or when the agent stops."""
import logging
from typing import Callable, Dict, List, Set  # noqa: F401 (type comments)

from wca.cgroups.layout import CgroupNotFound
from wca.nodes.base import Task
from wca.sources import TaskSource, TaskSourceFactory

log = logging.getLogger(__name__)


class TrackedTask:
    """One task between iterations: its sources (open files, descriptors, groups) and its
    label set, worked out once."""
    __slots__ = ('task', 'sources', 'labels')

    def __init__(self, task: Task, sources: List[TaskSource], labels: Dict[str, str]):
        self.task = task
        self.sources = sources
        self.labels = labels


class TaskTracker:
    """Matches each iteration's tasks with what is kept for them, by task id."""

    def __init__(self, factories: List[TaskSourceFactory],
                 labels_of: Callable[[Task], Dict[str, str]], count_error: Callable[[str], None]):
        self.factories = factories
        self.labels_of = labels_of
        self.count_error = count_error
        self.tracked = {}  # type: Dict[str, TrackedTask]
        self._waiting = set()  # type: Set[str]  tasks whose cgroup does not exist yet

    def __len__(self):
        return len(self.tracked)

    @property
    def waiting(self) -> int:
        """Tasks of the last sync not measured because their cgroup does not exist (yet)."""
        return len(self._waiting)

    def sync(self, tasks: List[Task]) -> Dict[str, TrackedTask]:
        """The tracked state of this iteration's tasks; new tasks are opened, tasks that left
        (or changed) are closed."""
        tracked, waiting = {}, set()
        for task in tasks:
            state = self.tracked.get(task.task_id)
            if state is not None and state.task is not task and state.task != task:
                self._close(state)  # same id, new cgroup or labels: start again
                state = None
            if state is None:
                state = self._open(task)
                if state is None:
                    waiting.add(task.task_id)
                    continue
            tracked[task.task_id] = state
        for task_id, state in self.tracked.items():
            if task_id not in tracked:
                self._close(state)
        self.tracked = tracked
        self._waiting = waiting
        return tracked

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
        return TrackedTask(task, sources, self.labels_of(task))

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
