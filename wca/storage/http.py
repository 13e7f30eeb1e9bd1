"""PrometheusEndpointStorage: the latest stored metrics served over HTTP for Prometheus to scrape.

store() encodes the metrics and swaps them in; that is all the loop does. A server thread accepts
connections and each connection gets a thread of its own (bounded by max_connections) that reads
the request and writes the answer, so a scrape never blocks the loop, and a client that sends or
reads nothing holds only its own thread, until `timeout` cuts its connection.

    GET|HEAD /metrics      text format 0.0.4, or OpenMetrics 1.0.0 when the Accept header
                           prefers it; gzip when Accept-Encoding allows it
    GET|HEAD /-/healthy    200 while the endpoint serves (for load balancers)
    anything else          404 (405 for another method on those paths)

Nothing listens before the first store() (or start()): --check-config builds this component.
"""
import errno
import gzip
import http.server
import logging
import os
import socket
import socketserver
import ssl as ssl_module
import threading
import time
from typing import Dict, List, Optional

from dataclasses import dataclass

from wca.config import Numeric, Str
from wca.exposition import encode
from wca.metrics import Metric, MetricName
from wca.storage.base import FailedDeliveryException, Storage
from wca.storage.families import families
from wca.tls import SSL, set_minimum_tls12

log = logging.getLogger(__name__)

TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
OPENMETRICS_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8'
_REAP_SECONDS = 0.25  # how often the server thread looks for connections past their timeout


class EndpointError(FailedDeliveryException):
    """The endpoint cannot listen (the port is taken, the address is not this host's...)."""


@dataclass(eq=False)  # compared and hashed by identity: it holds a server and threads
class PrometheusEndpointStorage(Storage):
    """Serves the latest stored metrics on http(s)://host:port/metrics.

    port: the TCP port (required).
    host: the address to listen on (default 127.0.0.1: this host only; 0.0.0.0 or :: for every
      interface).
    ssl: serve HTTPS. client_cert_path (and client_key_path) are the endpoint's own certificate
      (and key); server_verify, when it is a CA bundle path, makes the endpoint ask clients for a
      certificate signed by that CA (mutual TLS); true or false: no client certificate asked.
    include_timestamp: add the store's millisecond timestamp to samples (default false: Prometheus
      stamps samples with the scrape time, which is what it expects).
    timeout: the longest a connection may last, in seconds: whoever has not sent its request and
      read the answer by then is cut off.
    max_connections: connections served at once; more are closed at once (and counted).
    """
    port: Numeric(1, 65535)
    host: Str = '127.0.0.1'
    ssl: Optional[SSL] = None
    include_timestamp: bool = False
    timeout: Numeric(0.1, 300) = 10.0
    max_connections: Numeric(1, 10000) = 16

    def __post_init__(self):
        if isinstance(self.port, float) and not self.port.is_integer():
            raise ValueError('port: expected a whole number in [1, 65535]')
        self.port = int(self.port)
        self.max_connections = int(self.max_connections)
        if not self.host or not isinstance(self.host, str) or ' ' in self.host:
            raise ValueError('host: expected an address or host name to listen on')
        self._tls = None  # type: Optional[ssl_module.SSLContext]
        if self.ssl is not None:
            self._tls = _server_context(self.ssl)
        self._payload = _Payload(b'', None)
        self._dropped = 0
        self._server = None  # type: Optional[_Server]
        self._lock = threading.Lock()
        self._counts = {'scrapes': 0, 'rejected': 0, 'timed_out': 0}

    def store(self, metrics: List[Metric]) -> None:
        timestamp = int(time.time() * 1000) if self.include_timestamp else None
        text, dropped = encode(metrics, timestamp)
        self._dropped += dropped
        self._payload = _Payload(text.encode('utf-8'), timestamp)  # readers take the reference
        if self._server is None:
            self.start()

    def start(self):
        """Listens (store() does it on its first call); EndpointError when it cannot."""
        with self._lock:
            if self._server is not None:
                return
            server_class = _Server6 if ':' in self.host else _Server
            try:
                server = server_class((self.host, self.port), _Handler, bind_and_activate=False)
                try:
                    server.server_bind()
                    server.server_activate()
                except BaseException:
                    server.server_close()
                    raise
            except OSError as e:
                reason = e.strerror or str(e)
                hint = ''
                if e.errno == errno.EADDRINUSE:
                    hint = ' (another process listens there: choose another port)'
                raise EndpointError('cannot listen on %s: %s%s' % (self.address(), reason, hint))
            server.storage = self
            self._server = server
            thread = threading.Thread(target=server.serve_forever, args=(_REAP_SECONDS,),
                                      name='endpoint-%d' % self.port, daemon=True)
            thread.start()
        log.info('serving metrics on %s/metrics', self.url())

    def close(self):
        """Stops listening and cuts open connections."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.cut_all()

    def address(self) -> str:
        return '[%s]:%d' % (self.host, self.port) if ':' in self.host else '%s:%d' % (
            self.host, self.port)

    def url(self) -> str:
        return '%s://%s' % ('https' if self._tls else 'http', self.address())

    def metrics(self, labels: Optional[Dict[str, str]] = None) -> List[Metric]:
        """The endpoint's own metrics (scrapes, rejected and timed-out connections), labelled
        with `labels` and the port. The runner adds them to the agent's internal metrics."""
        labels = dict(labels or {}, port=str(self.port))
        with self._lock:
            counts = dict(self._counts)
        make = Metric.create_metric_with_metadata
        return [make(MetricName.WCA_ENDPOINT_SCRAPES, counts['scrapes'], labels),
                make(MetricName.WCA_ENDPOINT_CONNECTIONS_REJECTED, counts['rejected'], labels),
                make(MetricName.WCA_ENDPOINT_CONNECTIONS_TIMED_OUT, counts['timed_out'], labels)]

    def count(self, what: str):
        with self._lock:
            self._counts[what] += 1

    def payload(self) -> '_Payload':
        return self._payload


