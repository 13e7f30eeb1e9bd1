"""A detector written against the plugin contract only (shared/plugin-api.md).

It imports wca.detectors, wca.metrics, wca.config and wca.platforms, nothing else from wca.
Every iteration with at least two tasks it reports, for the first two tasks a and b (sorted
by id), ContentionAnomaly(contended=a, contending=[b]) and ContentionAnomaly(contended=b,
contending=[a]) (the same task set, so the same uuid), each with one context metric.
It checks that the platform and tasks data have the fields the contract promises and raises
if not (the runner then logs and counts the failure, and no anomaly is stored).
"""
from wca.config import Numeric, register
from wca.detectors import (AnomalyDetector, ContendedResource, ContentionAnomaly, TaskData,
                           TasksData)
from wca.metrics import Metric, MetricType
from wca.platforms import Platform

PLATFORM_FIELDS = {
    'sockets': int, 'cores': int, 'cpus': int, 'numa_nodes': int, 'cpu_model': str,
    'topology': dict, 'node_cpus': dict, 'node_distances': dict, 'timestamp': float,
    'measurements': dict, 'swap_enabled': bool,
}
TASK_FIELDS = {
    'name': str, 'task_id': str, 'cgroup_path': str, 'subcgroups_paths': list,
    'labels': dict, 'resources': dict, 'measurements': dict,
}


def check_contract(platform, tasks_data):
    if not isinstance(platform, Platform):
        raise TypeError('platform is %s, not wca.platforms.Platform' % type(platform).__name__)
    for name, kind in PLATFORM_FIELDS.items():
        if not isinstance(getattr(platform, name), kind):
            raise TypeError('platform.%s is %r, expected %s' % (
                name, getattr(platform, name), kind.__name__))
    if not hasattr(platform, 'rdt_information'):
        raise TypeError('platform has no rdt_information')
    if platform.cpus < 1 or sum(len(c) for cores in platform.topology.values()
                                for c in cores.values()) != platform.cpus:
        raise TypeError('platform.topology does not list platform.cpus CPUs')
    for task_id, data in tasks_data.items():
        if not isinstance(data, TaskData) or data.task_id != task_id:
            raise TypeError('tasks_data[%r] is not its TaskData' % task_id)
        for name, kind in TASK_FIELDS.items():
            if not isinstance(getattr(data, name), kind):
                raise TypeError('task %s: %s is %r' % (task_id, name, getattr(data, name)))
        if not data.cgroup_path.startswith('/'):
            raise TypeError('task %s: cgroup_path %r' % (task_id, data.cgroup_path))
        if not hasattr(data, 'allocations'):
            raise TypeError('task %s has no allocations field' % task_id)


@register
class ContractDetector(AnomalyDetector):
    def __init__(self, resource: ContendedResource = ContendedResource.CPUS,
                 threshold: Numeric(0, 100) = 42):
        self.resource = resource
        self.threshold = threshold

    def detect(self, platform: Platform, tasks_data: TasksData):
        check_contract(platform, tasks_data)
        ids = sorted(tasks_data)
        anomalies = []
        if len(ids) >= 2:
            a, b = ids[:2]
            for contended, contending in ((a, b), (b, a)):
                context = Metric(name='contract_threshold', value=self.threshold,
                                 labels={'task': contended}, type=MetricType.GAUGE)
                anomalies.append(ContentionAnomaly(
                    resource=self.resource, contended_task_id=contended,
                    contending_task_ids=[contending], metrics=[context]))
        debug = [Metric.create_metric_with_metadata('contract_detector_tasks', len(ids))]
        return anomalies, debug
