"""KubernetesNode against a real HTTPS kubelet / kube-apiserver on 127.0.0.1 (certificates made
at test time): which pods become tasks, with what id, name, labels and resources, and how the
node authenticates (bearer token, client certificate)."""
import logging
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import require_root
from orchestrator_fixtures import NODE_IP, KubepodsTree, pending_pod, pod, pod_list
from testing.cgroups import Cgroups
from testing.recording import Recording
from tls_ca import Answer, JsonServer
from wca.cgroups.layout import CgroupLayout
from wca.config.loader import load_config_text
from wca.config.schema import ConfigError
from wca.nodes.kubernetes import KubernetesNode, KubernetesTask
from wca.runners.measurement import MeasurementRunner
from wca.tls import SSL

TOKEN = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IndjYS10ZXN0In0.c2VjcmV0LXRva2VuLXBheWxvYWQ.sig-4f9a2c'


@pytest.fixture
def tree():
    require_root()
    made = KubepodsTree(CgroupLayout.detect())
    yield made
    made.cleanup()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / 'token'
    path.write_text(TOKEN + '\n')
    return str(path)


def authorized(answer, token=TOKEN):
    """A responder that wants `Authorization: Bearer <token>`, like the kubelet and apiserver."""
    def respond(request):
        if request.headers.get('Authorization') != 'Bearer ' + token:
            return Answer(401, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                                'message': 'Unauthorized', 'reason': 'Unauthorized', 'code': 401})
        return Answer(body=answer(request) if callable(answer) else answer)
    return respond


def the_cluster(runtime='containerd'):
    """Pods of one node, as its kubelet lists them: every QoS class, pods that are not (or no
    longer) ready, init containers and sidecars, and pods of other namespaces."""
    return {
        'guaranteed': pod('postgres-0', 'Guaranteed', runtime, containers=('postgres', 'exporter'),
                          labels={'app.kubernetes.io/component': 'database',
                                  'statefulset.kubernetes.io/pod-name': 'postgres-0'}),
        'burstable': pod('api-6d5f7c9b8-4x2lq', 'Burstable', runtime, sidecars=('envoy',),
                         init_containers=('wait-for-db',)),
        'besteffort': pod('nightly-28579320-kq7tz', 'BestEffort', runtime,
                          labels={'batch.kubernetes.io/job-name': 'nightly-28579320'}),
        'pending': pending_pod('api-6d5f7c9b8-9zz4w'),
        'not_ready': pod('web-5c7f9d8b6-jh2mn', 'Burstable', runtime, ready=False),
        'terminating': pod('web-5c7f9d8b6-old01', 'Burstable', runtime, terminating=True,
                           ready=False),
        'terminating_ready': pod('web-5c7f9d8b6-old02', 'Burstable', runtime,
                                 terminating=True),
        'other_namespace': pod('coredns-76f75df574-8r9lp', 'Burstable', runtime,
                               namespace='kube-system'),
    }


def make_cgroups(tree, pods, driver='cgroupfs'):
    for item in pods:
        if item['status']['phase'] == 'Running':
            tree.add_pod(item, driver)


def kubelet_node(server, pki, tree, **kwargs):
    kwargs.setdefault('ssl', SSL(server_verify=pki.ca_cert))
    return KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                          cgroup_root=tree.root, cgroup_layout=tree.layout, **kwargs)


