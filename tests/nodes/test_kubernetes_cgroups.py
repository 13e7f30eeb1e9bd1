"""KubernetesNode maps pods to the cgroups the kubelet and the runtime really made: both cgroup
drivers, containerd / CRI-O / Docker, cgroup v1 and v2, checked against real cgroup trees."""
import logging

import pytest

from conftest import require_root
from orchestrator_fixtures import (KubepodsTree, kubelet_paths, pod, pod_list, v1_layout,
                                   v2_layout)
from tls_ca import Answer, JsonServer
from wca.nodes.kubernetes import KubernetesNode
from wca.tls import SSL

LAYOUTS = {'v1': v1_layout, 'v2': v2_layout}


@pytest.fixture
def trees():
    require_root()
    made = []

    def make(layout):
        tree = KubepodsTree(layout)
        made.append(tree)
        return tree
    yield make
    for tree in made:
        tree.cleanup()


@pytest.fixture(scope='module')
def kubelet(pki):
    """A kubelet-like HTTPS server whose /pods answer is `kubelet.answer`."""
    class State:
        answer = pod_list()
    with JsonServer(lambda request: Answer(body=State.answer), pki=pki) as server:
        State.server = server
        yield State


def node_for(kubelet, pki, tree, driver, **kwargs):
    return KubernetesNode(kubelet_enabled=True, kubelet_endpoint=kubelet.server.url,
                          ssl=SSL(server_verify=pki.ca_cert), client_token_path=None,
                          cgroup_driver=driver, cgroup_root=tree.root, cgroup_layout=tree.layout,
                          monitored_namespaces=[], **kwargs)


@pytest.mark.parametrize('version', ['v1', 'v2'])
@pytest.mark.parametrize('driver', ['cgroupfs', 'systemd'])
@pytest.mark.parametrize('runtime', ['containerd', 'cri-o', 'docker'])
def test_pods_of_each_qos_class_map_to_their_cgroups(kubelet, pki, trees, version, driver,
                                                     runtime):
    tree = trees(LAYOUTS[version]())
    pods = [pod('db-0', 'Guaranteed', runtime, containers=('postgres', 'exporter')),
            pod('api-7f9c4-x2x8q', 'Burstable', runtime, sidecars=('envoy',)),
            pod('batch-29123-5kq2w', 'BestEffort', runtime, init_containers=('migrate',))]
    expected = {}
    for item in pods:
        path, children = tree.add_pod(item, driver)
        expected[item['metadata']['uid']] = (path, sorted(children))
    kubelet.answer = pod_list(*pods)
    tasks = node_for(kubelet, pki, tree, driver).get_tasks()
    assert {t.task_id: (t.cgroup_path, sorted(t.subcgroups_paths)) for t in tasks} == expected
    by_name = {t.name: t for t in tasks}
    assert len(by_name['default/db-0'].subcgroups_paths) == 2
    assert len(by_name['default/api-7f9c4-x2x8q'].subcgroups_paths) == 2  # app and its sidecar
    # The completed init container has no cgroup any more and is not listed.
    assert len(by_name['default/batch-29123-5kq2w'].subcgroups_paths) == 1


def test_a_pod_whose_cgroup_is_not_there_yet_is_skipped_until_it_is(kubelet, pki, trees, caplog):
    tree = trees(v1_layout())
    early, ready = pod('early-0', 'Burstable'), pod('ready-0', 'Guaranteed')
    tree.add_pod(ready, 'systemd')
    kubelet.answer = pod_list(early, ready)
    node = node_for(kubelet, pki, tree, 'systemd')
    with caplog.at_level(logging.DEBUG, logger='wca.nodes.kubernetes'):
        assert [t.name for t in node.get_tasks()] == ['default/ready-0']
    assert [r for r in caplog.records if r.levelno == logging.DEBUG
            and 'early-0' in r.getMessage() and 'does not exist' in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert node.errors_by_reason() == {k: 0 for k in node.errors_by_reason()}  # not an error
    tree.add_pod(early, 'systemd')
    assert sorted(t.name for t in node.get_tasks()) == ['default/early-0', 'default/ready-0']


def test_container_cgroups_made_later_are_picked_up(kubelet, pki, trees):
    tree = trees(v2_layout())
    item = pod('web-1', 'Burstable', 'cri-o', containers=('nginx', 'php'))
    path, children = tree.add_pod(item, 'cgroupfs', with_containers=False)
    kubelet.answer = pod_list(item)
    node = node_for(kubelet, pki, tree, 'cgroupfs')
    [task] = node.get_tasks()
    assert task.cgroup_path == path and task.subcgroups_paths == []
    tree.mkdir(children[0])
    assert node.get_tasks()[0].subcgroups_paths == children[:1]
    tree.mkdir(children[1])
    first = node.get_tasks()[0]
    assert first.subcgroups_paths == children
    assert node.get_tasks()[0] is first  # resolved once, then kept


def test_pods_are_found_only_in_the_hierarchies_of_the_layout(kubelet, pki, trees):
    tree = trees(v2_layout())  # made in the cgroup2 hierarchy only
    item = pod('only-v2-0', 'Guaranteed', 'containerd')
    tree.add_pod(item, 'systemd')
    kubelet.answer = pod_list(item)
    on_v1 = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=kubelet.server.url,
                           ssl=SSL(server_verify=pki.ca_cert), client_token_path=None,
                           cgroup_driver='systemd', cgroup_root=tree.root,
                           cgroup_layout=v1_layout(), monitored_namespaces=[])
    assert on_v1.get_tasks() == []
    assert [t.name for t in node_for(kubelet, pki, tree, 'systemd').get_tasks()] == [
        'default/only-v2-0']


