"""Identifiers from a pod's status or metadata never become a path outside the pod's cgroup:
hostile container ids, pod uids and config hashes sent by a real kubelet-like HTTPS server on
127.0.0.1 to the real KubernetesNode, against real cgroup trees. The pod that carries one is
rejected alone (absent), the others stay, the rejection is counted and logged once."""
import logging
import os
import uuid

import pytest

from orchestrator_fixtures import KubepodsTree, kubelet_paths, pod, pod_list, v1_layout
from testing.recording import Recording
from tls_ca import Answer, JsonServer
from wca import identifiers
from wca.cgroups.layout import CgroupLayout
from wca.nodes.kubernetes import KubernetesNode
from wca.runners import AllocationRunner
from wca.static_allocator import StaticAllocator
from wca.tls import SSL

HOSTILE = [
    '..',
    '../../wca-victim',           # up from the pod to a cgroup beside kubepods
    '/wca-victim',                # absolute: os.path.join drops the pod's directory
    '%2e%2e%2fwca-victim',        # URL-encoded: never decoded, but not an id either
    'ab' * 16 + '\x00' + 'ab' * 15,  # NUL
    'ab' * 32 + '\n',             # a trailing newline ('$' in a regex lets it through)
    'ab\n' * 21 + 'a',
    'a' * 100000,                 # very long
    '\uff41' * 64,                # fullwidth 'a': looks like hex, is not
    '\u0661' * 64,                # Arabic-Indic digit one: a Unicode digit
    '..\u2215wca-victim',         # a division slash that looks like '/'
    '',
]
IDS = ['dotdot', 'up', 'absolute', 'urlencoded', 'nul', 'newline-end', 'newlines', 'long',
       'fullwidth', 'arabic-digits', 'division-slash', 'empty']


@pytest.fixture(scope='module')
def kubelet(pki):
    class State:
        answer = pod_list()
    with JsonServer(lambda request: Answer(body=State.answer), pki=pki) as server:
        State.server = server
        yield State


@pytest.fixture
def tree():
    from conftest import require_root
    require_root()
    made = KubepodsTree(v1_layout())
    yield made
    made.cleanup()


def node_for(kubelet, tree, pki, layout=None, driver='cgroupfs', namespaces=()):
    return KubernetesNode(kubelet_enabled=True, kubelet_endpoint=kubelet.server.url,
                          ssl=SSL(server_verify=pki.ca_cert), client_token_path=None,
                          cgroup_driver=driver, cgroup_root=tree.root,
                          cgroup_layout=layout or tree.layout,
                          monitored_namespaces=list(namespaces))


def warnings_about(caplog, text):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and text in r.getMessage()]


def errors_total(node, reason):
    [metric] = [m for m in node.metrics() if m.labels['reason'] == reason]
    assert metric.name == 'wca_node_errors_total'
    return metric.value


@pytest.mark.parametrize('hostile', HOSTILE, ids=IDS)
def test_a_hostile_container_id_rejects_its_pod_alone(kubelet, pki, tree, caplog, hostile):
    good, evil = pod('good-0', 'Burstable'), pod('evil-0', 'Burstable', containers=('a', 'b'))
    good_path, good_children = tree.add_pod(good, 'cgroupfs')
    evil_path, _ = tree.add_pod(evil, 'cgroupfs')
    tree.mkdir(tree.root + '/kubepods/wca-victim')  # where '../../wca-victim' leads
    evil['status']['containerStatuses'][1]['containerID'] = 'containerd://' + hostile
    kubelet.answer = pod_list(good, evil)
    node = node_for(kubelet, tree, pki)
    for _ in range(3):
        tasks = node.get_tasks()
        assert [(t.name, t.cgroup_path, t.subcgroups_paths) for t in tasks] == [
            ('default/good-0', good_path, good_children)]
    if hostile:
        [warning] = warnings_about(caplog, 'evil-0')
        assert 'rejected' in warning and 'container id' in warning
        assert '\n' not in warning and '\x00' not in warning and len(warning) < 400
        assert errors_total(node, 'invalid_identifier') == 1
    else:  # no id at all: a malformed pod, as before
        assert node.errors_by_reason()['invalid_task'] == 1


