"""Throttling of best-effort antagonists, with PRM's budget levels.

A BE task named as an antagonist goes to level 0 at once: its CPU quota is cut to
cpu_quota_floor CPUs. It gets one level back per recovery_period seconds in which nobody named
it, and never before `hold` seconds after it was (last) cut; level L gives it
floor + L / levels x (ceiling - floor) CPUs, where the ceiling is the quota it had before (its
cpuset's CPUs, or all, when it had none). At `levels` it is released: the quota (and the RDT
group) it had before is given back, and the controller leaves it alone.

Flapping: a task released max_releases_per_hour times within the last hour and named again
stays at level 0 until the oldest of those releases is an hour old.

Cache and memory bandwidth contention (a cpi victim, where RDT control exists): the BE task's
resctrl group (rdt_group) is shrunk first, L3 ways and MBA percent by the same levels; its CPU
quota is cut too only when it is still named `hold` seconds later. The group is shared by the
BE tasks (as PRM's): its schemata are those of the lowest level among the tasks in it.
"""
import collections
import logging
from typing import Deque, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.allocators import AllocationType, RDTAllocation
from wca.detectors import ContendedResource
from wca.platforms import Platform

log = logging.getLogger(__name__)

HOUR = 3600.0


class State:
    """One throttled task."""

    def __init__(self, now: float, ceiling: float, original, original_rdt=None):
        self.level = 0
        self.cut_at = now  # the last cut to level 0
        self.named_at = now
        self.stepped_at = now
        self.ceiling = ceiling  # CPUs at the top level
        self.original = original  # the cpu_quota value before the throttle (None: unknown)
        self.original_rdt = original_rdt  # its RDT allocation (group and schemata) before
        self.cpu = False  # the CPU quota is cut (not only the RDT group)
        self.rdt = False
        self.locked_until = None  # type: Optional[float]


class Throttles:
    def __init__(self, levels: int, hold: float, recovery_period: float, cpu_quota_floor: float,
                 max_releases_per_hour: int, rdt_group: str, dry_run: bool = False):
        self.levels = levels
        self.hold = hold
        self.recovery_period = recovery_period
        self.floor = cpu_quota_floor
        self.max_releases = max_releases_per_hour
        self.rdt_group = rdt_group
        self.dry_run = dry_run
        self.states = {}  # type: Dict[str, State]
        self.releases = {}  # type: Dict[str, Deque[float]]  task id -> release times
        self.actions = {}  # type: Dict[str, int]  action -> count

    def level(self, task_id: str) -> int:
        state = self.states.get(task_id)
        return state.level if state is not None else self.levels

    def update(self, now: float, named: Dict[str, Tuple[str, str, ContendedResource]],
               tasks_data, platform: Platform) -> Dict[str, Dict]:
        """Moves the levels on (named: BE task -> (victim, evidence, resource)) and returns the
        allocations of every task under control, or released in this iteration."""
        for task_id in [t for t in self.states if t not in tasks_data]:
            del self.states[task_id]
        for task_id in [t for t in self.releases if t not in tasks_data]:
            del self.releases[task_id]
        allocations = {}
        for task_id, (victim, evidence, resource) in sorted(named.items()):
            self._named(task_id, victim, evidence, resource, now, tasks_data[task_id], platform)
        for task_id, state in sorted(self.states.items()):
            if task_id not in named:
                self._recover(task_id, state, now)
        # One BE group, one schemata: the lowest level of the tasks in it.
        group_level = min([s.level for s in self.states.values() if s.rdt and s.level < self.levels]
                          or [self.levels])
        for task_id, state in sorted(self.states.items()):
            allocations[task_id] = self._allocations(state, group_level, platform,
                                                     tasks_data[task_id])
            if state.level >= self.levels:
                del self.states[task_id]
        return allocations

    def _named(self, task_id, victim, evidence, resource, now, data, platform):
        state = self.states.get(task_id)
        rdt_first = resource in (ContendedResource.LLC, ContendedResource.MEMORY_BW) and \
            has_rdt_control(data, platform)
        if state is None:
            allocations = data.allocations or {}
            state = self.states[task_id] = State(now, ceiling(data, platform),
                                                 allocations.get(AllocationType.QUOTA.value),
                                                 allocations.get(AllocationType.RDT.value))
            self._lock_if_flapping(task_id, state, now)
            state.rdt, state.cpu = rdt_first, not rdt_first
        elif state.level > 0:  # named again while recovering: back to level 0 at once
            state.level, state.cut_at = 0, now
            state.cpu = state.cpu or not rdt_first
            state.rdt = state.rdt or rdt_first
        elif not state.cpu and (not rdt_first or now - state.cut_at >= self.hold):
            state.cpu, state.cut_at = True, now  # the RDT group alone did not help
        else:
            state.named_at = now  # held at level 0
            return
        state.named_at = state.stepped_at = now
        self._action('throttle', task_id, state, 'victim %s, %s' % (victim, evidence))

    def _lock_if_flapping(self, task_id, state, now):
        releases = self.releases.get(task_id, ())
        recent = [t for t in releases if t > now - HOUR]
        if self.max_releases and len(recent) >= self.max_releases:
            state.locked_until = recent[-self.max_releases] + HOUR
            log.warning('interference: task %s was released %d times in the last hour: it stays '
                        'at level 0 until %d s from now', task_id, len(recent),
                        state.locked_until - now)

    def _recover(self, task_id, state, now):
        if state.locked_until is not None:
            if now < state.locked_until:
                return
            state.locked_until = None
        if now - state.cut_at < self.hold:
            return
        if now - max(state.named_at, state.stepped_at) < self.recovery_period:
            return
        state.level += 1
        state.stepped_at = now
        if state.level >= self.levels:
            releases = self.releases.setdefault(task_id, collections.deque())
            releases.append(now)
            while releases and releases[0] <= now - HOUR:
                releases.popleft()
            self._action('release', task_id, state, 'no victim named it for %.0fs' % (
                now - state.named_at))
        else:
            self._action('step', task_id, state, 'no victim named it for %.0fs' % (
                now - state.named_at))

    def _action(self, action, task_id, state, why):
        self.actions[action] = self.actions.get(action, 0) + 1
        limit = 'level %d/%d' % (state.level, self.levels)
        if state.cpu:
            limit += ', cpu quota %.3g CPUs' % self.cpus(state)
        if state.rdt:
            limit += ', rdt group %s shrunk' % self.rdt_group
        if action == 'release':
            limit = 'released, cpu quota back to %s' % (
                'unlimited' if state.original in (None, 1.0) else
                '%.3g of the platform' % state.original)
        log.warning('interference: %s%s %s: %s; %s', 'dry_run, not applied: ' if self.dry_run
                    else '', action, task_id, why, limit)

    def cpus(self, state: State) -> float:
        top = max(state.ceiling, self.floor)
        return self.floor + (top - self.floor) * state.level / float(self.levels)

    def _allocations(self, state, group_level, platform, data) -> Dict:
        result = {}
        if state.cpu:
            if state.level >= self.levels:
                result[AllocationType.QUOTA] = state.original if state.original is not None \
                    else 1.0
            else:
                result[AllocationType.QUOTA] = min(1.0, self.cpus(state) / platform.cpus)
        if state.rdt:
            if state.level >= self.levels:
                rdt = state.original_rdt  # back to its own group
            else:
                rdt = rdt_allocation(self.rdt_group, group_level, self.levels, data, platform)
            if rdt is not None:
                result[AllocationType.RDT] = rdt
        return result


