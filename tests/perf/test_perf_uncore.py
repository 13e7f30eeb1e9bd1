"""Uncore (platform) perf counters: event names, PMU discovery against a tree laid out like a
two-socket server's /sys/bus/event_source/devices, one warning where the PMUs are missing, the
derived bandwidths, and real counting through a PMU entry that names the kernel's software PMU
(this machine has no uncore PMU: the software PMU's cpu-clock, context switches and page
faults stand in for the IMC events, through the same system calls and reads)."""
import logging
import os
import time

import pytest

from conftest import promtool_check
from testing.recording import Recording
from wca.exposition import encode
from wca.metrics import MetricName, export_metrics_from_measurements
from wca.nodes.static import StaticNode
from wca.perf.counters import PerfStatus
from wca.perf.syscall import PERF_TYPE_SOFTWARE
from wca.perf.uncore import UncoreCounters, derive_uncore, discover, parse, parse_groups
from wca.platforms import read_topology
from wca.runners.measurement import MeasurementRunner

# 56 CPUs: 0-13 socket 0, 14-27 socket 1, then their hyper-threads (28-41, 42-55), as Linux
# numbers them on a two-socket server; an uncore PMU's cpumask is the first CPU of each socket.
SOCKETS, CORES, THREADS = 2, 14, 2
FIRST_OF_SOCKET = '0,14'


def pmu(root, name, pmu_type, cpumask=FIRST_OF_SOCKET, formats=True):
    """/sys/devices/<name> and its /sys/bus/event_source/devices/<name> symlink."""
    device = root / 'devices' / name
    device.mkdir(parents=True)
    (device / 'type').write_text('%d\n' % pmu_type)
    if cpumask is not None:
        (device / 'cpumask').write_text(cpumask + '\n')
    if formats:
        (device / 'format').mkdir()
        (device / 'format' / 'event').write_text('config:0-7\n')
        (device / 'format' / 'umask').write_text('config:8-15\n')
    bus = root / 'bus' / 'event_source' / 'devices'
    bus.mkdir(parents=True, exist_ok=True)
    os.symlink('../../../devices/' + name, str(bus / name))


