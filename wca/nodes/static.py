"""Task discovery without an orchestrator: a static list, or every child cgroup of a directory."""
import functools
import logging
from typing import Dict, List, Optional

from dataclasses import dataclass, field

from wca import identifiers
from wca.cgroups.layout import CgroupLayout
from wca.nodes.base import Node, Task

log = logging.getLogger(__name__)


def _task(path: str, labels: Dict[str, str]) -> Task:
    name = path.strip('/')
    return Task(name=name, task_id=name, cgroup_path='/' + name, labels=labels)


@dataclass
class StaticNode(Node):
    """A fixed list of tasks, each a cgroup path relative to the cgroup mounts ('task1' or
    '/a/b'); the task id and name are the path without its leading '/'.

    require_pids: report only tasks whose cgroup has processes.
    default_labels: labels of every task; tasks_labels: labels per task name (they win).
    """
    tasks: List[str] = field(default_factory=list)
    require_pids: bool = False
    default_labels: Dict[str, str] = field(default_factory=dict)
    tasks_labels: Optional[Dict[str, Dict[str, str]]] = None
    cgroup_layout: Optional[CgroupLayout] = None

    def __post_init__(self):
        per_task = self.tasks_labels or {}
        unknown = set(per_task) - {t.strip('/') for t in self.tasks}
        if unknown:
            raise ValueError('tasks_labels names tasks not in tasks: %s' % ', '.join(sorted(unknown)))
        for path in self.tasks:
            try:
                identifiers.cgroup_path(path, 'task')
            except identifiers.InvalidIdentifier as e:
                raise ValueError('task %s is not a cgroup path: it %s' % (
                    identifiers.shown(path), e.why))
        self._tasks = [_task(path, dict(self.default_labels, **per_task.get(path.strip('/'), {})))
                       for path in self.tasks]

    def get_tasks(self) -> List[Task]:
        if not self.require_pids:
            return list(self._tasks)
        layout = self.cgroup_layout or _detected_layout()
        return [task for task in self._tasks if layout.pids(task.cgroup_path)]


@dataclass
class CgroupDirectoryNode(Node):
    """Every child cgroup of `root` (in any hierarchy the agent measures), as a task.

    max_depth: how many levels below root to look (1: direct children only).
    leaves_only: skip cgroups that have child cgroups (their usage includes the children's).
    require_pids: skip cgroups with no processes.
    labels: labels of every task.
    """
    root: str = '/'
    max_depth: int = 1
    leaves_only: bool = False
    require_pids: bool = False
    labels: Dict[str, str] = field(default_factory=dict)
    cgroup_layout: Optional[CgroupLayout] = None

    def __post_init__(self):
        if not isinstance(self.root, str) or not self.root.startswith('/'):
            raise ValueError('root must be a cgroup path starting with / (relative to the mounts)')
        self.root = identifiers.cgroup_path(self.root, 'root', root_ok=True)
        if not 1 <= self.max_depth <= 32:
            raise ValueError('max_depth must be between 1 and 32')
        self._known = {}  # path -> Task, so an unchanged task is the same object every time

    def get_tasks(self) -> List[Task]:
        layout = self.cgroup_layout or _detected_layout()
        paths = layout.list_cgroups(self.root, self.max_depth)
        if self.leaves_only:
            parents = {p.rsplit('/', 1)[0] for p in paths}
            paths = [p for p in paths if p not in parents]
        if self.require_pids:
            paths = [p for p in paths if layout.pids(p)]
        known = {}
        for path in paths:
            known[path] = self._known.get(path) or _task(path, dict(self.labels))
        self._known = known
        return list(known.values())


@functools.lru_cache(maxsize=1)
def _detected_layout() -> CgroupLayout:
    """This machine's cgroup mounts, read once (nodes given no layout of their own use it)."""
    return CgroupLayout.detect()
