"""MeasurementRunner on real cgroups: what an operator sees in the stored metrics."""
import os
import socket
import subprocess
import threading
import urllib.request

import pytest

from conftest import promtool_check, stop_process, wca_command, write_config
from testing.recording import Recording
from wca.allocators import NOPAllocator
from wca.exposition import encode
from wca.nodes import Node, Task
from wca.nodes.static import CgroupDirectoryNode, StaticNode
from wca.runners import AllocationRunner
from wca.runners.measurement import MeasurementRunner
from wca.storage import LogStorage
from wca.storage.http import PrometheusEndpointStorage


def runner_for(node, storage, **kwargs):
    return MeasurementRunner(node=node, metrics_storage=storage, interval=0, **kwargs)


def test_tasks_are_measured_and_labelled(cgroups):
    paths = [cgroups.create('t%d' % i) for i in range(3)]
    storage = Recording()
    node = StaticNode(tasks=paths, default_labels={'env': 'test', 'app.kubernetes.io/name': 'x'},
                      tasks_labels={paths[0].strip('/'): {'env': 'prod'}})
    runner = runner_for(node, storage, extra_labels={'own_ip': '10.0.0.1'})
    runner.iterate()
    assert len(storage.batches) == 1
    usage = storage.last('task_cpu_usage_seconds')
    assert sorted(m.labels['task_id'] for m in usage) == sorted(p.strip('/') for p in paths)
    first = [m for m in usage if m.labels['task_id'] == paths[0].strip('/')][0]
    assert first.labels['env'] == 'prod' and first.labels['app_kubernetes_io_name'] == 'x'
    assert first.labels['own_ip'] == '10.0.0.1' and first.labels['host']
    assert first.labels['task_name'] == paths[0].strip('/')
    assert first.type == 'counter' and first.help
    assert storage.value('wca_tasks') == 3
    info = storage.last('wca_information')[0]
    assert info.labels['wca_version'] and info.labels['cpus'] and info.labels['own_ip'] == '10.0.0.1'
    for name in ('task_mem_usage_bytes', 'task_mem_page_faults', 'task_mem_numa_pages', 'task_up'):
        assert len(storage.last(name)) >= 3, name
    for name in ('platform_cpu_usage', 'platform_mem_usage_bytes', 'wca_up', 'wca_mem_usage_bytes',
                 'wca_duration_seconds'):
        assert storage.last(name), name


def test_a_task_is_stored_in_the_iteration_it_is_first_seen(cgroups):
    storage = Recording()
    runner = runner_for(CgroupDirectoryNode(root=cgroups.parent), storage)
    runner.iterate()
    assert storage.value('wca_tasks') == 0
    path = cgroups.create('new')
    runner.iterate()
    assert storage.value('wca_tasks') == 1
    assert storage.value('task_up', task_id=path.strip('/')) == 1


def test_vanished_task_is_dropped_and_counted(cgroups, caplog):
    keep, gone = cgroups.create('keep'), cgroups.create('gone')
    storage = Recording()
    runner = runner_for(StaticNode(tasks=[keep, gone]), storage)
    runner.iterate()
    cgroups.remove(gone)
    runner.iterate()  # the static node still lists it: its files are gone mid-iteration
    assert [m.labels['task_id'] for m in storage.last('task_up')] == [keep.strip('/')]
    assert storage.value('wca_tasks_vanished_total') == 1
    runner.iterate()  # not found at all now: skipped with one warning, not counted again
    runner.iterate()
    assert storage.value('wca_tasks_vanished_total') == 1
    assert storage.value('wca_tasks') == 1
    assert len([r for r in caplog.records if 'not measured until it appears' in r.getMessage()]) == 1
    assert gone.strip('/') not in runner.task_labels()
    assert storage.value('wca_tasks_waiting') == 1  # listed by the node, no cgroup


def test_failing_storage_is_counted_and_the_loop_goes_on(cgroups, caplog):
    storage = Recording()
    runner = runner_for(StaticNode(tasks=[cgroups.create('t')]), storage)
    storage.fail = True
    runner.iterate()
    runner.iterate()
    storage.fail = False
    runner.iterate()
    assert storage.value('wca_storage_errors_total', storage='metrics_storage') == 2
    assert storage.value('wca_iterations_total') == 3
    errors = [r for r in caplog.records if 'storage down' in r.getMessage()]
    assert len(errors) == 1  # logged when it starts failing, not every second


def test_a_storage_failing_the_same_way_is_logged_once_while_the_metric_count_changes(
        cgroups, tmp_path, caplog):
    """The textfile's directory is gone while tasks come and go: each store fails with the same
    errno but another count of metrics (and another temporary file name): one error line."""
    node = CgroupDirectoryNode(root=cgroups.parent)
    storage = LogStorage(output_filename=str(tmp_path / 'gone' / 'metrics.prom'), overwrite=True)
    runner = runner_for(node, storage)
    for index in range(3):
        cgroups.create('t%d' % index)
        runner.iterate()
    errors = [r.getMessage() for r in caplog.records if 'failed to store' in r.getMessage()]
    assert len(errors) == 1, errors
    os.mkdir(str(tmp_path / 'gone'))
    runner.iterate()
    assert os.path.exists(str(tmp_path / 'gone' / 'metrics.prom'))


class BrokenNode(Node):
    def get_tasks(self):
        raise ConnectionError('kubelet refused the connection')


def test_failing_node_still_stores_platform_metrics():
    storage = Recording()
    runner = runner_for(BrokenNode(), storage)
    runner.iterate()
    runner.iterate()
    assert storage.value('wca_node_errors_total', reason='exception') == 2
    assert storage.value('wca_tasks') == 0
    assert storage.last('platform_cpu_usage')


