"""Working set size: Referenced of the task's processes' smaps_rollup (or smaps), reset through
clear_refs, with real processes that touch real memory in real cgroups."""
import logging
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

from conftest import promtool_check, unprivileged, wca_command, write_config
from procfs_fixtures import (Threaded, assert_located, config_error, load_error,
                             referenced_from_smaps_rollup)

from testing.recording import Recording
from wca import security
from wca.exposition import encode
from wca.metrics import MetricName
from wca.nodes.base import Task
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner
from wca.wss import WssSourceFactory, referenced_bytes

MIB = 1 << 20


def source_for(cgroups, path, **options):
    options.setdefault('reset_cycles', 0)
    factory = WssSourceFactory(cgroups.layout, **options)
    return factory.open(Task('t', 't', path))


def measure(source, **given):
    m = dict(given)
    source.measure(m)
    return m


def test_kilobytes_are_1024_bytes_and_smaps_mappings_are_summed():
    rollup = b'56140b77e000-7ffd45cfd000 ---p 00000000 00:00 0   [rollup]\nRss:  1752 kB\n' \
             b'Referenced:         1752 kB\nAnonymous:  112 kB\n'
    assert referenced_bytes(rollup) == 1752 * 1024
    smaps = b'00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n' \
            b'Size: 328 kB\nReferenced: 300 kB\nAnonymous: 0 kB\n' \
            b'00651000-00652000 r--p 00051000 08:02 173521 /usr/bin/dbus-daemon\n' \
            b'Size: 4 kB\nReferenced:    4 kB\n'
    assert referenced_bytes(smaps) == 304 * 1024


def test_referenced_bytes_of_the_tasks_processes(cgroups, tmp_path):
    path = cgroups.create('wss', processes=0)
    first = Threaded(cgroups, path, tmp_path, threads=2, touch_mib=32)
    second = Threaded(cgroups, cgroups.create('wss/sub', processes=0), tmp_path, threads=1,
                      touch_mib=16)
    source = WssSourceFactory(cgroups.layout, 0).open(
        Task('t', 't', path, subcgroups_paths=[path + '/sub']))
    m = measure(source)
    expected = referenced_from_smaps_rollup(first.pid) + referenced_from_smaps_rollup(second.pid)
    assert m[MetricName.TASK_WSS_REFERENCED_BYTES] == pytest.approx(expected, rel=0.02)
    assert m[MetricName.TASK_WSS_REFERENCED_BYTES] > 48 * MIB
    assert 0 < m[MetricName.TASK_WSS_MEASURE_OVERHEAD_SECONDS] < 1
    assert sorted(source.files) == sorted(
        [source.listings[0][1], source.listings[1][1],
         '/proc/%d/smaps_rollup' % first.pid, '/proc/%d/smaps_rollup' % second.pid])
    assert source.listings[0][1].endswith(path + '/cgroup.procs')
    overhead = m[MetricName.TASK_WSS_MEASURE_OVERHEAD_SECONDS]
    assert measure(source)[MetricName.TASK_WSS_MEASURE_OVERHEAD_SECONDS] > overhead  # in total


def test_every_reset_cycles_iterations_the_marks_are_cleared(cgroups, tmp_path):
    path = cgroups.create('wss', processes=0)
    child = Threaded(cgroups, path, tmp_path, threads=1, touch_mib=64)
    source = source_for(cgroups, path, reset_cycles=2)
    touched = measure(source)[MetricName.TASK_WSS_REFERENCED_BYTES]
    assert touched > 64 * MIB
    assert measure(source)[MetricName.TASK_WSS_REFERENCED_BYTES] > 64 * MIB  # cleared after it
    idle = measure(source)[MetricName.TASK_WSS_REFERENCED_BYTES]
    assert idle < touched - 48 * MIB  # the idle child touched little since the reset
    child.touch()
    again = measure(source)[MetricName.TASK_WSS_REFERENCED_BYTES]  # the 4th: cleared after it
    assert again > idle + 48 * MIB
    assert measure(source)[MetricName.TASK_WSS_REFERENCED_BYTES] < again - 48 * MIB


