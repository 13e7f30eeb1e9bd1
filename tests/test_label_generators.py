"""task_label_generators: labels made from other labels once, when a task appears; a generated
label is the agent's and wins over a task label of its name (dropped, counted), the common
labels win over a generator; a missing source label gives no label and one warning."""
import logging
import re

import pytest

from procfs_fixtures import assert_located, config_error, load_error

from testing.recording import Recording
from wca.config import ConfigError, load_config_text
from wca.detectors import AnomalyDetector
from wca.labels import TaskLabelGenerator, TaskLabelRegexGenerator
from wca.nodes.base import Task
from wca.nodes.static import StaticNode
from wca.runners import DetectionRunner, MeasurementRunner, Runner

UUID = '5f0b7a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b'


class SeenLabels(AnomalyDetector):
    """Records the labels each detect() got."""

    def __init__(self):
        self.seen = []

    def detect(self, platform, tasks_data):
        self.seen.append({t: dict(d.labels) for t, d in tasks_data.items()})
        return [], []


class Counting(TaskLabelGenerator):
    def __init__(self):
        self.calls = 0

    def generate(self, task):
        self.calls += 1
        return task.labels['task_name'].upper()


def test_the_original_aurora_instance_generator():
    generator = TaskLabelRegexGenerator(r'.*-(\d+)-.{36}', r'\1', 'task_id')
    task = Task('x', 'www-data-prod-hello-12-' + UUID, '/x', labels={'task_id': 'www-data-prod-'
                                                                     'hello-12-' + UUID})
    assert generator.generate(task) == '12'
    assert generator.generate(Task('x', 'y', '/x', labels={'task_id': 'no-match'})) == 'no-match'


def test_labels_are_generated_once_when_a_task_appears(cgroups, caplog):
    paths = [cgroups.create('aurora-%d-%s' % (i, UUID)) for i in range(2)]
    counting = Counting()
    detector = SeenLabels()
    storage = Recording()
    runner = DetectionRunner(
        node=StaticNode(tasks=paths, default_labels={'env': 'prod'}), metrics_storage=storage,
        anomalies_storage=Recording(), detector=detector, interval=0, task_label_generators={
            'aurora_instance': TaskLabelRegexGenerator(r'.*-(\d+)-.{36}', r'\1', 'task_id'),
            'shouting': counting,
            'env': TaskLabelRegexGenerator('^.*$', 'generated'),  # the task's env is dropped
            'host': TaskLabelRegexGenerator('.*', 'overwritten'),  # every metric has host: kept
            'from_missing': TaskLabelRegexGenerator('.*', 'x', source='no_such_label'),
        })
    with caplog.at_level(logging.WARNING, 'wca.labels'):
        for _ in range(3):
            runner.iterate()
    assert counting.calls == 2  # once per task, not per iteration
    warnings = [r.getMessage() for r in caplog.records if r.name == 'wca.labels']
    assert len(warnings) == 2 and "no label 'no_such_label'" in warnings[1]
    assert "label 'env' dropped: 'env' is a label the agent sets" in warnings[0]  # said once
    assert storage.value('wca_labels_dropped_total', reason='owned') == 2
    for i, path in enumerate(paths):
        task_id = path.strip('/')
        up = [m for m in storage.last('task_up') if m.labels['task_id'] == task_id][0]
        assert up.labels['aurora_instance'] == str(i)
        assert up.labels['shouting'] == task_id.upper()
        assert up.labels['env'] == 'generated' and up.labels['host'] != 'overwritten'
        assert 'from_missing' not in up.labels
        # algorithms see the labels the metrics carry, generated ones included
        assert detector.seen[-1][task_id] == up.labels


def test_a_task_id_that_does_not_match_keeps_it_whole():
    # re.sub replaces nothing when the pattern does not match, as in the original.
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage,
                               task_label_generators={'short': TaskLabelRegexGenerator(
                                   r'^(\w+)-.*', r'\1', 'task_id')})
    runner.setup()
    labels = runner._task_labels(Task('n', 'plain', '/plain'))
    assert labels['short'] == 'plain'


def test_the_numa_allocator_example_shape_loads():
    loaded = load_config_text('''\
runner: !MeasurementRunner
  node: !StaticNode {tasks: []}
  task_label_generators:
    aurora_instance: !TaskLabelRegexGenerator
      pattern: '.*-(\\d+)-.{36}'
      repl: '\\1'  # first match group
      source: 'task_id' #default
''', root_type=Runner)
    generator = loaded['runner'].config.task_label_generators['aurora_instance']
    assert (generator.pattern, generator.repl, generator.source) == (r'.*-(\d+)-.{36}', r'\1',
                                                                     'task_id')


def test_bad_generators_are_config_errors(tmp_path):
    path, line = config_error(tmp_path, r'''
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          task_label_generators:
            instance: !TaskLabelRegexGenerator
              pattern: '.*-(\d+'
              repl: '\1'
        ''')
    assert_located(line, path, 6, 'runner.task_label_generators.instance.pattern',
                   'not a valid regular expression')
    error = load_error(r'''
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          task_label_generators:
            instance: !TaskLabelRegexGenerator
              pattern: '.*-(\d+)-(?P<uuid>.{36})'
              repl: '\3'
        ''')
    assert error.startswith('<config>:7: runner.task_label_generators.instance.repl: '), error
    assert 'does not fit pattern' in error
    assert 'invalid group reference 3' in error
    error = load_error(r'''
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          task_label_generators:
            bad-name: !TaskLabelRegexGenerator {pattern: x, repl: y}
        ''')
    assert re.match(r'<config>:\d: runner.task_label_generators: .*not a label name', error), error
    error = load_error(r'''
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          task_label_generators:
            instance: !TaskLabelRegexGenerator {pattern: x}
        ''')
    assert 'missing required key: repl' in error
    with pytest.raises(ConfigError):  # a generator must be one: not a plain string
        load_config_text('runner: !MeasurementRunner\n  node: !StaticNode {tasks: []}\n'
                         '  task_label_generators: {x: y}\n', root_type=Runner)


def test_named_groups_and_escapes_in_repl_are_checked_against_the_pattern():
    generator = TaskLabelRegexGenerator(r'(?P<app>\w+)-(\d+)', r'\g<app>/\2')
    assert generator.generate(Task('web-7', 'i', '/i', labels={'task_name': 'web-7'})) == 'web/7'
    with pytest.raises(ValueError) as error:
        TaskLabelRegexGenerator(r'(?P<app>\w+)', r'\g<application>')
    assert str(error.value).startswith('repl: ')
    with pytest.raises(ValueError):
        TaskLabelRegexGenerator(r'(\w+)', '\\')


def test_include_optional_labels_is_accepted_and_changes_nothing():
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage,
                               include_optional_labels=True)
    runner.iterate()
    plain = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=Recording())
    plain.iterate()
    assert runner.common_labels == plain.common_labels == {'host': runner.common_labels['host']}
    assert storage.last('wca_information')[0].labels['cpus']  # the topology is here
