"""Helpers of the allocation tests (a helper module, not a test module): allocators and nodes
written against the contract, the AllocationRunner with recording storages, and trees laid out
like the kernel's for what this machine lacks (cgroup2 cpu and cpuset controllers, a second NUMA
node)."""
import os
from typing import Dict, List

from testing.recording import Recording
from wca.allocators import Allocator
from wca.metrics import Metric
from wca.nodes.base import Node, Task
from wca.runners import AllocationRunner


class FixedAllocator(Allocator):
    """Answers answer(tasks_data) (a dict, or anything else) every iteration, and keeps the
    current allocations it was shown."""

    def __init__(self, answer):
        self.answer = answer
        self.seen = None
        self.calls = 0

    def allocate(self, platform, tasks_data):
        self.calls += 1
        self.seen = {task_id: data.allocations for task_id, data in tasks_data.items()}
        answer = self.answer(tasks_data) if callable(self.answer) else self.answer
        return answer, [], [Metric('test_allocator_calls', self.calls)]


class ListNode(Node):
    """Tasks as given (pods with subcgroups_paths, labels)."""

    def __init__(self, tasks: List[Task]):
        self.tasks = tasks

    def get_tasks(self):
        return list(self.tasks)


def task(cgroup_path: str, subcgroups=(), labels=None, task_id=None) -> Task:
    task_id = task_id or cgroup_path.strip('/')
    return Task(name=task_id, task_id=task_id, cgroup_path=cgroup_path,
                subcgroups_paths=list(subcgroups), labels=dict(labels or {}), resources={})


def runner(node, allocator, **options):
    """(runner, metrics, anomalies, allocations): an AllocationRunner storing into Recordings."""
    storages = Recording(), Recording(), Recording()
    options.setdefault('interval', 0)
    options.setdefault('rdt_enabled', False)
    options.setdefault('gather_hw_mm_topology', False)
    made = AllocationRunner(node=node, allocator=allocator, metrics_storage=storages[0],
                            anomalies_storage=storages[1], allocations_storage=storages[2],
                            **options)
    return (made,) + storages


def counters(storage: Recording, name: str, *keys) -> Dict[tuple, float]:
    """The last batch's samples of `name`, keyed by the values of these labels."""
    return {tuple(m.labels.get(k) for k in keys) if len(keys) > 1 else m.labels.get(keys[0]):
            m.value for m in storage.last(name)}


def written(storage: Recording) -> Dict[str, float]:
    """allocations_written_total by allocation type, from the last batch."""
    return counters(storage, 'allocations_written_total', 'allocation_type')


def rejected(storage: Recording) -> Dict[tuple, float]:
    return counters(storage, 'allocations_rejected_total', 'allocation_type', 'reason')


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write(path: str, text: str, mode: int = 0o644):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    with open(path, 'w') as f:
        f.write(text + '\n' if text else '')
    os.chmod(path, mode)


class V2Tree:
    """A cgroup2 mount laid out as the kernel does with the cpu and cpuset controllers enabled
    for the children (files as the kernel shows them; writes are plain file writes)."""

    CONTROLLERS = 'cpuset cpu io memory hugetlb pids'

    def __init__(self, root: str, cpus: str = '0-1', mems: str = '0'):
        self.root = root
        self.cpus, self.mems = cpus, mems
        write(os.path.join(root, 'cgroup.controllers'), self.CONTROLLERS)
        write(os.path.join(root, 'cgroup.subtree_control'), 'cpuset cpu memory')
        write(os.path.join(root, 'cpuset.cpus.effective'), cpus)
        write(os.path.join(root, 'cpuset.mems.effective'), mems)

    def make(self, path: str, cpu_max='max 100000', weight=100, cpus='', mems='',
             controllers=CONTROLLERS):
        directory = os.path.join(self.root, path.strip('/'))
        for name, text in (('cgroup.controllers', controllers), ('cgroup.procs', ''),
                           ('cgroup.threads', ''), ('cpu.max', cpu_max), ('cpu.weight', str(weight)),
                           ('cpu.stat', 'usage_usec 0\nuser_usec 0\nsystem_usec 0'),
                           ('cpuset.cpus', cpus), ('cpuset.cpus.effective', cpus or self.cpus),
                           ('cpuset.mems', mems), ('cpuset.mems.effective', mems or self.mems)):
            write(os.path.join(directory, name), text)
        return directory


class NumaSys:
    """/sys/devices/system/{cpu,node} of a machine with one NUMA node per given CPU list
    ({node: [cpus]}), and each node's meminfo (free and used bytes)."""

    def __init__(self, root: str, nodes: Dict[int, List[int]], free: Dict[int, int],
                 used: Dict[int, int]):
        self.root = root
        cpus = sorted(c for members in nodes.values() for c in members)
        system = os.path.join(root, 'devices', 'system')
        write(os.path.join(system, 'cpu', 'online'), '%d-%d' % (cpus[0], cpus[-1]))
        for node, members in nodes.items():
            for cpu in members:
                topology = os.path.join(system, 'cpu', 'cpu%d' % cpu, 'topology')
                write(os.path.join(topology, 'physical_package_id'), str(node))
                write(os.path.join(topology, 'core_id'), str(cpu))
            base = os.path.join(system, 'node', 'node%d' % node)
            write(os.path.join(base, 'cpulist'), ','.join(map(str, members)))
            write(os.path.join(base, 'distance'),
                  ' '.join('10' if other == node else '21' for other in sorted(nodes)))
        write(os.path.join(system, 'node', 'online'), '0-%d' % (len(nodes) - 1))
        self.set_memory(free, used)

    def set_memory(self, free: Dict[int, int], used: Dict[int, int]):
        for node in free:
            total = free[node] + used[node]
            write(os.path.join(self.root, 'devices', 'system', 'node', 'node%d' % node, 'meminfo'),
                  'Node %d MemTotal:       %d kB\nNode %d MemFree:        %d kB\n'
                  'Node %d MemUsed:        %d kB'
                  % (node, total // 1024, node, free[node] // 1024, node, used[node] // 1024))


def proc_tree(root: str, resctrl: bool = False, swap_bytes: int = 0) -> str:
    """A /proc for the agent: this machine's, with the mount table's resctrl lines left out
    (unless `resctrl`) and, with swap_bytes, swap turned on in meminfo."""
    self_dir = os.path.join(root, 'self')
    os.makedirs(self_dir)
    with open('/proc/self/mounts') as f:
        mounts = [line for line in f if resctrl or ' resctrl ' not in line]
    write(os.path.join(self_dir, 'mounts'), ''.join(mounts).rstrip('\n'))
    for name in ('stat', 'cpuinfo', 'pressure', 'vmstat', 'zoneinfo', 'sys'):
        os.symlink('/proc/' + name, os.path.join(root, name))
    for name in ('statm', 'status'):
        os.symlink('/proc/self/' + name, os.path.join(self_dir, name))
    with open('/proc/meminfo') as f:
        meminfo = f.read()
    if swap_bytes:
        lines = [line for line in meminfo.splitlines()
                 if not line.startswith(('SwapTotal:', 'SwapFree:'))]
        lines += ['SwapTotal:      %d kB' % (swap_bytes // 1024),
                  'SwapFree:       %d kB' % (swap_bytes // 1024)]
        meminfo = '\n'.join(lines)
    write(os.path.join(root, 'meminfo'), meminfo.rstrip('\n'))
    return root