def _server_context(settings: SSL) -> ssl_module.SSLContext:
    if not settings.client_cert_path:
        raise ValueError('ssl: the endpoint needs its certificate: give client_cert_path (and '
                         'client_key_path)')
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    set_minimum_tls12(context)
    try:
        context.load_cert_chain(settings.client_cert_path, settings.client_key_path,
                                password=lambda: b'')  # never a prompt on a terminal
        if isinstance(settings.server_verify, str):
            context.verify_mode = ssl_module.CERT_REQUIRED
            if os.path.isdir(settings.server_verify):  # OpenSSL's hashed directory layout
                context.load_verify_locations(capath=settings.server_verify)
            else:
                context.load_verify_locations(cafile=settings.server_verify)
    except (OSError, ssl_module.SSLError) as e:
        raise ValueError('ssl: cannot load the endpoint\'s certificate, key or CA: %s' % (
            getattr(e, 'reason', None) or e.strerror or e))
    return context


class _Payload:
    """One stored exposition and its encodings, each made once, when first asked for."""

    def __init__(self, text: bytes, timestamp_ms: Optional[int]):
        self.text = text
        self.timestamp_ms = timestamp_ms
        self._variants = {}  # (openmetrics, gzip) -> bytes
        self._lock = threading.Lock()

    def body(self, openmetrics: bool, gzipped: bool) -> bytes:
        if not openmetrics and not gzipped:
            return self.text
        key = (openmetrics, gzipped)
        with self._lock:  # scrapes of one version wait for each other, never for the loop
            body = self._variants.get(key)
            if body is None:
                body = to_openmetrics(self.text) if openmetrics else self.text
                if gzipped:
                    body = gzip.compress(body, 6)
                self._variants[key] = body
        return body


