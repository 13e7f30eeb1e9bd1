"""The part of KubernetesNode and MesosNode that talks to an orchestrator over HTTP(S) and lives
with its failures.

JsonClient fetches one JSON document with `requests`, bounding the whole request (connect, TLS
handshake, headers and body) by one timeout, and turns every way it can fail into a FetchError
with a reason. check_endpoint is the one rule for an orchestrator's URL: https://, or http://
only with allow_plain_http and never with credentials. TaskListKeeper keeps the last good task
list for a grace period, logs a failure once when it starts and once when it ends, and counts
failures by reason for `wca_node_errors_total{reason}`.

Secrets (tokens) are passed to JsonClient only in headers, never kept in the messages: every
message is built here from the error's type, and any text taken from an exception or a
response is scrubbed of the secrets the caller names.
"""
import errno
import json
import logging
import os
import socket
import ssl
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.connection
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout
from urllib3.util.ssl_ import create_urllib3_context

from wca.metrics import Metric, MetricName
from wca.nodes.base import Task
from wca.tls import SSL, set_minimum_tls12

log = logging.getLogger(__name__)

# Reasons exported (at 0) from the start, so a rate() over them works before the first failure.
REASONS = ('connection', 'timeout', 'tls', 'http_4xx', 'http_5xx', 'invalid_json',
           'invalid_payload')
MAX_BODY_BYTES = 256 << 20  # a PodList of thousands of pods is tens of MB
_ERROR_BODY_BYTES = 4096  # what is read of an error response, for its message


class FetchError(Exception):
    """The orchestrator could not be asked, or answered nonsense. `reason` is a metric label."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def check_endpoint(key: str, url: str, allow_plain_http: bool = False,
                   credentials: Optional[str] = None) -> str:
    """A config check of an orchestrator's http(s) URL; returns it without a trailing '/'.

    Plain http:// lets whoever holds the port (a local user, on a free or an old read-only
    port) answer as the orchestrator and read what is sent: it needs `allow_plain_http`, and
    `credentials` (what would be sent: a token, a client certificate) never go over it."""
    if not isinstance(url, str):
        raise ValueError('%s: expected an http:// or https:// URL' % key)
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ValueError('%s: expected an http:// or https:// URL, got %s' % (key, safe_url(url)))
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError('%s: bad port in %s' % (key, safe_url(url)))
    if parts.username is not None:
        credentials = credentials or 'the user and password in the URL'
    if parts.scheme == 'http' and credentials:
        raise ValueError('%s: %s would go in clear to %s; use https:// (allow_plain_http does '
                         'not allow credentials over http://)' % (key, credentials, safe_url(url)))
    if parts.scheme == 'http' and not allow_plain_http:
        raise ValueError('%s: plain http:// (%s) lets whoever holds that port answer as the '
                         'orchestrator; use https://, or set allow_plain_http: true to accept '
                         'that' % (key, safe_url(url)))
    return url.rstrip('/')


def safe_url(url: str) -> str:
    """The URL without user:password@ and without the query, for messages."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition('@')[2]
        return urlunsplit((parts.scheme, netloc, parts.path, '', ''))
    except ValueError:
        return '(unparsable URL)'


class _Deadline:
    """The one bound of a whole request: at `seconds` from now it shuts down every socket the
    request made or reused, so neither a slow TLS handshake, nor headers or a body sent a byte
    at a time can hold the loop (a socket timeout applies to each read, not to all of them).

    It follows the request through the connection classes below, which tell the deadline of
    the current thread about each socket they open or reuse."""

    _current = threading.local()

    def __init__(self, seconds: float):
        self.fired = False
        self._done = False
        self._sockets = []  # type: List[socket.socket]
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self):
        _Deadline._current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc):
        _Deadline._current.deadline = None
        self._timer.cancel()
        with self._lock:  # after this, no socket is shut down: it may go back to the pool
            self._done = True
            for sock in self._sockets:
                sock.close()  # the duplicate only
            self._sockets = []

    @classmethod
    def watch(cls, sock):
        """Called for each socket of the current thread's request (if it has a deadline)."""
        deadline = getattr(cls._current, 'deadline', None)
        if deadline is None or not isinstance(sock, socket.socket) or sock.fileno() < 0:
            return
        # A duplicate of the descriptor: a TLS wrapper takes the socket's own over (the
        # handshake runs after that), and a closed connection's number may be reused.
        copy = socket.socket(sock.family, sock.type, sock.proto, os.dup(sock.fileno()))
        with deadline._lock:
            if deadline._done:
                copy.close()
                return
            deadline._sockets.append(copy)
            if deadline.fired:
                _shutdown(copy)

    def _fire(self):
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)  # the connection's, for every descriptor of it
    except OSError:
        pass


class _WatchedConnection:
    """A connection whose new socket is watched by the current request's deadline (from the
    TCP connect on: the TLS handshake is inside)."""

    def _new_conn(self):
        sock = super()._new_conn()
        _Deadline.watch(sock)
        return sock


