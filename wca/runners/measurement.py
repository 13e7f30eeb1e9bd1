"""MeasurementRunner: discover -> measure -> store, every interval.

DetectionRunner and AllocationRunner extend it through one hook, `_iterate_body`, which gets
the platform and tasks data of the iteration and returns extra metrics for metrics_storage.
"""
import gc
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

from wca import __version__, fsutil, hwmem, procfs, sdnotify, wss
from wca.cgroups.layout import CgroupLayout, CgroupVanished
from wca.cgroups.measure import CgroupSourceFactory
from wca.detectors import TaskData, TasksData
from wca.exposition import sanitize_label_name
from wca.labels import DROP_REASONS, LabelGenerators, TaskLabeller
from wca.labels import TaskLabelRegexGenerator  # noqa: F401 (the original's import path)
from wca.logger import counter as log_counter
from wca.metrics import Metric, MetricName, export_metrics_from_measurements
from wca.nodes.base import Task
from wca.perf import setup as perf_setup
from wca.platforms import Platform, PlatformCollector, hostname
from wca.pressure import PressureSource
from wca.resctrl import rdt
from wca.resctrl.info import ResctrlUnavailable
from wca.resctrl.monitoring import RDTControlStatus
from wca.runners.base import Runner, StopRequest
# MeasurementRunnerConfig stays importable from here, as the original agent had it.
from wca.runners.config import MeasurementRunnerConfig, flat_or_config
from wca.runners.tasks import TaskTracker
from wca.runqueue import RunqueueSourceFactory
from wca.sched import SchedSourceFactory
from wca.security import CLEAR_REFS, DMI_TABLES, PERF_EVENT_PARANOID, SYS_PTRACE, Privilege
from wca.sources import PlatformSource, TaskSourceFactory
from wca.storage.base import Storage

