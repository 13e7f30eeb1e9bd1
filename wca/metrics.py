"""Metric model and the metadata table (name -> type, help, label levels).

The names follow the original agent's where it had one, so dashboards and plugins keep working;
new names follow Prometheus conventions (counters end in _total). LEGACY_COUNTERS are the
original's counters without that suffix, which `promtool check metrics` lints (but does not
reject).
"""
from enum import Enum
from typing import Dict, List, Optional, Union

from dataclasses import dataclass, field

MetricValue = Union[float, int]
# A metric name -> a value, or -> {level value -> value} for per-CPU/per-NUMA-node metrics.
Measurements = Dict[str, Union[MetricValue, Dict[str, MetricValue]]]


class MetricType(str, Enum):
    GAUGE = 'gauge'  # can go up and down
    COUNTER = 'counter'  # only goes up (until a restart)

    def __repr__(self):
        return repr(self.value)


class MetricName(str, Enum):
    # cgroup based, per task
    TASK_CPU_USAGE_SECONDS = 'task_cpu_usage_seconds'
    TASK_CPU_PERIODS = 'task_cpu_periods_total'
    TASK_CPU_THROTTLED_PERIODS = 'task_cpu_throttled_periods_total'
    TASK_CPU_THROTTLED_SECONDS = 'task_cpu_throttled_seconds_total'
    TASK_MEM_USAGE_BYTES = 'task_mem_usage_bytes'
    TASK_MEM_MAX_USAGE_BYTES = 'task_mem_max_usage_bytes'
    TASK_MEM_LIMIT_BYTES = 'task_mem_limit_bytes'
    TASK_MEM_SOFT_LIMIT_BYTES = 'task_mem_soft_limit_bytes'
    TASK_MEM_PAGE_FAULTS = 'task_mem_page_faults'
    TASK_MEM_NUMA_PAGES = 'task_mem_numa_pages'
    # orchestrator / generic, per task
    TASK_REQUESTED_CPUS = 'task_requested_cpus'
    TASK_REQUESTED_MEM_BYTES = 'task_requested_mem_bytes'
    TASK_LAST_SEEN = 'task_last_seen'
    TASK_UP = 'task_up'
    TASK_SUBCONTAINERS = 'task_subcontainers'

    # platform, static
    PLATFORM_TOPOLOGY_CORES = 'platform_topology_cores'
    PLATFORM_TOPOLOGY_CPUS = 'platform_topology_cpus'
    PLATFORM_TOPOLOGY_SOCKETS = 'platform_topology_sockets'
    PLATFORM_NUMA_NODES = 'platform_numa_nodes'
    # platform, /proc and /sys based
    PLATFORM_CPU_USAGE = 'platform_cpu_usage'
    PLATFORM_MEM_USAGE_BYTES = 'platform_mem_usage_bytes'
    PLATFORM_MEM_TOTAL_BYTES = 'platform_mem_total_bytes'
    PLATFORM_SWAP_TOTAL_BYTES = 'platform_swap_total_bytes'
    PLATFORM_SWAP_USAGE_BYTES = 'platform_swap_usage_bytes'
    PLATFORM_MEM_NUMA_FREE_BYTES = 'platform_mem_numa_free_bytes'
    PLATFORM_MEM_NUMA_USED_BYTES = 'platform_mem_numa_used_bytes'
    PLATFORM_LAST_SEEN = 'platform_last_seen'

    # the agent itself
    WCA_UP = 'wca_up'
    WCA_INFORMATION = 'wca_information'
    WCA_TASKS = 'wca_tasks'
    WCA_TASKS_WAITING = 'wca_tasks_waiting'
    WCA_MEM_USAGE_BYTES = 'wca_mem_usage_bytes'
    WCA_DURATION_SECONDS = 'wca_duration_seconds'
    WCA_ITERATIONS = 'wca_iterations_total'
    WCA_WARNINGS = 'wca_warnings_total'
    WCA_ERRORS = 'wca_errors_total'
    WCA_TASKS_VANISHED = 'wca_tasks_vanished_total'
    WCA_MEASUREMENT_ERRORS = 'wca_measurement_errors_total'
    WCA_NODE_ERRORS = 'wca_node_errors_total'
    WCA_ALGORITHM_ERRORS = 'wca_algorithm_errors_total'
    WCA_STORAGE_ERRORS = 'wca_storage_errors_total'
    WCA_METRICS_DROPPED = 'wca_metrics_dropped_total'

    # detection and allocation
    ANOMALY = 'anomaly'
    ANOMALY_COUNT = 'anomaly_count'
    ANOMALY_LAST_OCCURRENCE = 'anomaly_last_occurrence'
    DETECT_DURATION = 'detect_duration'
    ALLOCATIONS_COUNT = 'allocations_count'
    ALLOCATIONS_ERRORS = 'allocations_errors'
    ALLOCATION_DURATION = 'allocation_duration'
    ALLOCATION_CPU_QUOTA = 'allocation_cpu_quota'
    ALLOCATION_CPU_SHARES = 'allocation_cpu_shares'
    ALLOCATION_CPUSET_CPUS_NUMBER_OF_CPUS = 'allocation_cpuset_cpus_number_of_cpus'
    ALLOCATION_CPUSET_MEMS_NUMBER_OF_MEMS = 'allocation_cpuset_mems_number_of_mems'
    ALLOCATION_CPUSET_MEMORY_MIGRATE = 'allocation_cpuset_memory_migrate'
    ALLOCATION_MIGRATE_PAGES = 'allocation_migrate_pages'
    ALLOCATION_RDT_L3_CACHE_WAYS = 'allocation_rdt_l3_cache_ways'
    ALLOCATION_RDT_L3_MASK = 'allocation_rdt_l3_mask'
    ALLOCATION_RDT_MB = 'allocation_rdt_mb'

    def __repr__(self):
        return repr(self.value)

    def __str__(self):
        return self.value