@pytest.mark.parametrize('hostile', HOSTILE[:-1] + ['6f1c2b9a-8e74-4f0b-9c3a-1e5d7f2b4c6a/..'],
                         ids=IDS[:-1] + ['uuid-then-dotdot'])
def test_a_hostile_pod_uid_rejects_the_pod_alone(kubelet, pki, tree, caplog, hostile):
    good, evil = pod('good-0', 'Guaranteed'), pod('evil-0', 'Guaranteed')
    good_path, good_children = tree.add_pod(good, 'cgroupfs')
    tree.mkdir(tree.root + '/kubepods/pod')  # so that 'pod/../..' would resolve
    evil['metadata']['uid'] = hostile
    kubelet.answer = pod_list(evil, good)
    node = node_for(kubelet, tree, pki)
    for _ in range(2):
        assert [(t.task_id, t.cgroup_path, t.subcgroups_paths) for t in node.get_tasks()] == [
            (good['metadata']['uid'], good_path, good_children)]
    assert len(warnings_about(caplog, 'evil-0')) == 1
    assert errors_total(node, 'invalid_identifier') == 1


def test_every_runtime_and_driver_takes_well_formed_ids(kubelet, pki, tree):
    """The rule is not stricter than the runtimes: ids of containerd, CRI-O and Docker under
    both drivers, and a static pod's uid (its config hash), are all accepted."""
    pods = [pod('c-0', runtime='containerd'), pod('o-0', 'BestEffort', runtime='cri-o'),
            pod('d-0', 'Guaranteed', runtime='docker', uid='d6f1c2b9a8e74f0b9c3a1e5d7f2b4c6a')]
    for driver in ('cgroupfs', 'systemd'):
        expected = {item['metadata']['uid']: tree.add_pod(item, driver) for item in pods}
        kubelet.answer = pod_list(*pods)
        node = node_for(kubelet, tree, pki, driver=driver)
        assert {t.task_id: (t.cgroup_path, t.subcgroups_paths) for t in node.get_tasks()} == {
            uid: (path, children) for uid, (path, children) in expected.items()}
        assert not any(node.errors_by_reason().values())


def test_a_tenant_config_hash_naming_another_pod_is_not_used(kubelet, pki, tree, caplog):
    """A tenant sets `kubernetes.io/config.hash` (and `config.mirror`) on its pod to another
    pod's uid. When its own cgroup is missing, the old code took the other pod's cgroup as its
    own, and an allocation rule for the tenant then wrote to the victim's cgroup."""
    victim, tenant = pod('db-0', 'Burstable', namespace='prod'), pod('x-0', 'Burstable')
    victim_path, _ = tree.add_pod(victim, 'cgroupfs')
    forged = victim['metadata']['uid']
    tenant['metadata']['annotations'].update({'kubernetes.io/config.hash': forged,
                                              'kubernetes.io/config.mirror': forged})
    tenant['status']['containerStatuses'][0]['containerID'] = \
        victim['status']['containerStatuses'][0]['containerID']
    for namespaces in ([], ['default']):  # the victim listed, and not (another namespace)
        kubelet.answer = pod_list(victim, tenant)
        node = node_for(kubelet, tree, pki, namespaces=namespaces)
        tasks = node.get_tasks()
        assert tenant['metadata']['uid'] not in [t.task_id for t in tasks]
        assert victim_path not in [t.cgroup_path for t in tasks
                                   if t.task_id != victim['metadata']['uid']]
        assert errors_total(node, 'invalid_identifier') == 1
    assert 'config hash' in warnings_about(caplog, 'x-0')[0]


