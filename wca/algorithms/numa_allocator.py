"""NUMAAllocator: places each task's CPUs (and optionally memory) on one NUMA node, to keep its
memory accesses local, moving at most one task per iteration.

A task's memory is resources['mem'] when the node reports it, else the first of its memory
limit, soft limit, max usage and usage that fits the platform; its preference for a node is the
share of its pages there (task_mem_numa_pages). A task is pinned when its cpuset_cpus equals one
node's CPUs. Of the tasks not pinned (biggest first), the first one for which a node is found is
placed:

- fill_biggest_first: the node where the task takes the largest share of the memory pinned
  there (the least loaded node);
- minimize_migration (or minimize_migrations): a node among those holding most of its memory
  that is also among the least loaded, or among those with most free memory; else one of the
  least loaded with most free memory; else none (tried again next iteration).

loop_min_task_balance skips (for minimize_migration) a task whose largest share on one node is
below it; free_space_check skips a node without enough free memory for the task's pages not on
it yet. The task gets cpuset_cpus of the node, plus cpuset_mems (cgroups_memory_binding),
cpuset_memory_migrate (cgroups_memory_migrate, with the binding) and migrate_pages
(migrate_pages). Pinned tasks with less than migrate_pages_min_task_balance of their memory on
their node get migrate_pages again when their node is the one with most free memory. dryrun:
only the metrics.

Not carried over from the original: cgroups_memory_migrate named an allocation type that does
not exist (a crash), a task without cpuset_cpus (or without allocations) crashed it, and so did
a task without memory.numa_stat and the free space check (a str key for an int node).
"""
import logging
import math
import os
from enum import Enum
from typing import Dict, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from wca import fsutil
from wca.allocators import AllocationType, Allocator
from wca.config import Numeric
from wca.metrics import Metric, MetricName

log = logging.getLogger(__name__)
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')

_MEMORY_ORDER = (MetricName.TASK_MEM_LIMIT_BYTES, MetricName.TASK_MEM_SOFT_LIMIT_BYTES,
                 MetricName.TASK_MEM_MAX_USAGE_BYTES, MetricName.TASK_MEM_USAGE_BYTES)


class NUMAAlgorithm(str, Enum):
    FILL_BIGGEST_FIRST = 'fill_biggest_first'
    MINIMIZE_MIGRATIONS = 'minimize_migration'

    @classmethod
    def _missing_(cls, value):
        if value == 'minimize_migrations':  # the original's documentation spells it so
            return cls.MINIMIZE_MIGRATIONS
        return None

    def __repr__(self):
        return repr(self.value)