def to_openmetrics(text: bytes) -> bytes:
    """Text format 0.0.4 (as encode() writes it) as OpenMetrics 1.0.0.

    A counter named ..._total becomes family ... with its samples still named ..._total. The
    original agent's counters without the suffix (task_cpu_usage_seconds, ...) and untyped
    families become type `unknown`, so their series keep the names they have in the text format.
    Millisecond timestamps become seconds; blank lines go; `# EOF` ends it.
    """
    found = families(text)
    names = set(f.name for f in found)
    out = []
    for family in found:
        if not family.name:  # comments before any family
            continue
        kind = family.header(b'TYPE')
        name = family.name
        help_text = family.header(b'HELP')
        if kind == b'counter':
            base = name[:-6]
            if name.endswith(b'_total') and base and base not in names and all(
                    _sample_is(line, name) for line in family.lines):
                name = base
            else:
                kind = b'unknown'
        elif kind not in (b'gauge', b'counter'):
            kind = b'unknown'
        out.append(b'# TYPE ' + name + b' ' + kind)
        if help_text is not None:
            out.append(b'# HELP ' + name + b' ' + help_text.replace(b'"', b'\\"'))
        for line in family.lines:
            if line[:1] == b'#':
                continue
            out.append(_seconds_timestamp(line))
    out.append(b'# EOF\n')
    return b'\n'.join(out)


def _sample_is(line: bytes, name: bytes) -> bool:
    return line.startswith(name) and line[len(name):len(name) + 1] in (b'{', b' ')


def _seconds_timestamp(line: bytes) -> bytes:
    """A sample line with its millisecond timestamp (if any) in seconds."""
    close = line.rfind(b'}')
    rest_at = close + 1 if close >= 0 else line.find(b' ')
    words = line[rest_at:].split()
    if len(words) < 2:
        return line
    milliseconds = int(words[1])
    sign = b'-' if milliseconds < 0 else b''
    seconds, fraction = divmod(abs(milliseconds), 1000)
    return b'%s %s %s%d.%03d' % (line[:rest_at], words[0], sign, seconds, fraction)


def _quality(accept: str, wanted: str) -> float:
    """The q-value `accept` (an Accept or Accept-Encoding header) gives `wanted`
    ('type/subtype' or a coding); exact matches win over wildcards."""
    best, best_rank = 0.0, -1
    major = wanted.split('/')[0]
    for item in accept.split(','):
        params = item.strip().split(';')
        value = params[0].strip().lower()
        rank = 2 if value == wanted else 1 if value in (major + '/*', ) else 0 if value in (
            '*/*', '*') else -1
        if rank < best_rank or rank < 0:
            continue
        q = 1.0
        for param in params[1:]:
            key, _, number = param.partition('=')
            if key.strip().lower() == 'q':
                try:
                    q = float(number)
                except ValueError:
                    q = 0.0
        if rank > best_rank or q > best:
            best, best_rank = q, rank
    return best


def wants_openmetrics(accept: Optional[str]) -> bool:
    """OpenMetrics when the Accept header prefers it to text/plain."""
    if not accept or 'openmetrics' not in accept.lower():
        return False
    return _quality(accept, 'application/openmetrics-text') > _quality(accept, 'text/plain')


