"""sched: /proc/<tid>/sched summed over the threads of a task's cgroup, for real processes with
several threads in real cgroups."""
import logging
import os
import re

import pytest

from procfs_fixtures import Threaded, assert_located, config_error, load_error

from testing.recording import Recording
from wca.cgroups.layout import CgroupVanished
from wca.metrics import MetricName
from wca.nodes.base import Task
from wca.nodes.static import StaticNode
from wca.procfs import KeyFilter
from wca.runners.measurement import MeasurementRunner
from wca.sched import Layouts, SchedSource, SchedSourceFactory, parse_sched

# Keys whose values stay still while a thread is blocked (the children's threads are).
STILL = ('nr_switches', 'nr_voluntary_switches', 'nr_involuntary_switches', 'se.sum_exec_runtime',
         'prio', 'policy', 'se.nr_migrations')


def read_sched(tid):
    """One thread's sched values, read with a regular expression (not the agent's parser)."""
    with open('/proc/%d/sched' % tid) as f:
        text = f.read()
    values = {}
    for key, value in re.findall(r'^([\w.>-]+)\s+:\s+(-?[\d.]+)$', text, re.M):
        values[key] = float(value)
    faults = {}
    for node, rest in re.findall(r'^numa_faults node=(\d+) (.*)$', text, re.M):
        faults[node] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', rest)}
    return values, faults


def measure_twice(runner, task_id):
    storage = runner.config.metrics_storage
    runner.iterate()
    runner.iterate()
    return {m.labels['key']: m.value for m in storage.last('task_sched_stat')
            if m.labels['task_id'] == task_id}


def test_values_are_summed_over_the_threads_of_the_cgroup(cgroups, tmp_path):
    path = cgroups.create('sched', processes=0)
    child = Threaded(cgroups, path, tmp_path, threads=4)
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage,
                               interval=0, sched=True)
    stats = measure_twice(runner, path.strip('/'))
    tids = child.tids()
    assert len(tids) == 4
    per_thread = [read_sched(tid) for tid in tids]
    for key in STILL:
        assert stats[key] == pytest.approx(sum(values[key] for values, _ in per_thread)), key
    assert stats['prio'] == 4 * 120  # per-thread values are summed too, as the original did
    assert set(stats) == set(per_thread[0][0])  # every `key : value` line
    faults = {}
    for m in storage.last('task_sched_stat_numa_faults'):
        faults.setdefault(m.labels['numa_node'], {})[m.labels['fault_type']] = m.value
    expected = {}
    for _, thread_faults in per_thread:
        for node, kinds in thread_faults.items():
            for kind, count in kinds.items():
                expected.setdefault(node, {})[kind] = expected.setdefault(node, {}).get(kind, 0) + count
    assert faults == expected and faults  # numa_faults node=0 task_private=... per node
    sources = [s for s in runner._tasks.tracked[path.strip('/')].sources
               if isinstance(s, SchedSource)]
    assert sorted(sources[0].files) == sorted(
        [sources[0].listings[0][1]] + ['/proc/%d/sched' % t for t in tids])
    assert sources[0].listings[0][1].endswith(path + '/tasks')


def test_a_regex_chooses_the_keys(cgroups, tmp_path):
    path = cgroups.create('sched', processes=0)
    Threaded(cgroups, path, tmp_path, threads=3)
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[path]), metrics_storage=storage,
                               interval=0, sched='nr_.*switches|se.sum_exec')
    stats = measure_twice(runner, path.strip('/'))
    assert sorted(stats) == ['nr_involuntary_switches', 'nr_switches', 'nr_voluntary_switches',
                             'se.sum_exec_runtime']
    assert storage.last('task_sched_stat_numa_faults')  # the numa_faults lines are not keys


def test_threads_that_end_are_no_error_and_new_threads_are_followed(cgroups, tmp_path, caplog):
    path = cgroups.create('sched', processes=0)
    child = Threaded(cgroups, path, tmp_path, threads=2)
    tasks_file = tmp_path / 'tasks'  # laid out as the cgroup's: one id per line
    ended = cgroups.add_process(path, ['true'])
    ended.wait()
    tasks_file.write_text(''.join('%d\n' % t for t in child.tids() + [ended.pid]))
    errors = {}
    source = SchedSource(Task('t', 't', path), [(str(tmp_path), str(tasks_file))],
                         Layouts(KeyFilter(None)), '/proc', errors)
    with caplog.at_level(logging.WARNING):
        m = {}
        source.measure(m)
    assert m[MetricName.TASK_SCHED_STAT]['prio'] == 2 * 120
    assert not caplog.records and errors == {}
    assert '/proc/%d/sched' % ended.pid not in source.files


