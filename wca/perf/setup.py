"""What the runner calls: check() when the config is loaded (a bad event name, more events than
the PMU counts at once, no perf_event cgroup hierarchy: config errors), create() in setup() (the
task source factory and the platform sources, with the one-time warnings about what this
machine cannot count)."""
import errno
import logging
import os
from typing import List, Optional, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.cgroups.layout import CgroupLayout
from wca.perf import events as perf_events
from wca.perf.counters import UNSUPPORTED, PerfSourceFactory, PerfStatus, descriptors_fit, probe
from wca.perf.uncore import UncoreCounters, parse_groups, socket_of_cpus
from wca.platforms import Topology, read_topology
from wca.sources import PlatformSource, TaskSourceFactory

log = logging.getLogger(__name__)

MOUNT_HINT = ('mkdir -p /sys/fs/cgroup/perf_event && mount -t cgroup -o perf_event none '
              '/sys/fs/cgroup/perf_event')


def perf_event_hierarchy(proc: str = '/proc') -> Optional[Tuple[int, bool]]:
    """(hierarchy id, enabled) of the perf_event controller from /proc/cgroups (id 0: cgroup2 or
    unbound), or None when the kernel has no such controller."""
    try:
        text = fsutil.read_text(os.path.join(proc, 'cgroups'))
    except OSError:
        return 0, True  # no /proc/cgroups: let the open decide
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == 'perf_event':
            try:
                return int(fields[1]), fields[3] == '1'
            except ValueError:
                return 0, True
    return None


def perf_cgroup_root(layout: CgroupLayout, proc: str = '/proc') -> str:
    """Where tasks' perf_event cgroups are: the v1 perf_event mount, else cgroup2 (where the
    controller is implicit); ValueError names what is missing and how to fix it."""
    mount = layout.v1.get('perf_event')
    if mount:
        return mount
    hierarchy = perf_event_hierarchy(proc)
    if hierarchy is None:
        raise ValueError('this kernel has no perf_event cgroup controller (CONFIG_CGROUP_PERF): '
                         'per-task perf counters are not possible here; leave event_names out')
    hierarchy_id, enabled = hierarchy
    if not enabled:
        raise ValueError('the perf_event cgroup controller is disabled (cgroup_disable=perf_event '
                         'on the kernel command line?); enable it or leave event_names out')
    if hierarchy_id != 0:
        raise ValueError('the perf_event cgroup controller is bound to a cgroup v1 hierarchy that '
                         'is not mounted here; mount it: %s' % MOUNT_HINT)
    if layout.unified:
        return layout.unified
    raise ValueError('no perf_event cgroup hierarchy: neither the v1 perf_event controller nor '
                     'cgroup2 is mounted; mount it: %s' % MOUNT_HINT)


def hyperthreading(topology: Topology) -> bool:
    return topology.cpus != topology.cores


def check(event_names, uncore_event_names, enable_derived_metrics: bool, proc: str, sys: str,
          layout: Optional[CgroupLayout]) -> None:
    """The config checks of the perf options; ValueError('<option>: problem')."""
    if enable_derived_metrics and not event_names and not uncore_event_names:
        raise ValueError('enable_derived_metrics: derived metrics come from perf counters: give '
                         'event_names (task_instructions, task_cycles, ...) or uncore_event_names')
    if event_names:
        try:
            perf_events.check_names(event_names)
            resolved, _ = perf_events.resolve(event_names, perf_events.read_cpuid(proc))
            try:
                topology = read_topology(proc, sys)
            except OSError:
                topology = None  # the platform's own start reports an unreadable /sys
            if topology is not None:
                perf_events.check_budget(resolved, hyperthreading(topology))
            if layout is None:
                mounts = os.path.join(proc, 'self/mounts')
                try:
                    layout = CgroupLayout.detect(mounts)
                except OSError as e:
                    raise ValueError('cannot read %s: %s' % (mounts, e.strerror or e))
            perf_cgroup_root(layout, proc)
        except ValueError as e:
            raise ValueError('event_names: %s' % e)
    if uncore_event_names:
        try:
            parse_groups(uncore_event_names)
        except ValueError as e:
            raise ValueError('uncore_event_names: %s' % e)


def create(event_names, uncore_event_names, aggregate: bool, derived: bool, layout: CgroupLayout,
           topology: Topology, proc: str = '/proc', sys: str = '/sys'
           ) -> Tuple[List[TaskSourceFactory], List[PlatformSource]]:
    """The perf sources of the configured options (none when perf is not configured)."""
    if not event_names and not uncore_event_names:
        return [], []
    status = PerfStatus()
    factories = []  # type: List[TaskSourceFactory]
    platform = [status]  # type: List[PlatformSource]
    if event_names:
        factory = _task_factory(event_names, aggregate, derived, layout, topology, proc, status)
        if factory is not None:
            factories.append(factory)
    if uncore_event_names:
        devices = os.path.join(sys, 'bus/event_source/devices')
        uncore = UncoreCounters(parse_groups(uncore_event_names), devices, socket_of_cpus(topology),
                                derived, status)
        if uncore.groups:
            log.info('uncore counters: %d groups open', uncore.groups)
        platform.append(uncore)
    return factories, platform


def _task_factory(event_names, aggregate, derived, layout, topology, proc, status):
    cpu = perf_events.read_cpuid(proc)
    events, dropped = perf_events.resolve(event_names, cpu)
    if dropped:
        log.warning('event_names: %s not defined for this CPU (%s, %s): left out', ', '.join(dropped),
                    cpu, cpu.codename)
    root = perf_cgroup_root(layout, proc)
    cpus = topology.online_cpus
    usable, failed = probe(events, root, cpus[0]) if events and cpus else ([], [])
    if failed:
        hint = ''
        if any(e.errno in (errno.EACCES, errno.EPERM) for _, e in failed):
            hint = ('; not permitted: lower kernel.perf_event_paranoid (sysctl -w '
                    'kernel.perf_event_paranoid=0) or give the agent CAP_PERFMON')
        elif any(not event.software for event, _ in failed):
            hint = '; no hardware PMU here (a virtual machine without PMU passthrough?)'
        status.failure(UNSUPPORTED, 'event_names: this machine cannot count %s%s; %s' % (
            ', '.join('%s (%s)' % (event.name, os.strerror(e.errno)) for event, e in failed), hint,
            'the other events are counted' if usable else 'no per-task perf counters'),
            count=len(failed))
    if not usable:
        return None
    factory = PerfSourceFactory(usable, root, cpus, aggregate, derived, status)
    if derived and factory.derived_index is None:
        log.warning('enable_derived_metrics: task_ipc, task_ips, task_cache_hit_ratio and '
                    'task_cache_misses_per_kilo_instructions need task_instructions (with '
                    'task_cycles, task_cache_misses) or task_cache_references; none is counted')
    fit, soft, open_now = descriptors_fit(factory.per_task)
    log.info('perf counters: %s on %s; %d descriptors per task (%d events x %d CPUs); '
             'RLIMIT_NOFILE %s with %d open: %s', ', '.join(e.name for e in usable), root,
             factory.per_task, len(usable), len(cpus), 'unlimited' if fit < 0 else soft, open_now,
             'no limit on tasks' if fit < 0 else 'about %d tasks fit' % fit)
    if 0 <= fit < 100:
        log.warning('perf counters: only about %d tasks fit in RLIMIT_NOFILE (%d); raise it '
                    '(LimitNOFILE= in the systemd unit, ulimit -n) or count fewer events', fit, soft)
    return factory
