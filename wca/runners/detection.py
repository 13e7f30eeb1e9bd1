"""DetectionRunner: MeasurementRunner plus an anomaly detector, whose answers are encoded as
metrics and stored in anomalies_storage."""
import time
from typing import List, Optional

from dataclasses import dataclass, field

from wca.config import Numeric
from wca.detectors import AnomalyDetector, TasksData
from wca.metrics import Metric, MetricName
from wca.platforms import Platform
from wca.runners.algorithm import call_algorithm
from wca.runners.config import (MeasurementRunnerConfig, adopt_measurement_runner,
                                flat_or_config)
from wca.runners.measurement import MeasurementRunner
from wca.storage.base import Storage
from wca.storage.log import LogStorage


@dataclass
class DetectionRunnerConfig(MeasurementRunnerConfig):
    """MeasurementRunnerConfig plus: detector (required), anomalies_storage, and action_delay
    (the original agent's name for the interval; when given it sets the interval), and
    measurement_runner (the 2.0 shape: the measurement options given as a !MeasurementRunner)."""
    detector: AnomalyDetector = None  # required (checked in __post_init__)
    anomalies_storage: Storage = field(default_factory=LogStorage)
    action_delay: Optional[Numeric(0, 3600)] = None
    measurement_runner: Optional[MeasurementRunner] = None

    def __post_init__(self):
        adopt_measurement_runner(self, self.measurement_runner)
        super().__post_init__()
        if self.detector is None:
            raise ValueError('detector is required (for example detector: !NOPAnomalyDetector)')
        if self.action_delay is not None:
            self.interval = self.action_delay


@flat_or_config(DetectionRunnerConfig)
class DetectionRunner(MeasurementRunner):
    """Each iteration: measure, call detector.detect(platform, tasks_data), store anomalies."""

    def __init__(self, config=None, **flat):
        super().__init__(config, **flat)
        self._last_anomaly = None

    def _storages(self):
        return super()._storages() + [('anomalies_storage', self.config.anomalies_storage)]

    def _iterate_body(self, platform: Platform, tasks_data: TasksData) -> List[Metric]:
        started = time.monotonic()
        answer = call_algorithm(self, 'detector', 'detect', 2, platform, tasks_data)
        anomalies, metrics = answer if answer is not None else ([], [])
        if anomalies:
            self._last_anomaly = platform.timestamp
        make = Metric.create_metric_with_metadata
        metrics.append(make(MetricName.ANOMALY_COUNT, len(anomalies), self.common_labels))
        metrics.append(make(MetricName.DETECT_DURATION, time.monotonic() - started,
                            self.common_labels))
        if self._last_anomaly is not None:
            metrics.append(make(MetricName.ANOMALY_LAST_OCCURRENCE, self._last_anomaly,
                                self.common_labels))
        self.store(self.config.anomalies_storage, metrics, 'anomalies_storage')
        return []
