"""Detection contract: detectors get the platform and every task's data, and return anomalies."""
import hashlib
import uuid
from abc import ABC, abstractmethod
from enum import Enum
from typing import Dict, List, Optional, Tuple

from dataclasses import dataclass, field

from wca.metrics import Measurements, Metric, MetricName, MetricType
from wca.nodes.base import Task, TaskId
from wca.platforms import Platform


@dataclass
class TaskData(Task):
    measurements: Measurements = field(default_factory=dict)
    allocations: Optional[Dict] = None  # current allocations; None when not read

    def __hash__(self):
        return hash(self.task_id)


TasksData = Dict[TaskId, TaskData]
TasksMeasurements = Dict[TaskId, Measurements]
TasksLabels = Dict[TaskId, Dict[str, str]]


class ContendedResource(str, Enum):
    MEMORY_BW = 'memory bandwidth'
    LLC = 'cache'
    CPUS = 'cpus'
    TDP = 'thermal design power'
    UNKN = 'unknown resource'

    def __repr__(self):
        return repr(self.value)


class TaskResource(str, Enum):
    CPUS = 'cpus'
    MEM = 'mem'
    DISK = 'disk'

    def __repr__(self):
        return repr(self.value)


def _create_uuid_from_tasks_ids(task_ids: List[TaskId]) -> str:
    """A stable id for a set of tasks: the first 16 bytes of sha256 over the sorted ids."""
    digest = hashlib.sha256(','.join(sorted(task_ids)).encode('utf-8')).digest()
    return str(uuid.UUID(bytes=digest[:16]))


class Anomaly(ABC):
    @abstractmethod
    def generate_metrics(self) -> List[Metric]:
        """The anomaly encoded as metrics."""


@dataclass
class ContentionAnomaly(Anomaly):
    resource: ContendedResource
    contended_task_id: TaskId
    contending_task_ids: List[TaskId]
    metrics: List[Metric] = field(default_factory=list)  # context of the contention

    anomaly_type = 'contention'

    def uuid(self) -> str:
        return _create_uuid_from_tasks_ids(self.contending_task_ids + [self.contended_task_id])

    def generate_metrics(self) -> List[Metric]:
        """One `anomaly` counter per contending task, plus the context metrics tagged by uuid."""
        anomaly_uuid = self.uuid()
        resource = getattr(self.resource, 'value', self.resource)
        metrics = [Metric(name=MetricName.ANOMALY.value, value=1, type=MetricType.COUNTER,
                          help='Contention anomaly: one sample per contending task.',
                          labels=dict(contended_task_id=self.contended_task_id,
                                      contending_task_id=contending, resource=str(resource),
                                      uuid=anomaly_uuid, type=self.anomaly_type))
                   for contending in self.contending_task_ids]
        for metric in self.metrics:
            # A new dict: the detector's metric may share its labels with a task's metrics.
            metric.labels = dict(metric.labels, uuid=anomaly_uuid, type='anomaly')
            metrics.append(metric)
        return metrics


class AnomalyDetector(ABC):
    @abstractmethod
    def detect(self, platform: Platform,
               tasks_data: TasksData) -> Tuple[List[Anomaly], List[Metric]]:
        """Returns the anomalies found and metrics that explain them (for debugging)."""


class NOPAnomalyDetector(AnomalyDetector):
    """Detects nothing: the runner's own cost, with no algorithm."""

    def detect(self, platform, tasks_data):
        return [], []


def convert_anomalies_to_metrics(anomalies: List[Anomaly]) -> List[Metric]:
    metrics = []
    for anomaly in anomalies:
        metrics.extend(anomaly.generate_metrics())
    return metrics
