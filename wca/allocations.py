"""Reads what tasks are given now, checks an allocator's answer against the platform, and
encodes it as metrics.

Applying allocations to the kernel is not done here; what is invalid is dropped, logged and
counted, never applied and never fatal.
"""
import logging
from typing import Dict, List, Tuple

from wca import fsutil
from wca.allocators import AllocationType, RDTAllocation, TaskAllocations, TasksAllocations
from wca.cgroups.settings import PERIOD_US, QUOTA_US, SHARES
from wca.metrics import Metric, MetricName
from wca.platforms import Platform

log = logging.getLogger(__name__)


def current_allocations(raw: Dict, cpus: int, shares_unit: float) -> TaskAllocations:
    """A task's cgroup settings (read with cgroups.ALLOCATION_SOURCES) in the contract's units:
    cpu_quota as a fraction of the whole platform (1.0 when unlimited), cpu_shares in
    multiples of `shares_unit`, cpusets as kernel list strings."""
    allocations = {}
    quota, period = raw.get(QUOTA_US), raw.get(PERIOD_US)
    if quota is not None and period:
        allocations[AllocationType.QUOTA] = 1.0 if quota < 0 else min(
            1.0, quota / period / max(cpus, 1))
    if SHARES in raw:
        allocations[AllocationType.SHARES] = raw[SHARES] / shares_unit
    for kind in (AllocationType.CPUSET_CPUS, AllocationType.CPUSET_MEMS,
                 AllocationType.CPUSET_MEMORY_MIGRATE):
        if kind.value in raw:
            allocations[kind] = raw[kind.value]
    return allocations


class InvalidAllocation(ValueError):
    """One allocation value does not fit its type or the platform."""


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidAllocation('expected a number, got %r' % (value,))
    return value


def _check_quota(value, platform):
    if _number(value) < 0:
        raise InvalidAllocation('cpu_quota must be >= 0 (1.0 is the whole platform), got %r' % value)
    return value


def _check_shares(value, platform):
    if _number(value) <= 0:
        raise InvalidAllocation('cpu_shares must be > 0, got %r' % value)
    return value


def _check_list(value, allowed, what):
    if not isinstance(value, str):
        raise InvalidAllocation('expected a %s list string like "0-3,8", got %r' % (what, value))
    try:
        members = fsutil.parse_cpu_list(value)
    except ValueError:
        raise InvalidAllocation('not a %s list: %r' % (what, value))
    unknown = members - set(allowed)
    if unknown:
        raise InvalidAllocation('%s %s not on this platform' % (what, fsutil.format_cpu_list(unknown)))
    return value


def _check_cpus(value, platform):
    cpus = [cpu for cores in platform.topology.values() for c in cores.values() for cpu in c]
    return _check_list(value, cpus or range(platform.cpus), 'cpu')


def _check_mems(value, platform):
    return _check_list(value, platform.node_cpus or range(platform.numa_nodes), 'NUMA node')


def _check_migrate(value, platform):
    if value not in (0, 1, True, False):
        raise InvalidAllocation('cpuset_memory_migrate must be 0 or 1, got %r' % (value,))
    return int(value)


def _check_migrate_pages(value, platform):
    if isinstance(value, bool) or not isinstance(value, int) or value not in (
            platform.node_cpus or range(platform.numa_nodes)):
        raise InvalidAllocation('migrate_pages must be a NUMA node of this platform, got %r'
                                % (value,))
    return value


def parse_schemata(text: str, resource: str) -> Dict[str, str]:
    """'L3:0=fffff;1=fffff' -> {'0': 'fffff', '1': 'fffff'}."""
    prefix, sep, body = text.strip().partition(':')
    if not sep or prefix.strip() != resource:
        raise InvalidAllocation('expected %r to start with "%s:"' % (text, resource))
    domains = {}
    for part in body.split(';'):
        domain, sep, value = part.partition('=')
        if not sep or not domain.strip().isdigit() or not value.strip():
            raise InvalidAllocation('bad %s domain %r in %r' % (resource, part, text))
        domains[domain.strip()] = value.strip()
    return domains


def _check_rdt(value, platform):
    if not isinstance(value, RDTAllocation):
        raise InvalidAllocation('expected an RDTAllocation, got %r' % (value,))
    if value.l3 is not None:
        for mask in parse_schemata(value.l3, 'L3').values():
            try:
                bits = int(mask, 16)
            except ValueError:
                raise InvalidAllocation('L3 mask %r is not hexadecimal' % mask)
            if bits == 0 or '0' in bin(bits)[2:].strip('0'):
                raise InvalidAllocation('L3 mask %r must be one contiguous run of bits' % mask)
    if value.mb is not None:
        for bandwidth in parse_schemata(value.mb, 'MB').values():
            if not bandwidth.isdigit() or int(bandwidth) <= 0:
                raise InvalidAllocation('MB value %r must be a positive integer' % bandwidth)
    return value


