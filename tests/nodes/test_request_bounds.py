"""Every request to an orchestrator is bounded as a whole: connect, TLS handshake, headers and
body, for the kubelet, the kube-apiserver and the Mesos agent. Each against a real server on
127.0.0.1 that trickles one phase a byte at a time (each byte well within the timeout, the whole
far beyond it): get_tasks() returns within the timeout and a small margin, the failure is logged
and counted as a timeout, and the next iteration asks again."""
import logging
import socket
import ssl
import threading
import time

import pytest

from tls_ca import SilentServer
from wca.nodes.kubernetes import KubernetesNode
from wca.nodes.mesos import MesosNode
from wca.tls import SSL

TIMEOUT = 1
MARGIN = 0.5
BYTE_EVERY = 0.2  # seconds between two bytes: 5 a second, where a socket timeout sees no stall
TOKEN = 'sa-token-3b1e9c7d5a2f'


class TrickleServer:
    """A real server on 127.0.0.1 (HTTPS with `pki`) that is slow in one phase:
    'handshake': the TLS handshake (a real one, its bytes sent one at a time);
    'headers': the response headers, a byte at a time, after a normal handshake;
    'body': the body, a byte at a time, after the headers."""

    def __init__(self, phase, pki):
        self.phase = phase
        self.requests = 0
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(pki.server_cert, pki.server_key)
        self._listener = socket.socket()
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = 'https://127.0.0.1:%d' % self.port
        self._stop = threading.Event()
        self._threads = []

    def __enter__(self):
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except socket.timeout:
                continue
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _trickle(self, send, data):
        for i in range(len(data)):
            if self._stop.wait(BYTE_EVERY):
                return
            send(data[i:i + 1])

    def _serve(self, connection):
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.phase == 'handshake':
                self._slow_handshake(connection)
                return
            connection.settimeout(5)
            tls = self._context.wrap_socket(connection, server_side=True)
            request = b''
            while b'\r\n\r\n' not in request:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                request += chunk
            self.requests += 1
            body = b'{"kind": "PodList", "items": []}' + b' ' * 200
            headers = (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: '
                       + b'p' * 200 + b'\r\nContent-Length: %d\r\n\r\n' % len(body))
            if self.phase == 'headers':
                self._trickle(tls.sendall, headers + body)
            else:
                tls.sendall(headers)
                self._trickle(tls.sendall, body)
        except (OSError, ssl.SSLError):
            pass  # the client gave up: what the test wants
        finally:
            connection.close()

    def _slow_handshake(self, connection):
        """A real TLS server handshake (a memory BIO), its answer sent a byte at a time."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._context.wrap_bio(incoming, outgoing, server_side=True)
        connection.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = connection.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            incoming.write(data)
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            self._trickle(connection.sendall, outgoing.read())


def kubelet(url, pki, token):
    return KubernetesNode(kubelet_enabled=True, kubelet_endpoint=url, timeout=TIMEOUT,
                          client_token_path=token, ssl=SSL(server_verify=pki.ca_cert),
                          monitored_namespaces=[])


def apiserver(url, pki, token):
    return KubernetesNode(kubeapi_host='127.0.0.1', kubeapi_port=int(url.rsplit(':', 1)[1]),
                          node_ip='10.0.0.1', node_name='worker-1', client_token_path=token,
                          ssl=SSL(server_verify=pki.ca_cert), timeout=TIMEOUT,
                          monitored_namespaces=[])


def mesos(url, pki, token):
    return MesosNode(mesos_agent_endpoint=url, timeout=TIMEOUT, ssl=SSL(server_verify=pki.ca_cert))


NODES = {'kubelet': kubelet, 'apiserver': apiserver, 'mesos': mesos}


@pytest.fixture
def token(tmp_path):
    path = tmp_path / 'token'
    path.write_text(TOKEN)
    return str(path)


def bounded_failure(node, caplog):
    """Two iterations: each within the bound, each a counted timeout; logged once."""
    for iteration in (1, 2):
        started = time.monotonic()
        tasks = node.get_tasks()
        elapsed = time.monotonic() - started
        assert tasks == []
        assert elapsed < TIMEOUT + MARGIN, 'iteration %d took %.2f s' % (iteration, elapsed)
        assert node.errors_by_reason()['timeout'] == iteration, node.errors_by_reason()
    messages = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith('wca.nodes')]
    assert len(messages) == 1, messages
    assert '(timeout): no complete answer within the timeout of 1 s' in messages[0]
    assert TOKEN not in caplog.text


@pytest.mark.parametrize('kind', sorted(NODES))
@pytest.mark.parametrize('phase', ['handshake', 'headers', 'body'])
def test_a_server_slow_in_one_phase_cannot_hold_the_loop(kind, phase, pki, token, caplog):
    with TrickleServer(phase, pki) as server:
        node = NODES[kind](server.url, pki, token)
        bounded_failure(node, caplog)
    if phase != 'handshake':
        assert server.requests == 2  # it was asked again, on a new connection


@pytest.mark.parametrize('kind', sorted(NODES))
def test_a_server_silent_after_connect_cannot_hold_the_loop(kind, pki, token, caplog):
    with SilentServer() as silent:
        node = NODES[kind]('https://127.0.0.1:%d' % silent.port, pki, token)
        bounded_failure(node, caplog)
