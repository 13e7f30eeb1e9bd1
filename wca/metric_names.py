"""Every metric the agent exports: its name, type, help and the label names of its nesting
levels (the metadata table), in one place so names stay consistent across features.

The names follow the original agent's where it had one, so dashboards and plugins keep working;
new names follow Prometheus conventions (counters end in _total). LEGACY_COUNTERS and
LEGACY_GAUGES are the original's names that `promtool check metrics` lints (but does not reject).
"""
from enum import Enum

from dataclasses import dataclass


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
    # pressure stall information (cgroup v2 *.pressure), per task
    TASK_PRESSURE_CPU_WAITING = 'task_pressure_cpu_waiting_seconds_total'
    TASK_PRESSURE_CPU_STALLED = 'task_pressure_cpu_stalled_seconds_total'
    TASK_PRESSURE_MEMORY_WAITING = 'task_pressure_memory_waiting_seconds_total'
    TASK_PRESSURE_MEMORY_STALLED = 'task_pressure_memory_stalled_seconds_total'
    TASK_PRESSURE_IO_WAITING = 'task_pressure_io_waiting_seconds_total'
    TASK_PRESSURE_IO_STALLED = 'task_pressure_io_stalled_seconds_total'
    # Intel RDT monitoring (resctrl mon_data), per task
    TASK_LLC_OCCUPANCY_BYTES = 'task_llc_occupancy_bytes'
    TASK_MEM_BANDWIDTH_BYTES = 'task_mem_bandwidth_bytes'
    TASK_MEM_BANDWIDTH_LOCAL_BYTES = 'task_mem_bandwidth_local_bytes'
    TASK_MEM_BANDWIDTH_REMOTE_BYTES = 'task_mem_bandwidth_remote_bytes'
    # perf counters (event_names), per task: the original's names (counters without _total)
    TASK_INSTRUCTIONS = 'task_instructions'
    TASK_CYCLES = 'task_cycles'
    TASK_CACHE_MISSES = 'task_cache_misses'
    TASK_CACHE_REFERENCES = 'task_cache_references'
    TASK_STALLED_MEM_LOADS = 'task_stalled_mem_loads'
    TASK_OFFCORE_REQUESTS_L3_MISS_DEMAND_DATA_RD = 'task_offcore_requests_l3_miss_demand_data_rd'
    TASK_OFFCORE_REQUESTS_DEMAND_DATA_RD = 'task_offcore_requests_demand_data_rd'
    TASK_OFFCORE_REQUESTS_DEMAND_RFO = 'task_offcore_requests_demand_rfo'
    TASK_OFFCORE_REQUESTS_OUTSTANDING_L3_MISS_DEMAND_DATA_RD = \
        'task_offcore_requests_outstanding_l3_miss_demand_data_rd'
    TASK_MEM_LOAD_RETIRED_LOCAL_PMM = 'task_mem_load_retired_local_pmm'
    TASK_MEM_LOAD_RETIRED_LOCAL_DRAM = 'task_mem_load_retired_local_dram'
    TASK_MEM_LOAD_RETIRED_REMOTE_DRAM = 'task_mem_load_retired_remote_dram'
    TASK_MEM_INST_RETIRED_LOADS = 'task_mem_inst_retired_loads'
    TASK_MEM_INST_RETIRED_STORES = 'task_mem_inst_retired_stores'
    TASK_DTLB_LOAD_MISSES = 'task_dtlb_load_misses'
    # perf software events, per task (new: named like node_exporter's node_perf_*)
    TASK_TASK_CLOCK_SECONDS = 'task_task_clock_seconds_total'
    TASK_CPU_CLOCK_SECONDS = 'task_cpu_clock_seconds_total'
    TASK_CONTEXT_SWITCHES = 'task_context_switches_total'
    TASK_CPU_MIGRATIONS = 'task_cpu_migrations_total'
    TASK_PAGE_FAULTS = 'task_page_faults_total'
    TASK_MINOR_FAULTS = 'task_minor_faults_total'
    TASK_MAJOR_FAULTS = 'task_major_faults_total'
    # perf scaling and derived metrics (enable_derived_metrics), per task
    TASK_SCALING_FACTOR_AVG = 'task_scaling_factor_avg'
    TASK_SCALING_FACTOR_MAX = 'task_scaling_factor_max'
    TASK_IPC = 'task_ipc'
    TASK_IPS = 'task_ips'
    TASK_CACHE_HIT_RATIO = 'task_cache_hit_ratio'
    TASK_CACHE_MISSES_PER_KILO_INSTRUCTIONS = 'task_cache_misses_per_kilo_instructions'
    # /proc/<tid>/sched summed over the task's threads (sched), working set size (wss_*)
    TASK_SCHED_STAT = 'task_sched_stat'
    TASK_SCHED_STAT_NUMA_FAULTS = 'task_sched_stat_numa_faults'
    TASK_WSS_REFERENCED_BYTES = 'task_wss_referenced_bytes'
    TASK_WORKING_SET_SIZE_BYTES = 'task_working_set_size_bytes'
    TASK_WSS_MEASURE_OVERHEAD_SECONDS = 'task_wss_measure_overhead_seconds'

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
    # pressure stall information (/proc/pressure), as node_exporter names it
    PLATFORM_PRESSURE_CPU_WAITING = 'platform_pressure_cpu_waiting_seconds_total'
    PLATFORM_PRESSURE_MEMORY_WAITING = 'platform_pressure_memory_waiting_seconds_total'
    PLATFORM_PRESSURE_MEMORY_STALLED = 'platform_pressure_memory_stalled_seconds_total'
    PLATFORM_PRESSURE_IO_WAITING = 'platform_pressure_io_waiting_seconds_total'
    PLATFORM_PRESSURE_IO_STALLED = 'platform_pressure_io_stalled_seconds_total'
    PLATFORM_PRESSURE_IRQ_STALLED = 'platform_pressure_irq_stalled_seconds_total'
    # uncore perf counters (uncore_event_names), and what is derived from them
    PLATFORM_CAS_COUNT_READS = 'platform_cas_count_reads'
    PLATFORM_CAS_COUNT_WRITES = 'platform_cas_count_writes'
    PLATFORM_PMM_BANDWIDTH_READS = 'platform_pmm_bandwidth_reads'
    PLATFORM_PMM_BANDWIDTH_WRITES = 'platform_pmm_bandwidth_writes'
    PLATFORM_RPQ_OCCUPANCY = 'platform_rpq_occupancy'
    PLATFORM_RPQ_INSERTS = 'platform_rpq_inserts'
    PLATFORM_IMC_CLOCKTICKS = 'platform_imc_clockticks'
    PLATFORM_UPI_RXL_FLITS = 'platform_upi_rxl_flits'
    PLATFORM_UPI_TXL_FLITS = 'platform_upi_txl_flits'
    PLATFORM_SCALING_UNCORE_FACTOR = 'platform_scaling_uncore_factor'
    PLATFORM_DRAM_READS_BYTES_PER_SECOND = 'platform_dram_reads_bytes_per_second'
    PLATFORM_DRAM_WRITES_BYTES_PER_SECOND = 'platform_dram_writes_bytes_per_second'
    PLATFORM_DRAM_TOTAL_BYTES_PER_SECOND = 'platform_dram_total_bytes_per_second'
    PLATFORM_PMM_READS_BYTES_PER_SECOND = 'platform_pmm_reads_bytes_per_second'
    PLATFORM_PMM_WRITES_BYTES_PER_SECOND = 'platform_pmm_writes_bytes_per_second'
    PLATFORM_PMM_TOTAL_BYTES_PER_SECOND = 'platform_pmm_total_bytes_per_second'
    PLATFORM_DRAM_HIT_RATIO = 'platform_dram_hit_ratio'
    PLATFORM_UPI_BANDWIDTH_BYTES_PER_SECOND = 'platform_upi_bandwidth_bytes_per_second'
    PLATFORM_RPQ_READ_LATENCY_SECONDS = 'platform_rpq_read_latency_seconds'
    # /proc/vmstat, node vmstat, /proc/zoneinfo (vmstat, zoneinfo); DIMMs (gather_hw_mm_topology)
    PLATFORM_VMSTAT_NUMA_PAGES_MIGRATED = 'platform_vmstat_numa_pages_migrated'
    PLATFORM_VMSTAT_PGMIGRATE_SUCCESS = 'platform_vmstat_pgmigrate_success'
    PLATFORM_VMSTAT_PGMIGRATE_FAIL = 'platform_vmstat_pgmigrate_fail'
    PLATFORM_VMSTAT_NUMA_HINT_FAULTS = 'platform_vmstat_numa_hint_faults'
    PLATFORM_VMSTAT_NUMA_HINT_FAULTS_LOCAL = 'platform_vmstat_numa_hint_faults_local'
    PLATFORM_VMSTAT_PGFAULTS = 'platform_vmstat_pgfaults'
    PLATFORM_VMSTAT = 'platform_vmstat'
    PLATFORM_NODE_VMSTAT = 'platform_node_vmstat'
    PLATFORM_ZONEINFO = 'platform_zoneinfo'
    PLATFORM_DIMM_COUNT = 'platform_dimm_count'
    PLATFORM_DIMM_TOTAL_SIZE_BYTES = 'platform_dimm_total_size_bytes'
    PLATFORM_DIMM_SPEED_BYTES_PER_SECOND = 'platform_dimm_speed_bytes_per_second'
    PLATFORM_MEM_MODE_SIZE_BYTES = 'platform_mem_mode_size_bytes'

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
    WCA_TASKS_SKIPPED = 'wca_tasks_skipped_total'
    WCA_ALGORITHM_ERRORS = 'wca_algorithm_errors_total'
    WCA_STORAGE_ERRORS = 'wca_storage_errors_total'
    WCA_METRICS_DROPPED = 'wca_metrics_dropped_total'
    WCA_LABELS_DROPPED = 'wca_labels_dropped_total'
    WCA_ITERATION_ERRORS = 'wca_iteration_errors_total'
    # storages off the node: KafkaStorage (labels: topic), PrometheusEndpointStorage (port)
    WCA_KAFKA_QUEUE_BYTES = 'wca_kafka_queue_bytes'
    WCA_KAFKA_QUEUE_MESSAGES = 'wca_kafka_queue_messages'
    WCA_KAFKA_MESSAGES_DELIVERED = 'wca_kafka_messages_delivered_total'
    WCA_KAFKA_MESSAGES_DROPPED = 'wca_kafka_messages_dropped_total'
    WCA_KAFKA_MESSAGES_FAILED = 'wca_kafka_messages_failed_total'
    WCA_KAFKA_SEND_ERRORS = 'wca_kafka_send_errors_total'
    WCA_KAFKA_UP = 'wca_kafka_up'
    WCA_ENDPOINT_SCRAPES = 'wca_endpoint_scrapes_total'
    WCA_ENDPOINT_CONNECTIONS_REJECTED = 'wca_endpoint_connections_rejected_total'
    WCA_ENDPOINT_CONNECTIONS_TIMED_OUT = 'wca_endpoint_connections_timed_out_total'
    # RDT monitoring groups of the agent
    WCA_RDT_MONITORING_GROUPS = 'wca_rdt_monitoring_groups'
    WCA_RDT_TASKS_WAITING = 'wca_rdt_tasks_waiting'
    WCA_RDT_UNAVAILABLE_READINGS = 'wca_rdt_unavailable_readings_total'
    WCA_RDT_REPAIRS = 'wca_rdt_repairs_total'
    WCA_RDT_GROUPS_RECORD_WRITABLE = 'wca_rdt_groups_record_writable'
    # perf counters of the agent
    WCA_PERF_OPEN_FAILURES = 'wca_perf_open_failures_total'
    WCA_PERF_DESCRIPTORS = 'wca_perf_descriptors'
    WCA_PERF_TASKS = 'wca_perf_tasks'

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
    # applying allocations (AllocationRunner), and the built-in allocators
    ALLOCATIONS_WRITTEN = 'allocations_written_total'
    ALLOCATIONS_REJECTED = 'allocations_rejected_total'
    STATIC_ALLOCATOR_RULES = 'wca_static_allocator_rules'
    STATIC_ALLOCATOR_CONFIG_ERRORS = 'wca_static_allocator_config_errors_total'
    NUMA_TASK_CURRENT_NODE = 'numa__task_current_node'
    NUMA_BALANCED_MEMORY_TASKS = 'numa__balanced_memory_tasks'
    NUMA_BALANCED_MEMORY_SIZE = 'numa__balanced_memory_size'
    NUMA_TASK_TASKS_COUNT = 'numa__task_tasks_count'
    NUMA_TASK_PAGES_TO_MOVE = 'numa__task_pages_to_move'
    NUMA_TOTAL_PAGES_TO_MOVE = 'numa__total_pages_to_move'
    # the interference controller (wca.algorithms.interference), per task and its own
    INTERFERENCE_SIGNAL = 'interference_signal'
    INTERFERENCE_CPU_USAGE = 'interference_cpu_usage'
    INTERFERENCE_BASELINE_MEAN = 'interference_baseline_mean'
    INTERFERENCE_BASELINE_STDDEV = 'interference_baseline_stddev'
    INTERFERENCE_BASELINE_SAMPLES = 'interference_baseline_samples'
    INTERFERENCE_THRESHOLD = 'interference_threshold'
    INTERFERENCE_OUTLIER = 'interference_outlier'
    INTERFERENCE_VICTIM = 'interference_victim'
    INTERFERENCE_THROTTLE_LEVEL = 'interference_throttle_level'
    INTERFERENCE_THROTTLE_CPUS = 'interference_throttle_cpus'
    INTERFERENCE_ANOMALY_SIGNAL = 'interference_anomaly_signal'
    INTERFERENCE_ANOMALY_THRESHOLD = 'interference_anomaly_threshold'
    INTERFERENCE_ANTAGONIST_CORRELATION = 'interference_antagonist_correlation'
    INTERFERENCE_ACTIONS = 'interference_actions_total'
    INTERFERENCE_SIGNAL_MISSING = 'interference_signal_missing_total'
    INTERFERENCE_STATE_ERRORS = 'interference_state_errors_total'

    def __repr__(self):
        return repr(self.value)

    def __str__(self):
        return self.value


