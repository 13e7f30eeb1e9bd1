"""The platform: static topology read once, and /proc and /sys usage read every iteration.

Root paths are injectable (`proc`, `sys`) so tests can point the collector at a fixture tree.
"""
import logging
import os
import socket
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from dataclasses import dataclass, field

from wca import fsutil
from wca.metrics import Measurements, MetricName

log = logging.getLogger(__name__)

# /proc/stat cpu line fields: user nice system idle iowait irq softirq steal guest guest_nice
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest is in user)


@dataclass
class RDTInformation:
    cbm_mask: Optional[str] = None
    min_cbm_bits: Optional[str] = None
    num_closids: Optional[int] = None
    mb_bandwidth_gran: Optional[int] = None
    mb_min_bandwidth: Optional[int] = None
    rdt_cache_monitoring_enabled: bool = False
    rdt_cache_control_enabled: bool = False
    rdt_mb_monitoring_enabled: bool = False
    rdt_mb_control_enabled: bool = False
    # Monitoring (info/L3_MON): the events it counts (llc_occupancy, mbm_total_bytes,
    # mbm_local_bytes) and how many monitoring groups (RMIDs) the hardware has.
    mon_features: Tuple[str, ...] = ()
    num_rmids: Optional[int] = None


@dataclass
class Platform:
    sockets: int
    cores: int
    cpus: int
    numa_nodes: int
    cpu_model: str
    topology: Dict[int, Dict[int, List[int]]]  # socket -> core -> cpus
    node_cpus: Dict[int, Set[int]]
    node_distances: Dict[int, Dict[int, int]]
    timestamp: float
    rdt_information: Optional[RDTInformation]
    measurements: Measurements
    swap_enabled: bool = False
    cpu_codename: str = ''


@dataclass
class Topology:
    """What does not change while the agent runs."""
    sockets: int
    cores: int
    cpus: int
    topology: Dict[int, Dict[int, List[int]]]
    node_cpus: Dict[int, Set[int]]
    node_distances: Dict[int, Dict[int, int]]
    cpu_model: str
    online_cpus: List[int] = field(default_factory=list)


def read_topology(proc: str = '/proc', sys: str = '/sys') -> Topology:
    cpu_dir = os.path.join(sys, 'devices/system/cpu')
    try:
        online = sorted(fsutil.parse_cpu_list(fsutil.read_text(os.path.join(cpu_dir, 'online'))))
    except OSError:
        online = sorted(int(n[3:]) for n in os.listdir(cpu_dir)
                        if n.startswith('cpu') and n[3:].isdigit())
    topology = {}  # type: Dict[int, Dict[int, List[int]]]
    for cpu in online:
        base = os.path.join(cpu_dir, 'cpu%d' % cpu, 'topology')
        try:
            socket_id = fsutil.read_int(os.path.join(base, 'physical_package_id'))
            core_id = fsutil.read_int(os.path.join(base, 'core_id'))
        except (OSError, ValueError):
            socket_id, core_id = 0, cpu
        topology.setdefault(socket_id, {}).setdefault(core_id, []).append(cpu)
    node_cpus, node_distances = _numa(os.path.join(sys, 'devices/system/node'), online)
    return Topology(
        sockets=len(topology),
        cores=sum(len(cores) for cores in topology.values()),
        cpus=len(online),
        topology=topology,
        node_cpus=node_cpus,
        node_distances=node_distances,
        cpu_model=_cpu_model(proc),
        online_cpus=online,
    )


def _numa(node_dir, online) -> Tuple[Dict[int, Set[int]], Dict[int, Dict[int, int]]]:
    nodes = sorted(int(n[4:]) for n in _listdir(node_dir) if n.startswith('node') and n[4:].isdigit())
    if not nodes:  # a kernel without NUMA: one node with every CPU
        return {0: set(online)}, {0: {0: 10}}
    node_cpus, distances = {}, {}
    for node in nodes:
        base = os.path.join(node_dir, 'node%d' % node)
        try:
            node_cpus[node] = fsutil.parse_cpu_list(fsutil.read_text(base + '/cpulist'))
        except OSError:
            node_cpus[node] = set()
        try:
            values = [int(v) for v in fsutil.read_text(base + '/distance').split()]
            distances[node] = dict(zip(nodes, values))
        except (OSError, ValueError):
            distances[node] = {node: 10}
    return node_cpus, distances


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _cpu_model(proc):
    try:
        for line in fsutil.read_text(os.path.join(proc, 'cpuinfo')).splitlines():
            key, _, value = line.partition(':')
            if key.strip() in ('model name', 'Processor', 'cpu model'):
                return value.strip()
    except OSError:
        pass
    return 'unknown'