def test_kubelet_mode_lists_running_ready_pods_with_their_labels_and_resources(
        pki, tree, token_file):
    pods = the_cluster()
    make_cgroups(tree, pods.values())
    with JsonServer(authorized(pod_list(*pods.values())), pki=pki) as server:
        node = kubelet_node(server, pki, tree, client_token_path=token_file)
        tasks = {t.name: t for t in node.get_tasks()}
        [request] = server.requests
    assert (request.method, request.path) == ('GET', '/pods')
    assert sorted(tasks) == ['default/' + pods[k]['metadata']['name'] for k in (
        'burstable', 'besteffort', 'guaranteed', 'terminating_ready')]
    database = tasks['default/postgres-0']
    assert isinstance(database, KubernetesTask) and database.qos == 'guaranteed'
    assert database.task_id == pods['guaranteed']['metadata']['uid']
    assert database.labels == {
        'app_kubernetes_io__name': 'postgres', 'app_kubernetes_io__component': 'database',
        'statefulset_kubernetes_io__pod_name': 'postgres-0', 'pod_template_hash': '7d9f8c6b5',
        'app_kubernetes_io__qos_class': 'guaranteed'}
    # Two containers of 500m / 256Mi each, limits equal to requests.
    assert database.resources == {
        'requests_cpu': 1.0, 'limits_cpu': 1.0, 'requests_memory': 512 * 2 ** 20,
        'limits_memory': 512 * 2 ** 20, 'cpus': 1.0, 'mem': 512 * 2 ** 20}
    api = tasks['default/api-6d5f7c9b8-4x2lq']
    assert api.labels['app_kubernetes_io__qos_class'] == 'burstable'
    # The app and its sidecar (an init container that keeps running) count; the finished
    # init container does not.
    assert api.resources['requests_cpu'] == 0.5 and api.resources['limits_memory'] == 256 * 2 ** 20
    assert 'limits_cpu' not in api.resources
    batch = tasks['default/nightly-28579320-kq7tz']
    assert batch.resources == {} and batch.labels['app_kubernetes_io__qos_class'] == 'besteffort'
    assert batch.labels['batch_kubernetes_io__job_name'] == 'nightly-28579320'


def test_monitored_namespaces_filter_and_empty_means_all(pki, tree):
    pods = the_cluster()
    make_cgroups(tree, pods.values())
    with JsonServer(lambda r: Answer(body=pod_list(*pods.values())), pki=pki) as server:
        names = {tuple(ns): sorted(t.name for t in kubelet_node(
            server, pki, tree, client_token_path=None, monitored_namespaces=ns).get_tasks())
            for ns in (['kube-system'], [], ['default', 'kube-system'])}
    assert names[('kube-system',)] == ['kube-system/coredns-76f75df574-8r9lp']
    assert len(names[()]) == 5 and names[()] == names[('default', 'kube-system')]


def test_kubelet_mode_with_a_client_certificate(pki, tree):
    item = pod('metrics-0', 'Guaranteed', 'cri-o')
    make_cgroups(tree, [item], 'systemd')
    with JsonServer(lambda r: Answer(body=pod_list(item)), pki=pki, client_auth=True) as server:
        node = kubelet_node(server, pki, tree, cgroup_driver='systemd', client_token_path=None,
                            ssl=SSL(server_verify=pki.ca_cert, client_cert_path=pki.client_cert,
                                    client_key_path=pki.client_key))
        assert [t.name for t in node.get_tasks()] == ['default/metrics-0']
        assert [t.name for t in node.get_tasks()] == ['default/metrics-0']
        assert [r.client_cert for r in server.requests] == [{'commonName': 'wca-test-client'}] * 2
        assert all('Authorization' not in r.headers for r in server.requests)
        without = kubelet_node(server, pki, tree, cgroup_driver='systemd', client_token_path=None)
        assert without.get_tasks() == [] and without.errors_by_reason()['tls'] == 1


def _field_selected(pods, query):
    """What a real apiserver answers to `fieldSelector=a=x,b=y` (the fields a pod list takes)."""
    [selector] = parse_qs(query)['fieldSelector']
    fields = {'status.phase': lambda p: p['status']['phase'],
              'spec.nodeName': lambda p: p['spec'].get('nodeName', '')}
    terms = [term.split('=', 1) for term in selector.split(',')]
    return [p for p in pods if all(fields[field](p) == value for field, value in terms)]