def ceiling(data, platform: Platform) -> float:
    """The CPUs a task may use without the throttle: its quota, else its cpuset, else all."""
    allocations = data.allocations or {}
    quota = allocations.get(AllocationType.QUOTA.value)
    cpus = float(platform.cpus)
    if isinstance(quota, (int, float)) and 0 < quota < 1.0:
        return quota * cpus
    value = allocations.get(AllocationType.CPUSET_CPUS.value)
    if isinstance(value, str) and value.strip():
        try:
            return float(len(fsutil.parse_cpu_list(value)))
        except ValueError:
            pass
    return cpus


def has_rdt_control(data, platform: Platform) -> bool:
    info = platform.rdt_information
    return info is not None and (data.allocations or {}).get(AllocationType.RDT.value) is not None \
        and bool(info.rdt_cache_control_enabled or info.rdt_mb_control_enabled)


def rdt_allocation(group: str, level: int, levels: int, data, platform: Platform
                   ) -> Optional[RDTAllocation]:
    """The BE group's schemata at a level: the high L3 ways (at least min_cbm_bits, all at the
    top level) and MBA from mb_min_bandwidth to 100 percent, in its granularity; the domains
    are those of the task's current schemata."""
    info = platform.rdt_information
    current = (data.allocations or {}).get(AllocationType.RDT.value)
    if info is None or current is None:
        return None
    l3 = mb = None
    if info.rdt_cache_control_enabled and info.cbm_mask:
        ways = bin(int(info.cbm_mask, 16)).count('1')
        least = int(info.min_cbm_bits or 1)
        n = max(least, min(ways, least + (ways - least) * level // levels))
        mask = ((1 << n) - 1) << (ways - n)
        domains = _domains(getattr(current, 'l3', None), 'L3', platform)
        l3 = 'L3:' + ';'.join('%s=%x' % (d, mask) for d in domains)
    if info.rdt_mb_control_enabled:
        least = int(info.mb_min_bandwidth or 10)
        gran = int(info.mb_bandwidth_gran or 10)
        percent = least + (100 - least) * level // levels
        percent = min(100, -(-percent // gran) * gran)
        domains = _domains(getattr(current, 'mb', None), 'MB', platform)
        mb = 'MB:' + ';'.join('%s=%d' % (d, percent) for d in domains)
    if l3 is None and mb is None:
        return None
    return RDTAllocation(name=group, l3=l3, mb=mb)


def _domains(line: Optional[str], resource: str, platform: Platform) -> List[str]:
    if isinstance(line, str) and line.strip().startswith(resource + ':'):
        domains = [part.partition('=')[0].strip()
                   for part in line.strip()[len(resource) + 1:].split(';') if '=' in part]
        if domains:
            return domains
    return [str(socket) for socket in range(platform.sockets)]
