"""Platform topology and usage: this machine's /proc and /sys, and a two-socket tree laid out
like the kernel's."""
import os

from wca.metrics import MetricName as M
from wca.platforms import PlatformCollector, parse_proc_stat, read_topology


def test_this_machine():
    collector = PlatformCollector()
    platform = collector.collect()
    assert platform.cpus == len(os.sched_getaffinity(0)) or platform.cpus == os.cpu_count()
    assert platform.sockets >= 1 and platform.cores >= 1 and platform.numa_nodes >= 1
    assert sorted(cpu for cores in platform.topology.values() for cpus in cores.values()
                  for cpu in cpus) == collector.topology.online_cpus
    assert set().union(*platform.node_cpus.values()) == set(collector.topology.online_cpus)
    assert platform.cpu_model and platform.cpu_model != 'unknown'
    m = platform.measurements
    assert set(m[M.PLATFORM_CPU_USAGE]) == set(collector.topology.online_cpus)
    assert all(v > 0 for v in m[M.PLATFORM_CPU_USAGE].values())
    with open('/proc/meminfo') as f:
        total_kb = int(f.readline().split()[1])
    assert m[M.PLATFORM_MEM_TOTAL_BYTES] == total_kb * 1024
    assert 0 < m[M.PLATFORM_MEM_USAGE_BYTES] < m[M.PLATFORM_MEM_TOTAL_BYTES]
    assert set(m[M.PLATFORM_MEM_NUMA_FREE_BYTES]) == set(platform.node_cpus)
    assert platform.swap_enabled == (m[M.PLATFORM_SWAP_TOTAL_BYTES] > 0)


def test_cpu_usage_grows_with_work():
    collector = PlatformCollector()
    before = sum(collector.collect().measurements[M.PLATFORM_CPU_USAGE].values())
    end = os.times().elapsed + 0.3
    while os.times().elapsed < end:
        pass
    after = sum(collector.collect().measurements[M.PLATFORM_CPU_USAGE].values())
    assert after - before >= 20  # 0.3 s of one busy CPU is ~30 ticks at USER_HZ=100


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def two_socket_tree(root):
    """2 sockets x 2 cores x 2 threads, one NUMA node per socket, CPU 7 offline."""
    proc, sys = root / 'proc', root / 'sys'
    write(proc / 'cpuinfo', 'processor\t: 0\nvendor_id\t: GenuineIntel\n'
          'model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n\n')
    write(proc / 'stat', 'cpu  100 0 50 1000 5 0 0 0 0 0\n'
          'cpu0 10 1 5 100 7 2 3 4 0 0\ncpu1 20 0 10 100 0 0 0 0 0 0\n'
          'cpu2 0 0 0 100 0 0 0 0 0 0\ncpu3 1 1 1 1 1 1 1 1 0 0\ncpu4 0 0 0 1 0 0 0 0 0 0\n'
          'cpu5 0 0 0 1 0 0 0 0 0 0\ncpu6 0 0 0 1 0 0 0 0 0 0\n'
          'intr 12345 0 0\nctxt 999\nbtime 1700000000\n')
    write(proc / 'meminfo', 'MemTotal:       16000000 kB\nMemFree:         4000000 kB\n'
          'MemAvailable:    9000000 kB\nBuffers:          100000 kB\nCached:          2000000 kB\n'
          'SwapCached:            0 kB\nSwapTotal:       1000000 kB\nSwapFree:         900000 kB\n')
    cpu_dir = sys / 'devices/system/cpu'
    write(cpu_dir / 'online', '0-6\n')
    for cpu in range(8):
        socket, core = cpu // 4, (cpu % 4) // 2
        write(cpu_dir / ('cpu%d' % cpu) / 'topology/physical_package_id', '%d\n' % socket)
        write(cpu_dir / ('cpu%d' % cpu) / 'topology/core_id', '%d\n' % core)
    for node, cpus, free in ((0, '0-3', 1000), (1, '4-6', 2000)):
        base = sys / 'devices/system/node' / ('node%d' % node)
        write(base / 'cpulist', cpus + '\n')
        write(base / 'distance', '10 21\n' if node == 0 else '21 10\n')
        write(base / 'meminfo', 'Node %d MemTotal:  8000000 kB\nNode %d MemFree:  %d kB\n'
              'Node %d MemUsed:  %d kB\n' % (node, node, free, node, 8000000 - free))
    return str(proc), str(sys)


def test_two_socket_fixture(tmp_path):
    proc, sys = two_socket_tree(tmp_path)
    collector = PlatformCollector(proc, sys)
    platform = collector.collect()
    assert (platform.sockets, platform.cores, platform.cpus, platform.numa_nodes) == (2, 4, 7, 2)
    assert platform.topology == {0: {0: [0, 1], 1: [2, 3]}, 1: {0: [4, 5], 1: [6]}}
    assert platform.node_cpus == {0: {0, 1, 2, 3}, 1: {4, 5, 6}}
    assert platform.node_distances == {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}
    assert platform.cpu_model == 'Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz'
    assert platform.swap_enabled
    m = platform.measurements
    # user nice system irq softirq steal; not idle, not iowait
    assert m[M.PLATFORM_CPU_USAGE][0] == 10 + 1 + 5 + 2 + 3 + 4
    assert m[M.PLATFORM_CPU_USAGE][3] == 6
    assert m[M.PLATFORM_MEM_USAGE_BYTES] == (16000000 - 4000000 - 100000 - 2000000) * 1024
    assert m[M.PLATFORM_SWAP_USAGE_BYTES] == 100000 * 1024
    assert m[M.PLATFORM_MEM_NUMA_FREE_BYTES] == {0: 1000 * 1024, 1: 2000 * 1024}
    assert m[M.PLATFORM_MEM_NUMA_USED_BYTES] == {0: 7999000 * 1024, 1: 7998000 * 1024}
    assert collector.information_labels()['cpu_model'].startswith('Intel(R) Xeon')


def test_missing_numa_meminfo_drops_only_numa_metrics(tmp_path):
    proc, sys = two_socket_tree(tmp_path)
    collector = PlatformCollector(proc, sys)
    os.unlink(os.path.join(sys, 'devices/system/node/node1/meminfo'))
    m = collector.collect().measurements
    assert m[M.PLATFORM_MEM_NUMA_FREE_BYTES] == {0: 1000 * 1024}
    assert M.PLATFORM_CPU_USAGE in m and M.PLATFORM_MEM_USAGE_BYTES in m
    assert collector.errors['measurement'] == 1


def test_kernel_without_numa_directory(tmp_path):
    proc, sys = two_socket_tree(tmp_path)
    import shutil
    shutil.rmtree(os.path.join(sys, 'devices/system/node'))
    topology = read_topology(proc, sys)
    assert topology.node_cpus == {0: set(range(7))}


def test_parse_proc_stat_skips_aggregate_line():
    usage = parse_proc_stat(b'cpu  9 9 9 9 9 9 9 9\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n')
    assert usage == {0: 1 + 2 + 3 + 6 + 7 + 8}