def wants_gzip(accept_encoding: Optional[str]) -> bool:
    return bool(accept_encoding) and _quality(accept_encoding, 'gzip') > 0


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A thread per connection (daemon, bounded), each connection cut after `timeout`."""
    daemon_threads = True
    allow_reuse_address = True  # a restart binds again at once (not while another listens)
    storage = None  # type: PrometheusEndpointStorage

    def server_bind(self):
        # HTTPServer.server_bind would also look up the host's name (a DNS query, in the loop).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._open = {}  # raw socket -> [deadline, socket in use (TLS-wrapped or raw)]
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address):
        storage = self.storage
        with self._open_lock:
            if len(self._open) >= storage.max_connections:
                full = True
            else:
                full = False
                self._open[request] = [time.monotonic() + storage.timeout, request]
        if full:
            storage.count('rejected')
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread for it: do not leave it open
            self.shutdown_request(request)
            raise

    def wrapped(self, raw, sock):
        """The handler wrapped `raw` in TLS: cut that one when its time is up."""
        with self._open_lock:
            entry = self._open.get(raw)
            if entry is not None:
                entry[1] = sock

    def shutdown_request(self, request):
        with self._open_lock:
            entry = self._open.pop(request, None)
        sock = entry[1] if entry else request
        if sock is not request:
            try:
                sock.close()
            except OSError:
                pass
        super().shutdown_request(request)

    def service_actions(self):
        """Runs in the server thread between accepts: cuts connections past their deadline."""
        now = time.monotonic()
        cut = 0
        with self._open_lock:
            for entry in self._open.values():
                if entry[0] <= now and _cut(entry[1]):
                    entry[0] = float('inf')  # once (else: tried again at the next round)
                    cut += 1
        for _ in range(cut):
            self.storage.count('timed_out')

    def cut_all(self):
        with self._open_lock:
            for entry in self._open.values():
                _cut(entry[1])

    def handle_error(self, request, client_address):
        log.debug('endpoint: connection from %s failed', client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _cut(sock) -> bool:
    """Shuts the connection down under the thread blocked on it (the thread then ends). The
    plain socket method also works on a TLS socket without touching its TLS state. False when
    it could not (a socket being wrapped in TLS just now)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
        return True
    except OSError as e:
        return e.errno in (errno.ENOTCONN, errno.EPIPE)  # the client is gone already


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'  # one request per connection: nothing idles between scrapes

    def setup(self):
        server = self.server
        # Each blocking call gives up after this (a backstop): the server thread cuts the whole
        # connection at storage.timeout, which also stops a client that trickles bytes.
        self.timeout = server.storage.timeout + 1.0
        tls = server.storage._tls
        if tls is not None:
            raw = self.request
            raw.settimeout(self.timeout)
            self.request = tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            server.wrapped(raw, self.request)
            self.request.do_handshake()  # here, in this connection's thread
        super().setup()

    def do_GET(self):
        self._answer(send_body=True)

    def do_HEAD(self):
        self._answer(send_body=False)

    def _refuse(self):
        path = self.path.split('?', 1)[0]
        if path in ('/metrics', '/-/healthy'):
            self._send(405, b'method not allowed: use GET or HEAD\n', 'text/plain; charset=utf-8',
                       True, {'Allow': 'GET, HEAD'})
        else:
            self._send(404, b'not found: metrics are at /metrics\n', 'text/plain; charset=utf-8',
                       True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _answer(self, send_body):
        path = self.path.split('?', 1)[0]
        if path == '/metrics':
            storage = self.server.storage
            openmetrics = wants_openmetrics(self.headers.get('Accept'))
            gzipped = wants_gzip(self.headers.get('Accept-Encoding'))
            body = storage.payload().body(openmetrics, gzipped)
            headers = {'Vary': 'Accept, Accept-Encoding'}
            if gzipped:
                headers['Content-Encoding'] = 'gzip'
            storage.count('scrapes')
            self._send(200, body, OPENMETRICS_TYPE if openmetrics else TEXT_TYPE, send_body,
                       headers)
        elif path == '/-/healthy':
            self._send(200, b'wca endpoint is healthy\n', 'text/plain; charset=utf-8', send_body)
        else:
            self._send(404, b'not found: metrics are at /metrics\n', 'text/plain; charset=utf-8',
                       send_body)

    def _send(self, code, body, content_type, send_body, headers=None):
        self.send_response(code)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def version_string(self):
        return 'wca'

    def log_message(self, format, *args):
        log.debug('endpoint: %s %s', self.address_string(), format % args)
