"""A Mesos agent (or whoever listens on its port) names executor pids; only a process in the
containerizer's cgroup tree (`cgroups_root`, the agent's --cgroups_root, default /mesos) is
a task. Real processes in real cgroups, a real HTTPS agent on 127.0.0.1, the real MesosNode."""
import logging
import os
import uuid

import pytest

from orchestrator_fixtures import get_state, mesos_task
from testing.cgroups import Cgroups
from testing.recording import Recording
from tls_ca import Answer, JsonServer
from wca.cgroups import CgroupLayout
from wca.nodes.mesos import MesosNode
from wca.runners import AllocationRunner
from wca.static_allocator import StaticAllocator
from wca.tls import SSL


def node_for(server, pki, **kwargs):
    return MesosNode(mesos_agent_endpoint=server.url, ssl=SSL(server_verify=pki.ca_cert),
                     **kwargs)


def serve(pki, *tasks):
    return JsonServer(lambda request: Answer(body=get_state(list(tasks))), pki=pki)


def warnings_about(caplog, text):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and text in r.getMessage()]


def read(path):
    with open(path) as f:
        return f.read().strip()


def errors_total(node, reason):
    [metric] = [m for m in node.metrics() if m.labels['reason'] == reason]
    assert metric.name == 'wca_node_errors_total'
    return metric.value


def test_an_executor_pid_outside_the_cgroups_root_is_rejected(cgroups, pki, caplog):
    root = cgroups.create('mesos', processes=0)
    executor = cgroups.create('mesos/' + str(uuid.uuid4()))
    service = cgroups.create('system-service')  # a root service a fake agent names
    lookalike = cgroups.create('mesos-evil')  # starts like the root, is not under it
    pids = [p.pid for p in cgroups.processes]
    tasks = [mesos_task('web-0', pids[0]), mesos_task('steal-0', pids[1]),
             mesos_task('lookalike-0', pids[2])]
    with serve(pki, *tasks) as server:
        node = node_for(server, pki, cgroups_root=root)
        for _ in range(3):
            assert [(t.name, t.cgroup_path) for t in node.get_tasks()] == [('web-0', executor)]
    for name, cgroup in (('steal-0', service), ('lookalike-0', lookalike)):
        [warning] = warnings_about(caplog, name)
        assert 'rejected' in warning and cgroup in warning and 'not under %s' % root in warning
    assert errors_total(node, 'cgroup_outside_root') == 2


class MesosRoot(Cgroups):
    """Real cgroups under /mesos (the default root), as the Mesos containerizer makes them;
    /mesos itself is removed in cleanup() when this made it."""

    def __init__(self):  # noqa: super().__init__ would make a randomly named parent
        self.layout = CgroupLayout.detect()
        self.parent = '/mesos'
        self.processes, self.created = [], []
        present = [os.path.isdir(mount + self.parent) for mount in self.mounts()]
        if any(present) and not all(present):
            pytest.skip('/mesos exists in some cgroup hierarchies only')
        if not any(present):
            self._mkdir(self.parent)


@pytest.fixture
def mesos_root():
    from conftest import require_root
    require_root()
    made = MesosRoot()
    try:
        yield made
    finally:
        made.cleanup()


def test_the_default_root_is_the_containerizers(mesos_root, cgroups, pki, caplog):
    executor = mesos_root.create('wca-test-' + str(uuid.uuid4()))
    outside = cgroups.create('not-mesos')
    tasks = [mesos_task('web-0', mesos_root.processes[0].pid),
             mesos_task('other-0', cgroups.processes[0].pid)]
    with serve(pki, *tasks) as server:
        node = node_for(server, pki)  # cgroups_root: /mesos
        assert [(t.name, t.cgroup_path) for t in node.get_tasks()] == [('web-0', executor)]
    assert outside in warnings_about(caplog, 'other-0')[0]
    assert errors_total(node, 'cgroup_outside_root') == 1


@pytest.mark.parametrize('line', ['4:cpu,cpuacct:/mesos/../system.slice\n',
                                  '0::/mesos/./../system.slice\n', '4:cpu:/mesos\n'])
