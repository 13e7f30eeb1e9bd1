"""DetectionRunner and AllocationRunner around algorithms: encoding, checking, failures."""
import pytest

from resctrl_tree import ResctrlTree
from testing.recording import Recording
from wca.allocators import Allocator, AllocationType, NOPAllocator, RDTAllocation
from wca.detectors import (AnomalyDetector, ContendedResource, ContentionAnomaly,
                           NOPAnomalyDetector, _create_uuid_from_tasks_ids)
from wca.metrics import Metric
from wca.runners import AllocationRunner, AllocationRunnerConfig, DetectionRunner
from wca.nodes.static import StaticNode


class ContentionDetector(AnomalyDetector):
    def __init__(self):
        self.seen = None

    def detect(self, platform, tasks_data):
        self.seen = (platform, tasks_data)
        ids = sorted(tasks_data)
        return [ContentionAnomaly(
            resource=ContendedResource.LLC, contended_task_id=ids[0],
            contending_task_ids=ids[1:],
            metrics=[Metric('cache_pressure', 0.9, {'why': 'test'})])], \
            [Metric('detector_debug', 1)]


def detection_runner(paths, detector, **kwargs):
    metrics, anomalies = Recording(), Recording()
    runner = DetectionRunner(node=StaticNode(tasks=paths), detector=detector,
                             metrics_storage=metrics, anomalies_storage=anomalies,
                             action_delay=0, extra_labels={'cluster': 'c1'}, **kwargs)
    return runner, metrics, anomalies


def test_detector_sees_tasks_and_anomalies_are_encoded(cgroups):
    paths = [cgroups.create('d%d' % i) for i in range(3)]
    detector = ContentionDetector()
    runner, metrics, anomalies = detection_runner(paths, detector)
    runner.iterate()
    platform, tasks_data = detector.seen
    assert platform.cpus >= 1 and set(tasks_data) == {p.strip('/') for p in paths}
    data = tasks_data[paths[0].strip('/')]
    assert data.cgroup_path == paths[0] and data.measurements['task_mem_usage_bytes'] >= 0
    assert data.allocations is None
    ids = sorted(tasks_data)
    expected_uuid = _create_uuid_from_tasks_ids(ids)
    counters = anomalies.last('anomaly')
    assert sorted(m.labels['contending_task_id'] for m in counters) == ids[1:]
    for metric in counters:
        assert metric.value == 1 and metric.type == 'counter'
        assert metric.labels['contended_task_id'] == ids[0]
        assert metric.labels['resource'] == 'cache' and metric.labels['type'] == 'contention'
        assert metric.labels['uuid'] == expected_uuid and metric.labels['cluster'] == 'c1'
    context = anomalies.last('cache_pressure')[0]
    assert context.labels['uuid'] == expected_uuid and context.labels['type'] == 'anomaly'
    assert anomalies.value('anomaly_count') == 1
    assert anomalies.last('detector_debug')
    assert metrics.value('wca_tasks') == 3  # measurements still go to metrics_storage


def test_uuid_does_not_depend_on_order():
    assert _create_uuid_from_tasks_ids(['b', 'a']) == _create_uuid_from_tasks_ids(['a', 'b'])
    assert _create_uuid_from_tasks_ids(['a', 'b']) != _create_uuid_from_tasks_ids(['a', 'c'])


class Broken(AnomalyDetector):
    def __init__(self, result):
        self.result = result

    def detect(self, platform, tasks_data):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize('result', [ZeroDivisionError('bug'), None, ([], 'not a list'),
                                    (['not an anomaly'], [])])
def test_broken_detector_is_counted_and_measuring_goes_on(result, caplog):
    runner, metrics, anomalies = detection_runner([], Broken(result))
    runner.iterate()
    runner.iterate()
    assert anomalies.value('anomaly_count') == 0
    assert metrics.value('wca_iterations_total') == 2
    assert metrics.value('wca_errors_total') >= 1
    assert metrics.value('wca_algorithm_errors_total', algorithm='detector') == 2
    assert len([r for r in caplog.records if 'detector Broken failed' in r.getMessage()]) == 1


def test_nop_detector():
    runner, metrics, anomalies = detection_runner([], NOPAnomalyDetector())
    runner.iterate()
    assert anomalies.value('anomaly_count') == 0 and not anomalies.last('anomaly')