def test_apiserver_mode_lists_this_nodes_pods_of_each_namespace(pki, tree, token_file, monkeypatch):
    here = pod('api-0', 'Burstable', namespace='shop')
    elsewhere = pod('api-1', 'Burstable', namespace='shop', host_ip='10.128.0.8')
    elsewhere['spec']['nodeName'] = 'worker-2'
    also_here = pod('cache-0', 'Guaranteed', namespace='default')
    unscheduled = pending_pod('cache-1')
    unscheduled['status'].pop('hostIP')
    del unscheduled['spec']['nodeName']
    make_cgroups(tree, [here, elsewhere, also_here])
    per_namespace = {'/api/v1/namespaces/shop/pods': [here, elsewhere],
                     '/api/v1/namespaces/default/pods': [also_here, unscheduled],
                     '/api/v1/pods': [here, elsewhere, also_here, unscheduled]}
    answered = []

    def answer(request):
        path, query = urlsplit(request.path).path, urlsplit(request.path).query
        pods = _field_selected(per_namespace[path], query)
        answered.extend(p['metadata']['name'] for p in pods)
        return pod_list(*pods)
    monkeypatch.setenv('NODE_NAME', 'worker-1')  # as the downward API sets it
    with JsonServer(authorized(answer), pki=pki) as server:
        node = KubernetesNode(kubeapi_host='127.0.0.1', kubeapi_port=str(server.port),
                              node_ip=NODE_IP, client_token_path=token_file,
                              server_cert_ca_path=pki.ca_cert,
                              monitored_namespaces=['shop', 'default'],
                              cgroup_root=tree.root, cgroup_layout=tree.layout)
        assert sorted(t.name for t in node.get_tasks()) == ['default/cache-0', 'shop/api-0']
        monkeypatch.delenv('NODE_NAME')
        everywhere = KubernetesNode(kubeapi_host='127.0.0.1', kubeapi_port=server.port,
                                    node_ip=NODE_IP, node_name='Worker-1',
                                    client_token_path=token_file,
                                    server_cert_ca_path=pki.ca_cert, monitored_namespaces=[],
                                    cgroup_root=tree.root, cgroup_layout=tree.layout)
        assert sorted(t.name for t in everywhere.get_tasks()) == ['default/cache-0', 'shop/api-0']
        paths = [urlsplit(r.path) for r in server.requests]
    assert sorted(p.path for p in paths) == ['/api/v1/namespaces/default/pods',
                                             '/api/v1/namespaces/shop/pods', '/api/v1/pods']
    assert all(parse_qs(p.query) == {'fieldSelector': ['status.phase=Running,spec.nodeName=worker-1']}
               for p in paths)
    assert 'api-1' not in answered  # the other node's pod was never sent


def test_apiserver_mode_without_node_name_asks_for_the_host_name(pki, token_file, monkeypatch):
    """The kubelet registers its node under the host name (in lower case) by default."""
    monkeypatch.delenv('NODE_NAME', raising=False)
    with JsonServer(authorized(lambda r: pod_list()), pki=pki) as server:
        node = KubernetesNode(kubeapi_host='127.0.0.1', kubeapi_port=server.port, node_ip=NODE_IP,
                              client_token_path=token_file, server_cert_ca_path=pki.ca_cert)
        assert node.get_tasks() == []
        [request] = server.requests
    assert parse_qs(urlsplit(request.path).query)['fieldSelector'] == [
        'status.phase=Running,spec.nodeName=%s' % socket.gethostname().lower()]


def test_a_rotated_token_is_read_again(pki, tree, token_file):
    item = pod('api-0', 'Burstable')
    make_cgroups(tree, [item])
    current = {'token': TOKEN}
    with JsonServer(lambda r: authorized(pod_list(item), current['token'])(r), pki=pki) as server:
        node = kubelet_node(server, pki, tree, client_token_path=token_file)
        assert len(node.get_tasks()) == 1
        current['token'] = TOKEN + '-rotated'
        with open(token_file, 'w') as f:
            f.write(current['token'])
        assert len(node.get_tasks()) == 1
        assert node.errors_by_reason()['http_4xx'] == 0


def test_unchanged_pods_are_the_same_task_objects(pki, tree):
    item = pod('api-0', 'Burstable')
    make_cgroups(tree, [item])
    with JsonServer(lambda r: Answer(body=pod_list(item)), pki=pki) as server:
        node = kubelet_node(server, pki, tree, client_token_path=None)
        first, second = node.get_tasks(), node.get_tasks()
        assert first[0] is second[0]
        item['metadata']['labels']['version'] = 'v2'
        item['metadata']['resourceVersion'] = '48214'
        third = node.get_tasks()
    assert third[0] is not first[0] and third[0].labels['version'] == 'v2'


