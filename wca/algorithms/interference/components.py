"""InterferenceDetector (for a DetectionRunner) and InterferenceAllocator (for an
AllocationRunner): the options users set in the config, and the metrics they read. Both run the
same detection (wca.algorithms.interference.detection); the allocator then throttles the
best-effort antagonists (wca.algorithms.interference.throttle). docs/interference.md describes
every option and where its default comes from."""
import logging
from typing import Dict, List, Optional

from wca.algorithms.interference import classes
from wca.algorithms.interference.detection import Detection, Judged  # noqa: F401
from wca.algorithms.interference.signals import Signal
from wca.algorithms.interference.throttle import Throttles
from wca.allocators import Allocator
from wca.config import Numeric, Path
from wca.detectors import AnomalyDetector
from wca.metrics import Metric, MetricName

log = logging.getLogger(__name__)

DEFAULT_STATE_FILE = '/var/lib/wca/interference_baselines.json'


class InterferenceDetector(AnomalyDetector):
    """Finds victims (latency-critical tasks whose signal left their workload's baseline) and
    names their antagonists, as ContentionAnomaly; changes nothing."""

    def __init__(self,
                 signal: Signal = Signal.AUTO,
                 workload_label: str = 'app',
                 best_effort_label: str = 'type',
                 best_effort_value: str = 'best_efforts',
                 k_sigma: Numeric(0, 100) = 2.0,
                 min_cpu_usage: Numeric(0, 100000) = 0.25,
                 min_outliers: Numeric(1, 100000) = 3,
                 window: Numeric(0.001, 86400 * 7) = 300.0,
                 min_samples: Numeric(1, 10 ** 9) = 30,
                 antagonist_threshold: Numeric(-1, 1) = 0.35,
                 state_file: Optional[Path(absolute=True)] = DEFAULT_STATE_FILE,
                 state_save_period: Numeric(0, 86400) = 60.0,
                 min_threshold_margin: Numeric(0, 100) = 0.1,
                 min_stall_margin: Numeric(0, 1000) = 0.05):
        self.detection = Detection(
            signal=Signal(signal).value, workload_label=workload_label,
            best_effort_label=best_effort_label, best_effort_value=best_effort_value,
            k_sigma=float(k_sigma), min_cpu_usage=float(min_cpu_usage),
            min_outliers=int(min_outliers), window=float(window), min_samples=int(min_samples),
            antagonist_threshold=float(antagonist_threshold), state_file=state_file,
            min_threshold_margin=float(min_threshold_margin),
            min_stall_margin=float(min_stall_margin), state_save_period=float(state_save_period))

    def detect(self, platform, tasks_data):
        anomalies, _, judged = self.detection.detect(platform, tasks_data)
        return anomalies, task_metrics(judged, tasks_data) + self._own_metrics()

    def _own_metrics(self) -> List[Metric]:
        make = Metric.create_metric_with_metadata
        return [make(MetricName.INTERFERENCE_SIGNAL_MISSING, self.detection.signal_missing),
                make(MetricName.INTERFERENCE_STATE_ERRORS, self.detection.baselines.errors)]


