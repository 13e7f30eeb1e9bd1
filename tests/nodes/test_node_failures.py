"""KubernetesNode and MesosNode when the orchestrator fails, each way against a real socket:
refused, silent, slow, TLS, HTTP errors, not JSON, JSON of the wrong shape. The node logs once
when failing starts and once when it ends, counts by reason, keeps the last good task list for
its grace period, never raises, and never shows the token."""
import logging
import socket
import ssl
import threading
import time
import warnings

import pytest

from conftest import promtool_check, require_root
from orchestrator_fixtures import KubepodsTree, pod, pod_list, v1_layout
from tls_ca import Answer, JsonServer, SilentServer, closed_port
from wca.exposition import encode
from wca.nodes.kubernetes import KubernetesNode
from wca.nodes.mesos import MesosNode
from wca.tls import SSL

TOKEN = 'sa-token-7f3c9e1a5b2d4f6e8a0c'
TIMEOUT = 1


def kubelet(url, pki, **kwargs):
    kwargs.setdefault('ssl', SSL(server_verify=pki.ca_cert))
    kwargs.setdefault('client_token_path', None)
    return KubernetesNode(kubelet_enabled=True, kubelet_endpoint=url, timeout=TIMEOUT,
                          monitored_namespaces=[], **kwargs)


def mesos(url, pki, **kwargs):
    kwargs.setdefault('ssl', SSL(server_verify=pki.ca_cert))
    return MesosNode(mesos_agent_endpoint=url, timeout=TIMEOUT, **kwargs)


NODES = {'kubelet': kubelet, 'mesos': mesos}


def failure_warnings(caplog):
    """What the nodes told the operator (info and up: failing started, grace over, recovered)."""
    return [r.getMessage() for r in failure_records(caplog)]


def failure_records(caplog):
    return [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith('wca.nodes')
            and 'watching the pods of' not in r.getMessage()]  # said once at start


def timed(node):
    started = time.monotonic()
    tasks = node.get_tasks()
    return tasks, time.monotonic() - started


@pytest.mark.parametrize('kind', sorted(NODES))
def test_connection_refused(kind, pki, caplog):
    node = NODES[kind]('https://127.0.0.1:%d' % closed_port(), pki)
    for _ in range(3):
        assert node.get_tasks() == []
    [warning] = failure_warnings(caplog)
    assert '(connection): connection refused' in warning and 'no tasks until it works' in warning
    assert node.errors_by_reason()['connection'] == 3


@pytest.mark.parametrize('kind', sorted(NODES))
def test_a_server_that_accepts_and_never_answers_cannot_hold_the_loop(kind, pki, caplog):
    with SilentServer() as silent:
        node = NODES[kind]('https://127.0.0.1:%d' % silent.port, pki)
        tasks, took = timed(node)
    assert tasks == [] and TIMEOUT <= took < TIMEOUT + 0.5
    assert node.errors_by_reason()['timeout'] == 1
    assert 'no complete answer within the timeout of 1 s' in failure_warnings(caplog)[0]


def test_a_server_that_never_sends_its_answer_cannot_hold_the_loop(pki):
    with JsonServer(lambda r: Answer(body=pod_list(), delay=TIMEOUT + 1.5), pki=pki) as server:
        node = kubelet(server.url, pki)
        tasks, took = timed(node)
    assert tasks == [] and TIMEOUT <= took < TIMEOUT + 0.5
    assert node.errors_by_reason()['timeout'] == 1


def test_slow_namespaces_together_cannot_hold_the_loop(pki, tmp_path):
    """The apiserver mode asks once per namespace: the timeout bounds them all together."""
    token = tmp_path / 'token'
    token.write_text(TOKEN)
    with JsonServer(lambda r: Answer(body=pod_list(), delay=0.6), pki=pki) as server:
        node = KubernetesNode(kubeapi_host='127.0.0.1', kubeapi_port=server.port, node_ip='10.0.0.1',
                              client_token_path=str(token), ssl=SSL(server_verify=pki.ca_cert),
                              monitored_namespaces=['a', 'b', 'c'], timeout=TIMEOUT)
        tasks, took = timed(node)
        assert len(server.requests) == 2  # the third was not even started
    assert tasks == [] and TIMEOUT <= took < TIMEOUT + 0.5
    assert node.errors_by_reason()['timeout'] == 1