LEGACY_COUNTERS = frozenset([
    'task_cpu_usage_seconds', 'task_mem_page_faults', 'platform_cpu_usage', 'anomaly',
    'allocations_count', 'allocations_errors'])


@dataclass(frozen=True)
class MetricMetadata:
    help: str
    type: MetricType
    levels: tuple = ()  # label names of the nesting levels of a Measurements value


G, C = MetricType.GAUGE, MetricType.COUNTER
_M = MetricMetadata
METRICS_METADATA = {
    MetricName.TASK_CPU_USAGE_SECONDS: _M(
        'Time taken by task based on cpuacct.usage (cgroup v1) or cpu.stat usage_usec (cgroup v2)'
        ' (total kernel and user space).', C),
    MetricName.TASK_CPU_PERIODS: _M('Number of elapsed CFS enforcement periods (cpu.stat nr_periods).', C),
    MetricName.TASK_CPU_THROTTLED_PERIODS: _M(
        'Number of CFS periods in which the task was throttled (cpu.stat nr_throttled).', C),
    MetricName.TASK_CPU_THROTTLED_SECONDS: _M(
        'Total time the task was throttled (cpu.stat throttled_time or throttled_usec).', C),
    MetricName.TASK_MEM_USAGE_BYTES: _M(
        'Memory usage_in_bytes (v1) or memory.current (v2) per task from the cgroup memory controller.', G),
    MetricName.TASK_MEM_MAX_USAGE_BYTES: _M(
        'Memory max_usage_in_bytes (v1) or memory.peak (v2) per task from the cgroup memory controller.', G),
    MetricName.TASK_MEM_LIMIT_BYTES: _M(
        'Memory limit_in_bytes (v1) or memory.max (v2, absent when unlimited) per task.', G),
    MetricName.TASK_MEM_SOFT_LIMIT_BYTES: _M(
        'Memory soft_limit_in_bytes (v1) or memory.low (v2) per task.', G),
    MetricName.TASK_MEM_PAGE_FAULTS: _M('Number of page faults for task (memory.stat pgfault).', C),
    MetricName.TASK_MEM_NUMA_PAGES: _M(
        'Number of used pages per NUMA node, from the cgroup memory.numa_stat file.', G, ('numa_node',)),
    MetricName.TASK_REQUESTED_CPUS: _M('Tasks resources cpus initial requests.', G),
    MetricName.TASK_REQUESTED_MEM_BYTES: _M('Tasks resources memory initial requests.', G),
    MetricName.TASK_LAST_SEEN: _M('Time the task was last seen (unix time in seconds).', G),
    MetricName.TASK_UP: _M('Always 1: the task was measured in this iteration.', G),
    MetricName.TASK_SUBCONTAINERS: _M('Number of subcontainers (subcgroups) of the task.', G),

    MetricName.PLATFORM_TOPOLOGY_CORES: _M('Platform information about number of physical cores.', G),
    MetricName.PLATFORM_TOPOLOGY_CPUS: _M('Platform information about number of logical cpus.', G),
    MetricName.PLATFORM_TOPOLOGY_SOCKETS: _M('Platform information about number of sockets.', G),
    MetricName.PLATFORM_NUMA_NODES: _M('Platform information about number of NUMA nodes.', G),
    MetricName.PLATFORM_CPU_USAGE: _M(
        'Logical CPU usage in 1/USER_HZ (usually 10ms), from /proc/stat (all modes but idle and iowait).',
        C, ('cpu',)),
    MetricName.PLATFORM_MEM_USAGE_BYTES: _M(
        'Total memory used by platform in bytes, from /proc/meminfo (total - free - buffers - cached).', G),
    MetricName.PLATFORM_MEM_TOTAL_BYTES: _M('Total memory of the platform, from /proc/meminfo.', G),
    MetricName.PLATFORM_SWAP_TOTAL_BYTES: _M('Total swap space, from /proc/meminfo.', G),
    MetricName.PLATFORM_SWAP_USAGE_BYTES: _M('Used swap space, from /proc/meminfo.', G),
    MetricName.PLATFORM_MEM_NUMA_FREE_BYTES: _M(
        'NUMA memory free per NUMA node, from /sys/devices/system/node/*/meminfo (MemFree).', G,
        ('numa_node',)),
    MetricName.PLATFORM_MEM_NUMA_USED_BYTES: _M(
        'NUMA memory used per NUMA node, from /sys/devices/system/node/*/meminfo (MemUsed).', G,
        ('numa_node',)),
    MetricName.PLATFORM_LAST_SEEN: _M('Time the platform was last measured (unix time in seconds).', G),

    MetricName.WCA_UP: _M('Always 1 while the agent runs; the sample timestamp says when it last did.', G),
    MetricName.WCA_INFORMATION: _M(
        'Always 1; labels carry the agent version, host, CPU model and platform topology.', G),
    MetricName.WCA_TASKS: _M('Number of tasks measured in this iteration.', G),
    MetricName.WCA_TASKS_WAITING: _M(
        'Number of tasks the node reported whose cgroup does not exist (yet): not measured.', G),
    MetricName.WCA_MEM_USAGE_BYTES: _M('Resident memory of the agent process.', G),
    MetricName.WCA_DURATION_SECONDS: _M(
        'Time the agent spent in this iteration, from discovery to storage (excluding this store).', G),
    MetricName.WCA_ITERATIONS: _M('Number of iterations since the agent started.', C),
    MetricName.WCA_WARNINGS: _M('Number of warnings the agent has logged.', C),
    MetricName.WCA_ERRORS: _M('Number of errors the agent has logged.', C),
    MetricName.WCA_TASKS_VANISHED: _M(
        'Number of times a task was dropped from an iteration because its cgroup disappeared.', C),
    MetricName.WCA_MEASUREMENT_ERRORS: _M(
        'Number of task or platform files that could not be read or parsed (their metrics dropped).', C),
    MetricName.WCA_ALGORITHM_ERRORS: _M(
        'Number of iterations whose detector or allocator failed or answered nonsense (its answer'
        ' was dropped), by algorithm.', C, ('algorithm',)),
    MetricName.WCA_NODE_ERRORS: _M('Number of failed task discoveries (the iteration had no tasks).', C),
    MetricName.WCA_STORAGE_ERRORS: _M('Number of failed store calls, by storage.', C, ('storage',)),
    MetricName.WCA_METRICS_DROPPED: _M(
        'Number of metrics a storage dropped (not delivered), by storage.', C, ('storage',)),

    MetricName.ANOMALY: _M('Contention anomaly: one sample per contending task, labelled with its uuid.', C),
    MetricName.ANOMALY_COUNT: _M('Number of anomalies detected in this iteration.', G),
    MetricName.ANOMALY_LAST_OCCURRENCE: _M('Time of the last detected anomaly (unix time in seconds).', G),
    MetricName.DETECT_DURATION: _M('Time the detector took in this iteration, in seconds.', G),
    MetricName.ALLOCATIONS_COUNT: _M('Number of allocations the allocator returned since start.', C),
    MetricName.ALLOCATIONS_ERRORS: _M('Number of allocations rejected as invalid since start.', C),
    MetricName.ALLOCATION_DURATION: _M('Time the allocator took in this iteration, in seconds.', G),
    MetricName.ALLOCATION_CPU_QUOTA: _M('Allocated CPU quota, as a fraction of the whole platform.', G),
    MetricName.ALLOCATION_CPU_SHARES: _M('Allocated CPU shares, in cpu_shares units.', G),
    MetricName.ALLOCATION_CPUSET_CPUS_NUMBER_OF_CPUS: _M('Number of CPUs in the allocated cpuset.', G),
    MetricName.ALLOCATION_CPUSET_MEMS_NUMBER_OF_MEMS: _M('Number of NUMA nodes in the allocated cpuset.', G),
    MetricName.ALLOCATION_CPUSET_MEMORY_MIGRATE: _M('Allocated cpuset.memory_migrate flag.', G),
    MetricName.ALLOCATION_MIGRATE_PAGES: _M('NUMA node the task pages are to be migrated to.', G),
    MetricName.ALLOCATION_RDT_L3_CACHE_WAYS: _M('Number of L3 cache ways allocated, per domain.', G),
    MetricName.ALLOCATION_RDT_L3_MASK: _M('Allocated L3 cache bit mask (as an integer), per domain.', G),
    MetricName.ALLOCATION_RDT_MB: _M('Allocated memory bandwidth percentage (or MBps), per domain.', G),
}
del G, C, _M


