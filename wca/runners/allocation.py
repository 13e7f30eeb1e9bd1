"""AllocationRunner: MeasurementRunner plus an allocator whose answer is applied to the kernel.

Each iteration: what every task is given now is read from its cgroups (and resctrl group) into
TaskData.allocations; allocate() is called; its answer is checked (wca.allocations) and written
where the kernel does not hold it already (wca.actuator: cgroup v1 and v2 settings,
migrate_pages, resctrl control groups). An invalid allocation, or one the kernel refuses, is
rejected alone: logged once while it repeats (naming the task, the type and the reason), and
counted by type and reason; every other allocation still applies. What each task holds then is
stored as allocation_* metrics in allocations_storage, with the counters.

dry_run: true computes, checks and stores, and writes nothing (not even the root resctrl group
reset at start).
"""
import logging
import time
from typing import Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass, field

from wca import security
from wca.actuator import Actuator, container_name
from wca.allocations import NO_TYPE, Rejection, allocations_to_metrics, validate_allocations
from wca.allocators import AllocationConfiguration, AllocationType, Allocator
from wca.cgroups.settings import Units
from wca.config import Numeric
from wca.detectors import TasksData
from wca.metrics import Metric, MetricName
from wca.platforms import Platform
from wca.resctrl import rdt
from wca.resctrl.control import RDTControl
from wca.resctrl.info import Resctrl, ResctrlUnavailable
from wca.runners.algorithm import call_algorithm
from wca.runners.config import (MeasurementRunnerConfig, adopt_measurement_runner,
                                flat_or_config)
from wca.runners.measurement import MeasurementRunner
from wca.storage.base import Storage
from wca.storage.log import LogStorage

log = logging.getLogger(__name__)


@dataclass
class AllocationRunnerConfig(MeasurementRunnerConfig):
    """MeasurementRunnerConfig plus: allocator (required), anomalies_storage,
    allocations_storage, action_delay (sets the interval when given), measurement_runner (the
    2.0 shape: the measurement options given as a !MeasurementRunner), and

    rdt_cache_control_required, rdt_mb_control_required: exit 1 at start unless resctrl can
      allocate L3 cache (memory bandwidth);
    remove_all_resctrl_groups: at start, remove every resctrl control and monitoring group
      (other tools' too);
    dry_run: check and store the allocations, write nothing.
    (allocation_configuration is a MeasurementRunnerConfig option: give it here or in
    measurement_runner.)"""
    allocator: Allocator = None  # required (checked in __post_init__)
    anomalies_storage: Storage = field(default_factory=LogStorage)
    allocations_storage: Storage = field(default_factory=LogStorage)
    action_delay: Optional[Numeric(0, 3600)] = None
    measurement_runner: Optional[MeasurementRunner] = None
    rdt_mb_control_required: bool = False
    rdt_cache_control_required: bool = False
    remove_all_resctrl_groups: bool = False
    dry_run: bool = False

    def __post_init__(self):
        adopt_measurement_runner(self, self.measurement_runner)
        super().__post_init__()
        if self.allocator is None:
            raise ValueError('allocator is required (for example allocator: !NOPAllocator)')
        if self.action_delay is not None:
            self.interval = self.action_delay
        if self.rdt_enabled is False and (self.rdt_cache_control_required or
                                          self.rdt_mb_control_required):
            raise ValueError('rdt_enabled is false, so RDT control cannot be required: set '
                             'rdt_cache_control_required / rdt_mb_control_required to false, or '
                             'leave rdt_enabled out')