def test_a_sched_file_that_cannot_be_parsed_drops_only_itself(tmp_path, caplog):
    (tmp_path / '7').mkdir()
    (tmp_path / '8').mkdir()
    good = ('sleep (7, #threads: 2)\n' + '-' * 67 + '\nnr_switches : 5\nse.vruntime : 1.5\n'
            'current_node=0, numa_group_id=0\n'
            'numa_faults node=0 task_private=1 task_shared=2 group_private=3 group_shared=4\n')
    (tmp_path / '7' / 'sched').write_text(good)
    (tmp_path / '8' / 'sched').write_text('sleep (8, #threads: 2)\n' + '-' * 67 + '\nnr_switches : x\n')
    (tmp_path / 'tasks').write_text('7\n8\n')
    errors = {}
    source = SchedSource(Task('t', 't', '/t'), [(str(tmp_path), str(tmp_path / 'tasks'))],
                         Layouts(KeyFilter(None)), str(tmp_path), errors)
    for _ in range(2):
        m = {}
        source.measure(m)
        assert m[MetricName.TASK_SCHED_STAT] == {'nr_switches': 5, 'se.vruntime': 1.5}
        assert m[MetricName.TASK_SCHED_STAT_NUMA_FAULTS] == {'0': {
            'task_private': 1, 'task_shared': 2, 'group_private': 3, 'group_shared': 4}}
    assert errors == {'measurement': 2}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_command_name_cannot_forge_values():
    # The command name is up to 15 bytes of anything, newlines included.
    forged = b'x\n-\nprio: 999\n- (7, #threads: 1)\n' + b'-' * 67 + b'\nprio : 120\n'
    assert parse_sched(forged, KeyFilter(None)) == ({'prio': 120}, {})


def test_a_tasks_file_longer_than_one_read_is_read_whole(cgroups, tmp_path):
    # The kernel hands out a pid list a page at a time: 1500 threads' ids take 9000 bytes.
    path = cgroups.create('many', processes=0)
    child = Threaded(cgroups, path, tmp_path, threads=1500)
    source = SchedSourceFactory(re.compile('prio$'), cgroups.layout).open(Task('t', 't', path))
    m = {}
    source.measure(m)
    assert len(source.files) == 1 + 1500 == 1 + len(child.tids())
    assert m[MetricName.TASK_SCHED_STAT] == {'prio': 1500 * 120}


def test_a_removed_cgroup_is_reported_as_vanished(cgroups, tmp_path):
    path = cgroups.create('sched', processes=1)
    factory = SchedSourceFactory(None, cgroups.layout)
    source = factory.open(Task('t', 't', path))
    source.measure({})
    cgroups.remove(path)
    with pytest.raises(CgroupVanished):
        source.measure({})


def test_subcgroups_are_measured_with_the_task(cgroups, tmp_path):
    parent = cgroups.create('pod', processes=0)
    first = cgroups.create('pod/c1', processes=0)
    second = cgroups.create('pod/c2', processes=0)
    Threaded(cgroups, first, tmp_path, threads=2)
    Threaded(cgroups, second, tmp_path, threads=3)
    source = SchedSourceFactory(None, cgroups.layout).open(
        Task('pod', 'pod', parent, subcgroups_paths=[first, second]))
    m = {}
    source.measure(m)
    assert m[MetricName.TASK_SCHED_STAT]['prio'] == 5 * 120


def test_a_bad_sched_regex_is_a_config_error(tmp_path):
    path, line = config_error(tmp_path, '''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          sched: '*nr'
        ''')
    assert_located(line, path, 3, 'runner.sched', 'not a valid regular expression')
    assert os.path.exists(path)
    error = load_error('''\
        runner: !DetectionRunner
          measurement_runner: !MeasurementRunner
            node: !StaticNode {tasks: []}
            sched: '[nr'
          detector: !NOPAnomalyDetector
          anomalies_storage: !LogStorage
        ''')
    assert error.startswith('<config>:4: runner.measurement_runner.sched: '), error