def test_a_static_pods_config_hash_named_by_a_tenant_is_not_taken(kubelet, pki, tree, caplog):
    """In the kubelet's list a static pod's uid is its config hash (32 hex digits): a tenant's
    pod naming that hash is rejected; the static pod is kept."""
    static_hash = uuid.uuid4().hex
    static = pod('etcd-worker-1', 'Burstable', namespace='kube-system', uid=static_hash)
    tenant = pod('x-0', 'Burstable')
    static_path, _ = tree.add_pod(static, 'cgroupfs')
    tree.add_pod(tenant, 'cgroupfs', uid=static_hash)  # its containers, in the static pod's
    tenant['metadata']['annotations'].update({'kubernetes.io/config.hash': static_hash,
                                              'kubernetes.io/config.mirror': static_hash})
    kubelet.answer = pod_list(static, tenant)
    node = node_for(kubelet, tree, pki)
    for _ in range(3):
        assert [(t.name, t.cgroup_path) for t in node.get_tasks()] == [
            ('kube-system/etcd-worker-1', static_path)]
    assert len(warnings_about(caplog, 'x-0')) == 1
    assert errors_total(node, 'cgroup_outside_root') == 1


@pytest.mark.parametrize('hostile', ['../../wca-victim', 'D6F1C2B9A8E74F0B9C3A1E5D7F2B4C6A\n',
                                     '%2e%2e', 'd6f1c2b9a8e74f0b9c3a1e5d7f2b4c6' + '\u0430'])
def test_a_hostile_config_hash_rejects_the_pod(kubelet, pki, tree, caplog, hostile):
    good, evil = pod('good-0'), pod('evil-0')
    tree.add_pod(good, 'cgroupfs')
    tree.mkdir(tree.root + '/kubepods/burstable/pod..')  # so that 'pod../..' would resolve
    evil['metadata']['annotations'].update({'kubernetes.io/config.hash': hostile,
                                            'kubernetes.io/config.mirror': hostile})
    kubelet.answer = pod_list(good, evil)
    node = node_for(kubelet, tree, pki)
    for _ in range(2):
        assert [t.name for t in node.get_tasks()] == ['default/good-0']
    [warning] = warnings_about(caplog, 'evil-0')
    assert 'config hash' in warning
    assert errors_total(node, 'invalid_identifier') == 1


@pytest.fixture
def linked(tmp_path, cgroups):
    """A cgroup tree whose pod (or container) directory is a symlink to a real cgroup
    elsewhere (cgroupfs itself refuses symlinks, so the tree is a plain directory, the
    'mount' of a layout; the symlink's target is a real cgroup with a real process)."""
    victim = cgroups.create('system-service')
    mount = tmp_path / 'cpu'
    mount.mkdir()
    layout = CgroupLayout({'cpu': str(mount), 'cpuacct': str(mount)})
    target = os.path.join(cgroups.layout.v1['cpu'], victim.strip('/'))
    return layout, mount, target


def test_a_pod_cgroup_that_is_a_symlink_elsewhere_is_rejected(kubelet, pki, tree, linked,
                                                              caplog):
    layout, mount, target = linked
    good, evil = pod('good-0'), pod('evil-0')
    good_path, good_children = kubelet_paths(good, 'cgroupfs', tree.root)
    for path in [good_path] + good_children:
        os.makedirs(str(mount) + path)
    evil_path, _ = kubelet_paths(evil, 'cgroupfs', tree.root)
    os.symlink(target, str(mount) + evil_path)
    kubelet.answer = pod_list(good, evil)
    node = node_for(kubelet, tree, pki, layout=layout)
    for _ in range(2):
        assert [(t.name, t.cgroup_path, t.subcgroups_paths) for t in node.get_tasks()] == [
            ('default/good-0', good_path, good_children)]
    [warning] = warnings_about(caplog, 'evil-0')
    assert 'resolves to %s' % target in warning
    assert errors_total(node, 'cgroup_outside_root') == 1


def test_a_container_cgroup_that_is_a_symlink_elsewhere_rejects_its_pod(
        kubelet, pki, tree, linked, caplog):
    layout, mount, target = linked
    evil = pod('evil-0', containers=('app', 'sidecar'))
    path, children = kubelet_paths(evil, 'cgroupfs', tree.root)
    os.makedirs(str(mount) + children[0])
    os.symlink(target, str(mount) + children[1])
    kubelet.answer = pod_list(evil)
    node = node_for(kubelet, tree, pki, layout=layout)
    for _ in range(2):
        assert node.get_tasks() == []
    assert len(warnings_about(caplog, 'evil-0')) == 1
    assert errors_total(node, 'cgroup_outside_root') == 1