class _WatchedPool:
    """A pool that shows a reused connection's socket to the current request's deadline."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _Deadline.watch(getattr(conn, 'sock', None))
        return conn


class _HTTPConnection(_WatchedConnection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(_WatchedPool, urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_WatchedPool, urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """Connections watched by the request's deadline; every HTTPS connection with TLS 1.2 or
    newer (urllib3 1.26 on Python 3.6 allows older)."""

    def init_poolmanager(self, *args, **kwargs):
        context = create_urllib3_context()
        set_minimum_tls12(context)
        kwargs['ssl_context'] = context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {'http': _HTTPPool, 'https': _HTTPSPool}


class JsonClient:
    """Fetches JSON documents from one orchestrator, reusing connections between iterations.

    timeout: seconds for the whole request, from connect to the last byte of the body.
    tls: verify and cert as `requests` takes them (SSL.requests_kwargs()).
    """

    def __init__(self, timeout: float, tls: Optional[Dict[str, object]] = None):
        self.timeout = float(timeout)
        self.tls = dict(tls or SSL().requests_kwargs())
        self._session = None  # type: Optional[requests.Session]

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # Proxies, .netrc credentials and CA bundles from the environment are not used: the
        # config says where the orchestrator is and how it is trusted.
        session.trust_env = False
        adapter = _Adapter(max_retries=0)
        session.mount('https://', adapter)
        session.mount('http://', adapter)
        return session

    def close(self):
        if self._session is not None:
            self._session.close()
            self._session = None

    def request(self, method: str, url: str, headers: Optional[Dict[str, str]] = None,
                body: Optional[object] = None, secrets: Iterable[str] = (),
                deadline: Optional[float] = None) -> object:
        """The decoded JSON answer; raises FetchError. `secrets` are scrubbed from messages.
        `deadline` (time.monotonic()) bounds several requests together; default: timeout."""
        started = time.monotonic()
        deadline = min(deadline or float('inf'), started + self.timeout)
        if deadline - started < 0.001:
            raise FetchError('timeout', 'no complete answer within the timeout of %g s' %
                             self.timeout)
        if self._session is None:
            self._session = self._new_session()
        response = None
        guard = _Deadline(deadline - started)
        ok = False
        try:
            with guard:
                all_headers = {'Accept': 'application/json'}
                all_headers.update(headers or {})
                response = self._session.request(
                    method, url, headers=all_headers, json=body, stream=True,
                    allow_redirects=False, timeout=Timeout(total=deadline - started),
                    verify=self.tls.get('verify', True), cert=self.tls.get('cert'))
                status = response.status_code
                if not 200 <= status < 300:
                    text = _read_body(response, deadline, _ERROR_BODY_BYTES, truncate=True)
                    raise FetchError(
                        'http_%dxx' % (status // 100) if 400 <= status < 600 else 'http_status',
                        'HTTP %d %s%s' % (status, _scrub(response.reason or '', secrets),
                                          _error_detail(text, secrets)))
                data = _read_body(response, deadline, MAX_BODY_BYTES)
            if guard.fired:  # urllib3 1.26 may return a cut body without an error
                raise requests.exceptions.ReadTimeout()
            ok = True
        except FetchError:
            raise
        except Exception as e:  # an outside system: whatever requests/urllib3/ssl raise
            raise _classify(e, guard.fired or time.monotonic() >= deadline - 0.01, self.timeout,
                            secrets)
        finally:
            if response is not None:
                response.close()
            if not ok:
                self.close()  # a connection in an unknown state is not reused
        try:
            return json.loads(data.decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as e:
            raise FetchError('invalid_json', 'the answer is not JSON (%s)' % _first_line(
                _scrub(str(e), secrets)))


def _read_body(response, deadline: float, limit: int, truncate: bool = False) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                break
            raise FetchError('invalid_payload', 'the answer is larger than %d MB' % (limit >> 20))
        if time.monotonic() > deadline:
            raise requests.exceptions.ReadTimeout('the answer took longer than the timeout')
    return b''.join(chunks)


def _error_detail(body: bytes, secrets) -> str:
    """The `message` of a Kubernetes Status (or Mesos' plain text), shortened: it says why."""
    text = body.decode('utf-8', 'replace').strip()
    try:
        decoded = json.loads(text)
        if isinstance(decoded, dict) and isinstance(decoded.get('message'), str):
            text = decoded['message']
    except ValueError:
        pass
    text = _first_line(_scrub(text, secrets))
    return ': ' + text if text else ''


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ''
    return line if len(line) <= limit else line[:limit - 3] + '...'


def _scrub(text: str, secrets) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, '(hidden)')
    return text


def _causes(error):
    """The error and everything it wraps (urllib3 and requests nest them in args and reason)."""
    seen, todo = [], [error]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        todo.extend([getattr(e, 'reason', None), e.__cause__, e.__context__])
        todo.extend(a for a in e.args if isinstance(a, BaseException))
    return seen


