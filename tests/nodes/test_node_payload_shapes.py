"""Every field of a real-shaped pod and Mesos task replaced, one at a time, by JSON of another
type: the node skips what it cannot use (and says so once), keeps the rest, and never raises."""
import copy
import logging

import pytest

from conftest import require_root
from orchestrator_fixtures import KubepodsTree, get_state, mesos_task, pod, pod_list, v1_layout
from tls_ca import Answer, JsonServer
from wca.nodes.kubernetes import KubernetesNode
from wca.nodes.mesos import MesosNode

ODD_VALUES = [None, True, 'x', [1], {'a': None}]


def paths(value, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, prefix + (index,))


def mutations(document):
    for path in paths(document):
        if not path:
            continue
        for odd in ODD_VALUES:
            mutated = copy.deepcopy(document)
            parent = mutated
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = odd
            yield mutated


def test_odd_pod_fields(pki, caplog):
    require_root()
    tree = KubepodsTree(v1_layout())
    try:
        good = pod('api-0', 'Burstable', labels={'tier': 'web'}, sidecars=('envoy',),
                   init_containers=('migrate',))
        tree.add_pod(good, 'cgroupfs')
        keep = pod('db-0', 'Guaranteed')
        tree.add_pod(keep, 'cgroupfs')
        state = {'answer': pod_list(keep)}
        with JsonServer(lambda r: Answer(body=state['answer'])) as server:
            node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                                  client_token_path=None, monitored_namespaces=[],
                                  allow_plain_http=True,
                                  cgroup_root=tree.root, cgroup_layout=tree.layout, timeout=5)
            count = 0
            with caplog.at_level(logging.ERROR):
                for mutated in mutations(good):
                    state['answer'] = pod_list(keep, mutated)
                    names = [t.name for t in node.get_tasks()]
                    assert 'default/db-0' in names, names
                    count += 1
    finally:
        tree.cleanup()
    assert count > 500
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not any(node.errors_by_reason()[r] for r in ('invalid_payload', 'invalid_json'))


@pytest.mark.parametrize('answer', [
    {'get_state': None}, {'get_state': {'get_tasks': []}},
    {'get_state': {'get_tasks': {'launched_tasks': {}}}}, {'type': 'GET_STATE'},
])
def test_odd_get_state_answers_are_invalid_payloads(answer):
    with JsonServer(lambda r: Answer(body=answer)) as server:
        node = MesosNode(mesos_agent_endpoint=server.url, allow_plain_http=True)
        assert node.get_tasks() == []
    assert node.errors_by_reason()['invalid_payload'] == 1


def test_odd_mesos_task_fields(cgroups, caplog):
    cgroups.create('mesos-keep')
    cgroups.create('mesos-odd')
    keep = mesos_task('keep-0', cgroups.processes[0].pid)
    good = mesos_task('odd-0', cgroups.processes[1].pid, labels={'org.apache.aurora.tier': 'x'})
    state = {'answer': get_state([keep])}
    with JsonServer(lambda r: Answer(body=state['answer'])) as server:
        node = MesosNode(mesos_agent_endpoint=server.url, cgroups_root=cgroups.parent,
                         allow_plain_http=True)
        count = 0
        with caplog.at_level(logging.ERROR):
            for mutated in mutations(good):
                state['answer'] = get_state([keep, mutated])
                assert 'keep-0' in [t.name for t in node.get_tasks()]
                count += 1
    assert count > 500
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