LEGACY_COUNTERS = frozenset([
    'task_cpu_usage_seconds', 'task_mem_page_faults', 'platform_cpu_usage', 'anomaly',
    'allocations_count', 'allocations_errors',
    # RDT memory bandwidth counters (resctrl mbm_*_bytes), named as the original named them
    'task_mem_bandwidth_bytes', 'task_mem_bandwidth_local_bytes', 'task_mem_bandwidth_remote_bytes',
    # perf hardware and uncore counters, named as the original named them
    'task_instructions', 'task_cycles', 'task_cache_misses', 'task_cache_references',
    'task_stalled_mem_loads', 'task_offcore_requests_l3_miss_demand_data_rd',
    'task_offcore_requests_demand_data_rd', 'task_offcore_requests_demand_rfo',
    'task_offcore_requests_outstanding_l3_miss_demand_data_rd', 'task_mem_load_retired_local_pmm',
    'task_mem_load_retired_local_dram', 'task_mem_load_retired_remote_dram',
    'task_mem_inst_retired_loads', 'task_mem_inst_retired_stores', 'task_dtlb_load_misses',
    'platform_cas_count_reads', 'platform_cas_count_writes', 'platform_pmm_bandwidth_reads',
    'platform_pmm_bandwidth_writes', 'platform_rpq_occupancy', 'platform_rpq_inserts',
    'platform_imc_clockticks', 'platform_upi_rxl_flits', 'platform_upi_txl_flits',
    # /proc/vmstat counters and the working set size measurement's cost, as the original named them
    'platform_vmstat_numa_pages_migrated', 'platform_vmstat_pgmigrate_success',
    'platform_vmstat_pgmigrate_fail', 'platform_vmstat_numa_hint_faults',
    'platform_vmstat_numa_hint_faults_local', 'platform_vmstat_pgfaults',
    'task_wss_measure_overhead_seconds'])
