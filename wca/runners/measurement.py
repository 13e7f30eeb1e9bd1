"""MeasurementRunner: discover -> measure -> store, every interval.

DetectionRunner and AllocationRunner extend it through one hook, `_iterate_body`, which gets
the platform and tasks data of the iteration and returns extra metrics for metrics_storage.
"""
import gc
import inspect
import logging
import os
import threading
import time
from typing import Dict, List, Optional, Tuple

from dataclasses import dataclass, field, fields, MISSING

from wca import __version__, fsutil, sdnotify
from wca.cgroups.layout import CgroupLayout, CgroupVanished
from wca.cgroups.measure import CgroupSourceFactory
from wca.config import Numeric, Path
from wca.detectors import TaskData, TasksData
from wca.exposition import sanitize_label_name
from wca.logger import counter as log_counter
from wca.metrics import Metric, MetricName, export_metrics_from_measurements
from wca.nodes.base import Node, Task
from wca.platforms import Platform, PlatformCollector, hostname
from wca.runners.base import Runner
from wca.runners.tasks import TaskTracker
from wca.security import Privilege
from wca.sources import PlatformSource, TaskSourceFactory
from wca.storage.base import Storage
from wca.storage.log import LogStorage

log = logging.getLogger(__name__)


@dataclass
class MeasurementRunnerConfig:
    """Arguments of MeasurementRunner (given flat, or as `config: !MeasurementRunnerConfig`).

    node: task discovery (required).
    metrics_storage: where metrics go (default: Prometheus text on stderr).
    interval: seconds between iteration starts.
    extra_labels: labels added to every metric (for example the node's IP).
    rdt_enabled, event_names, enable_derived_metrics: RDT and perf counters (not in this
      version: only their off values are accepted).
    iterations: stop after this many iterations (default: run until SIGTERM/SIGINT).
    proc_root, sys_root, cgroup_layout: where the kernel interfaces are (tests point these at
      fixture trees); the cgroup layout is detected from /proc/self/mounts by default.
    """
    node: Node = None  # required: checked in __post_init__, so a flat runner can take config
    metrics_storage: Storage = field(default_factory=LogStorage)
    interval: Numeric(0, 3600) = 1.0
    extra_labels: Optional[Dict[str, str]] = None
    rdt_enabled: Optional[bool] = None
    event_names: Optional[List[str]] = None
    enable_derived_metrics: bool = False
    iterations: Optional[Numeric(1, None)] = None
    proc_root: Path(absolute=True) = '/proc'
    sys_root: Path(absolute=True) = '/sys'
    cgroup_layout: Optional[CgroupLayout] = None

    def __post_init__(self):
        if self.node is None:
            raise ValueError('node is required (for example node: !CgroupDirectoryNode)')
        if self.rdt_enabled:
            raise ValueError('rdt_enabled: RDT (resctrl) metrics are not in this version of wca;'
                             ' leave rdt_enabled out or set it to false')
        if self.event_names:
            raise ValueError('event_names: perf counters are not in this version of wca; '
                             'leave event_names out')
        if self.enable_derived_metrics:
            raise ValueError('enable_derived_metrics needs perf counters, which are not in this '
                             'version of wca')


def adopt_measurement_runner(config: MeasurementRunnerConfig, inner) -> None:
    """The 2.0 composition shape: `measurement_runner: !MeasurementRunner` inside a detection or
    allocation runner supplies the measurement options; each may be given there or here, not
    in both places."""
    if inner is None:
        return
    for f in fields(MeasurementRunnerConfig):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        mine, theirs = getattr(config, f.name), getattr(inner.config, f.name)
        if theirs == default or theirs is mine:
            continue
        if mine != default:
            raise ValueError('%s: given both here and in measurement_runner; give it once'
                             % f.name)
        setattr(config, f.name, theirs)


def flat_or_config(config_class):
    """A class decorator: the runner takes `config: !XConfig` or XConfig's fields flat.

    The synthesized __signature__ lets the config loader check flat keys against the config
    class's annotations, as it does for any component.
    """
    def decorate(cls):
        params = [inspect.Parameter('config', inspect.Parameter.KEYWORD_ONLY, default=None,
                                    annotation=Optional[config_class])]
        for f in fields(config_class):
            if f.init:
                default = f.default if f.default is not MISSING else None
                params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=default, annotation=f.type))
        cls.__signature__ = inspect.Signature(params)
        cls.CONFIG_CLASS = config_class
        return cls
    return decorate


