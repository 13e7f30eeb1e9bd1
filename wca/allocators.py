"""Allocation contract: allocators get the platform and every task's data, and return what each
task should be given. Validation and encoding of their answers live in wca.allocations."""
from abc import ABC, abstractmethod
from enum import Enum
from typing import Dict, List, Optional, Tuple, Union

from dataclasses import dataclass

from wca.config import Numeric
from wca.detectors import Anomaly, TasksData
from wca.metrics import Metric
from wca.nodes.base import TaskId
from wca.platforms import Platform


class AllocationType(str, Enum):
    QUOTA = 'cpu_quota'
    SHARES = 'cpu_shares'
    RDT = 'rdt'
    CPUSET_CPUS = 'cpuset_cpus'
    CPUSET_MEMS = 'cpuset_mems'
    CPUSET_MEMORY_MIGRATE = 'cpuset_memory_migrate'
    MIGRATE_PAGES = 'migrate_pages'

    def __repr__(self):
        return repr(self.value)


@dataclass(frozen=True)
class RDTAllocation:
    name: Optional[str] = None  # resctrl group; None means the task id
    l3: Optional[str] = None  # 'L3:0=fffff;1=fffff'; None leaves the cache unchanged
    mb: Optional[str] = None  # 'MB:0=50;1=100'; None leaves memory bandwidth unchanged


AllocationValue = Union[float, int, str, RDTAllocation]
TaskAllocations = Dict[AllocationType, AllocationValue]
TasksAllocations = Dict[TaskId, TaskAllocations]


@dataclass
class AllocationConfiguration:
    """How allocation values map to kernel settings. default_rdt_l3 and default_rdt_mb are
    the root resctrl group's schemata lines, set when an AllocationRunner starts (checked then
    against the platform; their form here)."""
    cpu_quota_period: Numeric(1000, 1000000) = 1000  # microseconds
    cpu_shares_unit: Numeric(1, 1000000) = 1000  # cpu_shares 1.0 == this many cgroup v1 shares
    default_rdt_l3: Optional[str] = None  # for the root resctrl group
    default_rdt_mb: Optional[str] = None

    def __post_init__(self):
        for key, resource, example in (('default_rdt_l3', 'L3', 'L3:0=fffff;1=fffff'),
                                       ('default_rdt_mb', 'MB', 'MB:0=100;1=100')):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or
                                      not value.strip().startswith(resource + ':')):
                raise ValueError('%s: expected a schemata line like %r, got %r' % (
                    key, example, value))


class Allocator(ABC):
    @abstractmethod
    def allocate(self, platform: Platform, tasks_data: TasksData
                 ) -> Tuple[TasksAllocations, List[Anomaly], List[Metric]]:
        """Returns allocations per task, anomalies and metrics (for debugging)."""


class NOPAllocator(Allocator):
    """Allocates nothing."""

    def allocate(self, platform, tasks_data):
        return {}, [], []