class InterferenceAllocator(InterferenceDetector, Allocator):
    """The detection of InterferenceDetector, then the best-effort antagonists throttled: CPU
    quota cut to cpu_quota_floor CPUs at once, a level of `levels` given back per
    recovery_period seconds nobody names them (never before `hold` seconds), released at the
    top; max_releases_per_hour limits flapping; with RDT control, cache and memory bandwidth
    contention shrink the rdt_group first. dry_run: the metrics and log lines of what it would
    do, no allocations."""

    def __init__(self,
                 signal: Signal = Signal.AUTO,
                 workload_label: str = 'app',
                 best_effort_label: str = 'type',
                 best_effort_value: str = 'best_efforts',
                 k_sigma: Numeric(0, 100) = 2.0,
                 min_cpu_usage: Numeric(0, 100000) = 0.25,
                 min_outliers: Numeric(1, 100000) = 3,
                 window: Numeric(0.001, 86400 * 7) = 300.0,
                 min_samples: Numeric(1, 10 ** 9) = 30,
                 antagonist_threshold: Numeric(-1, 1) = 0.35,
                 state_file: Optional[Path(absolute=True)] = DEFAULT_STATE_FILE,
                 state_save_period: Numeric(0, 86400) = 60.0,
                 min_threshold_margin: Numeric(0, 100) = 0.1,
                 min_stall_margin: Numeric(0, 1000) = 0.05,
                 hold: Numeric(0, 86400) = 300.0,
                 recovery_period: Numeric(0, 86400) = 30.0,
                 levels: Numeric(1, 1000) = 20,
                 cpu_quota_floor: Numeric(0.001, 100000) = 0.1,
                 max_releases_per_hour: Numeric(0, 100000) = 4,
                 rdt_group: str = 'best_efforts',
                 dry_run: bool = False):
        super().__init__(signal, workload_label, best_effort_label, best_effort_value, k_sigma,
                         min_cpu_usage, min_outliers, window, min_samples, antagonist_threshold,
                         state_file, state_save_period, min_threshold_margin, min_stall_margin)
        self.throttles = Throttles(levels=int(levels), hold=float(hold),
                                   recovery_period=float(recovery_period),
                                   cpu_quota_floor=float(cpu_quota_floor),
                                   max_releases_per_hour=int(max_releases_per_hour),
                                   rdt_group=rdt_group, dry_run=dry_run)
        self.dry_run = dry_run

    def allocate(self, platform, tasks_data):
        anomalies, verdicts, judged = self.detection.detect(platform, tasks_data)
        named = {}
        for verdict in verdicts:
            for antagonist, score in verdict.antagonists:
                if antagonist in named or judged[antagonist].task_class != classes.BE:
                    continue  # an LC task is never throttled; the first victim's evidence
                named[antagonist] = (verdict.victim, '%s %.4g > threshold %.4g, correlation '
                                     '%.2f, resource %s' % (
                                         verdict.signal, verdict.value, verdict.threshold, score,
                                         verdict.resource.value), verdict.resource)
        allocations = self.throttles.update(platform.timestamp, named, tasks_data, platform)
        metrics = task_metrics(judged, tasks_data) + self._own_metrics()
        make = Metric.create_metric_with_metadata
        for task_id, j in sorted(judged.items()):
            if j.task_class != classes.BE:
                continue
            labels = task_labels(task_id, tasks_data[task_id])
            metrics.append(make(MetricName.INTERFERENCE_THROTTLE_LEVEL,
                                self.throttles.level(task_id), labels))
            state = self.throttles.states.get(task_id)
            if state is not None and state.cpu:
                metrics.append(make(MetricName.INTERFERENCE_THROTTLE_CPUS,
                                    self.throttles.cpus(state), labels))
        for action in ('throttle', 'step', 'release'):
            metrics.append(make(MetricName.INTERFERENCE_ACTIONS,
                                self.throttles.actions.get(action, 0), {'action': action}))
        return ({} if self.dry_run else allocations), anomalies, metrics


def task_labels(task_id: str, data) -> Dict[str, str]:
    labels = {str(k): str(v) for k, v in (data.labels or {}).items()}
    labels['task_id'] = task_id
    return labels


def task_metrics(judged: Dict[str, Judged], tasks_data) -> List[Metric]:
    """Per task with a signal: the signal, its baseline, threshold and verdict."""
    make = Metric.create_metric_with_metadata
    metrics = []
    for task_id, j in sorted(judged.items()):
        if j.signal is None:
            continue
        labels = task_labels(task_id, tasks_data[task_id])
        metrics.append(make(MetricName.INTERFERENCE_SIGNAL, j.value,
                            dict(labels, signal=j.signal)))
        metrics.append(make(MetricName.INTERFERENCE_CPU_USAGE, j.usage, labels))
        metrics.append(make(MetricName.INTERFERENCE_BASELINE_MEAN, j.mean, labels))
        metrics.append(make(MetricName.INTERFERENCE_BASELINE_STDDEV, j.stddev, labels))
        metrics.append(make(MetricName.INTERFERENCE_BASELINE_SAMPLES, j.samples, labels))
        if j.threshold is not None:
            metrics.append(make(MetricName.INTERFERENCE_THRESHOLD, j.threshold, labels))
            metrics.append(make(MetricName.INTERFERENCE_OUTLIER, int(j.outlier), labels))
        metrics.append(make(MetricName.INTERFERENCE_VICTIM, int(j.victim), labels))
    return metrics