_CHECKS = {
    AllocationType.QUOTA: _check_quota,
    AllocationType.SHARES: _check_shares,
    AllocationType.CPUSET_CPUS: _check_cpus,
    AllocationType.CPUSET_MEMS: _check_mems,
    AllocationType.CPUSET_MEMORY_MIGRATE: _check_migrate,
    AllocationType.MIGRATE_PAGES: _check_migrate_pages,
    AllocationType.RDT: _check_rdt,
}


def validate_allocations(allocations, known_tasks, platform: Platform
                         ) -> Tuple[TasksAllocations, List[str]]:
    """Returns (the valid allocations, one message per rejected one)."""
    if not isinstance(allocations, dict):
        return {}, ['allocations must be a dict of task id to allocations, got %s'
                    % type(allocations).__name__]
    valid, errors = {}, []
    for task_id, task_allocations in allocations.items():
        if task_id not in known_tasks:
            errors.append('task %r: not a task of this iteration' % (task_id,))
            continue
        if not isinstance(task_allocations, dict):
            errors.append('task %r: expected a dict of allocation type to value' % (task_id,))
            continue
        for kind, value in task_allocations.items():
            try:
                kind = AllocationType(kind)
            except ValueError:
                errors.append('task %r: unknown allocation type %r' % (task_id, kind))
                continue
            try:
                valid.setdefault(task_id, {})[kind] = _CHECKS[kind](value, platform)
            except InvalidAllocation as e:
                errors.append('task %r: %s: %s' % (task_id, kind.value, e))
    return valid, errors


_SIMPLE = {
    AllocationType.QUOTA: MetricName.ALLOCATION_CPU_QUOTA,
    AllocationType.SHARES: MetricName.ALLOCATION_CPU_SHARES,
    AllocationType.CPUSET_MEMORY_MIGRATE: MetricName.ALLOCATION_CPUSET_MEMORY_MIGRATE,
    AllocationType.MIGRATE_PAGES: MetricName.ALLOCATION_MIGRATE_PAGES,
}
_LISTS = {
    AllocationType.CPUSET_CPUS: MetricName.ALLOCATION_CPUSET_CPUS_NUMBER_OF_CPUS,
    AllocationType.CPUSET_MEMS: MetricName.ALLOCATION_CPUSET_MEMS_NUMBER_OF_MEMS,
}


def allocations_to_metrics(allocations: TasksAllocations,
                           task_labels: Dict[str, Dict[str, str]]) -> List[Metric]:
    """One metric per task and allocation (per domain for RDT), labelled like the task."""
    metrics = []
    make = Metric.create_metric_with_metadata
    for task_id, task_allocations in sorted(allocations.items()):
        labels = dict(task_labels.get(task_id, {}), task_id=task_id)
        for kind, value in task_allocations.items():
            kind_labels = dict(labels, allocation_type=kind.value)
            if kind in _SIMPLE:
                metrics.append(make(_SIMPLE[kind], value, kind_labels))
            elif kind in _LISTS:
                metrics.append(make(_LISTS[kind], len(fsutil.parse_cpu_list(value)), kind_labels))
            elif kind is AllocationType.RDT:
                metrics.extend(_rdt_metrics(value, dict(kind_labels, group_name=value.name or task_id)))
    return metrics


def _rdt_metrics(value: RDTAllocation, labels) -> List[Metric]:
    metrics = []
    make = Metric.create_metric_with_metadata
    if value.l3:
        for domain, mask in sorted(parse_schemata(value.l3, 'L3').items()):
            domain_labels = dict(labels, domain_id=domain)
            bits = int(mask, 16)
            metrics.append(make(MetricName.ALLOCATION_RDT_L3_CACHE_WAYS, bin(bits).count('1'),
                                domain_labels))
            metrics.append(make(MetricName.ALLOCATION_RDT_L3_MASK, bits, domain_labels))
    if value.mb:
        for domain, bandwidth in sorted(parse_schemata(value.mb, 'MB').items()):
            metrics.append(make(MetricName.ALLOCATION_RDT_MB, int(bandwidth),
                                dict(labels, domain_id=domain)))
    return metrics