@flat_or_config(MeasurementRunnerConfig)
class MeasurementRunner(Runner):
    """Measures the platform and every task each interval and stores the metrics."""

    def __init__(self, config=None, **flat):
        if config is not None and flat:
            raise ValueError('give either config: !%s or its keys directly (%s), not both' % (
                self.CONFIG_CLASS.__name__, ', '.join(sorted(flat))))
        if config is None:
            config = self.CONFIG_CLASS(**flat)
        elif not isinstance(config, self.CONFIG_CLASS):
            raise ValueError('config must be !%s' % self.CONFIG_CLASS.__name__)
        self.config = config
        self._stop_event = threading.Event()
        self._errors = {}  # type: Dict[str, int]  counters shared with the sources
        self._tasks = None  # type: Optional[TaskTracker]
        self._platform_sources = []  # type: List[PlatformSource]
        self._iterations = 0
        self._platform = None  # type: Optional[PlatformCollector]
        self._layout = None  # type: Optional[CgroupLayout]
        self._failing = {}  # type: Dict[str, str]  what is failing now, to log changes only
        self._stores = {}  # type: Dict[int, list]  storage id -> [storage, roles, metrics]
        self.common_labels = {}  # type: Dict[str, str]

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self):
        """Asks the loop to end after the current iteration (signal handlers call this)."""
        self._stop_event.set()

    def setup(self):
        """Work done once: cgroup layout, platform topology, common labels, sources."""
        if self._platform is not None:
            return
        c = self.config
        self._layout = c.cgroup_layout or CgroupLayout.detect(
            os.path.join(c.proc_root, 'self/mounts'))
        self._platform = PlatformCollector(c.proc_root, c.sys_root, self._errors)
        self.common_labels = {'host': hostname()}
        for key, value in (c.extra_labels or {}).items():
            self.common_labels[sanitize_label_name(key)] = str(value)
        self._information_labels = dict(self.common_labels, wca_version=__version__,
                                        **self._platform.information_labels())
        self._tasks = TaskTracker(self._task_source_factories(), self._task_labels,
                                  self.count_error)
        self._platform_sources = self._platform_source_list()
        log.info('wca %s: %d CPUs, %d NUMA nodes; cgroup v1 controllers: %s; cgroup2: %s',
                 __version__, self._platform.topology.cpus, len(self._platform.topology.node_cpus),
                 ', '.join(sorted(self._layout.v1)) or 'none', self._layout.unified or 'none')

    def _task_source_factories(self) -> List[TaskSourceFactory]:
        """What is measured per task, by the configured features (opened per task)."""
        return [CgroupSourceFactory(self._layout, self._errors)]

    def _platform_source_list(self) -> List[PlatformSource]:
        """What is measured for the node beyond PlatformCollector, by the configured features."""
        return []

    def close(self):
        """Releases every task's and the platform's sources, and the storages' resources."""
        if self._tasks is not None:
            self._tasks.close()
            self._tasks = None
        for source in self._platform_sources:
            try:
                source.close()
            except Exception:
                log.exception('closing %s failed', type(source).__name__)
        self._platform_sources = []
        for role, storage in self._storages():
            close = getattr(storage, 'close', None)
            if callable(close):
                try:
                    close()
                except Exception as e:
                    log.error('%s (%s): closing failed: %s', role, type(storage).__name__, e)

    def run(self) -> int:
        self.setup()
        sdnotify.notify('READY=1')
        interval = self.config.interval
        try:
            while not self._stop_event.is_set():
                started = time.monotonic()
                try:
                    self.iterate()
                except Exception:  # a bug, not bad input: keep the agent up, say where it was
                    log.exception('iteration %d failed; the next one goes on', self._iterations)
                sdnotify.notify('WATCHDOG=1')
                if self.config.iterations and self._iterations >= self.config.iterations:
                    break
                delay = started + interval - time.monotonic()
                if delay < 0 < interval:
                    log.debug('iteration took %.3fs, longer than the interval', interval - delay)
                self._wait(max(0.0, delay))
        finally:
            sdnotify.notify('STOPPING=1')
            self.close()
        return 0

    def _wait(self, seconds: float):
        """Waits for the next iteration or a stop, pinging systemd's watchdog meanwhile: the
        interval may be longer than WatchdogSec."""
        period = sdnotify.watchdog_period()
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or period is None:
                self._stop_event.wait(max(0.0, left))
                return
            if self._stop_event.wait(min(left, period)):
                return
            sdnotify.notify('WATCHDOG=1')

    # --- one iteration -------------------------------------------------------------------

    def iterate(self) -> List[Metric]:
        """One iteration; returns what was handed to metrics_storage.

        The cyclic garbage collector is paused meanwhile: the iteration makes some 15 objects
        per task that stay alive until the store and then are freed by reference counting, so
        collections during it would only rescan them (a few percent of the iteration at 1000
        tasks). Cycles made meanwhile are collected after it, as usual.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._iterate()
        finally:
            if collecting:
                gc.enable()

    def _iterate(self) -> List[Metric]:
        self.setup()
        started = time.monotonic()
        self._iterations += 1
        tasks = self._discover()
        platform = self._platform.collect()
        for source in self._platform_sources:
            source.collect(platform.measurements)
        tasks_data, task_metrics = self._measure(tasks, platform.timestamp)
        metrics = export_metrics_from_measurements(platform.measurements, self.common_labels)
        metrics.extend(task_metrics)
        metrics.extend(self._iterate_body(platform, tasks_data))
        metrics.extend(self._internal_metrics(len(tasks_data), time.monotonic() - started))
        self.store(self.config.metrics_storage, metrics, 'metrics_storage')
        self._flush()
        return metrics

    def _iterate_body(self, platform: Platform, tasks_data: TasksData) -> List[Metric]:
        """Subclasses run their algorithm here; returns extra metrics for metrics_storage."""
        return []

    def _discover(self) -> List[Task]:
        try:
            tasks = self.config.node.get_tasks()
            self.report_recovery('node')
            return tasks
        except Exception as e:  # the node is an outside system (kubelet, Mesos, a plugin)
            self.count_error('node')
            self.report_failure('node', 'cannot discover tasks with %s: %s' % (
                type(self.config.node).__name__, e))
            return []

    def _task_labels(self, task: Task) -> Dict[str, str]:
        labels = dict(self.common_labels)
        for key, value in task.labels.items():
            labels[sanitize_label_name(key)] = str(value)
        labels['task_id'] = task.task_id
        labels['task_name'] = task.name
        return labels

    def _measure(self, tasks: List[Task], now: float) -> Tuple[TasksData, List[Metric]]:
        tracked = self._tasks.sync(tasks)
        tasks_data = {}
        metrics = []
        vanished = []
        for task_id, state in tracked.items():
            measurements = {}
            try:
                for source in state.sources:
                    source.measure(measurements)
            except CgroupVanished as e:
                vanished.append(task_id)
                log.info('task %s dropped from this iteration: %s', task_id, e)
                continue
            task = state.task
            measurements[MetricName.TASK_UP] = 1
            measurements[MetricName.TASK_LAST_SEEN] = now
            if task.subcgroups_paths:
                measurements[MetricName.TASK_SUBCONTAINERS] = len(task.subcgroups_paths)
            if task.resources:
                _requested(task.resources, measurements)
            # Algorithms get copies: what they change must not leak into the node's tasks.
            tasks_data[task_id] = TaskData(
                name=task.name, task_id=task_id, cgroup_path=task.cgroup_path,
                subcgroups_paths=list(task.subcgroups_paths), labels=dict(task.labels),
                resources=dict(task.resources), measurements=measurements)
            metrics.extend(export_metrics_from_measurements(measurements, state.labels))
        for task_id in vanished:
            self._tasks.drop(task_id)
        if vanished:
            self._errors['vanished'] = self._errors.get('vanished', 0) + len(vanished)
        return tasks_data, metrics

    def files(self) -> List[str]:
        """The files an iteration reads now (platform, agent's own statm, then each task's)."""
        self.setup()
        files = self._platform.files + [os.path.join(self.config.proc_root, 'self/statm')]
        for state in self._tasks.tracked.values():
            for source in state.sources:
                files.extend(getattr(source, 'files', ()))
        return files

    def task_labels(self) -> Dict[str, Dict[str, str]]:
        """Label sets of the tasks measured last (task id -> labels)."""
        return {task_id: state.labels for task_id, state in self._tasks.tracked.items()}

    def _internal_metrics(self, tasks_count: int, duration: float) -> List[Metric]:
        labels = self.common_labels
        make = Metric.create_metric_with_metadata
        errors = self._errors
        metrics = [
            make(MetricName.WCA_UP, 1, labels),
            make(MetricName.WCA_INFORMATION, 1, self._information_labels),
            make(MetricName.WCA_TASKS, tasks_count, labels),
            make(MetricName.WCA_TASKS_WAITING, self._tasks.waiting, labels),
            make(MetricName.WCA_DURATION_SECONDS, duration, labels),
            make(MetricName.WCA_ITERATIONS, self._iterations, labels),
            make(MetricName.WCA_WARNINGS, log_counter.warnings, labels),
            make(MetricName.WCA_ERRORS, log_counter.errors, labels),
            make(MetricName.WCA_TASKS_VANISHED, errors.get('vanished', 0), labels),
            make(MetricName.WCA_MEASUREMENT_ERRORS, errors.get('measurement', 0), labels),
            make(MetricName.WCA_NODE_ERRORS, errors.get('node', 0), labels),
        ]
        for role in ('detector', 'allocator'):
            if getattr(self.config, role, None) is not None:
                metrics.append(make(MetricName.WCA_ALGORITHM_ERRORS, errors.get(role, 0),
                                    dict(labels, algorithm=role)))
        rss = _own_rss(self.config.proc_root)
        if rss is not None:
            metrics.append(make(MetricName.WCA_MEM_USAGE_BYTES, rss, labels))
        for role, storage in self._storages():
            role_labels = dict(labels, storage=role)
            metrics.append(make(MetricName.WCA_STORAGE_ERRORS,
                                errors.get('storage:' + role, 0), role_labels))
            dropped = getattr(storage, 'dropped_count', None)
            if callable(dropped):
                metrics.append(make(MetricName.WCA_METRICS_DROPPED, dropped(), role_labels))
        return metrics

    def required_privileges(self) -> List[Privilege]:
        """What the configured features need beyond reading files (see wca.security)."""
        return []

    def _storages(self) -> List[Tuple[str, Storage]]:
        return [('metrics_storage', self.config.metrics_storage)]

    # --- helpers for subclasses ----------------------------------------------------------

    def store(self, storage: Storage, metrics: List[Metric], role: str):
        """Queues metrics for `storage`; the iteration ends with one store() call per storage,
        so a storage shared by several roles (YAML anchors) gets all their metrics at once."""
        pending = self._stores.get(id(storage))
        if pending is None:
            self._stores[id(storage)] = [storage, [role], list(metrics)]
        else:
            pending[1].append(role)
            pending[2].extend(metrics)

    def _flush(self):
        """Stores what the iteration queued; a failure is logged (when it starts or changes)
        and counted for each role of the storage, never raised."""
        stores, self._stores = self._stores, {}
        for storage, roles, metrics in stores.values():
            key = '+'.join(roles)
            try:
                storage.store(metrics)
                self.report_recovery(key)
            except Exception as e:
                for role in roles:
                    self.count_error('storage:' + role)
                self.report_failure(key, '%s (%s) failed to store %d metrics: %s' % (
                    ' and '.join(roles), type(storage).__name__, len(metrics), e))

    def count_error(self, kind):
        self._errors[kind] = self._errors.get(kind, 0) + 1

    def report_failure(self, key, message):
        """Logs a failure when it starts or changes, not every iteration."""
        if self._failing.get(key) != message:
            self._failing[key] = message
            log.error('%s', message)

    def report_recovery(self, key):
        if self._failing.pop(key, None) is not None:
            log.info('%s works again', key)


def _requested(resources, measurements):
    for key, name in (('cpus', MetricName.TASK_REQUESTED_CPUS),
                      ('mem', MetricName.TASK_REQUESTED_MEM_BYTES)):
        value = resources.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            measurements[name] = value


_PAGE = os.sysconf('SC_PAGE_SIZE')


def _own_rss(proc_root) -> Optional[int]:
    try:
        return int(fsutil.read_bytes(os.path.join(proc_root, 'self/statm')).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None