def test_a_proc_cgroup_line_that_leaves_the_root_is_rejected(tmp_path, pki, line):
    for pid, text in ((4242, line), (4343, '4:cpu,cpuacct:/mesos/c1\n')):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / 'cgroup').write_text(text)
    with serve(pki, mesos_task('evil-0', 4242), mesos_task('ok-0', 4343)) as server:
        node = node_for(server, pki, proc_root=str(tmp_path))
        assert [(t.name, t.cgroup_path) for t in node.get_tasks()] == [('ok-0', '/mesos/c1')]
    assert errors_total(node, 'cgroup_outside_root') == 1


HOSTILE_IDS = ['..', '../../system.slice', '/system.slice', '.hidden', 'a\x00b', 'a\nb',
               'x' * 300, 'mesos\u2215..', 'caf\u00e9', '']


@pytest.mark.parametrize('field', ['container_id', 'executor_id'])
@pytest.mark.parametrize('hostile', HOSTILE_IDS)
def test_hostile_mesos_ids_reject_their_task_alone(cgroups, pki, caplog, field, hostile):
    root = cgroups.create('mesos', processes=0)
    executor = cgroups.create('mesos/c1')
    pid = cgroups.processes[0].pid
    good, evil = mesos_task('good-0', pid), mesos_task('evil-0', pid)
    if field == 'executor_id':
        evil['executor_id'] = {'value': hostile}
    else:
        evil['statuses'][-1]['container_status']['container_id'] = {'value': hostile}
    with serve(pki, good, evil) as server:
        node = node_for(server, pki, cgroups_root=root)
        for _ in range(2):
            names = [(t.name, t.cgroup_path) for t in node.get_tasks()]
    if not hostile:  # no id: as before, an optional field left empty
        assert sorted(names) == [('evil-0', executor), ('good-0', executor)]
        return
    assert names == [('good-0', executor)]
    [warning] = warnings_about(caplog, 'evil-0')
    assert field.replace('_', ' ') in warning and '\n' not in warning
    assert errors_total(node, 'invalid_identifier') == 1


@pytest.mark.parametrize('root', ['/mesos/../system.slice', '/mesos/\n', '', '.mesos'])
def test_a_bad_cgroups_root_is_a_config_error(root):
    with pytest.raises(ValueError, match='cgroups_root'):
        MesosNode(cgroups_root=root)


def test_cgroups_root_takes_the_agents_flag_as_written():
    assert MesosNode(cgroups_root='mesos').cgroups_root == '/mesos'
    assert MesosNode(cgroups_root='/mesos/').cgroups_root == '/mesos'


def test_cgroups_root_slash_takes_any_cgroup_but_the_root(cgroups, pki):
    path = cgroups.create('anything')
    tasks = [mesos_task('any-0', cgroups.processes[0].pid), mesos_task('root-0', os.getpid())]
    with serve(pki, *tasks) as server:
        node = node_for(server, pki, cgroups_root='/', proc_root='/proc')
        assert [(t.name, t.cgroup_path) for t in node.get_tasks()] == [('any-0', path)]


def test_a_fake_agent_naming_a_root_service_does_not_steer_an_allocation(cgroups, pki):
    """As the actor of issue 22 did: whoever listens on the agent's port names a root service's
    pid; a StaticAllocator rule for every task then set that service's CPU quota. Now the
    service is no task, the executor is, and the rejection is in the stored metrics."""
    root = cgroups.create('mesos', processes=0)
    executor = cgroups.create('mesos/' + str(uuid.uuid4()))
    service = cgroups.create('sshd.service')
    pids = [p.pid for p in cgroups.processes]
    quota = cgroups.layout.v1['cpu'] + '%s/cpu.cfs_quota_us'
    storages = Recording(), Recording(), Recording()
    tasks = [mesos_task('web-0', pids[0]), mesos_task('sshd', pids[1])]
    with serve(pki, *tasks) as server:
        runner = AllocationRunner(
            node=node_for(server, pki, cgroups_root=root),
            allocator=StaticAllocator(rules=[{'name': 'all', 'allocations': {'cpu_quota': 0.5}}]),
            metrics_storage=storages[0], anomalies_storage=storages[1],
            allocations_storage=storages[2], interval=0, rdt_enabled=False,
            gather_hw_mm_topology=False)
        runner.iterate()
    assert read(quota % service) == '-1'
    assert read(quota % executor) != '-1'
    errors = {m.labels['reason']: m.value for m in storages[0].last('wca_node_errors_total')}
    assert errors['cgroup_outside_root'] == 1
