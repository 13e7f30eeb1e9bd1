"""Detection, after CPI2 (Zhang et al., EuroSys 2013), generalised to any victim signal.

Each iteration every task gives a sample (signals.Sample). For a task whose baseline holds at
least min_samples healthy samples:

- threshold = mean + max(k_sigma x stddev, margin floor): the floor keeps a quiet baseline (a
  standard deviation near zero, as CPU pressure of a task alone often has) from turning noise
  into outliers: at least min_threshold_margin x mean, and for the stall signals
  (cpu_pressure, runqueue_delay: seconds per second) at least min_stall_margin;
- outlier: signal > threshold while the task uses at least min_cpu_usage CPUs (for the stall
  signals: uses and waits for, since contention lowers what a victim gets to use);
- victim: a latency-critical task with min_outliers outliers within the last `window` seconds.

Healthy samples (learned into the baseline): those of a task that is not a victim, not an
outlier, and uses (or asks for) at least min_cpu_usage CPUs. Before its baseline is ready a task gets no
verdict, and every such sample is learned.

Antagonists of a victim: the other tasks whose cpusets overlap the victim's (a task whose
cpuset is not known, as under a DetectionRunner that does not read allocations, is taken to
share CPUs with everyone), ranked by CPI2's correlation over the victim's samples in the window:

    corr(V, A) = sum_t x_V(t) * u_A(t) / sum_t u_A(t)

with u_A(t) A's CPU usage in that sample and x_V(t) the victim's excess over its threshold in
units of the threshold's margin (threshold - mean), clipped to [-1, 1], so that the same
antagonist_threshold means the same for every signal: an antagonist that ran only while the
victim was over its threshold scores near 1, one that ran all along, as much before the
contention as during it, scores the mean of x (negative while the victim is mostly healthy).

The contended resource: cpus for cpu_pressure and runqueue_delay; for cpi, from the top
antagonist's evidence: cache when its LLC occupancy or cache misses per kilo-instruction rose
(mean over the victim's outlier samples above 1.2 x the mean over the others), memory bandwidth
when its memory bandwidth rose, unknown otherwise.
"""
import collections
import logging
from typing import Deque, Dict, List, NamedTuple, Optional, Set, Tuple  # noqa: F401

from wca import fsutil
from wca.algorithms.interference import classes, signals
from wca.algorithms.interference.baseline import Baselines
from wca.detectors import ContendedResource, ContentionAnomaly, TasksData
from wca.metrics import Metric, MetricName
from wca.platforms import Platform

log = logging.getLogger(__name__)

STALL_SIGNALS = (signals.CPU_PRESSURE, signals.RUNQUEUE_DELAY)
ROSE = 1.2  # evidence "rose": the mean while the victim suffered over this times the rest


class Point(NamedTuple):
    """A task's sample as judged: the history the correlation is computed over."""
    time: float
    usage: float
    excess: Optional[float]  # x(t): over the threshold, in margins, clipped to [-1, 1]
    outlier: bool
    llc: Optional[float]
    mpki: Optional[float]
    mbw: Optional[float]


class Verdict(NamedTuple):
    """A victim, its antagonists (best first, with their correlation) and the evidence."""
    victim: str
    signal: str
    value: float
    threshold: float
    resource: ContendedResource
    antagonists: List[Tuple[str, float]]


class Judged(NamedTuple):
    """One task this iteration: what the metrics and the allocator need."""
    task_class: str
    signal: Optional[str]
    value: Optional[float]
    usage: Optional[float]
    mean: Optional[float]
    stddev: Optional[float]
    samples: int
    threshold: Optional[float]
    outlier: bool
    victim: bool


