"""RDT monitoring per task on a resctrl tree laid out like a two-socket server's
(tests/resctrl_tree.py), with real cgroups and real multi-threaded processes: one group per task
named as the original named it, the task's threads written into it, the counters summed over
the L3 domains, Unavailable readings, groups removed when tasks go and at the next start, and
running out of RMIDs for real (mkdir on a tmpfs with few inodes)."""
import logging
import os
import sys
import time

import pytest

from conftest import promtool_check
from resctrl_tree import resctrl_tree
from testing.recording import Recording
from wca.cgroups.layout import CgroupLayout
from wca.exposition import encode
from wca.nodes.base import Node, Task
from wca.nodes.static import CgroupDirectoryNode, StaticNode
from wca.resctrl.groups import group_name, start_record
from wca.resctrl import tasks
from wca.resctrl.monitoring import RDTMonitoring
from wca.resctrl.tasks import TasksWriter
from wca.runners.measurement import MeasurementRunner

THREADED = [sys.executable, '-c', 'import threading, time\n'
            'for _ in range(2):\n'
            '    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n'
            'time.sleep(600)']


@pytest.fixture
def tree(tmp_path):
    with resctrl_tree(str(tmp_path / 'resctrl')) as made:
        yield made


def threads_of(directory, count=3):
    """The thread ids in a cgroup directory, once there are `count` of them."""
    deadline = time.monotonic() + 10
    while True:
        with open(os.path.join(directory, 'tasks')) as f:
            threads = sorted(int(t) for t in f.read().split())
        if len(threads) == count or time.monotonic() > deadline:
            return threads
        time.sleep(0.02)


def threaded_task(cgroups, name):
    path = cgroups.create(name, processes=0)
    cgroups.add_process(path, THREADED)
    return path, threads_of(cgroups.layout.v1['cpu'] + path)


def runner_for(tree, tmp_path, node, storage, **options):
    return MeasurementRunner(node=node, metrics_storage=storage, interval=0, resctrl=tree,
                             rdt_groups_file=str(tmp_path / 'record'), **options)


def test_one_group_per_task_with_its_threads_and_summed_counters(cgroups, tree, tmp_path):
    (one, one_threads), (two, _) = threaded_task(cgroups, 'one'), threaded_task(cgroups, 'two')
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[one, two]), storage)
    runner.iterate()
    assert tree.groups() == sorted([group_name(one), group_name(two)])
    assert group_name(one) == one.strip('/').replace('/', '-')
    assert sorted(tree.tasks('mon_groups/' + group_name(one))) == one_threads
    group = 'mon_groups/' + group_name(one)
    tree.set_counters(group, 0, llc_occupancy=1000, mbm_total_bytes=5000, mbm_local_bytes=3000)
    tree.set_counters(group, 1, llc_occupancy=24, mbm_total_bytes=100, mbm_local_bytes=100)
    runner.iterate()
    task = one.strip('/')
    assert storage.value('task_llc_occupancy_bytes', task_id=task) == 1024
    assert storage.value('task_mem_bandwidth_bytes', task_id=task) == 5100
    assert storage.value('task_mem_bandwidth_local_bytes', task_id=task) == 3100
    assert storage.value('task_mem_bandwidth_remote_bytes', task_id=task) == 2000
    assert storage.value('task_llc_occupancy_bytes', task_id=two.strip('/')) == 0
    assert [m.type for m in storage.last('task_mem_bandwidth_bytes')] == ['counter', 'counter']
    assert storage.last('task_llc_occupancy_bytes')[0].type == 'gauge'
    runner.iterate()  # the status of the groups is that of the iteration before
    assert storage.value('wca_rdt_monitoring_groups') == 2
    assert storage.value('wca_rdt_tasks_waiting') == 0
    assert sorted(tree.tasks(group)) == one_threads  # nothing new: nothing written again
    promtool_check(encode(storage.batches[-1])[0].encode())
    runner.close()
    assert tree.groups() == []


def test_threads_that_join_later_are_written_once(cgroups, tree, tmp_path):
    path, threads = threaded_task(cgroups, 'grows')
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[path]), Recording())
    runner.iterate()
    late = cgroups.add_process(path)
    runner.iterate()
    runner.iterate()
    group = 'mon_groups/' + group_name(path)
    assert tree.tasks(group) == threads + [late.pid]
    runner.close()