class PlatformCollector:
    """Builds a Platform each iteration from cached topology and fresh /proc, /sys reads."""

    def __init__(self, proc: str = '/proc', sys: str = '/sys', errors: Optional[Dict] = None):
        self.proc = proc
        self.sys = sys
        self.errors = errors if errors is not None else {}
        self.topology = read_topology(proc, sys)
        self._stat = os.path.join(proc, 'stat')
        self._meminfo = os.path.join(proc, 'meminfo')
        self._node_meminfo = [
            (node, os.path.join(sys, 'devices/system/node/node%d/meminfo' % node),
             b'Node %d ' % node)
            for node in sorted(self.topology.node_cpus)]
        self._failed = set()

    @property
    def files(self) -> List[str]:
        """The files collect() reads, in order."""
        return [self._stat, self._meminfo] + [path for _, path, _ in self._node_meminfo]

    def static_measurements(self) -> Measurements:
        t = self.topology
        return {
            MetricName.PLATFORM_TOPOLOGY_SOCKETS: t.sockets,
            MetricName.PLATFORM_TOPOLOGY_CORES: t.cores,
            MetricName.PLATFORM_TOPOLOGY_CPUS: t.cpus,
            MetricName.PLATFORM_NUMA_NODES: len(t.node_cpus),
        }

    def collect(self, rdt_information: Optional[RDTInformation] = None) -> Platform:
        measurements = self.static_measurements()
        swap_total = 0
        try:
            measurements[MetricName.PLATFORM_CPU_USAGE] = parse_proc_stat(fsutil.read_bytes(self._stat))
        except (OSError, ValueError) as e:
            self._failure(self._stat, e)
        try:
            mem = fsutil.parse_meminfo(fsutil.read_bytes(self._meminfo))
            measurements[MetricName.PLATFORM_MEM_TOTAL_BYTES] = mem['MemTotal']
            measurements[MetricName.PLATFORM_MEM_USAGE_BYTES] = (
                mem['MemTotal'] - mem['MemFree'] - mem.get('Buffers', 0) - mem.get('Cached', 0))
            swap_total = mem.get('SwapTotal', 0)
            measurements[MetricName.PLATFORM_SWAP_TOTAL_BYTES] = swap_total
            measurements[MetricName.PLATFORM_SWAP_USAGE_BYTES] = swap_total - mem.get('SwapFree', 0)
        except (OSError, ValueError, KeyError) as e:
            self._failure(self._meminfo, e)
        free, used = {}, {}
        for node, path, prefix in self._node_meminfo:
            try:
                info = fsutil.parse_meminfo(fsutil.read_bytes(path), prefix)
                free[node], used[node] = info['MemFree'], info['MemUsed']
            except (OSError, ValueError, KeyError) as e:
                self._failure(path, e)
        if free:
            measurements[MetricName.PLATFORM_MEM_NUMA_FREE_BYTES] = free
            measurements[MetricName.PLATFORM_MEM_NUMA_USED_BYTES] = used
        now = time.time()
        measurements[MetricName.PLATFORM_LAST_SEEN] = now
        t = self.topology
        return Platform(
            sockets=t.sockets, cores=t.cores, cpus=t.cpus, numa_nodes=len(t.node_cpus),
            cpu_model=t.cpu_model, topology=t.topology, node_cpus=t.node_cpus,
            node_distances=t.node_distances, timestamp=now, rdt_information=rdt_information,
            measurements=measurements, swap_enabled=swap_total > 0)

    def _failure(self, path, error):
        self.errors['measurement'] = self.errors.get('measurement', 0) + 1
        if path not in self._failed:
            self._failed.add(path)
            log.warning('cannot read %s: %s (its metrics are dropped)', path, error)

    def information_labels(self) -> Dict[str, Any]:
        t = self.topology
        return {'sockets': str(t.sockets), 'cores': str(t.cores), 'cpus': str(t.cpus),
                'numa_nodes': str(len(t.node_cpus)), 'cpu_model': t.cpu_model}


def parse_proc_stat(data: bytes) -> Dict[int, int]:
    """Per logical CPU busy time in USER_HZ ticks: every mode but idle and iowait."""
    usage = {}
    for line in data.split(b'\n'):
        if not line.startswith(b'cpu') or line.startswith(b'cpu '):
            if usage and not line.startswith(b'cpu'):
                break  # the cpuN lines are contiguous
            continue
        fields = line.split()
        values = fields[1:]
        usage[int(fields[0][3:])] = sum(int(values[i]) for i in _BUSY_FIELDS if i < len(values))
    return usage


def hostname() -> str:
    return socket.gethostname()
