"""Pressure stall information: per task from real cgroup2 directories with busy processes, and
for the node from the real /proc/pressure; kernel-shaped trees for what this kernel lacks
(/proc/pressure/irq, a kernel without PSI)."""
import logging
import os
import sys
import time

import pytest

from conftest import promtool_check
from testing.recording import Recording
from wca import pressure
from wca.cgroups.layout import CgroupLayout
from wca.cgroups.measure import TaskCgroup
from wca.exposition import encode
from wca.metrics import METRICS_METADATA, MetricName, MetricType
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner

# Two of these share one CPU, however many the machine has: one always waits for the other.
SPIN = [sys.executable, '-c', 'import os\n'
        'os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n'
        'while True: pass']
CPU = 'some avg10=12.50 avg60=3.10 avg300=0.70 total=2500000\n' \
      'full avg10=1.00 avg60=0.20 avg300=0.05 total=250000\n'
OLD_CPU = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=1500\n'  # before Linux 5.13: no full
IRQ = 'full avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\n'


def test_totals_are_read_with_split():
    assert pressure.totals(CPU.encode()) == (2500000, 250000)
    assert pressure.totals(OLD_CPU.encode()) == (1500, None)
    assert pressure.totals(IRQ.encode()) == (None, 3000000)
    m = {}
    pressure.TASK_CPU(CPU.encode(), m)
    assert m == {MetricName.TASK_PRESSURE_CPU_WAITING: 2.5,
                 MetricName.TASK_PRESSURE_CPU_STALLED: 0.25}
    with pytest.raises(ValueError):
        pressure.TASK_IO(b'nonsense\n', {})
    with pytest.raises(ValueError):
        pressure.TASK_IO(b'some avg10=0.00 total=x\n', {})
    with pytest.raises(ValueError):  # a field after total=: refused, never misread
        pressure.TASK_IO(b'some avg10=0.00 avg60=0.00 avg300=0.00 total=5 future=1\n', {})


def test_names_follow_node_exporter_and_cadvisor():
    names = [n.value for n in MetricName if 'pressure' in n.value]
    assert sorted(names) == sorted(
        ['task_pressure_%s_%s_seconds_total' % (r, k) for r in ('cpu', 'memory', 'io')
         for k in ('waiting', 'stalled')] +
        ['platform_pressure_cpu_waiting_seconds_total', 'platform_pressure_irq_stalled_seconds_total']
        + ['platform_pressure_%s_%s_seconds_total' % (r, k) for r in ('memory', 'io')
           for k in ('waiting', 'stalled')])
    assert all(METRICS_METADATA[MetricName(n)].type == MetricType.COUNTER for n in names)


def read_total(path, kind):
    with open(path, 'rb') as f:
        some, full = pressure.totals(f.read())
    return (some if kind == 'some' else full) / 1e6


def test_platform_pressure_for_real():
    if not os.path.isdir('/proc/pressure'):
        pytest.skip('this kernel has no /proc/pressure (CONFIG_PSI off or booted with psi=0)')
    source = pressure.PressureSource('/proc')
    expected = ['/proc/pressure/%s' % r for r in ('cpu', 'memory', 'io', 'irq')
                if os.path.exists('/proc/pressure/' + r)]
    assert source.files == expected
    before = read_total('/proc/pressure/cpu', 'some')
    m = {}
    source.collect(m)
    after = read_total('/proc/pressure/cpu', 'some')
    assert before <= m[MetricName.PLATFORM_PRESSURE_CPU_WAITING] <= after
    for name in (MetricName.PLATFORM_PRESSURE_MEMORY_WAITING, MetricName.PLATFORM_PRESSURE_MEMORY_STALLED,
                 MetricName.PLATFORM_PRESSURE_IO_WAITING, MetricName.PLATFORM_PRESSURE_IO_STALLED):
        assert m[name] >= 0
    assert (MetricName.PLATFORM_PRESSURE_IRQ_STALLED in m) == os.path.exists('/proc/pressure/irq')
    assert MetricName.PLATFORM_PRESSURE_CPU_WAITING in m  # cpu full is left out, as node_exporter does
    assert len(m) == 5 + os.path.exists('/proc/pressure/irq')


def fake_proc(tmp_path, files):
    (tmp_path / 'pressure').mkdir()
    for name, text in files.items():
        (tmp_path / 'pressure' / name).write_text(text)
    return str(tmp_path)


def test_platform_pressure_with_irq(tmp_path):
    proc = fake_proc(tmp_path, {'cpu': CPU, 'memory': CPU, 'io': CPU, 'irq': IRQ})
    m = {}
    pressure.PressureSource(proc).collect(m)
    assert m == {
        MetricName.PLATFORM_PRESSURE_CPU_WAITING: 2.5,
        MetricName.PLATFORM_PRESSURE_MEMORY_WAITING: 2.5,
        MetricName.PLATFORM_PRESSURE_MEMORY_STALLED: 0.25,
        MetricName.PLATFORM_PRESSURE_IO_WAITING: 2.5,
        MetricName.PLATFORM_PRESSURE_IO_STALLED: 0.25,
        MetricName.PLATFORM_PRESSURE_IRQ_STALLED: 3.0,
    }