def test_a_body_sent_a_byte_at_a_time_cannot_hold_the_loop(pki):
    # Each byte comes well within the timeout, the whole answer would take 5 s.
    with JsonServer(lambda r: Answer(body=pod_list(), chunk_delay=0.1), pki=pki) as server:
        node = kubelet(server.url, pki)
        tasks, took = timed(node)
    assert tasks == [] and TIMEOUT <= took < TIMEOUT + 0.5
    assert node.errors_by_reason()['timeout'] == 1


@pytest.mark.parametrize('kind', sorted(NODES))
def test_a_server_certificate_of_another_ca(kind, pki, caplog):
    with JsonServer(lambda r: Answer(body={}), pki=pki) as server:
        node = NODES[kind](server.url, pki, ssl=SSL(server_verify=pki.other_ca_cert))
        assert node.get_tasks() == []
        assert server.requests == []  # nothing was sent to an unverified server
    assert node.errors_by_reason()['tls'] == 1
    assert 'TLS failed: ' in failure_warnings(caplog)[0]
    assert 'certificate verify failed' in failure_warnings(caplog)[0]


def test_a_server_certificate_for_another_host(pki, caplog):
    with JsonServer(lambda r: Answer(body=pod_list()), pki=pki, host='127.0.0.2') as server:
        node = kubelet(server.url, pki)
        assert node.get_tasks() == [] and server.requests == []
    assert node.errors_by_reason()['tls'] == 1
    message = failure_warnings(caplog)[0]
    assert "certificate is not valid for '127.0.0.2'" in message or (  # OpenSSL checks it
        "hostname '127.0.0.2' doesn't match" in message)  # urllib3 1.26 (Python 3.6) does


def _tls11_context(side):
    context = ssl.SSLContext(side)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # TLSVersion.TLSv1_1 (3.10+)
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        except (AttributeError, ValueError):  # Python 3.6: OP_NO_ flags
            context.options |= ssl.OP_NO_TLSv1_2 | getattr(ssl, 'OP_NO_TLSv1_3', 0)
    context.set_ciphers('ALL:@SECLEVEL=0')  # OpenSSL 3 allows TLS 1.1 at level 0 only
    return context