def test_pod_threads_of_every_container_go_into_one_group(cgroups, tree, tmp_path):
    pod = cgroups.create('pod', processes=0)
    containers = [cgroups.create('pod/c%d' % i, processes=0) for i in range(2)]
    for container in containers:
        cgroups.add_process(container, THREADED)
    threads = [t for c in containers for t in threads_of(cgroups.layout.v1['cpu'] + c)]
    record = start_record(str(tmp_path / 'record'), tree)
    monitoring = RDTMonitoring(tree, tree.information(), cgroups.layout, {}, record,
                               TasksWriter())
    source = monitoring.open(Task(name='pod', task_id='uid-1', cgroup_path=pod,
                                  subcgroups_paths=containers))
    measurements = {}
    source.measure(measurements)
    group = 'mon_groups/' + group_name(pod)
    assert sorted(tree.tasks(group)) == sorted(threads) and len(threads) == 6
    assert measurements['task_llc_occupancy_bytes'] == 0
    source.close()
    assert tree.groups() == []


def test_task_only_in_cgroup2_gives_its_threads_from_cgroup_threads(cgroups, tree, tmp_path):
    path, threads = threaded_task(cgroups, 'v2')
    layout = CgroupLayout.with_unified({}, cgroups.layout.unified)
    monitoring = RDTMonitoring(tree, tree.information(), layout, {},
                               start_record(None, tree), TasksWriter())
    source = monitoring.open(Task(name='v2', task_id='v2', cgroup_path=path))
    assert source.thread_files == [cgroups.layout.unified + path + '/cgroup.threads']
    source.measure({})
    assert sorted(tree.tasks('mon_groups/' + group_name(path))) == threads
    source.close()


@pytest.mark.parametrize('answer', ['Unavailable', 'Error'])
def test_unavailable_reading_leaves_that_metric_out(cgroups, tree, tmp_path, answer):
    path = cgroups.create('t')
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[path]), storage)
    runner.iterate()
    group = 'mon_groups/' + group_name(path)
    tree.set_counters(group, 0, mbm_total_bytes=500, mbm_local_bytes=100, llc_occupancy=64)
    tree.set_counters(group, 1, mbm_total_bytes=answer)
    runner.iterate()
    names = storage.names()
    assert 'task_mem_bandwidth_bytes' not in names  # never a partial sum
    assert 'task_mem_bandwidth_remote_bytes' not in names
    assert storage.value('task_mem_bandwidth_local_bytes') == 100
    assert storage.value('task_llc_occupancy_bytes') == 64
    assert storage.value('task_up') == 1
    tree.set_counters(group, 1, mbm_total_bytes=700)
    runner.iterate()
    assert storage.value('task_mem_bandwidth_bytes') == 1200
    assert storage.value('wca_rdt_unavailable_readings_total') == 1
    runner.close()


def test_group_goes_with_the_task(cgroups, tree, tmp_path):
    storage = Recording()
    runner = runner_for(tree, tmp_path, CgroupDirectoryNode(root=cgroups.parent), storage)
    keep, gone = cgroups.create('keep'), cgroups.create('gone')
    runner.iterate()
    assert tree.groups() == sorted([group_name(keep), group_name(gone)])
    cgroups.remove(gone)
    runner.iterate()
    assert tree.groups() == [group_name(keep)]
    with open(str(tmp_path / 'record')) as f:
        assert f.read().splitlines()[2:] == ['+mon_groups/' + n for n in sorted(
            [group_name(keep), group_name(gone)])] + ['-mon_groups/' + group_name(gone)]
    runner.close()
    assert tree.groups() == []


def test_groups_a_killed_run_left_behind_are_removed_at_start(cgroups, tree, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = cgroups.create('t')
    tree.mkdir('mon_groups/operators-own')
    first = runner_for(tree, tmp_path, StaticNode(tasks=[path]), Recording())
    first.iterate()  # and then killed: never closed
    assert tree.groups() == sorted([group_name(path), 'operators-own'])
    second = runner_for(tree, tmp_path, StaticNode(tasks=[]), Recording())
    second.setup()
    assert tree.groups() == ['operators-own']
    assert 'removed 1 group an earlier run left behind: mon_groups/%s' % group_name(path) \
        in caplog.text
    second.close()


def test_out_of_rmids_warns_once_and_the_agent_goes_on(cgroups, tree, tmp_path, caplog):
    tree.limit_groups(2)  # a tmpfs with room for 2 groups: the third mkdir fails with ENOSPC
    caplog.set_level(logging.INFO)
    paths = [cgroups.create('t%d' % i) for i in range(3)]
    storage = Recording()
    runner = runner_for(tree, tmp_path, CgroupDirectoryNode(root=cgroups.parent), storage)
    for _ in range(3):
        runner.iterate()
    assert len(tree.groups()) == 2
    assert storage.value('wca_tasks') == 3
    assert len(storage.last('task_cpu_usage_seconds')) == 3  # everything else is measured
    assert len(storage.last('task_llc_occupancy_bytes')) == 2
    assert storage.value('wca_rdt_tasks_waiting') == 1
    assert storage.value('wca_rdt_monitoring_groups') == 2
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING' and r.name.startswith('wca.resctrl')]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith('resctrl: out of RMIDs: all 176 monitoring groups the hardware '
                                  'has (info/L3_MON/num_rmids) are in use (the kernel says: Out '
                                  'of RMIDs): task ')
    waiting = [p for p in paths if group_name(p) not in tree.groups()][0]
    cgroups.remove([p for p in paths if p != waiting][0])  # a task goes: its RMID frees up
    runner.iterate()
    runner.iterate()
    assert sorted(tree.groups()) == sorted(group_name(p) for p in paths if p in cgroups.created)
    assert group_name(waiting) in tree.groups()
    assert storage.value('task_llc_occupancy_bytes', task_id=waiting.strip('/')) == 0
    assert storage.value('wca_rdt_tasks_waiting') == 0
    assert 'resctrl: every task has its monitoring group again' in caplog.text
    runner.close()
    assert tree.groups() == []


