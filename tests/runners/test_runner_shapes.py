"""The runner shapes of the original agent's configs, and storages shared between roles."""
import subprocess

import pytest

from conftest import wca_command, write_config
from testing.recording import Recording
from wca.config import load_config_text
from wca.detectors import AnomalyDetector, ContendedResource, ContentionAnomaly
from wca.metrics import Metric
from wca.nodes.base import Node, Task
from wca.runners import AllocationRunner, DetectionRunner, Runner
from wca.storage import LogStorage

ALGORITHM = {'DetectionRunner': 'detector: !NOPAnomalyDetector',
             'AllocationRunner': 'allocator: !NOPAllocator'}

SHAPES = {
    # 1.x: everything flat under the runner
    'flat': '''runner: !{runner}
  node: !StaticNode {{tasks: [task1]}}
  metrics_storage: !LogStorage {{output_filename: {tmp}/metrics.prom, overwrite: true}}
  anomalies_storage: !LogStorage {{output_filename: {tmp}/anomalies.prom, overwrite: true}}
  {algorithm}
''',
    # the seed documents: config: !XRunnerConfig
    'config': '''runner: !{runner}
  config: !{runner}Config
    node: !StaticNode {{tasks: [task1]}}
    metrics_storage: !LogStorage {{output_filename: {tmp}/metrics.prom, overwrite: true}}
    anomalies_storage: !LogStorage {{output_filename: {tmp}/anomalies.prom, overwrite: true}}
    {algorithm}
''',
    # 2.0: the measurement options as a !MeasurementRunner inside
    'composition': '''runner: !{runner}
  measurement_runner: !MeasurementRunner
    node: !StaticNode {{tasks: [task1]}}
    metrics_storage: !LogStorage {{output_filename: {tmp}/metrics.prom, overwrite: true}}
    interval: 5
  anomalies_storage: !LogStorage {{output_filename: {tmp}/anomalies.prom, overwrite: true}}
  {algorithm}
''',
}


@pytest.mark.parametrize('shape', sorted(SHAPES))
@pytest.mark.parametrize('runner', sorted(ALGORITHM))
def test_every_shape_of_the_original_loads(tmp_path, shape, runner):
    text = SHAPES[shape].format(runner=runner, algorithm=ALGORITHM[runner], tmp=tmp_path)
    built = load_config_text(text, 'shape.yaml', Runner)['runner']
    assert type(built).__name__ == runner
    assert [t.task_id for t in built.config.node.get_tasks()] == ['task1']
    assert built.config.metrics_storage.output_filename == '%s/metrics.prom' % tmp_path
    assert built.config.anomalies_storage.output_filename == '%s/anomalies.prom' % tmp_path
    assert built.config.interval == (5 if shape == 'composition' else 1)


def test_composition_with_an_option_given_twice_is_a_located_config_error(tmp_path):
    path = write_config(tmp_path / 'twice.yaml', '''runner: !DetectionRunner
  measurement_runner: !MeasurementRunner
    node: !StaticNode {tasks: [task1]}
  node: !StaticNode {tasks: [task2]}
  detector: !NOPAnomalyDetector
''')
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    assert result.returncode == 2
    assert result.stderr.startswith('wca: error: %s:' % path)
    assert 'runner.node' in result.stderr and 'measurement_runner' in result.stderr
    assert 'Traceback' not in result.stderr


class Tasks(Node):
    def __init__(self, *paths, labels=None):
        self.tasks = [Task(name=p.strip('/'), task_id=p.strip('/'), cgroup_path=p,
                           labels=dict(labels or {})) for p in paths]

    def get_tasks(self):
        return self.tasks


class LabellingDetector(AnomalyDetector):
    """Hands back a task's own metrics as an anomaly's context, and edits what it is given,
    as careless detectors do."""

    def detect(self, platform, tasks_data):
        ids = sorted(tasks_data)
        for data in tasks_data.values():
            data.labels['touched'] = 'yes'
        context = [Metric('context', 1, data.labels) for data in tasks_data.values()]
        return [ContentionAnomaly(ContendedResource.CPUS, ids[0], ids[1:], context)], []


def test_algorithms_cannot_change_the_nodes_tasks_or_their_metrics(cgroups):
    node = Tasks(cgroups.create('a'), cgroups.create('b'), labels={'app': 'web'})
    metrics, anomalies = Recording(), Recording()
    runner = DetectionRunner(node=node, detector=LabellingDetector(), metrics_storage=metrics,
                             anomalies_storage=anomalies, interval=0)
    runner.iterate()
    runner.iterate()
    assert [task.labels for task in node.tasks] == [{'app': 'web'}, {'app': 'web'}]
    for metric in metrics.last('task_up'):
        assert 'uuid' not in metric.labels and 'touched' not in metric.labels
    assert all(m.labels['type'] == 'anomaly' for m in anomalies.last('context'))


def test_one_overwriting_file_shared_by_every_role_holds_every_role(cgroups, tmp_path):
    """The anchors pattern of the original's documents: one LogStorage with overwrite for
    metrics, anomalies and allocations gets one store per iteration with all of them."""
    output = tmp_path / 'all.prom'
    shared = LogStorage(output_filename=str(output), overwrite=True)
    runner = AllocationRunner(node=Tasks(cgroups.create('t')), allocator=_NoAllocations(),
                              metrics_storage=shared, anomalies_storage=shared,
                              allocations_storage=shared, interval=0)
    for _ in range(2):
        runner.iterate()
        text = output.read_text()
        for name in ('task_up', 'wca_up', 'anomaly_count', 'allocations_count'):
            assert '\n%s{' % name in text, name
        assert text.count('# TYPE wca_up ') == 1


def test_a_failing_shared_storage_is_counted_for_each_of_its_roles(cgroups):
    shared = Recording(fail=True)
    metrics = Recording()
    runner = AllocationRunner(node=Tasks(cgroups.create('t')), allocator=_NoAllocations(),
                              metrics_storage=metrics, anomalies_storage=shared,
                              allocations_storage=shared, interval=0)
    for _ in range(3):  # a store's failure is counted in the metrics of the next iteration
        runner.iterate()
    for role in ('anomalies_storage', 'allocations_storage'):
        assert metrics.value('wca_storage_errors_total', storage=role) == 2
    assert metrics.value('wca_storage_errors_total', storage='metrics_storage') == 0


class _NoAllocations:
    def allocate(self, platform, tasks_data):
        return {}, [], []


def test_a_task_label_that_collides_after_sanitising_is_dropped_and_counted(cgroups, caplog):
    path = cgroups.create('labelled')
    node = Tasks(path, labels={'own.ip': 'task', 'app-name': 'x', 'app_name': 'y'})
    storage = Recording()
    runner = AllocationRunner(node=node, allocator=_NoAllocations(), metrics_storage=storage,
                              anomalies_storage=Recording(), allocations_storage=Recording(),
                              interval=0, extra_labels={'own_ip': '10.0.0.1'})
    runner.iterate()
    labels = storage.last('task_up')[0].labels
    assert labels['own_ip'] == '10.0.0.1' and labels['app_name'] == 'y'
    assert storage.value('wca_labels_dropped_total', reason='owned') == 1  # own.ip: own_ip
    assert storage.value('wca_labels_dropped_total', reason='sanitised') == 1  # app-name
    assert len([r for r in caplog.records if 'dropped' in r.getMessage()]) == 2