# The original's gauges whose names end in _count, which promtool's linter also points out.
LEGACY_GAUGES = frozenset(['anomaly_count', 'numa__task_tasks_count'])


@dataclass(frozen=True)
class MetricMetadata:
    help: str
    type: MetricType
    levels: tuple = ()  # label names of the nesting levels of a Measurements value


G, C = MetricType.GAUGE, MetricType.COUNTER
_P, _U = ('cpu',), ('socket', 'pmu_type')  # levels of the perf and uncore metrics
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
    MetricName.TASK_PRESSURE_CPU_WAITING: _M(
        'Total time in seconds some runnable threads of the task waited for a CPU (cpu.pressure some).', C),
    MetricName.TASK_PRESSURE_CPU_STALLED: _M(
        'Total time in seconds all runnable threads of the task waited for a CPU (cpu.pressure full).', C),
    MetricName.TASK_PRESSURE_MEMORY_WAITING: _M(
        'Total time in seconds some threads of the task were stalled on memory (memory.pressure some).', C),
    MetricName.TASK_PRESSURE_MEMORY_STALLED: _M(
        'Total time in seconds all threads of the task were stalled on memory (memory.pressure full).', C),
    MetricName.TASK_PRESSURE_IO_WAITING: _M(
        'Total time in seconds some threads of the task were stalled on I/O (io.pressure some).', C),
    MetricName.TASK_PRESSURE_IO_STALLED: _M(
        'Total time in seconds all threads of the task were stalled on I/O (io.pressure full).', C),
    MetricName.TASK_LLC_OCCUPANCY_BYTES: _M(
        'Last level cache occupancy of the task in bytes, summed over L3 domains (llc_occupancy).', G),
    MetricName.TASK_MEM_BANDWIDTH_BYTES: _M(
        'Total memory traffic of the task in bytes, summed over L3 domains (resctrl mbm_total_bytes).', C),
    MetricName.TASK_MEM_BANDWIDTH_LOCAL_BYTES: _M(
        'Memory traffic of the task to its local NUMA node in bytes (resctrl mbm_local_bytes).', C),
    MetricName.TASK_MEM_BANDWIDTH_REMOTE_BYTES: _M(
        'Memory traffic of the task to remote NUMA nodes in bytes (mbm_total_bytes - mbm_local_bytes).', C),
    # perf counters: summed over CPUs, or per CPU (label cpu) with perf_aggregate_cpus: false
    MetricName.TASK_INSTRUCTIONS: _M(
        'Instructions retired by the task (perf generic hardware event).', C, _P),
    MetricName.TASK_CYCLES: _M('CPU cycles of the task (perf generic hardware event).', C, _P),
    MetricName.TASK_CACHE_MISSES: _M(
        'Last level cache misses of the task (perf generic hardware event).', C, _P),
    MetricName.TASK_CACHE_REFERENCES: _M(
        'Last level cache references of the task (perf generic hardware event).', C, _P),
    MetricName.TASK_STALLED_MEM_LOADS: _M(
        'Cycles the task stalled on memory loads (CYCLE_ACTIVITY.STALLS_MEM_ANY / STALLS_LDM_PENDING).',
        C, _P),
    MetricName.TASK_OFFCORE_REQUESTS_L3_MISS_DEMAND_DATA_RD: _M(
        'Demand data read requests that missed L3 (OFFCORE_REQUESTS.L3_MISS_DEMAND_DATA_RD).', C, _P),
    MetricName.TASK_OFFCORE_REQUESTS_DEMAND_DATA_RD: _M(
        'Demand data read requests sent to uncore (OFFCORE_REQUESTS.DEMAND_DATA_RD).', C, _P),
    MetricName.TASK_OFFCORE_REQUESTS_DEMAND_RFO: _M(
        'Demand RFO requests sent to uncore (OFFCORE_REQUESTS.DEMAND_RFO).', C, _P),
    MetricName.TASK_OFFCORE_REQUESTS_OUTSTANDING_L3_MISS_DEMAND_DATA_RD: _M(
        'Cycles with outstanding L3 miss demand data reads '
        '(OFFCORE_REQUESTS_OUTSTANDING.L3_MISS_DEMAND_DATA_RD).', C, _P),
    MetricName.TASK_MEM_LOAD_RETIRED_LOCAL_PMM: _M(
        'Retired loads served from local persistent memory (MEM_LOAD_RETIRED.LOCAL_PMM).', C, _P),
    MetricName.TASK_MEM_LOAD_RETIRED_LOCAL_DRAM: _M(
        'Retired loads served from local DRAM (MEM_LOAD_L3_MISS_RETIRED.LOCAL_DRAM).', C, _P),
    MetricName.TASK_MEM_LOAD_RETIRED_REMOTE_DRAM: _M(
        'Retired loads served from remote DRAM (MEM_LOAD_L3_MISS_RETIRED.REMOTE_DRAM).', C, _P),
    MetricName.TASK_MEM_INST_RETIRED_LOADS: _M(
        'Retired load instructions (MEM_INST_RETIRED.ALL_LOADS).', C, _P),
    MetricName.TASK_MEM_INST_RETIRED_STORES: _M(
        'Retired store instructions (MEM_INST_RETIRED.ALL_STORES).', C, _P),
    MetricName.TASK_DTLB_LOAD_MISSES: _M(
        'Load misses in all DTLB levels that cause page walks (DTLB_LOAD_MISSES.MISS_CAUSES_A_WALK).',
        C, _P),
    MetricName.TASK_TASK_CLOCK_SECONDS: _M(
        'Time the task ran on CPUs, in seconds (perf software event task-clock).', C, _P),
    MetricName.TASK_CPU_CLOCK_SECONDS: _M(
        'Time the task ran on CPUs by the CPU clock, in seconds (perf software event cpu-clock).', C, _P),
    MetricName.TASK_CONTEXT_SWITCHES: _M(
        'Context switches of the task (perf software event context-switches).', C, _P),
    MetricName.TASK_CPU_MIGRATIONS: _M(
        'Migrations of the task\'s threads between CPUs (perf software event cpu-migrations).', C, _P),
    MetricName.TASK_PAGE_FAULTS: _M('Page faults of the task (perf software event page-faults).', C, _P),
    MetricName.TASK_MINOR_FAULTS: _M(
        'Minor page faults of the task (perf software event minor-faults).', C, _P),
    MetricName.TASK_MAJOR_FAULTS: _M(
        'Major page faults of the task (perf software event major-faults).', C, _P),
    MetricName.TASK_SCALING_FACTOR_AVG: _M(
        'Mean perf scaling factor (time enabled / time running) of the task\'s counter groups that ran;'
        ' above 1 the counters were multiplexed and are estimates.', G, _P),
    MetricName.TASK_SCALING_FACTOR_MAX: _M(
        'Largest perf scaling factor (time enabled / time running) of the task\'s counter groups.',
        G, _P),
    MetricName.TASK_IPC: _M(
        'Instructions per cycle of the task since the previous iteration (enable_derived_metrics).',
        G, _P),
    MetricName.TASK_IPS: _M(
        'Instructions per second of the task since the previous iteration (enable_derived_metrics).',
        G, _P),
    MetricName.TASK_CACHE_HIT_RATIO: _M(
        'Cache hit ratio (references - misses) / references of the task since the previous iteration.',
        G, _P),
    MetricName.TASK_CACHE_MISSES_PER_KILO_INSTRUCTIONS: _M(
        'Cache misses per 1000 instructions of the task since the previous iteration.', G, _P),
    MetricName.TASK_SCHED_STAT: _M(
        'A /proc/<tid>/sched value (key) summed over the task\'s threads (sched option).', G, ('key',)),
    MetricName.TASK_SCHED_STAT_NUMA_FAULTS: _M(
        'NUMA faults of the task\'s threads by node and fault type, summed (/proc/<tid>/sched'
        ' numa_faults lines).', G, ('numa_node', 'fault_type')),
    MetricName.TASK_WSS_REFERENCED_BYTES: _M(
        'Memory of the task\'s processes referenced since their last clear_refs reset (Referenced:'
        ' of /proc/<pid>/smaps_rollup, summed).', G),
    MetricName.TASK_WORKING_SET_SIZE_BYTES: _M(
        'Working set size of the task: the referenced bytes of the last period in which they grew'
        ' less than wss_membw_threshold of its memory traffic for wss_stable_cycles iterations.', G),
    MetricName.TASK_WSS_MEASURE_OVERHEAD_SECONDS: _M(
        'Wall time the agent spent reading smaps and writing clear_refs for the task, in total.', C),

    MetricName.PLATFORM_TOPOLOGY_CORES: _M('Platform information about number of physical cores.', G),
    MetricName.PLATFORM_TOPOLOGY_CPUS: _M('Platform information about number of logical cpus.', G),
    MetricName.PLATFORM_TOPOLOGY_SOCKETS: _M('Platform information about number of sockets.', G),
    MetricName.PLATFORM_NUMA_NODES: _M('Platform information about number of NUMA nodes.', G),
    MetricName.PLATFORM_CPU_USAGE: _M(
        'Logical CPU usage in 1/USER_HZ (usually 10ms), from /proc/stat (all modes but idle and iowait).',
        C, _P),
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
    MetricName.PLATFORM_PRESSURE_CPU_WAITING: _M(
        'Total time in seconds some runnable tasks waited for a CPU (/proc/pressure/cpu some).', C),
    MetricName.PLATFORM_PRESSURE_MEMORY_WAITING: _M(
        'Total time in seconds some tasks were stalled on memory (/proc/pressure/memory some).', C),
    MetricName.PLATFORM_PRESSURE_MEMORY_STALLED: _M(
        'Total time in seconds all non-idle tasks were stalled on memory (/proc/pressure/memory full).', C),
    MetricName.PLATFORM_PRESSURE_IO_WAITING: _M(
        'Total time in seconds some tasks were stalled on I/O (/proc/pressure/io some).', C),
    MetricName.PLATFORM_PRESSURE_IO_STALLED: _M(
        'Total time in seconds all non-idle tasks were stalled on I/O (/proc/pressure/io full).', C),
    MetricName.PLATFORM_PRESSURE_IRQ_STALLED: _M(
        'Total time in seconds CPUs spent in interrupts instead of tasks (/proc/pressure/irq full).', C),
    # uncore perf counters, per socket and PMU (its type number)
    MetricName.PLATFORM_CAS_COUNT_READS: _M(
        'DRAM read CAS commands of the memory controller channel (uncore_imc event 0x04 umask 0x03).', C, _U),
    MetricName.PLATFORM_CAS_COUNT_WRITES: _M(
        'DRAM write CAS commands of the memory controller channel (uncore_imc event 0x04 umask 0x0C).',
        C, _U),
    MetricName.PLATFORM_PMM_BANDWIDTH_READS: _M(
        'Persistent memory read requests of the memory controller channel (uncore_imc event 0xE3).', C, _U),
    MetricName.PLATFORM_PMM_BANDWIDTH_WRITES: _M(
        'Persistent memory write requests of the memory controller channel (uncore_imc event 0xE7).', C, _U),
    MetricName.PLATFORM_RPQ_OCCUPANCY: _M(
        'Read pending queue occupancy, accumulated every memory controller cycle (uncore_imc event 0x80).',
        C, _U),
    MetricName.PLATFORM_RPQ_INSERTS: _M(
        'Read pending queue allocations of the memory controller channel (uncore_imc event 0x10).', C, _U),
    MetricName.PLATFORM_IMC_CLOCKTICKS: _M(
        'Memory controller clock ticks (uncore_imc event 0x00).', C, _U),
    MetricName.PLATFORM_UPI_RXL_FLITS: _M('UPI flits received (uncore_upi event 0x03 umask 0x0F).', C, _U),
    MetricName.PLATFORM_UPI_TXL_FLITS: _M('UPI flits transmitted (uncore_upi event 0x02 umask 0x0F).', C, _U),
    MetricName.PLATFORM_SCALING_UNCORE_FACTOR: _M(
        'Mean perf scaling factor (time enabled / time running) of the uncore counter groups.', G),
    MetricName.PLATFORM_DRAM_READS_BYTES_PER_SECOND: _M(
        'DRAM read bandwidth since the previous iteration (CAS reads x 64 bytes).', G, _U),
    MetricName.PLATFORM_DRAM_WRITES_BYTES_PER_SECOND: _M(
        'DRAM write bandwidth since the previous iteration (CAS writes x 64 bytes).', G, _U),
    MetricName.PLATFORM_DRAM_TOTAL_BYTES_PER_SECOND: _M(
        'DRAM read and write bandwidth since the previous iteration.', G, _U),
    MetricName.PLATFORM_PMM_READS_BYTES_PER_SECOND: _M(
        'Persistent memory read bandwidth since the previous iteration (requests x 64 bytes).', G, _U),
    MetricName.PLATFORM_PMM_WRITES_BYTES_PER_SECOND: _M(
        'Persistent memory write bandwidth since the previous iteration (requests x 64 bytes).', G, _U),
    MetricName.PLATFORM_PMM_TOTAL_BYTES_PER_SECOND: _M(
        'Persistent memory read and write bandwidth since the previous iteration.', G, _U),
    MetricName.PLATFORM_DRAM_HIT_RATIO: _M(
        'Share of memory traffic served by DRAM rather than persistent memory: dram / (dram + pmm).', G, _U),
    MetricName.PLATFORM_UPI_BANDWIDTH_BYTES_PER_SECOND: _M(
        'UPI data bandwidth since the previous iteration: (rx + tx flits) / 9 x 64 bytes per second.', G, _U),
    MetricName.PLATFORM_RPQ_READ_LATENCY_SECONDS: _M(
        'Mean memory read latency of the socket since the previous iteration: (RPQ occupancy / inserts)'
        ' / (clock ticks per second per channel).', G, ('socket',)),
    MetricName.PLATFORM_VMSTAT_NUMA_PAGES_MIGRATED: _M(
        'Pages migrated by NUMA balancing (/proc/vmstat numa_pages_migrated).', C),
    MetricName.PLATFORM_VMSTAT_PGMIGRATE_SUCCESS: _M(
        'Pages migrated successfully (/proc/vmstat pgmigrate_success).', C),
    MetricName.PLATFORM_VMSTAT_PGMIGRATE_FAIL: _M(
        'Pages that failed to migrate (/proc/vmstat pgmigrate_fail).', C),
    MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS: _M(
        'NUMA hinting faults (/proc/vmstat numa_hint_faults).', C),
    MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS_LOCAL: _M(
        'NUMA hinting faults on the local node (/proc/vmstat numa_hint_faults_local).', C),
    MetricName.PLATFORM_VMSTAT_PGFAULTS: _M('Page faults of the node (/proc/vmstat pgfault).', C),
    MetricName.PLATFORM_VMSTAT: _M(
        'A /proc/vmstat value, for the keys the vmstat regular expression matches.', G, ('key',)),
    MetricName.PLATFORM_NODE_VMSTAT: _M(
        'A NUMA node\'s vmstat value (/sys/devices/system/node/node<N>/vmstat), for the keys the vmstat'
        ' regular expression matches.', G, ('numa_node', 'key')),
    MetricName.PLATFORM_ZONEINFO: _M(
        'A /proc/zoneinfo value of a NUMA node\'s memory zone (zone per-node-stats: the node\'s own'
        ' counters), for the keys the zoneinfo regular expression takes.', G, ('numa_node', 'zone', 'key')),
    MetricName.PLATFORM_DIMM_COUNT: _M(
        'Number of populated DIMMs by type, ram or nvm (dmidecode -t memory, read at start).', G,
        ('dimm_type',)),
    MetricName.PLATFORM_DIMM_TOTAL_SIZE_BYTES: _M(
        'Total size of the populated DIMMs by type, ram or nvm (dmidecode -t memory, read at start).', G,
        ('dimm_type',)),
    MetricName.PLATFORM_DIMM_SPEED_BYTES_PER_SECOND: _M(
        'Peak transfer rate of the RAM DIMMs summed: configured speed (MT/s) x data width'
        ' (dmidecode -t memory, read at start).', G),
    MetricName.PLATFORM_MEM_MODE_SIZE_BYTES: _M(
        'Persistent memory used as volatile memory (Memory Mode), from ipmctl, read at start.', G),

    MetricName.WCA_UP: _M('Always 1 while the agent runs; the sample timestamp says when it last did.', G),
    MetricName.WCA_INFORMATION: _M(
        'Always 1; labels carry the agent version, host, CPU model and platform topology.', G),
    MetricName.WCA_TASKS: _M('Number of tasks measured in this iteration.', G),
    MetricName.WCA_TASKS_WAITING: _M(
        'Number of tasks the node reported whose cgroup does not exist (yet): not measured.', G),
    MetricName.WCA_MEM_USAGE_BYTES: _M('Resident memory of the agent process.', G),
    MetricName.WCA_DURATION_SECONDS: _M(
        'Time the agent spent in this iteration, from discovery to storage (excluding this store);'
        ' with label function, in one phase of it (discovery, platform, tasks, algorithm, and storage:'
        ' the previous iteration\'s store, 0 in the first).', G),
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
    MetricName.WCA_NODE_ERRORS: _M(
        'Number of failed task discoveries and of tasks or values the node dropped, by reason.', C,
        ('reason',)),
    MetricName.WCA_TASKS_SKIPPED: _M(
        'Number of tasks the node skipped as configured, by reason (namespace: a pod of a namespace'
        ' not in monitored_namespaces); each counted once while it stays.', C, ('reason',)),
    MetricName.WCA_STORAGE_ERRORS: _M(
        'Number of failed store calls, by storage, up to the previous iteration\'s stores (a store'
        ' cannot carry its own outcome: its failure shows in the next iteration).', C, ('storage',)),
    MetricName.WCA_LABELS_DROPPED: _M(
        'Number of task labels dropped, by reason: owned (the name is one the agent sets: host,'
        ' task_id, task_name, extra, generated or orchestrator labels) or sanitised (the name'
        ' collides with another task label after sanitising).', C, ('reason',)),
    MetricName.WCA_ITERATION_ERRORS: _M(
        'Number of failures caught at a phase boundary of an iteration (a step that raised where'
        ' its owner should have handled it: a bug or a plugin), by phase; each cost only that'
        ' step\'s output, the measured metrics were stored.', C, ('phase',)),
    MetricName.WCA_METRICS_DROPPED: _M(
        'Number of metrics a storage dropped (not delivered), by storage, as the storage reports'
        ' it before this iteration\'s store.', C, ('storage',)),
    MetricName.WCA_KAFKA_QUEUE_BYTES: _M(
        'Bytes of messages waiting for Kafka (queued or being sent), bounded by queue_max_bytes.', G),
    MetricName.WCA_KAFKA_QUEUE_MESSAGES: _M(
        'Number of messages waiting for Kafka (queued or being sent).', G),
    MetricName.WCA_KAFKA_MESSAGES_DELIVERED: _M('Number of messages Kafka acknowledged.', C),
    MetricName.WCA_KAFKA_MESSAGES_DROPPED: _M(
        'Number of messages dropped undelivered: the oldest when the queue was full, and those left'
        ' at exit.', C),
    MetricName.WCA_KAFKA_MESSAGES_FAILED: _M(
        'Number of messages Kafka refused for good (not retriable, e.g. too large or not authorized).', C),
    MetricName.WCA_KAFKA_SEND_ERRORS: _M(
        'Number of failed delivery attempts that are retried (brokers unreachable, timeouts).', C),
    MetricName.WCA_KAFKA_UP: _M('1 while the Kafka brokers answer, 0 while messages wait for them.', G),
    MetricName.WCA_ENDPOINT_SCRAPES: _M('Number of /metrics requests the endpoint answered.', C),
    MetricName.WCA_ENDPOINT_CONNECTIONS_REJECTED: _M(
        'Number of connections to the endpoint closed at once: max_connections were open.', C),
    MetricName.WCA_ENDPOINT_CONNECTIONS_TIMED_OUT: _M(
        'Number of connections to the endpoint cut because they lasted longer than its timeout.', C),
    MetricName.WCA_RDT_MONITORING_GROUPS: _M(
        'Number of resctrl monitoring groups the agent holds (one per task with RDT metrics).', G),
    MetricName.WCA_RDT_TASKS_WAITING: _M(
        'Number of tasks without RDT metrics because the kernel is out of RMIDs (or CLOSIDs); each gets'
        ' its monitoring group when one frees up.', G),
    MetricName.WCA_RDT_UNAVAILABLE_READINGS: _M(
        'Number of resctrl readings the kernel answered with Unavailable or Error (that sample was'
        ' left out).', C),
    MetricName.WCA_RDT_REPAIRS: _M(
        'Number of times the agent set resctrl right after someone else changed it, by what:'
        ' control_group_removed, monitoring_group_removed (made again), threads_moved_back (moved out'
        ' of a task\'s group), strangers_moved_out (a thread id reused between the read of a cgroup'
        ' and the write into a group: the unrelated thread written back to the parent group).',
        C, ('what',)),
    MetricName.WCA_RDT_GROUPS_RECORD_WRITABLE: _M(
        '1 while rdt_groups_file (the record of the resctrl groups the agent made) can be written,'
        ' 0 when it cannot (warned once; the groups are still found by their mark).', G),
    MetricName.WCA_PERF_OPEN_FAILURES: _M(
        'Number of perf counters that could not be opened, by reason: unsupported (an event this machine'
        ' cannot count, once per event), descriptors (a task left without perf counters: out of file'
        ' descriptors), no_cgroup (a task without a perf_event cgroup yet), error (anything else).',
        C, ('reason',)),
    MetricName.WCA_PERF_DESCRIPTORS: _M('Number of perf event descriptors the agent holds open.', G),
    MetricName.WCA_PERF_TASKS: _M('Number of tasks with perf counters open.', G),

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
    MetricName.ALLOCATIONS_WRITTEN: _M(
        'Number of allocations written to the kernel (cgroup files, resctrl groups and schemata,'
        ' migrate_pages) since start, by type; one the kernel already held is not written.', C,
        ('allocation_type',)),
    MetricName.ALLOCATIONS_REJECTED: _M(
        'Number of allocations rejected since start, by type and reason: invalid, unknown_task,'
        ' unknown_type, unsupported, out_of_closids, conflict, kernel_refused, permission,'
        ' vanished.', C, ('allocation_type', 'reason')),
    MetricName.STATIC_ALLOCATOR_RULES: _M(
        'Number of StaticAllocator rules in effect (from rules and the config file).', G),
    MetricName.STATIC_ALLOCATOR_CONFIG_ERRORS: _M(
        'Number of times the StaticAllocator rules file could not be used (missing, unreadable or'
        ' invalid); the last good rules stay in effect.', C),
    MetricName.NUMA_TASK_CURRENT_NODE: _M(
        'NUMA node the task is pinned to by its cpuset (-1: not pinned to one node).', G),
    MetricName.NUMA_BALANCED_MEMORY_TASKS: _M('Number of tasks pinned to the NUMA node.', G,
                                              ('numa_node',)),
    MetricName.NUMA_BALANCED_MEMORY_SIZE: _M(
        'Memory of the tasks pinned to the NUMA node, in bytes.', G, ('numa_node',)),
    MetricName.NUMA_TASK_TASKS_COUNT: _M('Number of tasks the NUMAAllocator considered.', G),
    MetricName.NUMA_TASK_PAGES_TO_MOVE: _M(
        'Pages of the task the NUMAAllocator asked to migrate, summed since the task appeared.', G),
    MetricName.NUMA_TOTAL_PAGES_TO_MOVE: _M(
        'Pages the NUMAAllocator asked to migrate, summed over the current tasks.', G),
    MetricName.INTERFERENCE_SIGNAL: _M(
        'The task\'s victim signal in this iteration (label signal: cpi in cycles per instruction,'
        ' cpu_pressure and runqueue_delay in seconds waited per second).', G),
    MetricName.INTERFERENCE_CPU_USAGE: _M(
        'CPUs the task used since the previous iteration (CPU-seconds per second).', G),
    MetricName.INTERFERENCE_BASELINE_MEAN: _M(
        'Mean of the signal over the healthy samples of the task\'s workload on this CPU model.', G),
    MetricName.INTERFERENCE_BASELINE_STDDEV: _M(
        'Standard deviation of the signal over the healthy samples of the task\'s workload.', G),
    MetricName.INTERFERENCE_BASELINE_SAMPLES: _M(
        'Number of healthy samples the baseline of the task\'s workload holds (no verdict before'
        ' min_samples).', G),
    MetricName.INTERFERENCE_THRESHOLD: _M(
        'Signal above which a sample of the task is an outlier: mean + max(k_sigma x stddev, the'
        ' margin floor).', G),
    MetricName.INTERFERENCE_OUTLIER: _M(
        '1 when this iteration\'s sample of the task is an outlier, else 0.', G),
    MetricName.INTERFERENCE_VICTIM: _M(
        '1 while the task is a victim (min_outliers outliers within window seconds), else 0.', G),
    MetricName.INTERFERENCE_THROTTLE_LEVEL: _M(
        'Throttle level of a best-effort task: 0 cut to the floor, levels released.', G),
    MetricName.INTERFERENCE_THROTTLE_CPUS: _M(
        'CPUs the throttle leaves a best-effort task at its current level.', G),
    MetricName.INTERFERENCE_ANOMALY_SIGNAL: _M(
        'The contended task\'s signal when the anomaly was found.', G),
    MetricName.INTERFERENCE_ANOMALY_THRESHOLD: _M(
        'The contended task\'s threshold when the anomaly was found.', G),
    MetricName.INTERFERENCE_ANTAGONIST_CORRELATION: _M(
        'CPI2 correlation of the contending task\'s CPU usage with the contended task\'s excess'
        ' over its threshold, in the window (-1 to 1; above antagonist_threshold it is named).', G),
    MetricName.INTERFERENCE_ACTIONS: _M(
        'Number of throttle actions on best-effort tasks, by action: throttle (cut to level 0),'
        ' step (a level given back), release.', C, ('action',)),
    MetricName.INTERFERENCE_SIGNAL_MISSING: _M(
        'Number of task samples without the configured victim signal (not judged).', C),
    MetricName.INTERFERENCE_STATE_ERRORS: _M(
        'Number of times the baselines file could not be read, parsed or written.', C),
}
del G, C, _M, _P, _U