def test_without_smaps_rollup_smaps_is_summed(cgroups, tmp_path):
    # A /proc laid out like one of Linux before 4.14: <pid> links to the real process
    # directory, self has no smaps_rollup.
    path = cgroups.create('wss', processes=0)
    child = Threaded(cgroups, path, tmp_path / '..', threads=1, touch_mib=32)
    proc = tmp_path / 'proc'
    (proc / 'self').mkdir(parents=True)
    os.symlink('/proc/%d' % child.pid, str(proc / str(child.pid)))
    source = source_for(cgroups, path, proc=str(proc))
    assert source.f.smaps == 'smaps'
    m = measure(source)
    assert m[MetricName.TASK_WSS_REFERENCED_BYTES] == pytest.approx(
        referenced_from_smaps_rollup(child.pid), rel=0.02)
    assert source.files[-1] == str(proc / str(child.pid) / 'smaps')


def test_a_stable_working_set_is_reported_and_then_cleared(cgroups, tmp_path):
    # The RDT source puts task_mem_bandwidth_bytes in the measurements before this source
    # reads them; this machine has no RDT, so the test gives the counter as it would.
    path = cgroups.create('wss', processes=0)
    child = Threaded(cgroups, path, tmp_path, threads=1, touch_mib=32)
    source = source_for(cgroups, path, reset_cycles=0, stable_cycles=3, membw_threshold=0.1)
    traffic = 0
    seen = []
    for _ in range(4):  # idle: the referenced bytes stay while 1 GB/iteration goes by
        traffic += 1 << 30
        seen.append(measure(source, **{MetricName.TASK_MEM_BANDWIDTH_BYTES: traffic}))
    assert MetricName.TASK_WORKING_SET_SIZE_BYTES not in seen[2]
    wss = seen[3][MetricName.TASK_WORKING_SET_SIZE_BYTES]
    assert wss == pytest.approx(seen[3][MetricName.TASK_WSS_REFERENCED_BYTES], rel=0.05)
    assert wss > 32 * MIB
    # stable with wss_reset_cycles 0: cleared, measured again from a small size
    traffic += 1 << 30
    after = measure(source, **{MetricName.TASK_MEM_BANDWIDTH_BYTES: traffic})
    assert after[MetricName.TASK_WSS_REFERENCED_BYTES] < wss - 24 * MIB
    assert after[MetricName.TASK_WORKING_SET_SIZE_BYTES] == wss  # the last stable size stays
    child.touch()  # growth beyond the threshold of the traffic: not stable
    traffic += 1 << 20
    grown = measure(source, **{MetricName.TASK_MEM_BANDWIDTH_BYTES: traffic})
    assert source.stable_cycles == 0 and grown[MetricName.TASK_WSS_REFERENCED_BYTES] > 32 * MIB


def test_without_memory_bandwidth_one_warning_and_the_periodic_reset_still_happens(
        cgroups, tmp_path, caplog):
    path = cgroups.create('wss', processes=0)
    Threaded(cgroups, path, tmp_path, threads=1, touch_mib=32)
    factory = WssSourceFactory(cgroups.layout, 1, stable_cycles=3, membw_threshold=0.1)
    sources = [factory.open(Task(str(i), str(i), path)) for i in range(2)]
    with caplog.at_level(logging.WARNING, 'wca.wss'):
        first = [measure(s)[MetricName.TASK_WSS_REFERENCED_BYTES] for s in sources]
        second = [measure(s)[MetricName.TASK_WSS_REFERENCED_BYTES] for s in sources]
    assert len(caplog.records) == 1 and 'task_mem_bandwidth_bytes' in caplog.messages[0]
    assert first[0] > 32 * MIB and second[1] < first[0] - 24 * MIB  # cleared every iteration