class NUMAAllocator(Allocator):
    def __init__(self, algorithm: NUMAAlgorithm = NUMAAlgorithm.FILL_BIGGEST_FIRST,
                 loop_min_task_balance: Numeric(0, 1) = 0.0,
                 free_space_check: bool = False,
                 migrate_pages: bool = True,
                 migrate_pages_min_task_balance: Optional[Numeric(0, 1)] = 0.95,
                 cgroups_memory_binding: bool = False,
                 cgroups_memory_migrate: bool = False,
                 dryrun: bool = False):
        self.algorithm = NUMAAlgorithm(algorithm)
        self.loop_min_task_balance = loop_min_task_balance
        self.free_space_check = free_space_check
        self.migrate_pages = migrate_pages
        self.migrate_pages_min_task_balance = migrate_pages_min_task_balance
        self.cgroups_memory_binding = cgroups_memory_binding
        self.cgroups_memory_migrate = cgroups_memory_migrate
        self.dryrun = dryrun
        if cgroups_memory_migrate and not cgroups_memory_binding:
            log.warning('NUMAAllocator: cgroups_memory_migrate has no effect without '
                        'cgroups_memory_binding: true (it moves the memory when cpuset.mems '
                        'changes)')
        self._pages_to_move = {}  # type: Dict[str, int]
        self._no_numa_stat = set()  # type: Set[str]

    def allocate(self, platform, tasks_data):
        metrics = []  # type: List[Metric]
        make = Metric.create_metric_with_metadata
        nodes = sorted(platform.node_cpus)
        free = dict(platform.measurements.get(MetricName.PLATFORM_MEM_NUMA_FREE_BYTES) or {})
        used = platform.measurements.get(MetricName.PLATFORM_MEM_NUMA_USED_BYTES) or {}
        total = sum(free.values()) + sum(used.values()) or \
            platform.measurements.get(MetricName.PLATFORM_MEM_TOTAL_BYTES, 0)
        tasks = sorted(((task_id, self._memory(data, total), self._preferences(task_id, data, nodes))
                        for task_id, data in tasks_data.items()), key=lambda t: (-t[1], t[0]))
        current = {task_id: current_node(data.allocations, platform.node_cpus)
                   for task_id, data in tasks_data.items()}
        balanced = {node: [] for node in nodes}  # type: Dict[int, List[Tuple[str, int]]]
        for task_id, memory, _ in tasks:
            if current[task_id] in balanced:
                balanced[current[task_id]].append((task_id, memory))
        for node, pinned in sorted(balanced.items()):
            labels = {'numa_node': str(node)}
            metrics.append(make(MetricName.NUMA_BALANCED_MEMORY_TASKS, len(pinned), labels))
            metrics.append(make(MetricName.NUMA_BALANCED_MEMORY_SIZE,
                                sum(m for _, m in pinned), labels))
        metrics.append(make(MetricName.NUMA_TASK_TASKS_COUNT, len(tasks_data)))
        for task_id in sorted(tasks_data):
            metrics.append(make(MetricName.NUMA_TASK_CURRENT_NODE, current[task_id],
                                _task_labels(task_id, tasks_data[task_id])))
        for gone in [t for t in self._pages_to_move if t not in tasks_data]:
            del self._pages_to_move[gone]
        allocations = {}  # type: Dict[str, Dict[AllocationType, object]]
        if self.dryrun:
            return allocations, [], metrics

        chosen = None  # type: Optional[Tuple[str, int]]
        for task_id, memory, preferences in tasks:
            self._pages_to_move.setdefault(task_id, 0)
            if chosen is not None or current[task_id] >= 0 or memory == 0:
                continue
            if self.algorithm is NUMAAlgorithm.MINIMIZE_MIGRATIONS:
                node = self._minimize_migration(memory, preferences, balanced, free)
            else:
                node = least_loaded_node(memory, balanced)
            if node is not None and self.free_space_check and \
                    not enough_free_memory(memory, node, free, tasks_data[task_id]):
                log.debug('NUMAAllocator: task %s: not enough free memory on node %d', task_id,
                          node)
                node = None
            if node is not None:
                chosen = (task_id, node)
        if chosen is not None:
            task_id, node = chosen
            log.debug('NUMAAllocator: task %s placed on node %d', task_id, node)
            task_allocations = {AllocationType.CPUSET_CPUS:
                                fsutil.format_cpu_list(platform.node_cpus[node])}
            if self.cgroups_memory_binding:
                task_allocations[AllocationType.CPUSET_MEMS] = str(node)
                if self.cgroups_memory_migrate:
                    task_allocations[AllocationType.CPUSET_MEMORY_MIGRATE] = 1
            if self.migrate_pages:
                self._pages_to_move[task_id] += pages_elsewhere(tasks_data[task_id], node)
                task_allocations[AllocationType.MIGRATE_PAGES] = node
            allocations[task_id] = task_allocations
        if self.migrate_pages and self.migrate_pages_min_task_balance is not None and free:
            most_free = max(sorted(free), key=lambda n: free[n])
            for task_id, memory, preferences in tasks:
                node = current[task_id]
                if node == most_free and preferences.get(node, 0) < \
                        self.migrate_pages_min_task_balance:
                    self._pages_to_move[task_id] += pages_elsewhere(tasks_data[task_id], node)
                    allocations.setdefault(task_id, {})[AllocationType.MIGRATE_PAGES] = node
        for task_id, pages in sorted(self._pages_to_move.items()):
            metrics.append(make(MetricName.NUMA_TASK_PAGES_TO_MOVE, pages,
                                _task_labels(task_id, tasks_data[task_id])))
        metrics.append(make(MetricName.NUMA_TOTAL_PAGES_TO_MOVE, sum(self._pages_to_move.values())))
        return allocations, [], metrics

    def _minimize_migration(self, memory, preferences, balanced, free) -> Optional[int]:
        if not preferences or max(preferences.values()) < self.loop_min_task_balance:
            return None
        most_used = most_used_nodes(preferences)
        best_memory = least_loaded_nodes(memory, balanced)
        most_free = most_free_nodes(memory, free)
        for first, second in ((most_used, best_memory), (most_used, most_free),
                              (best_memory, most_free)):
            both = first & second
            if both:
                return min(both)
        return None

    @staticmethod
    def _memory(data, total: int) -> int:
        mem = data.resources.get('mem') if data.resources else None
        if isinstance(mem, (int, float)) and not isinstance(mem, bool):
            return int(mem)
        for name in _MEMORY_ORDER:
            value = data.measurements.get(name)
            if isinstance(value, (int, float)) and (not total or value <= total):
                return int(value)
        return 0

    def _preferences(self, task_id, data, nodes) -> Dict[int, float]:
        pages = data.measurements.get(MetricName.TASK_MEM_NUMA_PAGES)
        preferences = {node: 0.0 for node in nodes}
        if not isinstance(pages, dict):
            if task_id not in self._no_numa_stat:
                self._no_numa_stat.add(task_id)
                log.warning('NUMAAllocator: task %s has no task_mem_numa_pages (memory.numa_stat):'
                            ' where its memory is is not known', task_id)
            return preferences
        self._no_numa_stat.discard(task_id)
        total = max(1, sum(pages.values()))
        for node, count in pages.items():
            preferences[int(node)] = round(count / total, 4)
        return preferences