def test_group_removed_by_someone_else_is_made_again(cgroups, tree, tmp_path, caplog):
    path, threads = threaded_task(cgroups, 't')
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[path]), storage)
    runner.iterate()
    group = 'mon_groups/' + group_name(path)
    tree.rmdir(group)
    runner.iterate()
    assert 'was removed by someone else; made again' in caplog.text
    runner.iterate()
    assert sorted(tree.tasks(group)) == threads  # written again into the new group
    assert storage.value('task_llc_occupancy_bytes') == 0
    runner.close()
    assert tree.groups() == []


def test_group_that_exists_already_is_used_and_left_in_place(cgroups, tree, tmp_path):
    path = cgroups.create('t')
    tree.mkdir('mon_groups/' + group_name(path))  # made by an operator, or another tool
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[path]), storage)
    runner.iterate()
    assert storage.value('task_llc_occupancy_bytes') == 0
    runner.close()
    assert tree.groups() == [group_name(path)]


def test_tasks_whose_names_collide_get_one_group(cgroups, tree, tmp_path, caplog):
    first = cgroups.create('a-b')
    cgroups.create('a', processes=0)
    second = cgroups.create('a/b')
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[first, second]), storage)
    runner.iterate()
    runner.iterate()
    assert tree.groups() == [group_name(first)]
    assert len(storage.last('task_llc_occupancy_bytes')) == 1
    assert len(storage.last('task_up')) == 2
    assert len([r for r in caplog.records if 'cgroup paths that differ only' in r.getMessage()]) == 1
    runner.close()


def test_only_the_features_the_hardware_has(cgroups, tmp_path):
    with resctrl_tree(str(tmp_path / 'r'), mon_features=('llc_occupancy',)) as tree:
        storage = Recording()
        runner = runner_for(tree, tmp_path, StaticNode(tasks=[cgroups.create('t')]), storage)
        runner.iterate()
        assert 'task_llc_occupancy_bytes' in storage.names()
        assert not [n for n in storage.names() if n.startswith('task_mem_bandwidth')]
        runner.close()


def test_group_moves_under_a_control_group(cgroups, tree, tmp_path):
    """The extension point for RDT allocation: after the task's threads went into control group
    `gold`, its monitoring group is made again under gold/mon_groups/."""
    path, threads = threaded_task(cgroups, 't')
    record = start_record(str(tmp_path / 'record'), tree)
    monitoring = RDTMonitoring(tree, tree.information(), cgroups.layout, {}, record,
                               TasksWriter())
    source = monitoring.open(Task(name='t', task_id='t', cgroup_path=path))
    source.measure({})
    tree.mkdir('gold')
    assert source.move_to('gold')
    name = group_name(path)
    assert tree.groups() == [] and tree.groups('gold') == [name]
    source.measure({})
    assert sorted(tree.tasks('gold/mon_groups/' + name)) == threads
    assert record.live == {'gold/mon_groups/' + name: None}
    source.close()
    assert tree.groups('gold') == [] and record.live == {}


def test_garbage_reading_is_a_counted_failure_logged_once(cgroups, tree, tmp_path, caplog):
    path = cgroups.create('t')
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[path]), storage)
    runner.iterate()
    errors_before = storage.value('wca_measurement_errors_total')
    group = 'mon_groups/' + group_name(path)
    tree.set_counters(group, 1, llc_occupancy='12abc')
    runner.iterate()
    runner.iterate()
    assert 'task_llc_occupancy_bytes' not in storage.names()
    assert storage.value('task_mem_bandwidth_bytes') == 0
    assert storage.value('wca_measurement_errors_total') == errors_before + 2
    failures = [r.getMessage() for r in caplog.records if 'cannot parse' in r.getMessage()]
    assert len(failures) == 1 and tree.path(group, 'mon_data/mon_L3_01/llc_occupancy') in failures[0]
    runner.close()


