"""Test helper (not a test module): a throwaway PKI made with the `openssl` command line, and
a real HTTPS server on 127.0.0.1 for TLS client tests.

    pki = make_pki(str(tmp_path))
    pki.ca_cert, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key

The server certificate is valid for 127.0.0.1 and localhost (subjectAltName); the client
certificate carries CN=wca-test-client and clientAuth usage. Every file is made fresh, so no
key or certificate lives in the repository.
"""
import http.server
import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections import namedtuple

PKI = namedtuple('PKI', 'directory ca_cert ca_key server_cert server_key client_cert client_key '
                        'other_ca_cert')

_EXTENSIONS = {
    'server': ('basicConstraints=critical,CA:FALSE\n'
               'keyUsage=critical,digitalSignature,keyEncipherment\n'
               'extendedKeyUsage=serverAuth\n'
               'subjectAltName=IP:127.0.0.1,DNS:localhost\n'),
    'client': ('basicConstraints=critical,CA:FALSE\n'
               'keyUsage=critical,digitalSignature,keyEncipherment\n'
               'extendedKeyUsage=clientAuth\n'),
}


def _openssl(*args):
    result = subprocess.Popen(('openssl',) + args, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = result.communicate(timeout=60)
    if result.returncode != 0:
        raise RuntimeError('openssl %s failed: %s' % (args[0], output.decode(errors='replace')))


def _ca(directory, name):
    cert, key = os.path.join(directory, name + '.crt'), os.path.join(directory, name + '.key')
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
             '-subj', '/CN=%s' % name, '-keyout', key, '-out', cert,
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    return cert, key


def _leaf(directory, name, ca_cert, ca_key, kind):
    cert, key = os.path.join(directory, name + '.crt'), os.path.join(directory, name + '.key')
    csr, ext = os.path.join(directory, name + '.csr'), os.path.join(directory, name + '.ext')
    with open(ext, 'w') as f:
        f.write(_EXTENSIONS[kind])
    _openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-subj', '/CN=%s' % name,
             '-keyout', key, '-out', csr)
    _openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial',
             '-days', '2', '-sha256', '-extfile', ext, '-out', cert)
    return cert, key


def make_pki(directory):
    """Creates in `directory` a CA, a server certificate for 127.0.0.1/localhost signed by it, a
    client certificate signed by it, and an unrelated second CA (for 'wrong CA' tests)."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    ca_cert, ca_key = _ca(directory, 'wca-test-ca')
    server_cert, server_key = _leaf(directory, 'wca-test-server', ca_cert, ca_key, 'server')
    client_cert, client_key = _leaf(directory, 'wca-test-client', ca_cert, ca_key, 'client')
    other_ca_cert, _ = _ca(directory, 'wca-test-other-ca')
    return PKI(directory, ca_cert, ca_key, server_cert, server_key, client_cert, client_key,
               other_ca_cert)


# ---------------------------------------------------------------------------------------------
# A real HTTP(S) server on 127.0.0.1 (a free port), answering from a function, in threads.

class Answer(namedtuple('Answer', 'status body content_type delay chunk_delay')):
    """What the server sends: `body` (bytes, or an object sent as JSON) with `status`; with
    `delay` seconds before the headers and `chunk_delay` seconds between the body's bytes."""

    def __new__(cls, status=200, body=b'', content_type='application/json', delay=0.0,
                chunk_delay=0.0):
        return super().__new__(cls, status, body, content_type, delay, chunk_delay)


class Request(namedtuple('Request', 'method path headers body client_cert')):
    """A request the server got (headers as a dict, client_cert: the peer's subject or None)."""


class JsonServer:
    """`with JsonServer(respond, pki=pki, client_auth=True) as server:` serves HTTPS (HTTP
    without pki) on server.url (127.0.0.1, or `host`: 127.0.0.2 is one the server certificate
    does not name); respond(Request) returns an Answer. server.requests lists what
    came. The TLS handshake runs in the request's thread, so a client that hangs in it holds
    nothing else."""

    def __init__(self, respond, pki=None, client_auth=False, host='127.0.0.1'):
        self.requests = []
        self.respond = respond
        context = None
        if pki is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(pki.server_cert, pki.server_key)
            if client_auth:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cafile=pki.ca_cert)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def setup(self):
                super().setup()  # headers and body go out in separate writes: no Nagle delay
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                peer = None
                if hasattr(self.connection, 'getpeercert'):
                    cert = self.connection.getpeercert()
                    peer = dict(x[0] for x in cert['subject']) if cert else None
                request = Request(self.command, self.path, dict(self.headers.items()), body, peer)
                outer.requests.append(request)
                answer = outer.respond(request)
                data = answer.body
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
                time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header('Content-Type', answer.content_type)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                if answer.chunk_delay:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(answer.chunk_delay)
                else:
                    self.wfile.write(data)

            do_GET = do_POST = _serve

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def finish_request(self, request, client_address):
                if context is not None:
                    request = context.wrap_socket(request, server_side=True)
                super().finish_request(request, client_address)

            def handle_error(self, request, client_address):
                pass  # a client that gives up, or fails the handshake on purpose

        self._server = Server((host, 0), Handler)
        self.port = self._server.server_address[1]
        self.url = '%s://%s:%d' % ('https' if context else 'http', host, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


class SilentServer:
    """A socket on 127.0.0.1 that accepts connections (the kernel does, from its backlog) and
    never sends a byte: not even a TLS handshake."""

    def __init__(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(('127.0.0.1', 0))
        self._socket.listen(16)
        self.port = self._socket.getsockname()[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._socket.close()


def closed_port():
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
