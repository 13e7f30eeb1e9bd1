"""Applying allocations: each iteration, what the kernel holds for every task is read (it becomes
TaskData.allocations), and the allocator's checked answer is written where it differs.

The comparison is with the kernel, not with what the agent wrote before, so a setting someone
else reset (the kubelet reconciles pod cgroups every minute) is written again. Shares within
wca.allocations.FLOAT_TOLERANCE of what is held are not written (the original agent's 0.05), nor
a quota whose ratio quota / period is within that fraction of the held one's; cpusets compare as
sets, RDT schemata domain by domain. migrate_pages is not a setting the kernel holds: it runs
when the task's memory.numa_stat shows pages outside the target node (or cannot tell), on every
process of the task, and is refused while swap is on (pages moved under memory
pressure risk the OOM killer, as the original agent warned).

Each allocation (task, type) succeeds or fails alone: a write the kernel refuses becomes a
Rejection like an invalid value, and the others go on.
"""
import errno
import logging
from typing import Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from wca.allocations import (FLOAT_TOLERANCE, KERNEL_REFUSED, PERMISSION, UNSUPPORTED,
                             Rejection)
from wca.allocators import AllocationType, RDTAllocation, TasksAllocations  # noqa: F401
from wca.cgroups.layout import CgroupLayout
from wca.cgroups.settings import (KINDS, Current, SettingRefused, TaskSettings,  # noqa: F401
                                  Units)
from wca.detectors import TasksData
from wca.metrics import MetricName
from wca.migrate import MigrateUnsupported, migrate_pages
from wca.platforms import Platform
from wca.resctrl.control import RDTControl

log = logging.getLogger(__name__)

PAGES = MetricName.TASK_MEM_NUMA_PAGES


class Actuator:
    def __init__(self, layout: CgroupLayout, units: Units, control: Optional[RDTControl] = None):
        self.layout = layout
        self.units = units
        self.control = control
        self._settings = {}  # type: Dict[str, TaskSettings]
        self._current = {}  # type: Dict[str, Current]  kernel values read this iteration
        self._values = {}  # type: TasksAllocations  the same in the contract's units

    def read(self, tasks_data: TasksData) -> TasksAllocations:
        """Reads what each task is given now; fills TaskData.allocations (a copy for the
        allocator) and returns it."""
        settings, current, values = {}, {}, {}
        for task_id, data in tasks_data.items():
            task_settings = self._settings.get(task_id)
            if task_settings is None or task_settings.cgroup_path != data.cgroup_path or \
                    task_settings.subcgroups_paths != list(data.subcgroups_paths):
                task_settings = TaskSettings(data.cgroup_path, data.subcgroups_paths, self.layout,
                                             self.units)
            settings[task_id] = task_settings
            current[task_id] = task_settings.read()
            values[task_id] = task_settings.values(current[task_id])
        if self.control is not None:
            for task_id, value in self.control.current(tasks_data).items():
                values[task_id][AllocationType.RDT] = value
        for task_id, data in tasks_data.items():
            data.allocations = dict(values[task_id])
        self._settings, self._current, self._values = settings, current, values
        return values

    def apply(self, valid: TasksAllocations, tasks_data: TasksData, platform: Platform,
              dry_run: bool = False
              ) -> Tuple[Dict[AllocationType, int], List[Rejection], TasksAllocations]:
        """Writes the valid allocations where the kernel does not hold them already. Returns
        (allocations written, by type; the ones the kernel refused; what each task holds
        afterwards: the current values with the applied ones over them)."""
        written = {}  # type: Dict[AllocationType, int]
        refused = []  # type: List[Rejection]
        target = {task_id: dict(values) for task_id, values in self._values.items()}
        rdt = {}  # type: Dict[str, RDTAllocation]
        for task_id, allocations in sorted(valid.items()):
            settings = self._settings.get(task_id)
            for kind in KINDS + (AllocationType.MIGRATE_PAGES,):
                if kind not in allocations:
                    continue
                value = allocations[kind]
                try:
                    if kind is AllocationType.MIGRATE_PAGES:
                        done = self._migrate(task_id, tasks_data[task_id], value, platform,
                                             dry_run)
                    elif settings is None:
                        raise SettingRefused(UNSUPPORTED, 'no cgroup settings read for the task')
                    elif dry_run:
                        done = 0
                    else:
                        done = settings.apply(kind, value, self._current[task_id],
                                              FLOAT_TOLERANCE)
                except SettingRefused as e:
                    refused.append(Rejection(task_id, kind.value, e.reason, str(e)))
                    continue
                if done:
                    written[kind] = written.get(kind, 0) + 1
                    log.debug('task %s: %s = %r written', task_id, kind.value, value)
                target.setdefault(task_id, {})[kind] = value
            if AllocationType.RDT in allocations:
                rdt[task_id] = allocations[AllocationType.RDT]
        if rdt and self.control is not None:
            done, rejected = self.control.apply(rdt, dry_run)
            for task_id, value in rdt.items():
                if task_id in rejected:
                    e = rejected[task_id]
                    refused.append(Rejection(task_id, AllocationType.RDT.value, e.reason, str(e)))
                    continue
                target.setdefault(task_id, {})[AllocationType.RDT] = value
                if task_id in done:
                    written[AllocationType.RDT] = written.get(AllocationType.RDT, 0) + 1
        return written, refused, target

    def _migrate(self, task_id: str, data, node: int, platform: Platform, dry_run: bool) -> int:
        """migrate_pages for every process of the task; 1 when it ran."""
        if platform.swap_enabled:
            raise SettingRefused(UNSUPPORTED, 'swap is on: pages are not migrated (moving them '
                                 'under memory pressure risks the OOM killer)')
        pages = data.measurements.get(PAGES)
        if isinstance(pages, dict) and pages and \
                not any(count for other, count in pages.items() if int(other) != node):
            return 0  # every page is on the target node already
        if dry_run:
            return 0
        others = [n for n in (platform.node_cpus or range(platform.numa_nodes)) if n != node]
        pids = []
        for path in [data.cgroup_path] + list(data.subcgroups_paths):
            pids.extend(self.layout.pids(path))
        left = 0
        for pid in pids:
            try:
                left += migrate_pages(pid, others, [node])
            except MigrateUnsupported as e:
                raise SettingRefused(UNSUPPORTED, str(e))
            except OSError as e:
                if e.errno == errno.ESRCH:
                    continue  # the process ended meanwhile
                if e.errno == errno.EPERM:
                    raise SettingRefused(PERMISSION, 'migrate_pages of process %d to node %d: %s '
                                         '(another user\'s process needs CAP_SYS_PTRACE, a node '
                                         'outside its cpuset.mems CAP_SYS_NICE; a seccomp filter '
                                         'may also refuse the call)' % (pid, node, e.strerror))
                raise SettingRefused(KERNEL_REFUSED, 'migrate_pages of process %d to node %d: %s'
                                     % (pid, node, e.strerror or e))
        if left:
            log.debug('task %s: %d pages could not be moved to node %d', task_id, left, node)
        return 1 if pids else 0


def container_name(cgroup_path: str) -> str:
    """The original agent's name of a task's container: its cgroup path without the leading
    '/', with '/' replaced by '-'."""
    return cgroup_path.strip('/').replace('/', '-')
