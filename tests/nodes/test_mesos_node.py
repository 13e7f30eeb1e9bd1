"""MesosNode against a real HTTPS Mesos agent operator API on 127.0.0.1, with executors that
are real processes in real cgroups."""
import json
import logging
import os

import pytest

from orchestrator_fixtures import get_state, mesos_task
from tls_ca import Answer, JsonServer
from wca.nodes.mesos import MesosNode, MesosTask
from wca.tls import SSL

AURORA_LABELS = {'org.apache.aurora.tier': 'preemptible', 'org.apache.aurora.metadata.owner':
                 'team-a', 'aurora.metadata.job.env': 'prod', 'service-name': 'cassandra'}


def agent(state):
    return lambda request: Answer(body=state() if callable(state) else state)


def node_for(server, pki, **kwargs):
    kwargs.setdefault('ssl', SSL(server_verify=pki.ca_cert))
    return MesosNode(mesos_agent_endpoint=server.url, **kwargs)


def test_running_tasks_with_their_executor_cgroups_labels_and_resources(cgroups, pki):
    first, second = cgroups.create('mesos-c1'), cgroups.create('mesos-c2')
    pids = [p.pid for p in cgroups.processes]
    running = mesos_task('www-data-prod-cassandra-0', pids[0], labels=AURORA_LABELS)
    no_labels = mesos_task('batch-0', pids[1], resources=[
        {'name': 'cpus', 'type': 'SCALAR', 'scalar': {'value': 0.5}, 'role': 'batch'},
        {'name': 'cpus', 'type': 'SCALAR', 'scalar': {'value': 0.25}, 'role': '*'}])
    finished = mesos_task('old-0', pids[0], state='TASK_FINISHED')
    staging = mesos_task('new-0', None, state='TASK_STAGING')
    with JsonServer(agent(get_state([running, no_labels, finished, staging])), pki=pki) as server:
        node = node_for(server, pki, cgroups_root=cgroups.parent)
        tasks = {t.name: t for t in node.get_tasks()}
        again = {t.name: t for t in node.get_tasks()}
        request = server.requests[0]
    assert all(again[name] is tasks[name] for name in tasks)  # unchanged: the same objects
    assert (request.method, request.path) == ('POST', '/api/v1')
    assert json.loads(request.body.decode()) == {'type': 'GET_STATE'}
    assert sorted(tasks) == ['batch-0', 'www-data-prod-cassandra-0']
    task = tasks['www-data-prod-cassandra-0']
    assert isinstance(task, MesosTask)
    assert task.task_id == running['task_id']['value']
    assert (task.cgroup_path, task.subcgroups_paths) == (first, [])
    assert task.labels == {'aurora_tier': 'preemptible', 'owner': 'team-a',
                           'job_env': 'prod', 'service_name': 'cassandra'}
    assert task.resources == {'cpus': 1.5, 'mem': 1024e6, 'disk': 2048e6}
    assert task.executor_pid == pids[0] and task.agent_id.endswith('-S0')
    assert task.executor_id == 'thermos-' + task.task_id and task.container_id
    assert tasks['batch-0'].cgroup_path == second
    assert tasks['batch-0'].labels == {} and tasks['batch-0'].resources == {'cpus': 0.75}


def test_an_agent_without_tasks_and_a_plain_http_endpoint(pki):
    with JsonServer(agent(get_state([]))) as server:  # no TLS: the seed configs' http://
        node = MesosNode(mesos_agent_endpoint=server.url, allow_plain_http=True)
        assert node.get_tasks() == []
    assert not any(node.errors_by_reason().values())


def test_client_certificate_authentication(cgroups, pki):
    path = cgroups.create('mesos-tls')
    task = mesos_task('web-0', cgroups.processes[0].pid)
    with JsonServer(agent(get_state([task])), pki=pki, client_auth=True) as server:
        node = node_for(server, pki, ssl=SSL(pki.ca_cert, pki.client_cert, pki.client_key),
                        cgroups_root=cgroups.parent)
        assert [t.cgroup_path for t in node.get_tasks()] == [path]
        assert server.requests[0].client_cert == {'commonName': 'wca-test-client'}


def test_tasks_that_cannot_be_measured_are_said_once_and_counted(cgroups, pki, caplog):
    path = cgroups.create('mesos-ok')
    ok = mesos_task('ok-0', cgroups.processes[0].pid)
    no_pid = mesos_task('docker-0', None)  # the Docker containerizer gives no executor pid
    in_root = mesos_task('root-0', os.getpid())  # this test runs in the root cpu cgroup
    gone = cgroups.add_process(path)
    gone.kill()
    gone.wait()
    vanished = mesos_task('gone-0', gone.pid)
    state = get_state([ok, no_pid, in_root, vanished])
    with JsonServer(agent(state), pki=pki) as server:
        node = node_for(server, pki, cgroups_root=cgroups.parent)
        with caplog.at_level(logging.DEBUG, logger='wca.nodes.mesos'):
            for _ in range(3):
                assert [t.name for t in node.get_tasks()] == ['ok-0']
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert any('docker-0' in w and 'executor_pid' in w for w in warnings)
    assert any('root-0' in w and 'root cgroup' in w for w in warnings)
    assert node.errors_by_reason()['task_skipped'] == 2
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and 'gone-0' in r.getMessage()]


def test_malformed_tasks_are_skipped_with_one_warning(cgroups, pki, caplog):
    ok = mesos_task('ok-0', cgroups.create('mesos-ok') and cgroups.processes[0].pid)
    no_id = mesos_task('broken-0', 1)
    del no_id['task_id']
    with JsonServer(agent(get_state([ok, no_id, 'garbage'])), pki=pki) as server:
        node = node_for(server, pki, cgroups_root=cgroups.parent)
        for _ in range(2):
            assert [t.name for t in node.get_tasks()] == ['ok-0']
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and any('task broken-0 skipped: no task_id' in w for w in warnings)
    assert node.errors_by_reason()['invalid_task'] == 2


@pytest.mark.parametrize('lines, cgroup', [
    # A cgroup v2 only host: one line.
    ('0::/mesos/7c2b1e5f-0a9d-4c1b-8e2f-5d6a7b8c9d0e\n',
     '/mesos/7c2b1e5f-0a9d-4c1b-8e2f-5d6a7b8c9d0e'),
    # A v1 host with cpu and cpuacct mounted together (and a v2 line for systemd).
    ('12:pids:/mesos/abc\n4:cpu,cpuacct:/mesos/abc\n1:name=systemd:/mesos/abc\n0::/mesos/abc\n',
     '/mesos/abc'),
])
def test_the_executor_cgroup_from_each_proc_layout(tmp_path, pki, lines, cgroup):
    (tmp_path / '4242').mkdir()
    (tmp_path / '4242' / 'cgroup').write_text(lines)
    with JsonServer(agent(get_state([mesos_task('t-0', 4242)])), pki=pki) as server:
        node = node_for(server, pki, proc_root=str(tmp_path))
        assert [t.cgroup_path for t in node.get_tasks()] == [cgroup]