def test_the_identifier_shapes():
    assert identifiers.container_id('0a' * 32) == '0a' * 32
    assert identifiers.pod_uid('6f1c2b9a-8e74-4f0b-9c3a-1e5d7f2b4c6a')
    assert identifiers.pod_uid('d6f1c2b9a8e74f0b9c3a1e5d7f2b4c6a')  # a static pod's
    assert identifiers.path_component('thermos-www-data-prod-cassandra-0 x:1')
    assert identifiers.cgroup_path('a//b/', 'task') == '/a/b'
    assert identifiers.cgroup_path('/', 'root', root_ok=True) == '/'
    for kind, value in [(identifiers.container_id, '0A' * 32), (identifiers.config_hash,
                        '6f1c2b9a-8e74-4f0b-9c3a-1e5d7f2b4c6a'),
                        (identifiers.path_component, '.hidden'),
                        (identifiers.path_component, 'a\tb'), (identifiers.path_component, None),
                        (identifiers.cgroup_path, '/a/../b'), (identifiers.cgroup_path, '/')]:
        with pytest.raises(identifiers.InvalidIdentifier):
            kind(value)
    assert identifiers.is_under('/mesos/abc', '/mesos')
    for path in ('/mesos', '/mesos-evil/abc', '/mesos/../system.slice', '/system.slice'):
        assert not identifiers.is_under(path, '/mesos'), path
    assert identifiers.is_under('/anything', '/')


def test_a_hostile_container_id_does_not_steer_an_allocation(kubelet, pki, tree):
    """Issue 19's case as an allocator meets it: `containerd://../../../system.slice` in a pod's
    status made the container cgroup system.slice's, and a quota for the pod then wrote
    system.slice's cpu.cfs_quota_us (a pod's containers are set unlimited). Now the pod is
    rejected and system.slice keeps its quota, while a good pod gets its own."""
    good, evil = pod('good-0'), pod('evil-0')
    good_path, _ = tree.add_pod(good, 'cgroupfs')
    tree.add_pod(evil, 'cgroupfs')
    victim = tree.root + '/system.slice'
    tree.mkdir(victim)
    quota = tree.layout.v1['cpu'] + '%s/cpu.cfs_quota_us'
    with open(quota % victim, 'w') as f:
        f.write('50000')
    evil['status']['containerStatuses'][0]['containerID'] = 'containerd://../../../system.slice'
    kubelet.answer = pod_list(good, evil)
    storages = Recording(), Recording(), Recording()
    runner = AllocationRunner(
        node=node_for(kubelet, tree, pki),
        allocator=StaticAllocator(rules=[{'name': 'all', 'allocations': {'cpu_quota': 0.5}}]),
        metrics_storage=storages[0], anomalies_storage=storages[1],
        allocations_storage=storages[2], interval=0, rdt_enabled=False,
        gather_hw_mm_topology=False)
    runner.iterate()
    with open(quota % victim) as f:
        assert f.read().strip() == '50000'
    with open(quota % good_path) as f:
        assert f.read().strip() != '-1'
    errors = {m.labels['reason']: m.value for m in storages[0].last('wca_node_errors_total')}
    assert errors['invalid_identifier'] == 1


def test_a_pod_name_cannot_forge_a_line_of_the_agents_log(kubelet, pki, tree):
    """A pod named with a newline and a log line of its own, rejected for its container id:
    the agent's warning about it, formatted as the agent formats its log, stays one line."""
    import io
    from wca.logger import FORMAT, OneLineFormatter
    forged = '2026-01-01 00:00:00,000 ERROR {MainThread} [wca.runners] forged'
    evil = pod('evil-0', 'Burstable')
    evil['metadata']['name'] = 'evil-0\n' + forged + '\r\x1b[2K'
    evil['status']['containerStatuses'][0]['containerID'] = 'containerd://../../wca-victim'
    tree.add_pod(pod('good-0'), 'cgroupfs')
    kubelet.answer = pod_list(evil)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.getLogger('wca').addHandler(handler)
    try:
        assert node_for(kubelet, tree, pki).get_tasks() == []
    finally:
        logging.getLogger('wca').removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines and all('evil-0' in line for line in lines), lines
    assert not any(line.startswith(forged[:23]) or '\x1b' in line for line in lines), lines
