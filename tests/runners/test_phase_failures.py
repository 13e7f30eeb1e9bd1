"""An iteration always stores its metrics: each phase broken for real (discovery, measurement,
the algorithm, actuation) costs only that phase's output, counted, and the measured metrics are
in the file a real LogStorage wrote."""
import os
import socket

import pytest

from exposition_text import parse
from resctrl_tree import resctrl_tree
from tls_ca import Answer, JsonServer
from wca.allocators import Allocator, AllocationType as A, RDTAllocation
from wca.config import load_config_text, register
from wca.detectors import AnomalyDetector
from wca.nodes import Node, Task
from wca.nodes.kubernetes import KubernetesNode
from wca.nodes.static import StaticNode
from wca.runners import AllocationRunner, MeasurementRunner, Runner
from wca.storage import LogStorage
from wca.tls import SSL


class Stored:
    """What a LogStorage wrote last (overwrite: the last iteration)."""

    def __init__(self, path):
        self.path = path

    def samples(self):
        with open(self.path) as f:
            return parse(f.read()).samples

    def values(self, name, **labels):
        return [value for (n, pairs), (value, _) in self.samples().items()
                if n == name and set(labels.items()) <= set(pairs)]

    def value(self, name, **labels):
        found = self.values(name, **labels)
        assert len(found) == 1, (name, labels, found)
        return found[0]

    def task_ids(self, name='task_up'):
        return sorted(dict(pairs)['task_id'] for n, pairs in self.samples() if n == name)


def log_storage(tmp_path, name='metrics.prom'):
    path = str(tmp_path / name)
    return LogStorage(output_filename=path, overwrite=True), Stored(path)


def assert_measured(stored: Stored):
    """The platform and the agent's own metrics of the iteration are there."""
    for name in ('platform_cpu_usage', 'platform_mem_usage_bytes', 'wca_up', 'wca_tasks'):
        assert stored.values(name), name


# --- discovery ---------------------------------------------------------------------------------

def free_port():
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('kubelet, reason', [('garbage', 'invalid_json'), ('down', 'connection')])
def test_a_kubelet_answering_garbage_or_down_costs_only_the_task_list(
        tmp_path, pki, kubelet, reason):
    storage, stored = log_storage(tmp_path)
    with JsonServer(lambda request: Answer(body=b'<html>502 Bad Gateway</html>'), pki=pki) as server:
        url = server.url if kubelet == 'garbage' else 'https://127.0.0.1:%d' % free_port()
        node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=url,
                              ssl=SSL(server_verify=pki.ca_cert), client_token_path=None,
                              cgroup_root='/wca-test-no-such-root', timeout=2)
        runner = MeasurementRunner(node=node, metrics_storage=storage, interval=0,
                                   rdt_enabled=False, gather_hw_mm_topology=False)
        for iteration in (1, 2):
            runner.iterate()
            assert_measured(stored)
            assert stored.value('wca_iterations_total') == iteration
            assert stored.value('wca_tasks') == 0
            assert stored.value('wca_node_errors_total', reason=reason) == iteration
    runner.close()


class GarbageNode(Node):
    """A plugin node whose list holds something that is not a Task."""

    def __init__(self, path):
        self.path = path

    def get_tasks(self):
        return [Task(name='t', task_id='t', cgroup_path=self.path), {'task_id': 'x'}]


def test_a_node_plugin_answering_garbage_costs_only_the_task_list(cgroups, tmp_path, caplog):
    storage, stored = log_storage(tmp_path)
    runner = MeasurementRunner(node=GarbageNode(cgroups.create('t')), metrics_storage=storage,
                               interval=0, rdt_enabled=False, gather_hw_mm_topology=False)
    runner.iterate()
    runner.iterate()
    assert_measured(stored)
    assert stored.value('wca_node_errors_total', reason='exception') == 2
    assert len([r for r in caplog.records if 'a list holding Task, dict' in r.getMessage()]) == 1
    runner.close()


# --- measurement -------------------------------------------------------------------------------

