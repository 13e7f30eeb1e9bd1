"""An allocator's answer checked against the platform and the tasks, one allocation at a time,
and the allocations encoded as metrics.

Each allocation (one task, one type) is accepted or rejected alone: a Rejection names the task,
the type, a reason category (a metric label) and a message for the log. Nothing invalid reaches
the kernel, and nothing here raises for bad input.

Value rules (the contract: shared/plugin-api.md):
- cpu_quota: a finite number in [0, 1.0], a fraction of the whole platform; 1.0 is unlimited.
  Above 1.0 is rejected (more than the platform cannot be given; the original agent refused it
  too), as are NaN and infinities.
- cpu_shares: a finite number >= 0, in multiples of cpu_shares_unit (the kernel's range is
  applied when writing: at least 2 and at most 262144 shares).
- cpuset_cpus, cpuset_mems: the kernel list format ('0-3,8'), or a list of ints, normalised to
  the list format; ranges must not be reversed ('1-0') and the set must not be empty; every
  member must exist on the platform.
- cpuset_memory_migrate: 0 or 1 (or a bool). migrate_pages: a NUMA node of the platform.
- rdt: an RDTAllocation, checked by an RDT checker (wca.resctrl.control) when RDT allocation is
  available, else rejected.
"""
import logging
import math
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from wca import fsutil
from wca.allocators import AllocationType, RDTAllocation, TasksAllocations
from wca.metrics import Metric, MetricName
from wca.platforms import Platform

log = logging.getLogger(__name__)

# Reasons of a rejection (the `reason` label of allocations_rejected_total).
INVALID = 'invalid'  # the value does not fit its type, range or the platform
UNKNOWN_TASK = 'unknown_task'  # no such task in this iteration
UNKNOWN_TYPE = 'unknown_type'  # not an AllocationType
UNSUPPORTED = 'unsupported'  # this host cannot do it (no resctrl, no controller, swap on, ...)
OUT_OF_CLOSIDS = 'out_of_closids'  # more RDT groups than the hardware has CLOSIDs
CONFLICT = 'conflict'  # two tasks asked different schemata for one RDT group
KERNEL_REFUSED = 'kernel_refused'  # the write failed (EINVAL, EBUSY, ERANGE, ...)
PERMISSION = 'permission'  # EACCES, EPERM, or a privilege the agent lacks
VANISHED = 'vanished'  # the cgroup, group or process went away meanwhile
REASONS = (INVALID, UNKNOWN_TASK, UNKNOWN_TYPE, UNSUPPORTED, OUT_OF_CLOSIDS, CONFLICT,
           KERNEL_REFUSED, PERMISSION, VANISHED)
NO_TYPE = 'unknown'  # the allocation_type label of an answer that names no valid type

# Shares closer than this to what the kernel holds are not written; a quota whose ratio
# (quota / period) is within this fraction of the held one's is not either.
FLOAT_TOLERANCE = 0.05
LIST_LIMIT = 1 << 16  # no CPU or NUMA node id is above this: refused before a set is built


class Rejection(NamedTuple):
    task_id: str
    allocation_type: str  # an AllocationType value, or NO_TYPE
    reason: str  # one of REASONS
    message: str

    def log_text(self) -> str:
        if self.allocation_type == NO_TYPE:
            return 'task %r: %s' % (self.task_id, self.message) if self.task_id else self.message
        return 'task %r: %s: %s' % (self.task_id, self.allocation_type, self.message)


class InvalidAllocation(ValueError):
    """One allocation value does not fit its type or the platform (reason: INVALID unless
    given)."""

    def __init__(self, message: str, reason: str = INVALID):
        super().__init__(message)
        self.reason = reason


# --- values -------------------------------------------------------------------------------

def _number(value, what) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidAllocation('%s must be a number, got %r' % (what, value))
    if not math.isfinite(value):
        raise InvalidAllocation('%s must be a finite number, got %r' % (what, value))
    return value


def check_quota(value, platform=None):
    value = _number(value, 'cpu_quota')
    if value < 0 or value > 1.0:
        raise InvalidAllocation('cpu_quota must be in [0, 1.0] (a fraction of the whole platform; '
                                '1.0 is unlimited), got %r' % value)
    return value


def check_shares(value, platform=None):
    value = _number(value, 'cpu_shares')
    if value < 0:
        raise InvalidAllocation('cpu_shares must be >= 0, got %r' % value)
    return value


