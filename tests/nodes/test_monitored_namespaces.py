"""Nothing silent: with the default monitored_namespaces ([default]) the pods of every other
namespace are skipped, as the original agent did, but the agent says so: once at start which
namespaces it watches, once per namespace whose pods it skips, and it counts the skipped pods
in wca_tasks_skipped_total{reason="namespace"} (each pod once while it stays)."""
import logging

from orchestrator_fixtures import pod, pod_list
from tls_ca import Answer, JsonServer
from wca.exposition import encode
from wca.nodes.kubernetes import KubernetesNode
from wca.tls import SSL


def skipped(node):
    [metric] = [m for m in node.metrics({'host': 'worker-1'})
                if m.name == 'wca_tasks_skipped_total']
    assert metric.labels == {'host': 'worker-1', 'reason': 'namespace'}
    assert metric.type == 'counter'
    return metric.value


def node_messages(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name.startswith('wca.nodes') and r.levelno >= logging.INFO]


def test_pods_of_other_namespaces_are_skipped_said_once_and_counted(pki, caplog):
    caplog.set_level(logging.INFO, logger='wca.nodes')
    answer = {'pods': [pod('api-0'), pod('coredns-0', namespace='kube-system'),
                       pod('proxy-0', namespace='kube-system'),
                       pod('prometheus-0', namespace='monitoring')]}
    with JsonServer(lambda r: Answer(body=pod_list(*answer['pods'])), pki=pki) as server:
        node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                              client_token_path=None, ssl=SSL(server_verify=pki.ca_cert))
        assert skipped(node) == 0  # exported from the start
        for _ in range(3):
            node.get_tasks()
        assert skipped(node) == 3  # each pod once, not once per iteration
        answer['pods'].append(pod('etcd-0', namespace='kube-system'))
        node.get_tasks()
        assert skipped(node) == 4
        answer['pods'] = answer['pods'][:1]  # gone; back later: counted again
        node.get_tasks()
        answer['pods'].append(pod('grafana-0', namespace='monitoring'))
        node.get_tasks()
        assert skipped(node) == 5
    messages = node_messages(caplog)
    assert messages[0] == ('KubernetesNode (kubelet %s): watching the pods of the namespaces '
                           'default' % server.url)
    skips = messages[1:]
    assert len(skips) == 2, messages  # one per namespace, whatever the iterations and pods
    assert 'the pods of namespace kube-system (first: kube-system/coredns-0) are skipped: not in ' \
           'monitored_namespaces (default); counted in wca_tasks_skipped_total{reason="namespace"}' \
           in skips[0]
    assert 'namespace monitoring' in skips[1]
    text, dropped = encode(node.metrics())
    assert dropped == 0 and 'wca_tasks_skipped_total{reason="namespace"} 5' in text


def test_every_namespace_watched_is_said_and_nothing_is_skipped(pki, caplog):
    caplog.set_level(logging.INFO, logger='wca.nodes')
    pods = pod_list(pod('api-0'), pod('coredns-0', namespace='kube-system'))
    with JsonServer(lambda r: Answer(body=pods), pki=pki) as server:
        node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                              client_token_path=None, ssl=SSL(server_verify=pki.ca_cert),
                              monitored_namespaces=[])
        node.get_tasks()
        node.get_tasks()
    assert node_messages(caplog) == [
        'KubernetesNode (kubelet %s): watching the pods of every namespace' % server.url]
    assert skipped(node) == 0