class RemovingNode(Node):
    """Lists both tasks; from the second call on, removes one's cgroup after listing it, as a
    container runtime does between the agent's discovery and its measurement."""

    def __init__(self, cgroups, keep, gone):
        self.cgroups, self.keep, self.gone, self.calls = cgroups, keep, gone, 0

    def get_tasks(self):
        self.calls += 1
        tasks = [Task(name=p.strip('/'), task_id=p.strip('/'), cgroup_path=p)
                 for p in (self.keep, self.gone)]
        if self.calls == 2:
            self.cgroups.remove(self.gone)
        return tasks


def test_a_cgroup_removed_mid_iteration_costs_only_that_task(cgroups, tmp_path):
    keep, gone = cgroups.create('keep'), cgroups.create('gone')
    storage, stored = log_storage(tmp_path)
    runner = MeasurementRunner(node=RemovingNode(cgroups, keep, gone), metrics_storage=storage,
                               interval=0, rdt_enabled=False, gather_hw_mm_topology=False)
    runner.iterate()
    assert stored.task_ids() == sorted([keep.strip('/'), gone.strip('/')])
    runner.iterate()
    assert_measured(stored)
    assert stored.task_ids() == [keep.strip('/')]
    assert stored.task_ids('task_cpu_usage_seconds') == [keep.strip('/')]
    assert stored.value('wca_tasks_vanished_total') == 1
    runner.close()


# --- the algorithm -----------------------------------------------------------------------------

@register
class PhaseTestRaisingDetector(AnomalyDetector):
    def detect(self, platform, tasks_data):
        raise RuntimeError('model file missing')


@register
class PhaseTestGarbageAllocator(Allocator):
    """Answers something else each time: a string, a tuple too short, tasks of strings."""

    def __init__(self):
        self.calls = 0

    def allocate(self, platform, tasks_data):
        self.calls += 1
        return ['nonsense', ({}, []), ({task_id: 'all' for task_id in tasks_data}, [], [])][
            self.calls % 3]


def config(tmp_path, runner_text):
    return load_config_text(runner_text.format(tmp=tmp_path), root_type=Runner)['runner']


def test_a_detector_plugin_that_raises_costs_only_its_answer(cgroups, tmp_path):
    path = cgroups.create('t')
    runner = config(tmp_path, '''
runner: !DetectionRunner
  node: !StaticNode {{tasks: [%s]}}
  detector: !PhaseTestRaisingDetector
  metrics_storage: !LogStorage {{output_filename: {tmp}/metrics.prom, overwrite: true}}
  anomalies_storage: !LogStorage {{output_filename: {tmp}/anomalies.prom, overwrite: true}}
  interval: 0
  rdt_enabled: false
  gather_hw_mm_topology: false
''' % path)
    for _ in range(2):
        runner.iterate()
    stored = Stored(str(tmp_path / 'metrics.prom'))
    assert_measured(stored)
    assert stored.task_ids() == [path.strip('/')]
    assert stored.value('wca_algorithm_errors_total', algorithm='detector') == 2
    assert Stored(str(tmp_path / 'anomalies.prom')).value('anomaly_count') == 0
    runner.close()


def test_an_allocator_plugin_answering_garbage_costs_only_its_answer(cgroups, tmp_path):
    path = cgroups.create('t')
    runner = config(tmp_path, '''
runner: !AllocationRunner
  node: !StaticNode {{tasks: [%s]}}
  allocator: !PhaseTestGarbageAllocator
  metrics_storage: !LogStorage {{output_filename: {tmp}/metrics.prom, overwrite: true}}
  anomalies_storage: !LogStorage {{output_filename: {tmp}/anomalies.prom, overwrite: true}}
  allocations_storage: !LogStorage {{output_filename: {tmp}/allocations.prom, overwrite: true}}
  interval: 0
  rdt_enabled: false
  gather_hw_mm_topology: false
''' % path)
    for _ in range(3):
        runner.iterate()
    stored = Stored(str(tmp_path / 'metrics.prom'))
    assert_measured(stored)
    assert stored.task_ids() == [path.strip('/')]
    assert stored.value('wca_algorithm_errors_total', algorithm='allocator') == 2
    allocations = Stored(str(tmp_path / 'allocations.prom'))
    assert allocations.value('allocations_rejected_total', allocation_type='unknown',
                             reason='invalid') == 1  # the tasks of strings
    runner.close()