def current_node(allocations, node_cpus) -> int:
    """The node whose CPUs are exactly the task's cpuset_cpus, or -1."""
    cpus = (allocations or {}).get(AllocationType.CPUSET_CPUS)
    if not isinstance(cpus, str):
        return -1
    try:
        assigned = fsutil.parse_cpu_list(cpus)
    except ValueError:
        return -1
    for node, members in sorted(node_cpus.items()):
        if members == assigned:
            return node
    return -1


def least_loaded_node(memory: int, balanced) -> Optional[int]:
    """Where the task's memory is the largest share of the memory pinned there."""
    if not balanced:
        return None
    scores = {node: round(memory / (sum(m for _, m in pinned) + memory), 4)
              for node, pinned in balanced.items()}
    return max(sorted(scores), key=lambda node: scores[node])


def least_loaded_nodes(memory: int, balanced) -> Set[int]:
    loads = {node: round(math.log10(sum(m for _, m in pinned) + memory), 1)
             for node, pinned in balanced.items()}
    best = min(loads.values()) if loads else None
    return {node for node, load in loads.items() if load == best}


def most_used_nodes(preferences: Dict[int, float]) -> Set[int]:
    scores = {node: round(math.log1p(share * 1000)) for node, share in preferences.items()}
    best = max(scores.values()) if scores else None
    return {node for node, score in scores.items() if score == best}


def most_free_nodes(memory: int, free: Dict[int, int]) -> Set[int]:
    room = {node: round(math.log10(free_bytes - memory), 1) for node, free_bytes in free.items()
            if free_bytes > memory}
    best = max(room.values()) if room else None
    return {node for node, score in room.items() if score == best}


def pages_elsewhere(data, node: int) -> int:
    pages = data.measurements.get(MetricName.TASK_MEM_NUMA_PAGES)
    if not isinstance(pages, dict):
        return 0
    return sum(count for other, count in pages.items() if int(other) != node)


def enough_free_memory(memory: int, node: int, free: Dict[int, int], data) -> bool:
    """Whether the task's memory not on `node` yet fits the node's free memory (unknown: yes)."""
    if node not in free:
        return True
    pages = data.measurements.get(MetricName.TASK_MEM_NUMA_PAGES)
    there = pages.get(node, 0) if isinstance(pages, dict) else 0
    return memory - there * PAGE_SIZE < free[node]


def _task_labels(task_id, data) -> Dict[str, str]:
    labels = {str(k): str(v) for k, v in (data.labels or {}).items()}
    labels['task_id'] = task_id
    return labels