def parse_list(text: str, what: str = 'cpu') -> Set[int]:
    """The kernel list format ('0-3,8'), strictly: no empty item, no reversed range, no sign.
    InvalidAllocation when it is not that."""
    members = set()  # type: Set[int]
    for part in text.strip().split(','):
        low, sep, high = part.strip().partition('-')
        if not digits(low) or (sep and not digits(high)):
            raise InvalidAllocation('not a %s list in the kernel list format (like "0-3,8"): %r'
                                    % (what, text))
        if int(high or low) > LIST_LIMIT:
            raise InvalidAllocation('%s %s not on this platform' % (what, high or low))
        if sep:
            if int(high) < int(low):
                raise InvalidAllocation('reversed range %r in %s list %r'
                                        % (part.strip(), what, text))
            members.update(range(int(low), int(high) + 1))
        else:
            members.add(int(low))
    return members


def digits(text: str) -> bool:
    """Only ASCII digits (str.isdigit() also takes '²', which int() refuses)."""
    return bool(text) and all('0' <= c <= '9' for c in text)


def normalise_list(value, allowed, what: str) -> str:
    """A cpuset value (list format, or a list of ints) as the kernel list format."""
    if isinstance(value, str):
        if not value.strip():
            raise InvalidAllocation('empty %s list: a task needs at least one' % what)
        members = parse_list(value, what)
    elif isinstance(value, (list, tuple, set, frozenset)):
        if not value:
            raise InvalidAllocation('empty %s list: a task needs at least one' % what)
        if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in value):
            raise InvalidAllocation('a %s list must hold non-negative ints, got %r' % (what, value))
        members = set(value)
    else:
        raise InvalidAllocation('expected a %s list like "0-3,8" (or a list of ints), got %r'
                                % (what, value))
    unknown = members - set(allowed)
    if unknown:
        raise InvalidAllocation('%s %s not on this platform (it has %s)' % (
            what, fsutil.format_cpu_list(unknown), fsutil.format_cpu_list(allowed)))
    return fsutil.format_cpu_list(members)


def platform_cpus(platform: Platform) -> List[int]:
    cpus = [cpu for cores in platform.topology.values() for c in cores.values() for cpu in c]
    return cpus or list(range(platform.cpus))


def platform_nodes(platform: Platform) -> List[int]:
    return list(platform.node_cpus) or list(range(platform.numa_nodes))


def check_cpus(value, platform):
    return normalise_list(value, platform_cpus(platform), 'cpu')


def check_mems(value, platform):
    return normalise_list(value, platform_nodes(platform), 'NUMA node')


def check_memory_migrate(value, platform=None):
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return int(value)
    raise InvalidAllocation('cpuset_memory_migrate must be 0 or 1, got %r' % (value,))


def check_migrate_pages(value, platform):
    nodes = platform_nodes(platform)
    if isinstance(value, bool) or not isinstance(value, int) or value not in nodes:
        raise InvalidAllocation('migrate_pages must be a NUMA node of this platform (%s), got %r'
                                % (fsutil.format_cpu_list(nodes), value))
    return value


_CHECKS = {
    AllocationType.QUOTA: check_quota,
    AllocationType.SHARES: check_shares,
    AllocationType.CPUSET_CPUS: check_cpus,
    AllocationType.CPUSET_MEMS: check_mems,
    AllocationType.CPUSET_MEMORY_MIGRATE: check_memory_migrate,
    AllocationType.MIGRATE_PAGES: check_migrate_pages,
}

# Checks an RDTAllocation for a task (task id, value) -> the value to apply; raises
# InvalidAllocation. None: RDT allocation is not available on this host (the reason given).
RDTCheck = Callable[[str, RDTAllocation], RDTAllocation]