class FixedAllocator(Allocator):
    def __init__(self, allocations):
        self.allocations = allocations
        self.seen = None

    def allocate(self, platform, tasks_data):
        self.seen = {task_id: data.allocations for task_id, data in tasks_data.items()}
        return self.allocations(tasks_data), [], [Metric('allocator_debug', 1)]


def allocation_runner(paths, allocator, **options):
    storages = Recording(), Recording(), Recording()
    runner = AllocationRunner(config=AllocationRunnerConfig(
        node=StaticNode(tasks=paths), allocator=allocator, metrics_storage=storages[0],
        anomalies_storage=storages[1], allocations_storage=storages[2], interval=0, **options))
    return (runner,) + storages


def test_valid_allocations_are_stored_invalid_ones_counted(cgroups, caplog, tmp_path):
    tree = ResctrlTree(str(tmp_path / 'resctrl'))  # RDT allocation: resctrl laid out as the kernel's
    a, b = cgroups.create('a'), cgroups.create('b')
    a_id, b_id = a.strip('/'), b.strip('/')

    def allocations(tasks_data):
        return {
            a_id: {AllocationType.QUOTA: 0.5, 'cpu_shares': 2, AllocationType.CPUSET_CPUS: '0',
                   AllocationType.RDT: RDTAllocation(name='be', l3='L3:0=00ff', mb='MB:0=30')},
            b_id: {AllocationType.QUOTA: -1, AllocationType.CPUSET_CPUS: '0-4095',
                   AllocationType.RDT: RDTAllocation(l3='L3:0=505'), 'nonsense': 1},
            'not-a-task': {AllocationType.QUOTA: 0.1},
        }
    allocator = FixedAllocator(allocations)
    runner, metrics, anomalies, stored = allocation_runner(
        [a, b], allocator, resctrl=tree, rdt_groups_file=str(tmp_path / 'groups'))
    runner.iterate()
    assert allocator.seen[a_id][AllocationType.QUOTA] == 1.0  # what the tasks have now
    assert allocator.seen[a_id][AllocationType.SHARES] == 1.024
    assert stored.value('allocation_cpu_quota', task_id=a_id) == 0.5
    assert stored.value('allocation_cpu_shares', task_id=a_id) == 2
    assert stored.value('allocation_cpuset_cpus_number_of_cpus', task_id=a_id) == 1
    assert stored.value('allocation_rdt_l3_cache_ways', task_id=a_id, group_name='be') == 8
    assert stored.value('allocation_rdt_l3_mask', task_id=a_id, domain_id='0') == 0xff
    assert stored.value('allocation_rdt_mb', task_id=a_id, domain_id='0') == 30
    # b keeps what it had: every one of its allocations was rejected
    assert stored.value('allocation_cpu_quota', task_id=b_id) == 1.0
    assert stored.value('allocation_rdt_l3_cache_ways', task_id=b_id, domain_id='0') == 11
    assert stored.value('allocations_count') == 9  # returned: 4 for a, 4 for b, 1 for no task
    assert stored.value('allocations_errors') == 5
    rejected = [r.getMessage() for r in caplog.records if 'allocation rejected' in r.getMessage()]
    assert any('not-a-task' in m for m in rejected)
    assert any('contiguous' in m for m in rejected)
    assert any('not on this platform' in m for m in rejected)
    assert anomalies.last('allocator_debug')[0].labels['host']
    assert runner.last_allocations[a_id][AllocationType.QUOTA] == 0.5


def test_nop_allocator_and_garbage_answers():
    runner, metrics, anomalies, stored = allocation_runner([], NOPAllocator())
    runner.iterate()
    assert stored.value('allocations_count') == 0 and stored.value('allocations_errors') == 0
    runner, metrics, anomalies, stored = allocation_runner([], FixedAllocator(lambda t: 'junk'))
    runner.iterate()
    assert stored.value('allocations_errors') == 1  # allocations 'junk' is not a dict
    assert metrics.value('wca_iterations_total') == 1

    class Raising(Allocator):
        def allocate(self, platform, tasks_data):
            raise RuntimeError('model not loaded')

    runner, metrics, anomalies, stored = allocation_runner([], Raising())
    runner.iterate()
    runner.iterate()
    assert metrics.value('wca_algorithm_errors_total', algorithm='allocator') == 2
    assert stored.value('allocations_count') == 0
