"""AllocationRunner: MeasurementRunner plus an allocator. The allocator sees each task's
current allocations (TaskData.allocations, read from its cgroup); its answer is checked against
the platform and the tasks and stored as metrics in allocations_storage.

Applying allocations to cgroups and resctrl is not in this version: the runner logs that
once and stores what would be applied."""
import logging
import time
from typing import List, Optional

from dataclasses import dataclass, field

from wca import security
from wca.allocations import allocations_to_metrics, current_allocations, validate_allocations
from wca.allocators import AllocationConfiguration, Allocator
from wca.cgroups.layout import CgroupNotFound, CgroupVanished
from wca.cgroups.measure import TaskCgroup
from wca.cgroups.settings import ALLOCATION_SOURCES
from wca.config import Numeric
from wca.detectors import TasksData
from wca.metrics import Metric, MetricName
from wca.platforms import Platform
from wca.runners.algorithm import call_algorithm
from wca.runners.measurement import (MeasurementRunner, MeasurementRunnerConfig,
                                     adopt_measurement_runner, flat_or_config)
from wca.storage.base import Storage
from wca.storage.log import LogStorage

log = logging.getLogger(__name__)


@dataclass
class AllocationRunnerConfig(MeasurementRunnerConfig):
    """MeasurementRunnerConfig plus: allocator (required), anomalies_storage,
    allocations_storage, action_delay (sets the interval when given) and
    allocation_configuration, and measurement_runner (the 2.0 shape: the measurement options
    given as a !MeasurementRunner)."""
    allocator: Allocator = None  # required (checked in __post_init__)
    anomalies_storage: Storage = field(default_factory=LogStorage)
    allocations_storage: Storage = field(default_factory=LogStorage)
    action_delay: Optional[Numeric(0, 3600)] = None
    measurement_runner: Optional[MeasurementRunner] = None
    allocation_configuration: AllocationConfiguration = field(
        default_factory=AllocationConfiguration)

    def __post_init__(self):
        adopt_measurement_runner(self, self.measurement_runner)
        super().__post_init__()
        if self.allocator is None:
            raise ValueError('allocator is required (for example allocator: !NOPAllocator)')
        if self.action_delay is not None:
            self.interval = self.action_delay


@flat_or_config(AllocationRunnerConfig)
class AllocationRunner(MeasurementRunner):
    """Each iteration: measure, call allocator.allocate(platform, tasks_data), check and store."""

    def __init__(self, config=None, **flat):
        super().__init__(config, **flat)
        self._allocations_count = 0
        self._allocations_errors = 0
        self.last_allocations = {}
        self._told_not_applied = False
        self._settings = {}  # task id -> TaskCgroup reading its current settings

    def required_privileges(self):
        return super().required_privileges() + [security.DAC_OVERRIDE]

    def _storages(self):
        return super()._storages() + [('anomalies_storage', self.config.anomalies_storage),
                                      ('allocations_storage', self.config.allocations_storage)]

    def _iterate_body(self, platform: Platform, tasks_data: TasksData) -> List[Metric]:
        self._read_current_allocations(platform, tasks_data)
        started = time.monotonic()
        answer = call_algorithm(self, 'allocator', 'allocate', 3, platform, tasks_data)
        allocations, anomalies, extra = answer if answer is not None else ({}, [], [])
        duration = time.monotonic() - started
        valid, errors = validate_allocations(allocations, tasks_data, platform)
        for message in errors:
            log.warning('allocation rejected: %s', message)
        self._allocations_errors += len(errors)
        self._allocations_count += sum(len(a) for a in valid.values())
        self.last_allocations = valid
        if valid and not self._told_not_applied:
            self._told_not_applied = True
            log.warning('allocations are checked and stored, not applied: this version of wca '
                        'does not write cgroup or resctrl settings yet')

        make = Metric.create_metric_with_metadata
        labels = self.common_labels
        extra.append(make(MetricName.ANOMALY_COUNT, len(anomalies), labels))
        self.store(self.config.anomalies_storage, extra, 'anomalies_storage')
        allocation_metrics = allocations_to_metrics(valid, self.task_labels())
        allocation_metrics += [
            make(MetricName.ALLOCATIONS_COUNT, self._allocations_count, labels),
            make(MetricName.ALLOCATIONS_ERRORS, self._allocations_errors, labels),
            make(MetricName.ALLOCATION_DURATION, duration, labels),
        ]
        self.store(self.config.allocations_storage, allocation_metrics, 'allocations_storage')
        return []

    def _read_current_allocations(self, platform: Platform, tasks_data: TasksData):
        """Fills TaskData.allocations; it stays None for a task whose settings cannot be read."""
        unit = self.config.allocation_configuration.cpu_shares_unit
        settings = {}
        for task_id, data in tasks_data.items():
            reader = self._settings.get(task_id)
            if reader is None or reader.cgroup_path != data.cgroup_path:
                try:
                    reader = TaskCgroup(data.cgroup_path, self._layout, self._errors,
                                        ALLOCATION_SOURCES)
                except CgroupNotFound:
                    continue
            settings[task_id] = reader
            try:
                data.allocations = current_allocations(reader.measure(), platform.cpus, unit)
            except CgroupVanished:
                continue
        self._settings = settings