def test_tls_older_than_1_2_is_refused(pki):
    """A server that speaks TLS 1.1 at most: a permissive client gets through (the control),
    the node does not."""
    server_context = _tls11_context(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    handshakes = []

    def serve():
        for _ in range(2):
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    handshakes.append(tls.version())
            except (ssl.SSLError, OSError) as e:
                handshakes.append(type(e).__name__)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = _tls11_context(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with client.wrap_socket(socket.create_connection(('127.0.0.1', port), 5)) as tls:
            assert tls.version() == 'TLSv1.1'
        node = kubelet('https://127.0.0.1:%d' % port, pki)
        assert node.get_tasks() == []
        thread.join(5)
    finally:
        listener.close()
    assert handshakes == ['TLSv1.1', 'SSLError']
    assert node.errors_by_reason()['tls'] == 1, node.errors_by_reason()


@pytest.mark.parametrize('kind', sorted(NODES))
@pytest.mark.parametrize('status, reason', [(403, 'http_4xx'), (404, 'http_4xx'),
                                            (500, 'http_5xx'), (503, 'http_5xx')])
def test_http_errors(kind, status, reason, pki, caplog):
    body = {'kind': 'Status', 'status': 'Failure', 'code': status,
            'message': 'pods is forbidden: User "system:serviceaccount:wca:wca" cannot list'}
    with JsonServer(lambda r: Answer(status, body), pki=pki) as server:
        node = NODES[kind](server.url, pki)
        assert node.get_tasks() == [] and node.get_tasks() == []
    assert node.errors_by_reason()[reason] == 2
    [warning] = failure_warnings(caplog)
    assert 'HTTP %d' % status in warning and 'pods is forbidden' in warning


@pytest.mark.parametrize('kind', sorted(NODES))
@pytest.mark.parametrize('body, content_type, reason', [
    (b'<html><body>502 Bad Gateway</body></html>', 'text/html', 'invalid_json'),
    (b'{"items": [', 'application/json', 'invalid_json'),
    (b'\xff\xfe\x00', 'application/json', 'invalid_json'),
    (b'[]', 'application/json', 'invalid_payload'),
    (b'{"kind": "Status", "items": {"a": 1}, "get_state": []}', 'application/json',
     'invalid_payload'),
])
def test_answers_that_are_not_the_expected_json(kind, body, content_type, reason, pki, caplog):
    with JsonServer(lambda r: Answer(200, body, content_type), pki=pki) as server:
        node = NODES[kind](server.url, pki)
        assert node.get_tasks() == []
    assert node.errors_by_reason()[reason] == 1
    assert len(failure_warnings(caplog)) == 1


def test_the_last_good_tasks_are_kept_for_the_grace_period_then_dropped(pki, caplog):
    require_root()
    caplog.set_level(logging.INFO, logger='wca.nodes')
    tree = KubepodsTree(v1_layout())
    try:
        item = pod('api-0', 'Burstable')
        tree.add_pod(item, 'cgroupfs')
        state = {'status': 200}
        with JsonServer(lambda r: Answer(state['status'], pod_list(item)), pki=pki) as server:
            node = kubelet(server.url, pki, grace_period=0.6, cgroup_root=tree.root,
                           cgroup_layout=tree.layout)
            good = node.get_tasks()
            assert [t.name for t in good] == ['default/api-0']
            state['status'] = 503
            assert node.get_tasks() == good and node.get_tasks() == good  # within grace
            time.sleep(0.7)
            assert node.get_tasks() == [] and node.get_tasks() == []  # grace is over
            state['status'] = 200
            assert node.get_tasks() == good
            assert node.get_tasks() == good
    finally:
        tree.cleanup()
    warnings = failure_warnings(caplog)
    assert len(warnings) == 3, warnings
    assert [r.levelname for r in failure_records(caplog)] == ['WARNING', 'ERROR', 'INFO']
    assert 'failed (http_5xx): HTTP 503' in warnings[0] and 'keeping the last 1 tasks' in warnings[0]
    assert 'after the grace period of 0.6 s' in warnings[1]
    assert 'works again' in warnings[2] and '4 failed attempts' in warnings[2]
    assert node.errors_by_reason()['http_5xx'] == 4


def test_errors_are_exported_by_reason_and_pass_promtool(pki):
    node = kubelet('https://127.0.0.1:%d' % closed_port(), pki)
    node.get_tasks()
    metrics = node.metrics({'host': 'worker-1'})
    by_reason = {m.labels['reason']: m.value for m in metrics if m.name == 'wca_node_errors_total'}
    assert by_reason['connection'] == 1 and by_reason['timeout'] == 0
    assert {m.name for m in metrics} == {'wca_node_errors_total', 'wca_tasks_skipped_total'}
    assert all(m.type == 'counter' and m.labels['host'] == 'worker-1' for m in metrics)
    text, dropped = encode(metrics)
    assert dropped == 0
    promtool_check(text.encode())


def test_the_token_never_reaches_logs_errors_or_metrics(pki, tmp_path, caplog):
    token_file = tmp_path / 'token'
    token_file.write_text(TOKEN)

    def echo(request):  # a server that puts what it got in its error (some proxies do)
        header = request.headers.get('Authorization', '')
        return Answer(401, {'kind': 'Status', 'message': 'Unauthorized: %s' % header})
    caplog.set_level(logging.DEBUG)
    with JsonServer(echo, pki=pki) as server:
        node = kubelet(server.url, pki, client_token_path=str(token_file))
        node.get_tasks()
        assert server.requests[0].headers['Authorization'] == 'Bearer ' + TOKEN  # it was sent
    with JsonServer(lambda r: Answer(200, b'not json ' + TOKEN.encode()), pki=pki) as server:
        other = kubelet(server.url, pki, client_token_path=str(token_file))
        other.get_tasks()
    assert node.errors_by_reason()['http_4xx'] == 1
    assert other.errors_by_reason()['invalid_json'] == 1
    text = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'Unauthorized: Bearer (hidden)' in text
    assert TOKEN not in text
    assert TOKEN not in repr(node) and TOKEN not in repr(node.metrics())
    assert TOKEN not in encode(node.metrics())[0]