@pytest.fixture
def server(tmp_path):
    """A two-socket Skylake server's /sys: CPUs and their packages, and the PMUs."""
    root = tmp_path / 'sys'
    cpu_dir = root / 'devices' / 'system' / 'cpu'
    cpu_dir.mkdir(parents=True)
    count = SOCKETS * CORES * THREADS
    (cpu_dir / 'online').write_text('0-%d\n' % (count - 1))
    for cpu in range(count):
        topology = cpu_dir / ('cpu%d' % cpu) / 'topology'
        topology.mkdir(parents=True)
        (topology / 'physical_package_id').write_text('%d\n' % ((cpu // CORES) % SOCKETS))
        (topology / 'core_id').write_text('%d\n' % (cpu % CORES))
    for name, pmu_type in (('cpu', 4), ('software', 1), ('tracepoint', 2), ('breakpoint', 5),
                           ('msr', 9)):
        pmu(root, name, pmu_type, cpumask='0-55' if name == 'cpu' else None, formats=False)
    for n in range(28):
        pmu(root, 'uncore_cha_%d' % n, 0x7FFF0010 + n)
    for n in range(6):
        pmu(root, 'uncore_imc_%d' % n, 0x7FFF0040 + n)
    for n in range(3):
        pmu(root, 'uncore_upi_%d' % n, 0x7FFF0050 + n)
    pmu(root, 'uncore_imc_free_running_0', 0x7FFF0060)  # not an IMC channel: left out
    return root


def test_known_and_custom_event_names():
    assert parse('platform_cas_count_reads') == parse('platform_cas_count_reads')
    event = parse('platform_cas_count_writes')
    assert (event.pmu, event.config) == ('uncore_imc', 0x04 | 0x0C << 8)
    assert parse('platform_upi_txl_flits').config == 0x02 | 0x0F << 8
    custom = parse('my_metric/uncore_cha/event=0x34,umask=0x1f,config1=0x40/')
    assert (custom.name, custom.pmu, custom.config, custom.config1) == (
        'my_metric', 'uncore_cha', 0x1F34, 0x40)
    assert parse('one/uncore_imc_2/event=4/').pmu == 'uncore_imc_2'


@pytest.mark.parametrize('value, problem', [
    (['platform_cas_count_read'], 'did you mean platform_cas_count_reads'),
    (['x/uncore_imc/event=0x04,umask=0x03'], 'is written name/pmu/'),
    (['x/uncore_foo/event=0x04/'], "PMU 'uncore_foo' is not one of"),
    (['x/uncore_imc/evnt=0x04/'], 'expected event=, umask= or config1='),
    (['x/uncore_imc/event=0x104/'], 'one byte each'),
    (['x/uncore_imc/event=zz/'], 'not a number'),
    (['x-y/uncore_imc/event=1/'], 'not a metric name'),
    (['platform_rpq_inserts', ['platform_rpq_occupancy']], 'not both'),
    (['platform_rpq_inserts', 'platform_rpq_inserts'], 'given twice'),
    ('platform_rpq_inserts', 'expected a list'),
])
def test_bad_uncore_events_are_config_errors(value, problem):
    with pytest.raises(ValueError, match=problem):
        parse_groups(value)
    with pytest.raises(ValueError, match='uncore_event_names: .*' + problem):
        MeasurementRunner(node=StaticNode(tasks=['t']), uncore_event_names=value)


def test_groups():
    def names(groups):
        return [[e.name for e in group] for group in groups]
    flat = parse_groups(['platform_cas_count_reads', 'platform_cas_count_writes'])
    assert names(flat) == [['platform_cas_count_reads', 'platform_cas_count_writes']]
    nested = parse_groups([['platform_cas_count_reads'], ['platform_upi_rxl_flits'], []])
    assert names(nested) == [['platform_cas_count_reads'], ['platform_upi_rxl_flits']]


def test_discovery_on_a_two_socket_server(server):
    devices = str(server / 'bus' / 'event_source' / 'devices')
    imcs = discover(devices, 'uncore_imc')
    assert [p.name for p in imcs] == ['uncore_imc_%d' % n for n in range(6)]
    assert all(p.cpus == (0, 14) for p in imcs)
    assert [p.type for p in imcs] == [0x7FFF0040 + n for n in range(6)]
    upis = discover(devices, 'uncore_upi')
    assert [p.name for p in upis] == ['uncore_upi_0', 'uncore_upi_1', 'uncore_upi_2']
    assert len(discover(devices, 'uncore_cha')) == 28
    assert [p.name for p in discover(devices, 'uncore_imc_2')] == ['uncore_imc_2']
    assert discover(str(server / 'nothing'), 'uncore_imc') == []


def test_a_pmu_whose_files_cannot_be_read_is_left_out_with_a_warning(server, caplog):
    os.unlink(str(server / 'devices' / 'uncore_imc_3' / 'cpumask'))
    devices = str(server / 'bus' / 'event_source' / 'devices')
    assert [p.name for p in discover(devices, 'uncore_imc')] == [
        'uncore_imc_0', 'uncore_imc_1', 'uncore_imc_2', 'uncore_imc_4', 'uncore_imc_5']
    assert [r for r in caplog.records if 'uncore_imc_3' in r.getMessage()
            and r.levelno == logging.WARNING]


def test_events_the_pmus_refuse_are_one_warning_and_counted(server, caplog):
    """The fixture's PMU types exist in no kernel: every open fails with ENOENT, as it would
    for events a real PMU does not know."""
    topology = read_topology('/nonexistent', str(server))
    assert topology.sockets == 2
    status = PerfStatus()
    socket_of = {cpu: s for s, cores in topology.topology.items()
                 for cpus in cores.values() for cpu in cpus}
    assert socket_of[0] == 0 and socket_of[14] == 1 and socket_of[42] == 1
    counters = UncoreCounters(parse_groups(['platform_cas_count_reads', 'platform_cas_count_writes',
                                            'platform_upi_rxl_flits']),
                              str(server / 'bus' / 'event_source' / 'devices'), socket_of,
                              derived=True, status=status)
    assert counters.groups == 0
    assert status.failures['unsupported'] == 3 and status.descriptors == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and 'platform_cas_count_reads' in warnings[0], warnings
    m = {}
    counters.collect(m)
    assert m == {}
    counters.close()


def test_a_machine_without_uncore_pmus_warns_once_and_runs(caplog):
    """This machine: no uncore PMU at all."""
    devices = '/sys/bus/event_source/devices'
    assert not [n for n in os.listdir(devices) if n.startswith('uncore_')], 'an uncore PMU here'
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage, interval=0,
                               uncore_event_names=['platform_cas_count_reads',
                                                   'platform_upi_txl_flits'],
                               enable_derived_metrics=True)
    try:
        runner.iterate()
        runner.iterate()
    finally:
        runner.close()
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith('wca.perf')]
    assert len(warnings) == 1, warnings
    assert 'no uncore_imc or uncore_upi PMU' in warnings[0] and devices in warnings[0]
    assert not storage.last('platform_cas_count_reads')
    assert storage.value('wca_perf_descriptors') == 0 and storage.value('wca_up') == 1


def test_real_counts_through_a_pmu_entry(tmp_path):
    """uncore_imc_0 here names the software PMU (type 1): event 0x00 is its cpu-clock (counting
    nanoseconds on each CPU of the cpumask), 0x03 context switches, 0x02 page faults."""
    cpus = sorted(os.sched_getaffinity(0))
    pmu(tmp_path, 'uncore_imc_0', PERF_TYPE_SOFTWARE, cpumask=','.join(map(str, cpus)))
    pmu(tmp_path, 'uncore_upi_0', 0x7FFF0001)  # a PMU the kernel does not have
    status = PerfStatus()
    groups = parse_groups(['platform_imc_clockticks', 'platform_cas_count_reads/uncore_imc/event=0x03/',
                           'platform_cas_count_writes/uncore_imc/event=0x02/',
                           'platform_rpq_occupancy', 'platform_upi_rxl_flits'])
    # each CPU stands for a socket here, as the first CPU of each socket does on a server
    counters = UncoreCounters(groups, str(tmp_path / 'bus' / 'event_source' / 'devices'),
                              {cpu: n for n, cpu in enumerate(cpus)}, derived=True, status=status)
    try:
        # rpq occupancy (0x80) is no software event; the upi PMU does not exist
        assert status.failures['unsupported'] == 2
        assert counters.groups == len(cpus) and status.descriptors == 3 * len(cpus)
        samples = []
        for _ in range(2):
            m = {}
            started = time.monotonic()
            counters.collect(m)
            samples.append((started, m))
            time.sleep(0.5)
            bytearray(1 << 22)
    finally:
        counters.close()
    assert status.descriptors == 0
    (t0, first), (t1, second) = samples
    sockets = list(range(len(cpus)))

    def per_socket(m, name):
        assert sorted(m[name]) == sockets and all(list(v) == [1] for v in m[name].values()), m[name]
        return [m[name][socket][1] for socket in sockets]  # pmu_type 1
    for socket, before, after in zip(sockets, per_socket(first, 'platform_imc_clockticks'),
                                     per_socket(second, 'platform_imc_clockticks')):
        # cpu-clock counts the wall time of its CPU
        assert abs((after - before) / 1e9 / (t1 - t0) - 1) < 0.1, (socket, after - before)
    assert second[MetricName.PLATFORM_SCALING_UNCORE_FACTOR] == 1.0
    reads = [a - b for a, b in zip(per_socket(second, 'platform_cas_count_reads'),
                                   per_socket(first, 'platform_cas_count_reads'))]
    rates = per_socket(second, MetricName.PLATFORM_DRAM_READS_BYTES_PER_SECOND)
    assert sum(reads) > 0
    for count, rate in zip(reads, rates):
        assert abs(rate - count * 64 / (t1 - t0)) <= 0.1 * rate
    totals = per_socket(second, MetricName.PLATFORM_DRAM_TOTAL_BYTES_PER_SECOND)
    writes = per_socket(second, MetricName.PLATFORM_DRAM_WRITES_BYTES_PER_SECOND)
    assert totals == pytest.approx([r + w for r, w in zip(rates, writes)])
    assert MetricName.PLATFORM_RPQ_READ_LATENCY_SECONDS not in second  # occupancy not counted
    assert MetricName.PLATFORM_DRAM_READS_BYTES_PER_SECOND not in first  # from the second on
    status.collect(second)
    text, dropped = encode(export_metrics_from_measurements(second, {'host': 'test'}))
    assert dropped == 0 and 'pmu_type="1",socket="%d"' % sockets[-1] in text, text
    promtool_check(text.encode())


def test_derived_uncore_formulas():
    def flat(values):
        return {(name, socket, pmu_type): v for (name, socket, pmu_type), v in values.items()}
    previous = flat({
        ('platform_cas_count_reads', 0, 14): 1000, ('platform_cas_count_writes', 0, 14): 500,
        ('platform_pmm_bandwidth_reads', 0, 14): 100, ('platform_pmm_bandwidth_writes', 0, 14): 100,
        ('platform_upi_rxl_flits', 1, 30): 900, ('platform_upi_txl_flits', 1, 30): 0,
        ('platform_rpq_occupancy', 0, 14): 0, ('platform_rpq_inserts', 0, 14): 0,
        ('platform_imc_clockticks', 0, 14): 0,
        ('platform_rpq_occupancy', 0, 15): 0, ('platform_rpq_inserts', 0, 15): 0,
        ('platform_imc_clockticks', 0, 15): 0})
    current = dict(previous)
    current.update(flat({
        ('platform_cas_count_reads', 0, 14): 3000, ('platform_cas_count_writes', 0, 14): 1500,
        ('platform_pmm_bandwidth_reads', 0, 14): 600, ('platform_pmm_bandwidth_writes', 0, 14): 600,
        ('platform_upi_rxl_flits', 1, 30): 9900, ('platform_upi_txl_flits', 1, 30): 9000,
        ('platform_rpq_occupancy', 0, 14): 4000, ('platform_rpq_inserts', 0, 14): 100,
        ('platform_imc_clockticks', 0, 14): 2e9,
        ('platform_rpq_occupancy', 0, 15): 2000, ('platform_rpq_inserts', 0, 15): 100,
        ('platform_imc_clockticks', 0, 15): 2e9}))
    m = {}
    derive_uncore(m, current, previous, 2.0)
    assert m['platform_dram_reads_bytes_per_second'] == {0: {14: 2000 * 64 / 2.0}}
    assert m['platform_dram_writes_bytes_per_second'] == {0: {14: 1000 * 64 / 2.0}}
    assert m['platform_dram_total_bytes_per_second'] == {0: {14: 3000 * 64 / 2.0}}
    assert m['platform_pmm_total_bytes_per_second'] == {0: {14: 1000 * 64 / 2.0}}
    assert m['platform_dram_hit_ratio'] == {0: {14: 3000 / 4000}}
    assert m['platform_upi_bandwidth_bytes_per_second'] == {1: {30: (9000 + 9000) / 2.0 / 9 * 64}}
    # (6000 / 200 cycles waited) / (4e9 ticks / 2 channels / 2 s) = 30 / 1e9 s
    assert m['platform_rpq_read_latency_seconds'] == {0: pytest.approx(30 / 1e9)}
    # idle (no inserts, no traffic): no latency and zero bandwidth, never a division by zero
    m = {}
    derive_uncore(m, previous, previous, 2.0)
    assert 'platform_rpq_read_latency_seconds' not in m and 'platform_dram_hit_ratio' not in m
    assert m['platform_dram_total_bytes_per_second'] == {0: {14: 0.0}}
