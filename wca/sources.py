"""What the runner measures, as sources with a lifecycle.

A TaskSourceFactory opens one TaskSource per task when the task first appears; the source is
measured every iteration and closed the moment the task leaves (or the agent stops). That is
where per-task resources live and are released: open files, perf descriptors, resctrl
monitoring groups. PlatformSources are the same for the whole node (uncore counters, vmstat).

A kernel interface module (wca.cgroups, wca.perf, wca.resctrl, ...) implements these; the
runner only calls them.
"""
from abc import ABC, abstractmethod
from typing import Optional

from wca.metrics import Measurements
from wca.nodes.base import Task


class TaskSource(ABC):
    """Measures one task."""

    @abstractmethod
    def measure(self, measurements: Measurements) -> None:
        """Adds this iteration's values. Raises wca.cgroups.CgroupVanished when the task's cgroup
        is gone (the task is dropped from the iteration); handles any other failure itself (logs
        it once, counts it, leaves out only its own metrics)."""

    def close(self) -> None:
        """Releases what the source holds; called exactly once."""


class TaskSourceFactory(ABC):
    """Opens a feature's source for each new task."""

    @abstractmethod
    def open(self, task: Task) -> Optional[TaskSource]:
        """A source for `task`, or None when this feature measures nothing for it (the factory
        logs and counts why). Raises wca.cgroups.CgroupNotFound while the task's cgroup does not
        exist yet: the task is tried again next iteration."""

    def close(self) -> None:
        """Releases what the factory itself holds (called when the agent stops)."""


class PlatformSource(ABC):
    """Measures the node once per iteration: before the tasks are measured, or after them
    when `after_tasks` is true (a source reporting on what the tasks phase opens or closes,
    such as the agent's perf descriptors, so that an iteration's figures are its own)."""

    after_tasks = False

    @abstractmethod
    def collect(self, measurements: Measurements) -> None:
        """Adds this iteration's platform values; handles its own failures like a TaskSource."""

    def close(self) -> None:
        """Releases what the source holds; called once, when the agent stops."""