@dataclass
class Metric:
    name: str
    value: MetricValue
    labels: Dict[str, str] = field(default_factory=dict)
    type: Optional[MetricType] = None
    help: Optional[str] = None

    @staticmethod
    def create_metric_with_metadata(name, value, labels=None) -> 'Metric':
        """A Metric with type and help taken from METRICS_METADATA (when the name is known)."""
        meta = METRICS_METADATA.get(name)
        return Metric(name=str(name), value=value, labels=dict(labels or {}),
                      type=meta.type if meta else None, help=meta.help if meta else None)


def export_metrics_from_measurements(measurements: Measurements,
                                     labels: Optional[Dict[str, str]] = None) -> List[Metric]:
    """Flattens Measurements into Metrics; nested levels become labels named by the metadata.

    `labels` is shared (not copied) by the metrics of flat values: treat Metric.labels as
    read-only in storages and algorithms.
    """
    labels = labels if labels is not None else {}
    metrics = []
    append = metrics.append
    for name, value in measurements.items():
        text, mtype, mhelp, levels = _EXPORT_INFO.get(name) or _export_info(name)
        if isinstance(value, dict):
            _flatten(metrics, text, value, labels, levels, 0, mtype, mhelp)
        else:
            append(Metric(text, value, labels, mtype, mhelp))
    return metrics


def _export_info(name):
    """(name as a plain str, type, help, levels): what a metric of that name is exported with."""
    meta = METRICS_METADATA.get(name)
    if meta is None:
        return str(name), None, None, ()
    return str(name), meta.type, meta.help, meta.levels


# The same for the names in the metadata table, worked out once (str() of a MetricName is a
# Python-level call, and this runs for every metric of every task).
_EXPORT_INFO = {name: _export_info(name) for name in METRICS_METADATA}


def _flatten(out, name, value, labels, levels, depth, mtype, mhelp):
    level = levels[depth] if depth < len(levels) else 'level_%d' % depth
    for key, sub in value.items():
        sub_labels = dict(labels)
        sub_labels[level] = str(key)
        if isinstance(sub, dict):
            _flatten(out, name, sub, sub_labels, levels, depth + 1, mtype, mhelp)
        else:
            out.append(Metric(name, sub, sub_labels, mtype, mhelp))