def test_kernel_without_psi_gives_no_metrics_and_one_info(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    source = pressure.PressureSource(str(tmp_path))
    m = {}
    source.collect(m)
    assert m == {} and source.files == []
    assert 'no pressure stall information in %s/pressure' % tmp_path in caplog.text


def test_a_failing_file_drops_only_its_metrics(tmp_path, caplog):
    proc = fake_proc(tmp_path, {'cpu': CPU, 'io': CPU})
    os.mkdir(os.path.join(proc, 'pressure', 'memory'))  # read() fails with EISDIR
    errors = {}
    source = pressure.PressureSource(proc, errors)
    for _ in range(3):
        m = {}
        source.collect(m)
    assert sorted(m) == sorted([MetricName.PLATFORM_PRESSURE_CPU_WAITING,
                                MetricName.PLATFORM_PRESSURE_IO_WAITING,
                                MetricName.PLATFORM_PRESSURE_IO_STALLED])
    assert errors == {'measurement': 3}
    assert len([r for r in caplog.records if r.levelname == 'WARNING']) == 1


def test_task_pressure_on_a_real_cgroup2_directory_with_busy_processes(cgroups):
    busy = cgroups.create('busy', processes=0)
    directory = cgroups.layout.unified + busy
    if not os.path.exists(directory + '/cpu.pressure'):
        pytest.skip('this kernel has no per-cgroup PSI (%s/cpu.pressure)' % directory)
    task = TaskCgroup(busy, cgroups.layout)
    for name in ('cpu.pressure', 'memory.pressure', 'io.pressure'):
        assert directory + '/' + name in task.files
    first = task.measure()
    started = time.monotonic()
    for _ in range(2):
        cgroups.add_process(busy, SPIN)
    time.sleep(0.6)
    second = task.measure()
    elapsed = time.monotonic() - started
    waited = second[MetricName.TASK_PRESSURE_CPU_WAITING] - first[MetricName.TASK_PRESSURE_CPU_WAITING]
    # One of the two always waits once both run (their start takes a little of the 0.6 s).
    assert 0.3 < waited <= elapsed + 0.05, (waited, elapsed)
    assert second[MetricName.TASK_PRESSURE_CPU_STALLED] >= first[MetricName.TASK_PRESSURE_CPU_STALLED]
    assert second[MetricName.TASK_PRESSURE_CPU_WAITING] <= read_total(
        directory + '/cpu.pressure', 'some')
    for name in (MetricName.TASK_PRESSURE_MEMORY_WAITING, MetricName.TASK_PRESSURE_MEMORY_STALLED,
                 MetricName.TASK_PRESSURE_IO_WAITING, MetricName.TASK_PRESSURE_IO_STALLED):
        assert second[name] >= first[name] >= 0


def test_runner_stores_task_and_platform_pressure(cgroups):
    path = cgroups.create('t')
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage, interval=0)
    runner.iterate()
    names = set(storage.names())
    if os.path.exists(cgroups.layout.unified + path + '/cpu.pressure'):
        for resource in ('cpu', 'memory', 'io'):
            for kind in ('waiting', 'stalled'):
                name = 'task_pressure_%s_%s_seconds_total' % (resource, kind)
                assert name in names
                assert storage.last(name)[0].labels['task_id'] == path.strip('/')
    if os.path.isdir('/proc/pressure'):
        assert 'platform_pressure_cpu_waiting_seconds_total' in names
    assert '/proc/pressure/cpu' in runner.files()
    promtool_check(encode(storage.batches[-1])[0].encode())
    runner.close()


def test_pressure_off_reads_no_pressure_file(cgroups):
    """`pressure: false`: three files per task fewer, and no /proc/pressure."""
    path = cgroups.create('t')
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage, interval=0,
                               pressure=False)
    runner.iterate()
    assert not [name for name in storage.names() if 'pressure' in name]
    assert not [f for f in runner.files() if 'pressure' in f]
    assert 'task_cpu_usage_seconds' in storage.names()
    runner.close()


def v2_tree(tmp_path, files):
    """A cgroup2 hierarchy with one task directory, `t`, holding `files`."""
    root = tmp_path / 'unified'
    (root / 't').mkdir(parents=True)
    (root / 'cgroup.controllers').write_text('cpu memory io\n')
    (root / 't' / 'cgroup.controllers').write_text('cpu memory io\n')
    (root / 't' / 'cpu.stat').write_text('usage_usec 100\nuser_usec 50\nsystem_usec 50\n')
    for name, text in files.items():
        (root / 't' / name).write_text(text)
    return CgroupLayout.with_unified({}, str(root))


def test_kernel_shaped_cgroup2_tree(tmp_path):
    layout = v2_tree(tmp_path, {'cpu.pressure': OLD_CPU, 'memory.pressure': CPU, 'io.pressure': CPU})
    m = TaskCgroup('/t', layout).measure()
    assert m[MetricName.TASK_PRESSURE_CPU_WAITING] == 0.0015
    assert MetricName.TASK_PRESSURE_CPU_STALLED not in m  # no full line before Linux 5.13
    assert m[MetricName.TASK_PRESSURE_MEMORY_STALLED] == 0.25
    assert m[MetricName.TASK_PRESSURE_IO_WAITING] == 2.5


def test_cgroup_without_pressure_files_is_not_looked_for_again(tmp_path, caplog):
    # A kernel without PSI, or PSI switched off for the cgroup (cgroup.pressure 0): no files.
    layout = v2_tree(tmp_path, {})
    task = TaskCgroup('/t', layout)
    assert task.files == [layout.unified + '/t/cpu.stat']
    m = task.measure()
    assert not [name for name in m if 'pressure' in name]
    assert not [r for r in caplog.records if r.levelname == 'WARNING']