@flat_or_config(AllocationRunnerConfig)
class AllocationRunner(MeasurementRunner):
    """Each iteration: measure, read what the tasks are given, call
    allocator.allocate(platform, tasks_data), check and apply the answer, store."""

    def __init__(self, config=None, **flat):
        super().__init__(config, **flat)
        self.allocation_configuration = (self.config.allocation_configuration or
                                         AllocationConfiguration())
        self._allocations_count = 0
        self._allocations_errors = 0
        self._written = dict.fromkeys(AllocationType, 0)  # type: Dict[AllocationType, int]
        self._rejected = {}  # type: Dict[Tuple[str, str], int]  (type, reason) -> count
        self._rejecting = {}  # type: Dict[Tuple[str, str], str]  (task, type) -> message logged
        self.last_allocations = {}
        self._control = None  # type: Optional[RDTControl]
        self._actuator = None  # type: Optional[Actuator]

    def required_privileges(self):
        needed = super().required_privileges() + [security.DAC_OVERRIDE]
        c = self.config
        if c.rdt_enabled is not False and not c.dry_run and (
                c.resctrl is not None or Resctrl.detect(c.proc_root + '/self/mounts')):
            needed += rdt.privileges()  # control groups: made, written, threads moved in
        return list(dict.fromkeys(needed))

    def _storages(self):
        return super()._storages() + [('anomalies_storage', self.config.anomalies_storage),
                                      ('allocations_storage', self.config.allocations_storage)]

    # --- start ----------------------------------------------------------------------------

    def setup(self):
        if self._platform is not None:
            return
        super().setup()
        c = self.config
        conf = self.allocation_configuration
        if self._rdt is not None:
            control = RDTControl(self._rdt, self._layout, self._errors)
            control.start(conf.default_rdt_l3, conf.default_rdt_mb, c.remove_all_resctrl_groups,
                          c.rdt_cache_control_required, c.rdt_mb_control_required, c.dry_run)
            self._control = control
            # before RDT monitoring: a task's new threads join its control group first
            self._tasks.factories.insert(1, control)
        elif c.rdt_cache_control_required or c.rdt_mb_control_required:
            raise ResctrlUnavailable('rdt_%s_control_required is true, but resctrl is not mounted'
                                     ' (RDT allocation needs a CPU with Intel RDT or AMD PQoS and '
                                     'resctrl mounted at /sys/fs/resctrl)' % (
                                         'cache' if c.rdt_cache_control_required else 'mb'))
        units = Units(cpus=self._platform.topology.cpus, quota_period=int(conf.cpu_quota_period),
                      shares_unit=conf.cpu_shares_unit)
        self._actuator = Actuator(self._layout, units, self._control)
        if c.dry_run:
            log.info('dry_run: allocations are checked and stored, nothing is written')

    # --- one iteration --------------------------------------------------------------------

    def _iterate_body(self, platform: Platform, tasks_data: TasksData) -> List[Metric]:
        """Read, allocate, check, apply, store. What raises unexpectedly in reading or applying
        (the actuation) costs this iteration's writes and allocation_* values only
        (wca_iteration_errors_total{phase="actuation"}); an allocator that fails costs its
        answer (wca_algorithm_errors_total); the measured metrics are stored either way."""
        read = self.guarded('actuation', self._actuator.read, tasks_data) is not None
        started = time.monotonic()
        answer = call_algorithm(self, 'allocator', 'allocate', 3, platform, tasks_data)
        allocations, anomalies, extra = answer if answer is not None else ({}, [], [])
        duration = time.monotonic() - started
        valid, rejections, count = validate_allocations(
            allocations, tasks_data, platform, self._rdt_check(), self._rdt_unavailable())
        # Not applied over what could not be read: the writes are diffs against the kernel.
        applied = self.guarded('actuation', self._actuator.apply, valid, tasks_data, platform,
                               self.config.dry_run) if read else None
        written, refused, target = applied if applied is not None else ({}, [], {})
        if applied is None:
            valid = {}
        rejections += refused
        for rejection in refused:
            valid.get(rejection.task_id, {}).pop(AllocationType(rejection.allocation_type), None)
        self.last_allocations = {task_id: a for task_id, a in valid.items() if a}
        self._count(count, rejections, written)

        make = Metric.create_metric_with_metadata
        labels = self.common_labels
        extra.append(make(MetricName.ANOMALY_COUNT, len(anomalies), labels))
        self.store(self.config.anomalies_storage, extra, 'anomalies_storage')
        names = {task_id: container_name(data.cgroup_path) for task_id, data in tasks_data.items()}
        metrics = allocations_to_metrics(target, self.task_labels(), names)
        metrics += [
            make(MetricName.ALLOCATIONS_COUNT, self._allocations_count, labels),
            make(MetricName.ALLOCATIONS_ERRORS, self._allocations_errors, labels),
            make(MetricName.ALLOCATION_DURATION, duration, labels),
        ]
        for kind, value in self._written.items():
            metrics.append(make(MetricName.ALLOCATIONS_WRITTEN, value,
                                dict(labels, allocation_type=kind.value)))
        for (kind, reason), value in sorted(self._rejected.items()):
            metrics.append(make(MetricName.ALLOCATIONS_REJECTED, value,
                                dict(labels, allocation_type=kind, reason=reason)))
        self.store(self.config.allocations_storage, metrics, 'allocations_storage')
        return []

    def _rdt_check(self):
        return self._control.check if self._control is not None else None

    def _rdt_unavailable(self) -> str:
        if self.config.rdt_enabled is False:
            return 'RDT is off (rdt_enabled: false)'
        return ('resctrl is not mounted (RDT allocation needs a CPU with Intel RDT or AMD PQoS and '
                'resctrl mounted at /sys/fs/resctrl)')

    def _count(self, count: int, rejections: List[Rejection], written: Dict[AllocationType, int]):
        self._allocations_count += count
        self._allocations_errors += len(rejections)
        for kind, value in written.items():
            self._written[kind] += value
        now = {}  # type: Dict[Tuple[str, str], str]
        for rejection in rejections:
            key = (rejection.allocation_type, rejection.reason)
            self._rejected[key] = self._rejected.get(key, 0) + 1
            task_key = (rejection.task_id, rejection.allocation_type)
            text = rejection.log_text()
            if task_key in now:  # several of one task and type (unknown types): each logged
                task_key += (text,)
            now[task_key] = text
            if self._rejecting.get(task_key) != text:
                log.warning('allocation rejected (%s): %s', rejection.reason, text)
        for task_key, text in self._rejecting.items():
            if task_key not in now and task_key[0] in self._tasks.tracked \
                    and task_key[1] != NO_TYPE and len(task_key) == 2:
                log.info('allocation of task %r: %s is no longer rejected', task_key[0],
                         task_key[1])
        self._rejecting = now