def test_a_wrong_cgroup_driver_is_said_once_and_the_real_paths_used(kubelet, pki, trees, caplog):
    tree = trees(v1_layout())
    pods = [pod('a-0', 'Burstable', 'containerd'), pod('b-0', 'Guaranteed', 'containerd')]
    expected = {item['metadata']['uid']: tree.add_pod(item, 'systemd')[0] for item in pods}
    kubelet.answer = pod_list(*pods)
    node = node_for(kubelet, pki, tree, 'cgroupfs')
    for _ in range(3):
        assert {t.task_id: t.cgroup_path for t in node.get_tasks()} == expected
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'set cgroup_driver: systemd' in warnings[0]
    assert node.errors_by_reason()['cgroup_driver'] == 1


def test_a_static_pod_seen_through_the_apiserver_is_found_by_its_config_hash(kubelet, pki, trees):
    tree = trees(v1_layout())
    item = pod('kube-proxy-worker-1', 'BestEffort', 'containerd', namespace='kube-system')
    config_hash = 'd6f1c2b9a8e74f0b9c3a1e5d7f2b4c6a'  # the kubelet's uid of the static pod
    item['metadata']['annotations'].update({'kubernetes.io/config.hash': config_hash,
                                            'kubernetes.io/config.mirror': config_hash,
                                            'kubernetes.io/config.source': 'file'})
    path, children = tree.add_pod(item, 'cgroupfs', uid=config_hash)
    kubelet.answer = pod_list(item)
    [task] = node_for(kubelet, pki, tree, 'cgroupfs').get_tasks()
    assert task.task_id == item['metadata']['uid']  # the id stays the pod's uid
    assert (task.cgroup_path, task.subcgroups_paths) == (path, children)


def test_an_unknown_runtime_leaves_the_pod_measured_without_its_containers(kubelet, pki, trees,
                                                                           caplog):
    tree = trees(v1_layout())
    item = pod('kata-0', 'Burstable', 'containerd')
    path, _ = tree.add_pod(item, 'cgroupfs')
    status = item['status']['containerStatuses'][0]
    status['containerID'] = status['containerID'].replace('containerd://', 'rkt://')
    kubelet.answer = pod_list(item)
    node = node_for(kubelet, pki, tree, 'cgroupfs')
    for _ in range(2):
        [task] = node.get_tasks()
        assert task.cgroup_path == path and task.subcgroups_paths == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'rkt'" in warnings[0]
    assert node.errors_by_reason()['unknown_runtime'] == 1


def test_kubelet_paths_are_the_documented_ones():
    """The expectations above, spelt out for one pod (so they cannot drift with the code)."""
    item = pod('x-0', 'Burstable', 'cri-o', uid='0f5e3a1c-2b4d-4e6f-8a9b-1c2d3e4f5a6b')
    cid = item['status']['containerStatuses'][0]['containerID'].split('://')[1]
    assert kubelet_paths(item, 'systemd', '') == (
        '/kubepods.slice/kubepods-burstable.slice/'
        'kubepods-burstable-pod0f5e3a1c_2b4d_4e6f_8a9b_1c2d3e4f5a6b.slice',
        ['/kubepods.slice/kubepods-burstable.slice/'
         'kubepods-burstable-pod0f5e3a1c_2b4d_4e6f_8a9b_1c2d3e4f5a6b.slice/crio-%s.scope' % cid])
    assert kubelet_paths(item, 'cgroupfs', '') == (
        '/kubepods/burstable/pod0f5e3a1c-2b4d-4e6f-8a9b-1c2d3e4f5a6b',
        ['/kubepods/burstable/pod0f5e3a1c-2b4d-4e6f-8a9b-1c2d3e4f5a6b/crio-%s' % cid])
