"""Task discovery contract: a Node answers which tasks run here now."""
from abc import ABC, abstractmethod
from typing import Dict, List, Union

from dataclasses import dataclass, field

TaskId = str


@dataclass
class Task:
    name: str
    task_id: TaskId
    cgroup_path: str  # starts with '/', relative to each cgroup hierarchy's mount point
    subcgroups_paths: List[str] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)
    resources: Dict[str, Union[float, int, str]] = field(default_factory=dict)

    def __hash__(self):
        return hash(self.task_id)

    def get_summary(self) -> str:
        return '%s (%s) at %s' % (self.name, self.task_id, self.cgroup_path)


class Node(ABC):
    @abstractmethod
    def get_tasks(self) -> List[Task]:
        """The tasks on this node now; may raise TaskSynchronizationException."""


class TaskSynchronizationException(Exception):
    """The node could not list its tasks (endpoint down, bad answer): the iteration has none."""