def _classify(error: Exception, late: bool, timeout: float, secrets) -> FetchError:
    causes = _causes(error)
    if late or any(isinstance(e, (socket.timeout, requests.exceptions.Timeout)) for e in causes):
        return FetchError('timeout', 'no complete answer within the timeout of %g s' % timeout)
    for e in causes:
        if isinstance(e, ssl.SSLError):
            verify = getattr(e, 'verify_message', None)
            detail = 'certificate verify failed: %s' % verify if verify else str(e)
            return FetchError('tls', 'TLS failed: %s' % _first_line(_scrub(detail, secrets)))
    if any(isinstance(e, requests.exceptions.SSLError) for e in causes):
        return FetchError('tls', 'TLS failed: %s' % _first_line(_scrub(str(causes[-1]), secrets)))
    for e in causes:
        if isinstance(e, ConnectionRefusedError) or getattr(e, 'errno', None) == errno.ECONNREFUSED:
            return FetchError('connection', 'connection refused')
    for e in reversed(causes):
        if isinstance(e, OSError) and e.errno:
            return FetchError('connection', 'connection failed: %s' % os.strerror(e.errno))
    innermost = causes[-1]
    return FetchError('connection', 'connection failed: %s: %s' % (
        type(innermost).__name__, _first_line(_scrub(str(innermost), secrets))))


class TaskListKeeper:
    """What a node answers while its orchestrator fails: the last good task list for
    `grace_period` seconds (counted from the last success), then none. Logs a failure once when
    it starts, once when the grace period runs out and once when it ends; counts every failed
    fetch, and other dropped things (a malformed task, a bad quantity), by reason."""

    def __init__(self, source: str, grace_period: float,
                 clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.grace_period = float(grace_period)
        self._clock = clock
        self._errors = {reason: 0 for reason in REASONS}  # type: Dict[str, int]
        self._last_good = []  # type: List[Task]
        self._last_good_at = None  # type: Optional[float]
        self._failing_since = None  # type: Optional[float]
        self._failures = 0
        self._expired_logged = False

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def count(self, reason: str, n: int = 1):
        self._errors[reason] = self._errors.get(reason, 0) + n

    def errors_by_reason(self) -> Dict[str, int]:
        return dict(self._errors)

    def succeeded(self, tasks: List[Task]) -> List[Task]:
        now = self._clock()
        if self._failing_since is not None:
            log.info('%s: task discovery works again after %.0f s and %d failed attempts; '
                     '%d tasks', self.source, now - self._failing_since, self._failures,
                     len(tasks))
        self._failing_since = None
        self._last_good, self._last_good_at = tasks, now
        return tasks

    def failed(self, error: FetchError) -> List[Task]:
        """Logs a warning when failing starts while the last tasks are kept, an error when
        there are none (at the start, or when the grace period runs out)."""
        now = self._clock()
        self.count(error.reason)
        self._failures += 1
        fresh = self._last_good_at is not None and now - self._last_good_at <= self.grace_period
        if self._failing_since is None:
            self._failing_since, self._failures, self._expired_logged = now, 1, not fresh
            if fresh:
                log.warning('%s: task discovery failed (%s): %s; keeping the last %d tasks for up'
                            ' to %g s', self.source, error.reason, error.message,
                            len(self._last_good), self.grace_period)
            else:
                log.error('%s: task discovery failed (%s): %s; no tasks until it works',
                          self.source, error.reason, error.message)
        elif not fresh and not self._expired_logged:
            self._expired_logged = True
            log.error('%s: task discovery still fails (%s: %s) after the grace period of %g s;'
                      ' no tasks until it works', self.source, error.reason, error.message,
                      self.grace_period)
        else:
            log.debug('%s: task discovery failed again (%s): %s', self.source, error.reason,
                      error.message)
        return list(self._last_good) if fresh else []

    def metrics(self, labels: Optional[Dict[str, str]] = None) -> List[Metric]:
        """`wca_node_errors_total{reason}` for every reason seen (and the usual ones at 0)."""
        make = Metric.create_metric_with_metadata
        return [make(MetricName.WCA_NODE_ERRORS, count, dict(labels or {}, reason=reason))
                for reason, count in sorted(self._errors.items())]


class WarnOnce:
    """Warnings about things an orchestrator keeps sending (a malformed pod, a bad quantity):
    each logged and counted the first time, then quiet while it stays in the answers."""

    def __init__(self, keeper: TaskListKeeper):
        self._keeper = keeper
        self._warned = set()
        self._seen = set()

    def __call__(self, key, reason: str, message: str, *args):
        self._seen.add(key)
        if key not in self._warned:
            self._warned.add(key)
            self._keeper.count(reason)
            log.warning('%s: ' + message, self._keeper.source, *args)

    def end_of_answer(self):
        """Forgets what the last answer no longer had (so a task coming back is warned again)."""
        self._warned &= self._seen
        self._seen = set()