def test_malformed_pods_are_skipped_with_one_warning_and_counted(pki, tree, caplog):
    good = pod('api-0', 'Burstable')
    no_uid = pod('broken-0', 'Burstable')
    del no_uid['metadata']['uid']
    bad_status = pod('broken-1', 'Burstable')
    bad_status['status']['containerStatuses'] = 'ready'
    make_cgroups(tree, [good])
    with JsonServer(lambda r: Answer(body=pod_list(good, no_uid, bad_status, 42)),
                    pki=pki) as server:
        node = kubelet_node(server, pki, tree, client_token_path=None)
        for _ in range(3):
            assert [t.name for t in node.get_tasks()] == ['default/api-0']
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert len(warnings) == 3, warnings
    assert any('pod default/broken-0 skipped: no metadata.uid' in w for w in warnings)
    assert any('pod default/broken-1 skipped: containerStatuses is not a list' in w
               for w in warnings)
    assert any('pod #3 of the answer skipped: not an object' in w for w in warnings)
    assert node.errors_by_reason()['invalid_task'] == 3


def test_the_runner_measures_pods_with_their_labels_and_requests(pki):
    require_root()
    cgroups = Cgroups('wca-test-kubepods')
    try:
        item = pod('api-0', 'Burstable', 'docker')
        pod_path = 'kubepods/burstable/pod' + item['metadata']['uid']
        for name in ('kubepods', 'kubepods/burstable', pod_path):
            cgroups.create(name, processes=0)
        cid = item['status']['containerStatuses'][0]['containerID'].split('://')[1]
        container = cgroups.create(pod_path + '/' + cid, processes=1)
        storage = Recording()
        with JsonServer(lambda r: Answer(body=pod_list(item)), pki=pki) as server:
            node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                                  ssl=SSL(server_verify=pki.ca_cert), client_token_path=None,
                                  cgroup_root=cgroups.parent)
            runner = MeasurementRunner(node=node, metrics_storage=storage, interval=0)
            runner.iterate()
    finally:
        cgroups.cleanup()
    uid = item['metadata']['uid']
    assert storage.value('task_up', task_id=uid) == 1
    assert storage.value('task_subcontainers', task_id=uid) == 1
    assert storage.value('task_requested_cpus', task_id=uid) == 0.25
    assert storage.value('task_requested_mem_bytes', task_id=uid) == 64 * 2 ** 20
    [usage] = [m for m in storage.last('task_cpu_usage_seconds') if m.labels['task_id'] == uid]
    assert usage.labels['task_name'] == 'default/api-0'
    assert usage.labels['app_kubernetes_io__qos_class'] == 'burstable'
    assert usage.labels['app_kubernetes_io__name'] == 'api'
    assert usage.value > 0  # the sleeping process's cgroup is the pod's child
    assert container == '%s/%s/%s' % (cgroups.parent, pod_path, cid)


@pytest.mark.parametrize('lines, error', [
    ('kubelet_enabled: true\n    cgroup_driver: runc',
     "w.yml:4: runner.node.cgroup_driver: expected one of 'systemd', 'cgroupfs', got 'runc'"),
    ('kubelet_enabled: true\n    kubelet_endpoint: 127.0.0.1:10250',
     'w.yml:4: runner.node.kubelet_endpoint: !KubernetesNode: expected an http:// or https:// URL'),
    ('kubelet_enabled: true\n    client_token_path: /no/such/token',
     'w.yml:4: runner.node.client_token_path: !KubernetesNode: /no/such/token does not exist'),
    ('kubeapi_host: 10.96.0.1\n    client_token_path: null',
     'w.yml:2: runner.node: !KubernetesNode: node_ip: required when kubelet_enabled is false'),
    ('kubeapi_host: 10.96.0.1\n    kubeapi_port: https\n    node_ip: 10.0.0.1\n'
     '    client_token_path: null',
     'w.yml:4: runner.node.kubeapi_port: !KubernetesNode: expected a port number (1-65535)'),
    ('kubeapi_host: 10.96.0.1\n    node_ip: 10.0.0.1\n    node_name: worker_1\n'
     '    client_token_path: null',
     "w.yml:5: runner.node.node_name: !KubernetesNode: expected the name of this node"),
    ('kubelet_enabled: true\n    monitored_namespaces: [default, a/b]',
     'w.yml:4: runner.node.monitored_namespaces: !KubernetesNode: expected a list of namespace'),
    ('kubelet_enabled: true\n    grace_period: -1',
     'w.yml:4: runner.node.grace_period: expected a number in [0, 86400], got -1'),
])
def test_config_errors_name_the_line_and_key(lines, error):
    text = 'runner: !MeasurementRunner\n  node: !KubernetesNode\n    %s\n' % lines
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, 'w.yml')
    assert str(raised.value).startswith(error), str(raised.value)