def test_the_runner_measures_it_and_needs_ptrace_and_dac_override(cgroups, tmp_path):
    path = cgroups.create('wss', processes=0)
    Threaded(cgroups, path, tmp_path, threads=2, touch_mib=8)
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage,
                               interval=0, wss_reset_cycles=5)
    runner.iterate()
    assert storage.value('task_wss_referenced_bytes', task_id=path.strip('/')) > 8 * MIB
    promtool_check(encode(storage.batches[-1])[0].encode())
    assert storage.last('task_wss_measure_overhead_seconds')[0].type == 'counter'
    assert runner.required_privileges() == [security.SYS_PTRACE, security.CLEAR_REFS]
    never_reset = MeasurementRunner(node=StaticNode(tasks=[]), wss_reset_cycles=0)
    assert never_reset.required_privileges() == [security.SYS_PTRACE]
    assert MeasurementRunner(node=StaticNode(tasks=[])).required_privileges() == []


def test_the_kernel_wants_exactly_those_privileges(tmp_path):
    # Another user's process: reading its smaps_rollup takes CAP_SYS_PTRACE, writing its
    # clear_refs CAP_DAC_OVERRIDE; neither capability does the other's job.
    target = os.getpid()  # root's
    probe = ('import sys\n'
             'for how, path in (("r", "/proc/%d/smaps_rollup"), ("w", "/proc/%d/clear_refs")):\n'
             '    try:\n'
             '        f = open(path, how); f.write("1") if how == "w" else f.read(); f.close()\n'
             '        print(how, "ok")\n'
             '    except OSError as e:\n'
             '        print(how, e.errno)\n') % (target, target)
    answers = {}
    for caps in ((), ('sys_ptrace',), ('dac_override',)):
        result = unprivileged([sys.executable, '-c', probe], caps)
        assert result.returncode == 0, result.stderr
        answers[caps] = result.stdout.split('\n')[:2]
    assert answers == {(): ['r 13', 'w 13'], ('sys_ptrace',): ['r ok', 'w 13'],
                       ('dac_override',): ['r 13', 'w ok']}


def test_an_agent_without_them_is_told_which_and_how_to_grant_them():
    directory = tempfile.mkdtemp(prefix='wca-test-')
    try:
        os.chmod(directory, 0o755)
        path = write_config(pathlib.Path(directory) / 'wca.yaml', '''\
runner: !MeasurementRunner
  node: !StaticNode {tasks: []}
  wss_reset_cycles: 10
''')
        result = unprivileged(wca_command('-c', path))
    finally:
        shutil.rmtree(directory)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == 'wca: missing privileges (or run as root with --root):'
    assert lines[1].startswith('  CAP_SYS_PTRACE, to read /proc/<pid>/smaps_rollup')
    assert lines[2].startswith('  CAP_DAC_OVERRIDE, to write /proc/<pid>/clear_refs')
    assert all('AmbientCapabilities=' in line for line in lines[1:]) and len(lines) == 3


def test_wss_options_are_checked_when_the_config_is_loaded(tmp_path):
    path, line = config_error(tmp_path, '''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          wss_reset_cycles: 10
          wss_stable_cycles: 5
        ''')
    assert_located(line, path, 4, 'runner.wss_stable_cycles', 'needs wss_membw_threshold')
    cases = [
        ('wss_reset_cycles: -1', 'runner.wss_reset_cycles', 'expected 0 (never reset)'),
        ('wss_membw_threshold: 0.1', 'runner.wss_membw_threshold', 'only with wss_reset_cycles'),
        ('wss_membw_threshold: 0.1\n  wss_stable_cycles: 5', 'runner.wss_stable_cycles',
         'only with wss_reset_cycles'),
        ('wss_reset_cycles: 0\n  wss_membw_threshold: 0.1', 'runner.wss_membw_threshold',
         'needs wss_stable_cycles'),
        ('wss_reset_cycles: 0\n  wss_membw_threshold: -1', 'runner.wss_membw_threshold',
         'expected a number >= 0'),
        ('wss_reset_cycles: 0\n  wss_stable_cycles: 2\n  wss_membw_threshold: 0.1\n'
         '  rdt_enabled: false', 'runner.wss_stable_cycles', 'needs RDT memory bandwidth'),
        ('wss_reset_cycles: 1.5', 'runner.wss_reset_cycles', 'expected'),
    ]
    for options, key, text in cases:
        error = load_error('runner: !MeasurementRunner\n  node: !StaticNode {tasks: []}\n  %s\n'
                           % options)
        assert error.startswith('<config>:') and (': %s: ' % key) in error and text in error, error