class Detection:
    def __init__(self, signal: str, workload_label: str, best_effort_label: str,
                 best_effort_value: str, k_sigma: float, min_cpu_usage: float,
                 min_outliers: int, window: float, min_samples: int,
                 antagonist_threshold: float, state_file: Optional[str],
                 min_threshold_margin: float, min_stall_margin: float,
                 state_save_period: float):
        self.signal = signal
        self.workload_label = workload_label
        self.best_effort_label = best_effort_label
        self.best_effort_value = best_effort_value
        self.k_sigma = k_sigma
        self.min_cpu_usage = min_cpu_usage
        self.min_outliers = min_outliers
        self.window = window
        self.min_samples = min_samples
        self.antagonist_threshold = antagonist_threshold
        self.min_threshold_margin = min_threshold_margin
        self.min_stall_margin = min_stall_margin
        self.baselines = Baselines(state_file, state_save_period)
        self.deltas = signals.Deltas()
        self.history = {}  # type: Dict[str, Deque[Point]]
        self.victims = set()  # type: Set[str]
        self.signal_missing = 0  # task iterations without a victim signal
        self._missing_logged = set()  # type: Set[str]
        self._became_usable = False

    # --- one iteration --------------------------------------------------------------------

    def detect(self, platform: Platform, tasks_data: TasksData
               ) -> Tuple[List[ContentionAnomaly], List[Verdict], Dict[str, Judged]]:
        now = platform.timestamp
        judged = {}  # type: Dict[str, Judged]
        for task_id, data in sorted(tasks_data.items()):
            judged[task_id] = self._judge(task_id, data, platform, now)
        for gone in set(self.history) - set(tasks_data):
            del self.history[gone]
            self.victims.discard(gone)
            self._missing_logged.discard(gone)
        self.deltas.forget_others(tasks_data)
        verdicts = []
        anomalies = []
        for task_id, j in sorted(judged.items()):
            if not j.victim:
                continue
            verdict = self._verdict(task_id, j, tasks_data)
            verdicts.append(verdict)
            if verdict.antagonists:
                anomalies.append(ContentionAnomaly(
                    resource=verdict.resource, contended_task_id=task_id,
                    contending_task_ids=[a for a, _ in verdict.antagonists],
                    metrics=evidence_metrics(verdict)))
        self.baselines.save(now, force=self._became_usable)
        self._became_usable = False
        return anomalies, verdicts, judged

    def _judge(self, task_id: str, data, platform: Platform, now: float) -> Judged:
        labels = data.labels or {}
        task_class = classes.task_class(labels, self.best_effort_label, self.best_effort_value)
        sample = self.deltas.sample(task_id, now, data.measurements or {}, self.signal)
        if sample is None:
            return Judged(task_class, None, None, None, None, None, 0, None, False, False)
        history = self.history.setdefault(task_id, collections.deque())
        while history and history[0].time <= now - self.window:
            history.popleft()
        if sample.signal is None:
            self._missing(task_id)
            history.append(Point(now, sample.usage, None, False, sample.llc, sample.mpki,
                                 sample.mbw))
            return Judged(task_class, None, None, sample.usage, None, None, 0, None, False, False)
        key = (sample.signal, classes.workload(labels, data.name, self.workload_label),
               platform.cpu_model)
        baseline = self.baselines.get(key)
        ready = baseline.count >= self.min_samples
        busy = demand(sample) >= self.min_cpu_usage
        threshold = excess = None
        outlier = False
        if ready:
            margin = max(self.k_sigma * baseline.stddev, self._floor(sample.signal, baseline.mean))
            threshold = baseline.mean + margin
            excess = max(-1.0, min(1.0, (sample.value - threshold) / margin))
            outlier = busy and sample.value > threshold
        history.append(Point(now, sample.usage, excess, outlier, sample.llc, sample.mpki,
                             sample.mbw))
        outliers = sum(1 for p in history if p.outlier)
        victim = ready and task_class == classes.LC and outliers >= self.min_outliers
        self._victim_state(task_id, victim, sample, threshold, outliers)
        if busy and not victim and not outlier:
            baseline = self.baselines.add(key, sample.value)
            if baseline.count == self.min_samples:
                self._became_usable = True  # saved at once: a restart needs no relearning
        return Judged(task_class, sample.signal, sample.value, sample.usage, baseline.mean,
                      baseline.stddev, baseline.count, threshold, outlier, victim)

    def _floor(self, signal: str, mean: float) -> float:
        floor = self.min_threshold_margin * abs(mean)
        if signal in STALL_SIGNALS:
            floor = max(floor, self.min_stall_margin)
        return floor if floor > 0 else 1e-9

    def _victim_state(self, task_id, victim, sample, threshold, outliers):
        if victim and task_id not in self.victims:
            self.victims.add(task_id)
            log.warning('interference: task %s is a victim: %s %.4g over its threshold %.4g '
                        '(%d outliers in %gs)', task_id, sample.signal, sample.value, threshold,
                        outliers, self.window)
        elif not victim and task_id in self.victims:
            self.victims.discard(task_id)
            log.info('interference: task %s is no longer a victim (%d outliers in %gs)',
                     task_id, outliers, self.window)

    def _missing(self, task_id: str) -> None:
        self.signal_missing += 1
        if task_id not in self._missing_logged:
            self._missing_logged.add(task_id)
            log.warning('interference: no %s signal measured for task %s: it is not judged (cpi '
                        'needs perf event_names task_cycles and task_instructions, cpu_pressure '
                        'cgroup v2 with PSI, runqueue_delay the MeasurementRunner option '
                        'runqueue_delay: true)', self.signal, task_id)

    # --- antagonists ----------------------------------------------------------------------

    def _verdict(self, victim: str, j: Judged, tasks_data: TasksData) -> Verdict:
        points = [p for p in self.history.get(victim, ()) if p.excess is not None]
        cpus = cpuset(tasks_data[victim])
        ranked = []
        for other, history in self.history.items():
            if other == victim or other not in tasks_data:
                continue
            if not overlap(cpus, cpuset(tasks_data[other])):
                continue
            score = correlation(points, history)
            if score > self.antagonist_threshold:
                ranked.append((other, score))
        ranked.sort(key=lambda item: (-item[1], item[0]))
        resource = ContendedResource.UNKN
        if j.signal in STALL_SIGNALS:
            resource = ContendedResource.CPUS
        elif ranked:
            resource = evidence(points, self.history[ranked[0][0]])
        return Verdict(victim, j.signal, j.value, j.threshold, resource, ranked)