log = logging.getLogger(__name__)
PHASES = ('discovery', 'platform', 'tasks', 'algorithm', 'storage')  # wca_duration_seconds{function}
# What wca_iteration_errors_total{phase} counts: a step that raised where its owner should have
# caught it (a bug, or a plugin); it costs that step's output, the rest of the iteration is stored.
# (Discovery failures are the node's: wca_node_errors_total.)
GUARDED = ('platform', 'tasks', 'algorithm', 'actuation', 'self')


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
        self._stop = StopRequest()
        self._errors = {}  # type: Dict[str, int]  counters shared with the sources
        self._tasks = None  # type: Optional[TaskTracker]
        self._platform_sources = []  # type: List[PlatformSource]
        self._iterations = 0
        self._platform = None  # type: Optional[PlatformCollector]
        self._rdt = None  # type: Optional[rdt.RDT]
        self._perf = [], []  # type: Tuple[List[TaskSourceFactory], List[PlatformSource]]
        self._layout = None  # type: Optional[CgroupLayout]
        self._failing = {}  # type: Dict[str, str]  what is failing now, to log changes only
        self._stores = {}  # type: Dict[int, list]  storage id -> [storage, roles, metrics]
        self.common_labels = {}  # type: Dict[str, str]
        self._label_generators = None  # type: Optional[LabelGenerators]
        self._labeller = None  # type: Optional[TaskLabeller]
        self._source_failed = set()  # type: set  source classes whose failure was logged
        self._hw_memory = {}  # type: dict  DIMM metrics, read once (gather_hw_mm_topology)
        # seconds of each phase of the last iteration; storage: of the one before (0 at first)
        self._phases = dict.fromkeys(PHASES, 0.0)  # type: Dict[str, float]

    # --- lifecycle -----------------------------------------------------------------------

    def stop(self):
        """Asks the loop to end after the current iteration (signal handlers call this)."""
        self._stop.set()

    def setup(self):
        """Work done once: cgroup layout, platform topology, common labels, sources."""
        if self._platform is not None:
            return
        c = self.config
        self._hw_memory = hwmem.collect(c.gather_hw_mm_topology)
        if c.task_label_generators:
            self._label_generators = LabelGenerators(c.task_label_generators)
        self._layout = c.cgroup_layout or CgroupLayout.detect(
            os.path.join(c.proc_root, 'self/mounts'))
        self._rdt = rdt.start(c.rdt_enabled, c.resctrl, self._layout, self._errors,
                              c.rdt_groups_file, c.proc_root)
        self._platform = PlatformCollector(c.proc_root, c.sys_root, self._errors)
        self.common_labels = {'host': hostname()}
        for key, value in (c.extra_labels or {}).items():
            self.common_labels[sanitize_label_name(key)] = str(value)
        self._information_labels = dict(self.common_labels, wca_version=__version__,
                                        **self._platform.information_labels())
        self._perf = perf_setup.create(c.event_names, c.uncore_event_names, c.perf_aggregate_cpus,
                                       c.enable_derived_metrics, self._layout,
                                       self._platform.topology, c.proc_root, c.sys_root)
        self._labeller = TaskLabeller(self.common_labels, self._label_generators,
                                      lambda reason: self.count_error('labels:' + reason))
        self._tasks = TaskTracker(self._task_source_factories(), self._task_labels,
                                  self.count_error, self._cgroup_identity)
        self._platform_sources = self._platform_source_list()
        self._start_storages()
        log.info('wca %s: %d CPUs, %d NUMA nodes; cgroup v1 controllers: %s; cgroup2: %s',
                 __version__, self._platform.topology.cpus, len(self._platform.topology.node_cpus),
                 ', '.join(sorted(self._layout.v1)) or 'none', self._layout.unified or 'none')

    def _task_source_factories(self) -> List[TaskSourceFactory]:
        """What is measured per task, by the configured features (opened per task)."""
        factories = [CgroupSourceFactory(self._layout, self._errors, self.config.pressure)
                     ]  # type: List[TaskSourceFactory]
        if self._rdt is not None and self._rdt.monitoring is not None:
            factories.append(self._rdt.monitoring)
        factories.extend(self._perf[0])
        c = self.config
        if c.sched is not False:
            factories.append(SchedSourceFactory(procfs.compile_option('sched', c.sched),
                                                self._layout, c.proc_root, self._errors))
        if c.runqueue_delay:
            factories.append(RunqueueSourceFactory(self._layout, c.proc_root, self._errors))
        if c.wss_reset_cycles is not None:  # after RDT: it reads task_mem_bandwidth_bytes
            factories.append(wss.WssSourceFactory(
                self._layout, c.wss_reset_cycles, c.wss_stable_cycles, c.wss_membw_threshold,
                c.proc_root, self._errors))
        return factories

    def _platform_source_list(self) -> List[PlatformSource]:
        """What is measured for the node beyond PlatformCollector, by the configured features."""
        sources = []  # type: List[PlatformSource]
        if self.config.pressure:
            sources.append(PressureSource(self.config.proc_root, self._errors))
        if self._rdt is not None:
            sources.append(self._rdt.monitoring.status() if self._rdt.monitoring is not None
                           else RDTControlStatus(self._rdt.record, self._rdt.repairs))
        sources.extend(self._perf[1])
        c = self.config
        sources.extend(procfs.platform_sources(c.vmstat, c.zoneinfo, c.proc_root, c.sys_root,
                                               self._errors))
        if self._hw_memory:
            sources.append(hwmem.HardwareTopologySource(self._hw_memory))
        return sources

    def close(self):
        """Releases every task's and the platform's sources, and the storages' resources."""
        self._stop.close()
        if self._tasks is not None:
            self._tasks.close()
            self._tasks = None
        for source in self._platform_sources:
            try:
                source.close()
            except Exception:
                log.exception('closing %s failed', type(source).__name__)
        self._platform_sources = []
        for role, storage in self._distinct_storages():
            close = getattr(storage, 'close', None)
            if callable(close):
                try:
                    close()
                except Exception as e:
                    log.error('%s (%s): closing failed: %s', role, type(storage).__name__, e)

    def _distinct_storages(self) -> List[Tuple[str, Storage]]:
        """Each storage object once (YAML anchors share one between roles), named by its roles."""
        distinct = {}  # type: Dict[int, Tuple[List[str], Storage]]
        for role, storage in self._storages():
            distinct.setdefault(id(storage), ([], storage))[0].append(role)
        return [(' and '.join(roles), storage) for roles, storage in distinct.values()]

    def _start_storages(self):
        """Lets storages that serve or connect (the /metrics endpoint, Kafka) start before the
        first iteration, so a port in use is said at start; a failure is logged and the
        storage tries again when it stores."""
        for role, storage in self._distinct_storages():
            start = getattr(storage, 'start', None)
            if callable(start):
                try:
                    start()
                except Exception as e:
                    self.report_failure(role, '%s (%s) cannot start: %s' % (
                        role, type(storage).__name__, e))

    def run(self) -> int:
        try:
            self.setup()
        except (ResctrlUnavailable, hwmem.HardwareTopologyUnavailable) as e:
            # required and absent: before the loop, not a traceback
            log.error('%s', e)
            return 1
        sdnotify.notify('READY=1')
        interval = self.config.interval
        try:
            while not self._stop.requested:
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
                self._stop.wait(left)
                return
            if self._stop.wait(min(left, period)):
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
        """Each phase is guarded: whatever fails costs only that phase's output (counted in
        wca_iteration_errors_total{phase}); what was measured is always stored."""
        self.setup()
        started = time.monotonic()
        self._iterations += 1
        tasks = self._discover()
        discovered = time.monotonic()
        platform = self._collect_platform()
        platform_done = time.monotonic()
        tasks_data, task_metrics = self.guarded('tasks', self._measure, tasks, platform.timestamp,
                                                default=({}, []))
        self._collect(platform.measurements, after_tasks=True)
        metrics = self.guarded('platform', export_metrics_from_measurements,
                               platform.measurements, self.common_labels, default=[])
        metrics.extend(task_metrics)
        measured = time.monotonic()
        metrics.extend(self.guarded('algorithm', self._iterate_body, platform, tasks_data,
                                    default=[]))
        phases = self._phases  # wca_duration_seconds{function}; storage: the previous store
        phases['discovery'], phases['platform'] = discovered - started, platform_done - discovered
        phases['tasks'], phases['algorithm'] = measured - platform_done, time.monotonic() - measured
        metrics.extend(self.guarded('self', self._internal_metrics, len(tasks_data),
                                    time.monotonic() - started, default=[]))
        storing = time.monotonic()
        self.store(self.config.metrics_storage, metrics, 'metrics_storage')
        self._flush()
        phases['storage'] = time.monotonic() - storing
        return metrics

    def guarded(self, phase: str, function, *args, default=None):
        """function(*args), or `default` when it raises: the failure is counted in
        wca_iteration_errors_total{phase}, logged with its traceback when it starts or changes,
        and the iteration goes on to store what was measured."""
        try:
            result = function(*args)
        except Exception as e:
            self.count_error('phase:' + phase)
            message = '%s failed: %s: %s; its output is left out of this iteration' % (
                phase, type(e).__name__, e)
            if self._failing.get('phase:' + phase) != message:
                self._failing['phase:' + phase] = message
                log.exception('%s', message)
            return default
        self.report_recovery('phase:' + phase)
        return result

    def _collect_platform(self) -> Platform:
        """The platform and its sources' measurements; a collector that raises leaves a
        Platform of the topology alone (its measurements left out, counted)."""
        platform = self.guarded('platform', self._platform.collect,
                                self._rdt.information if self._rdt else None)
        if platform is None:
            t = self._platform.topology
            platform = Platform(
                sockets=t.sockets, cores=t.cores, cpus=t.cpus, numa_nodes=len(t.node_cpus),
                cpu_model=t.cpu_model, topology=t.topology, node_cpus=t.node_cpus,
                node_distances=t.node_distances, timestamp=time.time(),
                rdt_information=self._rdt.information if self._rdt else None, measurements={},
                swap_enabled=False)
        self._collect(platform.measurements, after_tasks=False)
        return platform

    def _collect(self, measurements, after_tasks: bool):
        """The platform sources' values: those that report on what the tasks phase opens (the
        agent's perf descriptors) after it, so the iteration's figures are its own."""
        for source in self._platform_sources:
            if bool(getattr(source, 'after_tasks', False)) is after_tasks:
                self._measure_source(source.collect, measurements, 'platform', source)

    def _measure_source(self, method, measurements, phase: str, source) -> bool:
        """One source's measure/collect; a source that raises (a bug: sources handle their own
        failures) loses its values only: counted in wca_measurement_errors_total and
        wca_iteration_errors_total{phase}, logged once per source class."""
        try:
            method(measurements)
            return True
        except CgroupVanished:
            raise
        except Exception:
            self.count_error('measurement')
            self.count_error('phase:' + phase)
            name = type(source).__name__
            if name not in self._source_failed:
                self._source_failed.add(name)
                log.exception('%s failed; its values are left out (said once for %s, counted in '
                              'wca_measurement_errors_total)', name, name)
            return False

    def _iterate_body(self, platform: Platform, tasks_data: TasksData) -> List[Metric]:
        """Subclasses run their algorithm here; returns extra metrics for metrics_storage."""
        return []

    def _discover(self) -> List[Task]:
        try:
            tasks = self.config.node.get_tasks()
            if not isinstance(tasks, (list, tuple)) or \
                    not all(isinstance(task, Task) for task in tasks):
                raise TypeError('get_tasks() must return a list of wca.nodes.Task, got %s' % (
                    _kinds(tasks),))
            self.report_recovery('node')
            return list(tasks)
        except Exception as e:  # the node is an outside system (kubelet, Mesos, a plugin)
            self.count_error('node')
            self.report_failure('node', 'cannot discover tasks with %s: %s' % (
                type(self.config.node).__name__, e))
            return []

    def _task_labels(self, task: Task) -> Dict[str, str]:
        """The task's label set, worked out once (wca.labels.TaskLabeller: the agent's labels
        win over the task's)."""
        return self._labeller.labels(task)

    def _cgroup_identity(self, task: Task):
        """(device, inode) of the task's cgroup directory in the first hierarchy that has it:
        a cgroup removed and made again under the same name has another."""
        for directory in self._layout.directories(task.cgroup_path):
            try:
                st = os.stat(directory)
            except OSError:
                continue
            return st.st_dev, st.st_ino
        return None

    def _measure(self, tasks: List[Task], now: float) -> Tuple[TasksData, List[Metric]]:
        tracked = self._tasks.sync(tasks)
        tasks_data = {}
        metrics = []
        vanished = []
        for task_id, state in tracked.items():
            measurements = {}
            try:
                for source in state.sources:
                    self._measure_source(source.measure, measurements, 'tasks', source)
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
            # Algorithms get copies: what they change must not leak into the node's tasks. Their
            # labels are the ones the task's metrics carry (the agent's win over the task's).
            tasks_data[task_id] = TaskData(
                name=task.name, task_id=task_id, cgroup_path=task.cgroup_path,
                subcgroups_paths=list(task.subcgroups_paths), labels=dict(state.labels),
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
        for source in self._platform_sources:
            files.extend(getattr(source, 'files', ()))
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
        ]
        for reason in DROP_REASONS:
            metrics.append(make(MetricName.WCA_LABELS_DROPPED, errors.get('labels:' + reason, 0),
                                dict(labels, reason=reason)))
        for phase in GUARDED:
            metrics.append(make(MetricName.WCA_ITERATION_ERRORS, errors.get('phase:' + phase, 0),
                                dict(labels, phase=phase)))
        metrics.extend(self._component_metrics('node', self.config.node, labels))
        # Failures the node raised (a plugin node); built-in nodes count their own by reason.
        metrics.append(make(MetricName.WCA_NODE_ERRORS, errors.get('node', 0),
                            dict(labels, reason='exception')))
        for phase, seconds in self._phases.items():
            metrics.append(make(MetricName.WCA_DURATION_SECONDS, seconds, dict(labels, function=phase)))
        for role in ('detector', 'allocator'):
            if getattr(self.config, role, None) is not None:
                metrics.append(make(MetricName.WCA_ALGORITHM_ERRORS, errors.get(role, 0),
                                    dict(labels, algorithm=role)))
        rss = _own_rss(self.config.proc_root)
        if rss is not None:
            metrics.append(make(MetricName.WCA_MEM_USAGE_BYTES, rss, labels))
        for roles, storage in self._distinct_storages():
            metrics.extend(self._component_metrics(roles, storage, labels))
        for role, storage in self._storages():
            role_labels = dict(labels, storage=role)
            metrics.append(make(MetricName.WCA_STORAGE_ERRORS,
                                errors.get('storage:' + role, 0), role_labels))
            dropped = getattr(storage, 'dropped_count', None)
            if callable(dropped):
                metrics.append(make(MetricName.WCA_METRICS_DROPPED, dropped(), role_labels))
        return metrics

    def _component_metrics(self, role: str, component, labels) -> List[Metric]:
        """What a node or storage reports of itself through `metrics(labels)` (its failures by
        reason, queue sizes); a component without that method reports nothing."""
        own = getattr(component, 'metrics', None)
        if not callable(own):
            return []
        try:
            reported = list(own(labels))
            if not all(isinstance(m, Metric) for m in reported):
                raise TypeError('metrics() must return wca.metrics.Metric objects')
        except Exception as e:  # a plugin's method: anything may come out of it
            self.report_failure(role + ':metrics', '%s (%s): metrics() failed: %s: %s' % (
                role, type(component).__name__, type(e).__name__, e))
            return []
        self.report_recovery(role + ':metrics')
        return reported

    def required_privileges(self) -> List[Privilege]:
        """What the configured features need beyond reading files (see wca.security)."""
        c = self.config
        perf = [PERF_EVENT_PARANOID] if c.event_names or c.uncore_event_names else []
        memory = []  # type: List[Privilege]
        if c.wss_reset_cycles is not None:  # other users' smaps; their clear_refs when resetting
            memory.append(SYS_PTRACE)
            if c.wss_reset_cycles or c.wss_stable_cycles > 0:
                memory.append(CLEAR_REFS)
        if c.gather_hw_mm_topology:
            memory.append(DMI_TABLES)
        if rdt.wanted(c.rdt_enabled, c.resctrl, os.path.join(c.proc_root, 'self/mounts')):
            return rdt.privileges() + perf + memory
        return perf + memory

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
                    ' and '.join(roles), type(storage).__name__, len(metrics), e), cause(e))

    def count_error(self, kind):
        self._errors[kind] = self._errors.get(kind, 0) + 1

    def report_failure(self, key, message, why=None):
        """Logs a failure when it starts or when `why` (default: the message) changes, not
        every iteration."""
        why = message if why is None else why
        if self._failing.get(key) != why:
            self._failing[key] = why
            log.error('%s', message)

    def report_recovery(self, key):
        if self._failing.pop(key, None) is not None:
            log.info('%s works again', key)


def cause(error: Exception):
    """What makes two failures the same one: the exception's type and, for an OSError, its
    errno; not its text, which may name a temporary file or a count that changes each time."""
    if isinstance(error, OSError) and error.errno is not None:
        return type(error).__name__, error.errno
    return type(error).__name__, str(error)


def _kinds(tasks) -> str:
    if isinstance(tasks, (list, tuple)):
        return 'a list holding %s' % ', '.join(sorted({type(t).__name__ for t in tasks}))
    return type(tasks).__name__


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
