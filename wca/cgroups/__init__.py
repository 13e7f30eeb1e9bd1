"""cgroup v1 and v2: where the hierarchies are (layout), what a task's files say (measure),
and its allocation settings (settings)."""
from wca.cgroups.layout import CgroupLayout, CgroupNotFound, CgroupVanished
from wca.cgroups.measure import TaskCgroup

__all__ = ['CgroupLayout', 'CgroupNotFound', 'CgroupVanished', 'TaskCgroup']