def demand(sample: signals.Sample) -> float:
    """The CPUs a task asked for: what it used, plus for the stall signals what it waited for
    (contention lowers a victim's usage: it must not fall under min_cpu_usage for that)."""
    if sample.signal in STALL_SIGNALS:
        return sample.usage + sample.value
    return sample.usage


def cpuset(data) -> Optional[Set[int]]:
    """The task's CPUs where its allocations were read (an AllocationRunner reads them), else
    None: unknown."""
    value = (data.allocations or {}).get('cpuset_cpus')
    if not isinstance(value, str):
        return None
    try:
        return fsutil.parse_cpu_list(value)
    except ValueError:
        return None


def overlap(a: Optional[Set[int]], b: Optional[Set[int]]) -> bool:
    return a is None or b is None or bool(a & b)


def correlation(victim: List[Point], other) -> float:
    """CPI2's correlation of another task's CPU usage with the victim's excess (see above)."""
    usage = {p.time: p.usage for p in other}
    weighted = total = 0.0
    for point in victim:
        u = usage.get(point.time, 0.0)
        weighted += point.excess * u
        total += u
    return weighted / total if total > 0 else 0.0


def evidence(victim: List[Point], other) -> ContendedResource:
    suffered = {p.time for p in victim if p.outlier}
    by_time = {p.time: p for p in other}

    def rose(field):
        during, rest = [], []
        for point in victim:
            sample = by_time.get(point.time)
            value = getattr(sample, field) if sample is not None else 0.0
            if value is None:
                continue
            (during if point.time in suffered else rest).append(value)
        if not during:
            return False
        before = sum(rest) / len(rest) if rest else 0.0
        return sum(during) / len(during) > ROSE * before

    if rose('llc') or rose('mpki'):
        return ContendedResource.LLC
    if rose('mbw'):
        return ContendedResource.MEMORY_BW
    return ContendedResource.UNKN


def evidence_metrics(verdict: Verdict) -> List[Metric]:
    """The context of an anomaly (labelled with its uuid by ContentionAnomaly)."""
    make = Metric.create_metric_with_metadata
    labels = {'contended_task_id': verdict.victim, 'signal': verdict.signal}
    metrics = [make(MetricName.INTERFERENCE_ANOMALY_SIGNAL, verdict.value, labels),
               make(MetricName.INTERFERENCE_ANOMALY_THRESHOLD, verdict.threshold, labels)]
    for antagonist, score in verdict.antagonists:
        metrics.append(make(MetricName.INTERFERENCE_ANTAGONIST_CORRELATION, score,
                            dict(labels, contending_task_id=antagonist)))
    return metrics