def test_task_whose_labels_change_gets_new_labels(cgroups):
    path = cgroups.create('t')

    class ChangingNode(Node):
        version = '1'

        def get_tasks(self):
            return [Task(name='t', task_id='t', cgroup_path=path, labels={'v': self.version})]

    node, storage = ChangingNode(), Recording()
    runner = runner_for(node, storage)
    runner.iterate()
    node.version = '2'
    runner.iterate()
    assert storage.last('task_up')[0].labels['v'] == '2'


def test_run_stops_after_iterations_and_on_stop():
    storage = Recording()
    assert runner_for(StaticNode(tasks=[]), storage, iterations=3).run() == 0
    assert len(storage.batches) == 3
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage, interval=30)
    threading.Timer(0.5, runner.stop).start()
    assert runner.run() == 0  # does not wait out the 30 s interval


def test_output_passes_promtool(cgroups, tmp_path):
    paths = [cgroups.create('p%d' % i) for i in range(2)]
    output = str(tmp_path / 'wca.prom')
    runner = runner_for(StaticNode(tasks=paths, default_labels={'k8s.io/app': 'a "quoted" app'}),
                        LogStorage(output_filename=output, overwrite=True))
    runner.iterate()
    runner.iterate()
    with open(output, 'rb') as f:
        text = f.read()
    assert text.count(b'task_up{') == 2
    lint = promtool_check(text)
    assert 'task_cpu_usage_seconds counter metrics should have "_total" suffix' in lint


def test_agent_survives_cgroups_created_and_removed_at_a_high_rate(cgroups, tmp_path):
    """The CLI agent watches a directory while cgroups come and go as fast as we can make them."""
    output = str(tmp_path / 'wca.prom')
    config = write_config(tmp_path / 'wca.yml', '''
runner: !MeasurementRunner
  node: !CgroupDirectoryNode
    root: %s
  metrics_storage: !LogStorage
    output_filename: %s
    overwrite: true
  interval: 0.02
''' % (cgroups.parent, output))
    stable = cgroups.create('stable')
    agent = subprocess.Popen(wca_command('-c', config, '--root'), stderr=subprocess.PIPE)
    try:
        created = 0
        for round_ in range(40):
            paths = [cgroups.create('churn-%d-%d' % (round_, i)) for i in range(5)]
            created += len(paths)
            for path in paths:
                cgroups.remove(path)
        assert agent.poll() is None, 'the agent died'
    finally:
        status = stop_process(agent)
    stderr = agent.stderr.read().decode()
    assert status == 0, stderr
    assert 'Traceback' not in stderr
    with open(output, 'rb') as f:
        text = f.read()
    iterations = [line for line in text.splitlines()
                  if line.startswith(b'wca_iterations_total{')]
    assert int(iterations[0].split()[1]) > 10
    assert ('task_up{host="%s",task_id="%s"' % (os.uname()[1], stable.strip('/'))).encode() in text
    promtool_check(text)
    parent = cgroups.layout.v1['cpu'] + cgroups.parent
    assert created == 200 and [d for d in os.listdir(parent)
                               if os.path.isdir(os.path.join(parent, d))] == ['stable']


def test_a_node_answering_nonsense_is_a_discovery_failure_and_the_iterations_are_stored(caplog):
    class NonsenseNode(Node):
        def get_tasks(self):
            return 42  # not a list of tasks

    storage = Recording()
    runner = runner_for(NonsenseNode(), storage, iterations=3)
    assert runner.run() == 0
    assert len(storage.batches) == 3 and storage.last('platform_cpu_usage')
    assert storage.value('wca_node_errors_total', reason='exception') == 3
    said = [r for r in caplog.records if 'must return a list of wca.nodes.Task' in r.getMessage()]
    assert len(said) == 1 and not [r for r in caplog.records if r.exc_info]


def test_a_nodes_own_failure_counts_reach_the_metrics_by_reason():
    """KubernetesNode never raises: it counts its failures by reason, which the runner exports
    beside the exceptions of plugin nodes."""
    from tls_ca import closed_port
    from wca.nodes.kubernetes import KubernetesNode
    node = KubernetesNode(kubelet_enabled=True, client_token_path=None, timeout=1,
                          kubelet_endpoint='http://127.0.0.1:%d' % closed_port(),
                          allow_plain_http=True)
    storage = Recording()
    runner = runner_for(node, storage)
    runner.iterate()
    runner.iterate()
    assert storage.value('wca_node_errors_total', reason='connection') == 2
    assert storage.value('wca_node_errors_total', reason='exception') == 0
    promtool_check(encode(storage.batches[-1])[0].encode())


def test_a_storage_shared_by_roles_reports_itself_once_and_is_scraped(cgroups):
    """The /metrics endpoint behind anchors for all three roles: served from the start, its own
    counters in the agent's metrics once, and closed when the runner stops."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    endpoint = PrometheusEndpointStorage(port=port)
    runner = AllocationRunner(node=StaticNode(tasks=[cgroups.create('t')]),
                              allocator=NOPAllocator(),
                              metrics_storage=endpoint, anomalies_storage=endpoint,
                              allocations_storage=endpoint, interval=0, iterations=2)
    runner.setup()
    urllib.request.urlopen('http://127.0.0.1:%d/-/healthy' % port, timeout=5).read()
    runner.iterate()
    text = urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5).read().decode()
    assert 'task_up{' in text and 'allocations_count{' in text
    runner.iterate()
    text = urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5).read().decode()
    assert text.count('\nwca_endpoint_scrapes_total{') == 1
    promtool_check(text.encode())
    runner.close()
    with pytest.raises(OSError):
        urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=5)
