"""wca_duration_seconds: the whole iteration unlabelled (as before, for dashboards), and each
phase of it as wca_duration_seconds{function}: where the time goes."""
import time

from conftest import promtool_check

from testing.recording import Recording
from wca.detectors import AnomalyDetector
from wca.exposition import encode
from wca.nodes.static import StaticNode
from wca.runners import DetectionRunner, MeasurementRunner
from wca.runners.measurement import PHASES

PAUSE = 0.05


class SlowNode(StaticNode):
    def get_tasks(self):
        time.sleep(PAUSE)
        return super().get_tasks()


class SlowDetector(AnomalyDetector):
    def detect(self, platform, tasks_data):
        time.sleep(2 * PAUSE)
        return [], []


class SlowStorage(Recording):
    def store(self, metrics):
        time.sleep(3 * PAUSE)
        super().store(metrics)


def durations(storage):
    found = {}
    for m in storage.last('wca_duration_seconds'):
        found[m.labels.get('function')] = m.value
    return found


def test_each_phase_and_the_whole_iteration(cgroups):
    path = cgroups.create('task')
    storage = SlowStorage()
    runner = DetectionRunner(node=SlowNode(tasks=[path]), metrics_storage=storage,
                             anomalies_storage=Recording(), detector=SlowDetector(), interval=0)
    runner.iterate()
    first = durations(storage)
    assert first['storage'] == 0  # no store before the first iteration's
    runner.iterate()
    seen = durations(storage)
    assert sorted(k for k in seen if k) == sorted(PHASES)
    assert seen['discovery'] >= PAUSE and seen['algorithm'] >= 2 * PAUSE
    assert seen['storage'] >= 3 * PAUSE  # the previous iteration's store
    assert seen['platform'] > 0 and seen['tasks'] > 0
    # the unlabelled sample is the iteration up to its own store, as before
    within = sum(seen[p] for p in PHASES if p != 'storage')
    assert within <= seen[None] <= within + 0.05
    text, dropped = encode(storage.batches[-1])
    assert dropped == 0
    promtool_check(text.encode())
    lines = [line for line in text.splitlines() if line.startswith('wca_duration_seconds')]
    assert len(lines) == 1 + len(PHASES)
    assert lines[0].startswith('wca_duration_seconds{host=')


def test_a_measurement_runner_reports_its_phases_with_stable_series():
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage, interval=0)
    runner.iterate()
    names = sorted((m.name, tuple(sorted(m.labels.items()))) for m in storage.batches[-1])
    runner.iterate()
    assert sorted((m.name, tuple(sorted(m.labels.items()))) for m in storage.batches[-1]) == names
    assert set(durations(storage)) == set(PHASES) | {None}
