"""The measurement options: MeasurementRunnerConfig, and how a runner takes them (flat, as
`config: !XRunnerConfig`, or in the 2.0 shape as `measurement_runner: !MeasurementRunner`).

Everything here is checked when the config loads, before anything runs."""
import inspect
from typing import Dict, List, Optional, Union

from dataclasses import dataclass, field, fields, MISSING

from wca import hwmem, procfs, wss
from wca.allocators import AllocationConfiguration
from wca.cgroups.layout import CgroupLayout
from wca.config import Numeric, Path
from wca.labels import TaskLabelGenerator, check_generators
from wca.nodes.base import Node
from wca.perf import setup as perf_setup
from wca.resctrl import rdt
from wca.resctrl.info import Resctrl
from wca.storage.base import Storage
from wca.storage.log import LogStorage


@dataclass
class MeasurementRunnerConfig:
    """Arguments of MeasurementRunner (given flat, or as `config: !MeasurementRunnerConfig`).

    node: task discovery (required).
    metrics_storage: where metrics go (default: Prometheus text on stderr).
    interval: seconds between iteration starts.
    extra_labels: labels added to every metric (for example the node's IP).
    rdt_enabled: Intel RDT monitoring through resctrl (cache occupancy, memory bandwidth per
      task): unset = when resctrl is mounted, true = required (exit 1 at start without it),
      false = off.
    rdt_groups_file: where the agent records the resctrl groups it made, so that its next start
      removes those a killed run left behind (and no one else's); null: no record.
    event_names: perf counters per task (task_instructions, task_cycles, software events such as
      task_task_clock_seconds_total, raw events name__rEEUU); see docs/perf.md.
    perf_aggregate_cpus: sum the perf counters over CPUs (false: one sample per CPU, label cpu).
    enable_derived_metrics: task_ipc, task_ips, task_cache_hit_ratio,
      task_cache_misses_per_kilo_instructions (and the uncore bandwidths) from perf deltas.
    uncore_event_names: platform (uncore) perf events (platform_cas_count_reads, ...); a list
      of lists makes separate groups.
    vmstat: platform_vmstat_* counters (true, the default); a regular expression also exports
      the /proc/vmstat keys it matches, and each NUMA node's (false: off). See docs/procfs.md.
    zoneinfo: platform_zoneinfo{numa_node,zone,key} (true, the default), or a regular
      expression with two groups (key, value) choosing the lines; false: off.
    pressure: pressure stall information, per task from cgroup v2 *.pressure and for the
      platform from /proc/pressure (default true; false: three files per task fewer).
    sched: task_sched_stat{key} from /proc/<tid>/sched summed over the task's threads: true
      for every key, a regular expression for the keys it matches (default false: off).
    runqueue_delay: task_runqueue_delay_seconds_total, the time the task's threads waited on a
      CPU run queue (/proc/<tid>/schedstat, summed over the threads; default false: off).
    wss_reset_cycles, wss_stable_cycles, wss_membw_threshold: working set size per task
      (wss_reset_cycles unset: off; 0: never reset; see wca.wss).
    gather_hw_mm_topology: DIMM metrics from dmidecode (and ipmctl), read at start: unset =
      when available, true = required, false = off.
    task_label_generators: label name -> generator (!TaskLabelRegexGenerator), applied when a
      task appears.
    include_optional_labels: accepted and ignored, as in the original agent (the topology is
      on wca_information).
    allocation_configuration: how allocation values map to kernel settings (where the 2.0
      composition shape gives it: an AllocationRunner takes it from here, or its own).
    iterations: stop after this many iterations (default: run until SIGTERM/SIGINT).
    proc_root, sys_root, cgroup_layout: where the kernel interfaces are (tests point these at
      fixture trees); the cgroup layout is detected from /proc/self/mounts by default.
    resctrl: the resctrl file system (from Python only: tests give a fixture tree); found in
      /proc/self/mounts by default.
    """
    node: Node = None  # required: checked in __post_init__, so a flat runner can take config
    metrics_storage: Storage = field(default_factory=LogStorage)
    interval: Numeric(0, 3600) = 1.0
    extra_labels: Optional[Dict[str, str]] = None
    rdt_enabled: Optional[bool] = None
    rdt_groups_file: Optional[Path(absolute=True)] = rdt.DEFAULT_RECORD
    event_names: Optional[List[str]] = None
    enable_derived_metrics: bool = False
    perf_aggregate_cpus: bool = True
    uncore_event_names: Optional[list] = None
    iterations: Optional[Numeric(1, None)] = None
    proc_root: Path(absolute=True) = '/proc'
    sys_root: Path(absolute=True) = '/sys'
    cgroup_layout: Optional[CgroupLayout] = None
    resctrl: Optional[Resctrl] = None
    vmstat: Union[bool, str] = True
    zoneinfo: Union[bool, str] = True
    sched: Union[bool, str] = False
    runqueue_delay: bool = False
    pressure: bool = True
    wss_reset_cycles: Optional[int] = None
    wss_stable_cycles: int = 0
    wss_membw_threshold: Optional[Numeric(0, None)] = None
    gather_hw_mm_topology: Optional[bool] = None
    task_label_generators: Optional[Dict[str, TaskLabelGenerator]] = None
    include_optional_labels: bool = False
    allocation_configuration: Optional[AllocationConfiguration] = None

    def __post_init__(self):
        if self.node is None:
            raise ValueError('node is required (for example node: !CgroupDirectoryNode)')
        procfs.compile_option('vmstat', self.vmstat)
        procfs.compile_option('zoneinfo', self.zoneinfo, 2)
        procfs.compile_option('sched', self.sched)
        wss.check(self.wss_reset_cycles, self.wss_stable_cycles, self.wss_membw_threshold,
                  self.rdt_enabled)
        hwmem.check(self.gather_hw_mm_topology)
        check_generators(self.task_label_generators)
        perf_setup.check(self.event_names, self.uncore_event_names, self.enable_derived_metrics,
                         self.proc_root, self.sys_root, self.cgroup_layout)


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