@pytest.mark.parametrize('record', ['present', 'missing', 'unwritable'])
def test_restarts_after_crashes_remove_their_own_groups_only(cgroups, tree, tmp_path,
                                                             caplog, record):
    """Three runs, each killed after one iteration, each with new tasks, on hardware with RMIDs
    for three groups, one of them an operator's: every run's tasks get RMIDs (the next start
    removes what the crashed one left), whatever became of the record; the operator's group
    stays."""
    tree.limit_groups(3)
    tree.mkdir('mon_groups/operators-own')
    if record == 'unwritable':
        (tmp_path / 'a-file').write_text('')
        record_file = tmp_path / 'a-file' / 'record'
    else:
        record_file = tmp_path / 'var-lib-wca' / 'record'  # its directory is made
    for run in range(3):
        paths = [cgroups.create('run%d-%s' % (run, n)) for n in 'ab']
        storage = Recording()
        runner = MeasurementRunner(node=StaticNode(tasks=paths), metrics_storage=storage,
                                   interval=0, resctrl=tree, rdt_groups_file=str(record_file))
        runner.iterate()
        assert tree.groups() == sorted(['operators-own'] + [group_name(p) for p in paths])
        assert len(storage.last('task_llc_occupancy_bytes')) == 2
        if record == 'missing':
            record_file.unlink()  # (an operator cleaned /var/lib/wca, or it is a tmpfs)
        # killed here: never closed
    assert storage.value('wca_rdt_groups_record_writable') == (record != 'unwritable')
    unwritable = [r for r in caplog.records if 'resctrl groups record' in r.getMessage()]
    assert len(unwritable) == (3 if record == 'unwritable' else 0)  # one per run


def test_threads_moved_out_of_a_monitoring_group_are_moved_back(cgroups, tree, tmp_path,
                                                                monkeypatch):
    monkeypatch.setattr(tasks, 'VERIFY_SECONDS', 0)  # each group read back every iteration
    path, threads = threaded_task(cgroups, 't')
    storage = Recording()
    runner = runner_for(tree, tmp_path, StaticNode(tasks=[path]), storage)
    runner.iterate()
    group = 'mon_groups/' + group_name(path)
    assert sorted(tree.tasks(group)) == threads
    with open(tree.path(group, 'tasks'), 'w') as f:  # someone moved two of them elsewhere
        f.write('%d\n' % threads[0])
    runner.iterate()
    assert sorted(tree.tasks(group)) == threads
    assert storage.value('wca_rdt_repairs_total', what='threads_moved_back') == 2
    runner.close()


def test_rdt_gauges_are_this_iterations(cgroups, tree, tmp_path):
    """wca_rdt_monitoring_groups and wca_rdt_tasks_waiting count the groups as the iteration
    that stores them left them, not as the one before did."""
    tree.limit_groups(1)
    storage = Recording()
    runner = runner_for(tree, tmp_path, CgroupDirectoryNode(root=cgroups.parent), storage)
    runner.iterate()
    assert storage.value('wca_rdt_monitoring_groups') == 0
    first = cgroups.create('first')
    runner.iterate()
    assert storage.value('wca_rdt_monitoring_groups') == 1
    assert storage.value('wca_rdt_tasks_waiting') == 0
    second = cgroups.create('second')
    runner.iterate()
    assert storage.value('wca_rdt_tasks_waiting') == 1  # out of RMIDs
    cgroups.remove(first)
    runner.iterate()  # first goes, second gets its RMID
    assert storage.value('wca_rdt_tasks_waiting') == 0
    assert storage.value('wca_rdt_monitoring_groups') == 1
    assert tree.groups() == [group_name(second)]
    runner.close()


class Relaunching(Node):
    def __init__(self, tasks):
        self.tasks = tasks

    def get_tasks(self):
        return list(self.tasks)


def test_a_task_relaunched_in_the_same_cgroup_gets_its_group(cgroups, tree, tmp_path):
    """A new task id on the cgroup path of one that leaves in the same iteration (the new task is
    opened before the old one is closed): it gets the group as soon as the name is free."""
    path, threads = threaded_task(cgroups, 't')
    node = Relaunching([Task(name='t', task_id='first', cgroup_path=path)])
    storage = Recording()
    runner = runner_for(tree, tmp_path, node, storage)
    runner.iterate()
    node.tasks = [Task(name='t', task_id='second', cgroup_path=path)]
    runner.iterate()
    assert tree.groups() == [group_name(path)]
    assert sorted(tree.tasks('mon_groups/' + group_name(path))) == threads
    assert storage.value('task_llc_occupancy_bytes', task_id='second') == 0
    assert storage.value('wca_rdt_monitoring_groups') == 1
    runner.close()
    assert tree.groups() == []