# --- actuation ---------------------------------------------------------------------------------

class Allocating(Allocator):
    def __init__(self, answer):
        self.answer = answer

    def allocate(self, platform, tasks_data):
        return self.answer, [], []


def write(cgroups, controller, path, name, value):
    with open(cgroups.layout.v1[controller] + path + '/' + name, 'w') as f:
        f.write(value)


def read(cgroups, controller, path, name):
    with open(cgroups.layout.v1[controller] + path + '/' + name) as f:
        return f.read().strip()


def test_an_allocation_the_kernel_refuses_costs_only_that_allocation(cgroups, tmp_path):
    if 'cpuset' not in cgroups.layout.v1 or os.cpu_count() < 2:
        pytest.skip('needs the v1 cpuset controller and two CPUs')
    parent = cgroups.create('parent', processes=0)
    child = cgroups.create('parent/child')
    write(cgroups, 'cpuset', child, 'cpuset.cpus', '0')
    write(cgroups, 'cpuset', parent, 'cpuset.cpus', '0')  # CPU 1 is outside the parent's now
    task_id = child.strip('/')
    storage, stored = log_storage(tmp_path)
    allocations, allocated = log_storage(tmp_path, 'allocations.prom')
    runner = AllocationRunner(
        node=StaticNode(tasks=[child]), metrics_storage=storage, allocations_storage=allocations,
        anomalies_storage=LogStorage(output_filename=str(tmp_path / 'a.prom'), overwrite=True),
        allocator=Allocating({task_id: {A.CPUSET_CPUS: '1', A.SHARES: 3}}), interval=0,
        rdt_enabled=False, gather_hw_mm_topology=False)
    runner.iterate()
    assert_measured(stored)
    assert stored.task_ids() == [task_id]
    assert sum(allocated.values('allocations_rejected_total', allocation_type='cpuset_cpus')) == 1
    assert read(cgroups, 'cpuset', child, 'cpuset.cpus') == '0'
    assert read(cgroups, 'cpu', child, 'cpu.shares') == '3000'  # the other allocation applied
    runner.close()


def test_an_rdt_group_removed_by_hand_costs_at_most_the_allocations(cgroups, tmp_path):
    """Someone removes the control group the agent made (issue 19.1): the iterations after
    still store the measured metrics."""
    path = cgroups.create('t')
    task_id = path.strip('/')
    storage, stored = log_storage(tmp_path)
    allocations, allocated = log_storage(tmp_path, 'allocations.prom')
    with resctrl_tree(str(tmp_path / 'resctrl')) as tree:
        runner = AllocationRunner(
            node=StaticNode(tasks=[path]), metrics_storage=storage,
            allocations_storage=allocations,
            anomalies_storage=LogStorage(output_filename=str(tmp_path / 'a.prom'), overwrite=True),
            allocator=Allocating({task_id: {A.RDT: RDTAllocation(name='be', l3='L3:0=f;1=f')}}),
            interval=0, resctrl=tree, rdt_enabled=None, gather_hw_mm_topology=False,
            rdt_groups_file=str(tmp_path / 'groups'))
        runner.iterate()
        assert os.path.isdir(tree.path('be'))
        tree.rmdir('be')
        for iteration in (2, 3):
            runner.iterate()
            assert_measured(stored)
            assert stored.task_ids() == [task_id]
            assert stored.value('wca_iterations_total') == iteration
            assert allocated.values('allocations_count')
        # the group is made again (reconciled), or what failed is counted
        assert os.path.isdir(tree.path('be')) or \
            stored.value('wca_iteration_errors_total', phase='actuation') >= 1
        runner.close()