def validate_allocations(allocations, known_tasks, platform: Platform,
                         rdt_check: Optional[RDTCheck] = None,
                         rdt_unavailable: str = 'RDT allocation is not available'
                         ) -> Tuple[TasksAllocations, List[Rejection], int]:
    """(the valid allocations, normalised; a Rejection per invalid one; how many allocations
    the answer held)."""
    if not isinstance(allocations, dict):
        return {}, [Rejection('', NO_TYPE, INVALID, 'allocations must be a dict of task id to '
                              'allocations, got %s' % type(allocations).__name__)], 1
    valid, rejected, count = {}, [], 0
    for task_id, task_allocations in allocations.items():
        if not isinstance(task_allocations, dict):
            count += 1
            rejected.append(Rejection(str(task_id), NO_TYPE, INVALID,
                                      'expected a dict of allocation type to value, got %s'
                                      % type(task_allocations).__name__))
            continue
        count += len(task_allocations)
        if task_id not in known_tasks:
            for kind in task_allocations:
                rejected.append(Rejection(str(task_id), _type_label(kind), UNKNOWN_TASK,
                                          'not a task of this iteration'))
            continue
        for kind, value in task_allocations.items():
            try:
                kind = AllocationType(kind)
            except ValueError:
                rejected.append(Rejection(task_id, NO_TYPE, UNKNOWN_TYPE,
                                          'unknown allocation type %r' % (kind,)))
                continue
            try:
                if kind is AllocationType.RDT:
                    if not isinstance(value, RDTAllocation):
                        raise InvalidAllocation('expected an RDTAllocation, got %r' % (value,))
                    if rdt_check is None:
                        raise InvalidAllocation(rdt_unavailable, UNSUPPORTED)
                    value = rdt_check(task_id, value)
                else:
                    value = _CHECKS[kind](value, platform)
            except InvalidAllocation as e:
                rejected.append(Rejection(task_id, kind.value, e.reason, str(e)))
                continue
            valid.setdefault(task_id, {})[kind] = value
    return valid, rejected, count


def _type_label(kind) -> str:
    try:
        return AllocationType(kind).value
    except ValueError:
        return NO_TYPE


# --- metrics ------------------------------------------------------------------------------

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


def allocations_to_metrics(allocations: TasksAllocations, task_labels: Dict[str, Dict[str, str]],
                           container_names: Optional[Dict[str, str]] = None) -> List[Metric]:
    """One gauge per task and allocation (per group and domain for RDT), labelled like the task
    plus allocation_type, and the original agent's `task` and `container_name` (the agent's:
    they win over task labels of those names)."""
    metrics = []
    make = Metric.create_metric_with_metadata
    container_names = container_names or {}
    for task_id, task_allocations in sorted(allocations.items()):
        labels = dict(task_labels.get(task_id, {}))
        labels.setdefault('task_id', task_id)
        labels['task'] = task_id
        labels['container_name'] = container_names.get(task_id, task_id)
        for kind, value in sorted(task_allocations.items()):
            kind = AllocationType(kind)
            if kind in _SIMPLE:
                metrics.append(make(_SIMPLE[kind], value, dict(labels, allocation_type=kind.value)))
            elif kind in _LISTS:
                count = len(fsutil.parse_cpu_list(value)) if value else 0
                metrics.append(make(_LISTS[kind], count, dict(labels, allocation_type=kind.value)))
            elif kind is AllocationType.RDT and isinstance(value, RDTAllocation):
                metrics.extend(_rdt_metrics(value, labels))
    return metrics


def schemata_domains(line: str) -> Dict[str, str]:
    """'L3:0=fffff;1=fffff' -> {'0': 'fffff', '1': 'fffff'} (what follows the resource name);
    InvalidAllocation when it has no 'resource:' prefix or a domain is malformed."""
    prefix, sep, body = line.strip().partition(':')
    if not sep or not prefix.strip():
        raise InvalidAllocation('expected a schemata line like "L3:0=fffff;1=fffff", got %r'
                                % line)
    domains = {}
    for part in body.split(';'):
        domain, sep, value = part.partition('=')
        domain, value = domain.strip(), value.strip()
        if not sep or not domain or not value:
            raise InvalidAllocation('malformed domain %r in %r (expected id=value)' % (part, line))
        if domain in domains:
            raise InvalidAllocation('domain %s given twice in %r' % (domain, line))
        domains[domain] = value
    return domains


def _rdt_metrics(value: RDTAllocation, labels) -> List[Metric]:
    metrics = []
    make = Metric.create_metric_with_metadata
    group = dict(labels, group_name=value.name or '')
    try:
        if value.l3:
            for domain, mask in sorted(schemata_domains(value.l3).items()):
                bits = int(mask, 16)
                metrics.append(make(MetricName.ALLOCATION_RDT_L3_CACHE_WAYS, bin(bits).count('1'),
                                    dict(group, domain_id=domain,
                                         allocation_type='rdt_l3_cache_ways')))
                metrics.append(make(MetricName.ALLOCATION_RDT_L3_MASK, bits,
                                    dict(group, domain_id=domain, allocation_type='rdt_l3_mask')))
        if value.mb:
            for domain, bandwidth in sorted(schemata_domains(value.mb).items()):
                metrics.append(make(MetricName.ALLOCATION_RDT_MB, int(bandwidth),
                                    dict(group, domain_id=domain, allocation_type='rdt_mb')))
    except ValueError:  # a schemata line the kernel wrote in a form not known here
        log.debug('cannot encode %r as metrics', value)
    return metrics
