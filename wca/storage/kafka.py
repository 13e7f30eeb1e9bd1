"""KafkaStorage: each store() as Prometheus text to a Kafka topic, with kafka-python.

store() encodes the metrics (one millisecond timestamp for the call), splits the text at
max_message_bytes on metric-family boundaries, and appends the parts to a queue bounded in bytes;
a sender thread delivers the queue one message at a time, in order, and retries while the
brokers are away. So the loop never waits for Kafka longer than max_timeout_in_seconds, a broker
that is down (at start too) costs only memory up to queue_max_bytes, and when the queue is full
the oldest messages go first. Every message ends up delivered, dropped (queue full, or left at
exit) or failed (refused by the broker for good), and each is counted (see metrics()).

Nothing connects before the first store() (or start()): --check-config builds this component.
"""
import atexit
import collections
import difflib
import logging
import socket
import threading
import time
from typing import Dict, List, Optional, Union

from dataclasses import dataclass, field

from wca.config import Numeric, Str
from wca.exposition import encode
from wca.metrics import Metric, MetricName
from wca.storage.base import Storage
from wca.storage.families import sample_count, split_exposition
from wca.tls import SSL

log = logging.getLogger(__name__)

_RETRY_MIN = 0.2  # seconds between attempts while the brokers are away: doubles up to a cap
_STALL_SECONDS = 5.0  # an attempt unanswered this long means the brokers are away
_POLL_SECONDS = 0.2  # how often the sender looks up from a pending delivery
_REQUEST_OVERHEAD = 1024  # bytes kafka-python adds around a message (batch and record headers)

# Producer settings this component sets itself, and why they cannot be given in extra_config.
_NOT_IN_EXTRA = {
    'bootstrap_servers': 'give the brokers in brokers_ips',
    'ssl_context': 'give TLS settings with ssl: !SSL',
    'key_serializer': 'messages are Prometheus text, keyed by host name',
    'value_serializer': 'messages are Prometheus text, keyed by host name',
    'partitioner': 'not configurable from YAML',
    'kafka_client': 'not configurable from YAML',
    'selector': 'not configurable from YAML',
    'metric_reporters': 'not configurable from YAML',
    'sasl_oauth_token_provider': 'not configurable from YAML',
    'socket_options': 'not configurable from YAML',
    'transactional_id': 'transactions are not used',
}
# Names of the original agent's producer (librdkafka) that differ from kafka-python's by more
# than '.' -> '_' ('linger.ms' -> 'linger_ms' needs no entry).
_LIBRDKAFKA_NAMES = {
    'sasl.username': 'sasl_plain_username',
    'sasl.password': 'sasl_plain_password',
    'sasl.mechanisms': 'sasl_mechanism',
    'compression.codec': 'compression_type',
    'message.max.bytes': 'max_request_size',
    'queue.buffering.max.ms': 'linger_ms',
    'message.timeout.ms': 'delivery_timeout_ms',
    'message.send.max.retries': 'retries',
    'request.required.acks': 'acks',
    'max.in.flight': 'max_in_flight_requests_per_connection',
    'socket.send.buffer.bytes': 'send_buffer_bytes',
    'socket.receive.buffer.bytes': 'receive_buffer_bytes',
    'ssl.ca.location': 'ssl_cafile',
    'ssl.certificate.location': 'ssl_certfile',
    'ssl.key.location': 'ssl_keyfile',
    'ssl.key.password': 'ssl_password',
}
_SECURITY_PROTOCOLS = ('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL')
_COMPRESSION = ('gzip', 'snappy', 'lz4', 'zstd')


def _kafka():
    """kafka-python, imported only when a KafkaStorage is configured: every other agent is
    spared its start-up time and memory."""
    import kafka.codec
    import kafka.errors
    import kafka.sasl
    return kafka


# gzip by default: kafka-python checksums what it sends with a pure-Python CRC32C, which costs
# about 0.1 s of CPU per MB; compressed text is ten times smaller (and gzip itself is in C).
_DEFAULTS = {'compression_type': 'gzip'}

ExtraValue = Union[bool, int, float, str, List[int]]


class _Message:
    __slots__ = ('data', 'samples', 'done')

    def __init__(self, data: bytes, samples: int):
        self.data = data
        self.samples = samples
        self.done = False


@dataclass(eq=False)  # compared and hashed by identity: it holds a queue and a thread
class KafkaStorage(Storage):
    """Prometheus text to a Kafka topic, delivered in the background (see the module docstring).

    topic: the topic.
    brokers_ips: bootstrap brokers as host:port (names or addresses; [v6]:port).
    max_timeout_in_seconds: the longest store() waits for its messages to be acknowledged while
      the brokers answer (while they do not, it does not wait); also how long the agent tries to
      deliver what is queued when it exits.
    extra_config: kafka-python producer settings (KafkaProducer's keyword arguments: SASL,
      compression, acks, timeouts...); the original's librdkafka names ('compression.type',
      'sasl.username') are translated. An unknown name is a config error.
    ssl: TLS to the brokers (CA, client certificate and key); sets security_protocol SSL unless
      extra_config says SASL_SSL.
    max_message_bytes: the largest message; a longer exposition is split on family boundaries
      (a family longer than this is split by samples, its HELP and TYPE lines in each part).
    queue_max_bytes: memory for messages not delivered yet; when full, the oldest go first.
    broker_ips: another spelling of brokers_ips (the original's documentation used it).
    """
    topic: Str
    brokers_ips: List[str] = field(default_factory=lambda: ['127.0.0.1:9092'])
    max_timeout_in_seconds: Numeric(0, 5) = 0.5
    extra_config: Optional[Dict[str, ExtraValue]] = None
    ssl: Optional[SSL] = None
    max_message_bytes: Numeric(1024, 100 * 2 ** 20) = 1000000
    queue_max_bytes: Numeric(1024, 2 ** 40) = 64 * 2 ** 20
    broker_ips: Optional[List[str]] = None

    def __post_init__(self):
        if not isinstance(self.topic, str) or not self.topic or len(self.topic) > 249 or any(
                c not in _TOPIC_CHARS for c in self.topic) or self.topic in ('.', '..'):
            raise ValueError('topic: expected a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)')
        if self.broker_ips is not None:
            if self.brokers_ips != ['127.0.0.1:9092']:
                raise ValueError('broker_ips: give either brokers_ips or broker_ips, not both')
            self.brokers_ips = self.broker_ips
        if not self.brokers_ips:
            raise ValueError('brokers_ips: expected at least one host:port')
        for entry in self.brokers_ips:
            _check_broker(entry)
        self.max_message_bytes = int(self.max_message_bytes)
        self.queue_max_bytes = int(self.queue_max_bytes)
        if self.queue_max_bytes < self.max_message_bytes:
            raise ValueError('queue_max_bytes: must be at least max_message_bytes (%d)'
                             % self.max_message_bytes)
        self._config = _producer_config(self.extra_config or {}, self.ssl is not None)
        limit = self._config.get('max_request_size',
                                 _kafka().KafkaProducer.DEFAULT_CONFIG['max_request_size'])
        if self.max_message_bytes + _REQUEST_OVERHEAD > limit:
            raise ValueError('max_message_bytes: must be at most max_request_size - %d = %d '
                             '(raise max_request_size in extra_config, within the brokers\' '
                             'message.max.bytes)' % (_REQUEST_OVERHEAD, limit - _REQUEST_OVERHEAD))
        self._key = socket.gethostname().encode('utf-8', 'replace')
        self._where = 'Kafka topic %s at %s' % (self.topic, ','.join(self.brokers_ips))
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue = collections.deque()  # _Message, oldest first, not yet sent
        self._in_flight = None  # type: Optional[_Message]
        self._attempt_started = None  # type: Optional[float]  monotonic time
        self._queued_bytes = 0  # queue + in flight
        self._produced = self._delivered = self._dropped_messages = self._failed = 0
        self._send_errors = 0
        self._dropped = 0  # metrics (samples) not delivered, for Storage.dropped_count()
        self._down = False  # the brokers do not answer (logged when it starts and ends)
        self._slow = False  # a store() waited in vain: the next ones do not wait
        self._down_since = 0.0
        self._dropped_when_down = 0
        self._reported = set()  # kinds of permanent failure logged already
        self._thread = None  # type: Optional[threading.Thread]
        self._closing = False  # close() waits for the queue to empty: no backoff pauses
        self._generation = 0  # of the sender thread; a newer one (or close()) stops an older

    # --- the loop's side ---------------------------------------------------------------

    def store(self, metrics: List[Metric]) -> None:
        text, dropped = encode(metrics, int(time.time() * 1000))
        parts, too_long = split_exposition(text.encode('utf-8'), self.max_message_bytes)
        if too_long:
            self._report_once('too long', 'a sample longer than max_message_bytes (%d) was '
                              'dropped; raise max_message_bytes' % self.max_message_bytes)
        messages = [_Message(part, sample_count(part)) for part in parts]
        with self._changed:
            self._dropped += dropped + too_long
            for message in messages:
                self._queue.append(message)
                self._queued_bytes += len(message.data)
            self._produced += len(messages)
            evicted = self._evict()
            started = self._attempt_started
        self.start()
        if evicted:
            self._set_down('no acknowledgement, and the queue is full')
        elif started is not None and time.monotonic() - started > _STALL_SECONDS:
            self._set_down('no answer for %.0f s' % (time.monotonic() - started))
        wait = messages and self.max_timeout_in_seconds > 0 and not self._down and not self._slow
        with self._changed:
            # The sender is woken last: from now on it competes with the loop for the GIL.
            self._changed.notify_all()
            if wait:
                deadline = time.monotonic() + self.max_timeout_in_seconds
                last = messages[-1]
                while not last.done:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        # Not again until the brokers acknowledge something: the loop pays
                        # max_timeout_in_seconds once, not every iteration of an outage.
                        self._slow = True
                        break
                    self._changed.wait(remaining)

    def _evict(self) -> int:
        """Drops the oldest waiting messages while the queue is over its bound (lock held);
        returns how many."""
        evicted = 0
        while self._queued_bytes > self.queue_max_bytes and self._queue:
            message = self._queue.popleft()
            self._queued_bytes -= len(message.data)
            self._dropped_messages += 1
            self._dropped += message.samples
            message.done = True
            evicted += 1
        return evicted

    def start(self):
        """Starts the sender (store() does it too): it connects in the background."""
        with self._lock:
            if self._thread is not None:
                return
            self._closing = False
            self._generation += 1
            kafka_log = logging.getLogger('kafka')
            if kafka_log.level == logging.NOTSET:
                # kafka-python logs every failed reconnect; the storage logs an outage once
                # (when it starts and when it ends). `-l kafka:warning` shows them again.
                kafka_log.setLevel(logging.CRITICAL)
            self._thread = threading.Thread(target=self._run, args=(self._generation,),
                                            name='kafka-sender', daemon=True)
            self._thread.start()
        atexit.register(self.close)

    def close(self, timeout: Optional[float] = None):
        """Delivers what is queued for at most `timeout` seconds (default:
        max_timeout_in_seconds), then stops; what is left is counted as dropped."""
        atexit.unregister(self.close)
        timeout = self.max_timeout_in_seconds if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._changed:
            thread = self._thread
            if thread is None:
                return
            self._closing = True
            self._changed.notify_all()
            while self._queue or self._in_flight is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            self._generation += 1  # the sender stops (also while a send is pending)
            left = list(self._queue)
            if self._in_flight is not None:
                left.append(self._in_flight)  # its fate is unknown: counted as not delivered
            self._queue.clear()
            for message in left:
                self._queued_bytes -= len(message.data)
                self._dropped_messages += 1
                self._dropped += message.samples
                message.done = True
            self._in_flight = None
            self._thread = None
            self._changed.notify_all()
        if left:
            log.warning('%s: %d messages (%d bytes) not delivered at exit (dropped)', self._where,
                        len(left), sum(len(m.data) for m in left))
        thread.join(_POLL_SECONDS * 2)

    def metrics(self, labels: Optional[Dict[str, str]] = None) -> List[Metric]:
        """The storage's own metrics (queue and delivery counters), labelled with `labels` and
        the topic. The runner adds them to the agent's internal metrics."""
        labels = dict(labels or {}, topic=self.topic)
        with self._lock:
            values = [
                (MetricName.WCA_KAFKA_QUEUE_BYTES, self._queued_bytes),
                (MetricName.WCA_KAFKA_QUEUE_MESSAGES, len(self._queue) + (
                    self._in_flight is not None)),
                (MetricName.WCA_KAFKA_MESSAGES_DELIVERED, self._delivered),
                (MetricName.WCA_KAFKA_MESSAGES_DROPPED, self._dropped_messages),
                (MetricName.WCA_KAFKA_MESSAGES_FAILED, self._failed),
                (MetricName.WCA_KAFKA_SEND_ERRORS, self._send_errors),
                (MetricName.WCA_KAFKA_UP, 0 if self._down else 1),
            ]
        make = Metric.create_metric_with_metadata
        return [make(name, value, labels) for name, value in values]

    def counts(self) -> Dict[str, int]:
        """Messages made by store() and what became of them: produced == delivered + dropped +
        failed + queued, always."""
        with self._lock:
            return {'produced': self._produced, 'delivered': self._delivered,
                    'dropped': self._dropped_messages, 'failed': self._failed,
                    'queued': len(self._queue) + (self._in_flight is not None),
                    'queued_bytes': self._queued_bytes, 'send_errors': self._send_errors}

    # --- the sender thread ---------------------------------------------------------------

    def _run(self, generation: int):
        """The sender: one message at a time, oldest first, until close() (a newer generation)."""
        sender = _Sender(self)
        backoff = _RETRY_MIN
        cap = max(_RETRY_MIN, min(30.0, self._config.get('reconnect_backoff_max_ms', 30000) / 1000.0))
        try:
            while True:
                with self._changed:
                    while not self._queue and self._generation == generation and not self._closing:
                        self._changed.wait()
                    if self._generation != generation or not self._queue:
                        return
                    message = self._in_flight = self._queue.popleft()
                    self._attempt_started = time.monotonic()
                try:
                    outcome, problem = sender.deliver(message, generation)
                except Exception as e:  # a bug or an unexpected library error: keep the message
                    log.exception('%s: unexpected error while sending', self._where)
                    outcome, problem = 'retry', _describe(e)
                with self._changed:
                    self._attempt_started = None
                    if self._in_flight is message:  # else close() counted it
                        self._in_flight = None
                        if outcome == 'retry':
                            self._queue.appendleft(message)
                            self._send_errors += 1
                            self._evict()
                        else:
                            self._queued_bytes -= len(message.data)
                            message.done = True
                            if outcome == 'delivered':
                                self._delivered += 1
                                self._slow = False
                            else:
                                self._failed += 1
                                self._dropped += message.samples
                    self._changed.notify_all()
                    if self._generation != generation:
                        return
                if outcome == 'retry':
                    self._set_down(problem)
                    deadline = time.monotonic() + backoff
                    with self._changed:  # woken early only by close()
                        while self._generation == generation and not self._closing:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                break
                            self._changed.wait(remaining)
                    backoff = min(backoff * 2, cap)
                    continue
                backoff = _RETRY_MIN
                self._set_up()
                if outcome == 'failed':
                    self._report_once(problem.partition(':')[0], 'a message was refused for good '
                                      '(dropped, counted in wca_kafka_messages_failed_total): '
                                      + problem)
        finally:
            sender.close()

    # --- logging changes, not every attempt ----------------------------------------------

    def _set_down(self, problem):
        with self._lock:
            if self._down:
                return
            self._down = True
            self._down_since = time.monotonic()
            self._dropped_when_down = self._dropped_messages
        log.warning('%s: %s; messages wait in a queue of at most %d bytes (the oldest dropped '
                    'when it is full) until the brokers answer', self._where, problem,
                    self.queue_max_bytes)

    def _set_up(self):
        with self._lock:
            if not self._down:
                return
            self._down = False
            seconds = time.monotonic() - self._down_since
            dropped = self._dropped_messages - self._dropped_when_down
            queued = len(self._queue)
        log.info('%s: delivering again after %.0f s; %d messages dropped meanwhile (queue full), '
                 '%d still queued', self._where, seconds, dropped, queued)

    def _report_once(self, kind, message):
        with self._lock:
            if kind in self._reported or len(self._reported) > 100:
                return
            self._reported.add(kind)
        log.error('%s: %s', self._where, message)


class _Sender:
    """The producer of one sender thread, made when first needed (it connects)."""

    def __init__(self, storage: KafkaStorage):
        self.storage = storage
        self.producer = None

    def deliver(self, message: _Message, generation: int):
        """('delivered' | 'retry' | 'failed' | 'closed', problem text)."""
        storage = self.storage
        if self.producer is None:
            try:
                config = dict(storage._config, bootstrap_servers=list(storage.brokers_ips))
                if storage.ssl is not None:
                    config['ssl_context'] = storage.ssl.client_context()
                self.producer = _kafka().KafkaProducer(**config)
            except Exception as e:  # brokers away, TLS files unreadable...: logged once, retried
                return 'retry', 'cannot connect: %s' % _describe(e)
            log.info('%s: connected', storage._where)
        try:
            future = self.producer.send(storage.topic, value=message.data, key=storage._key)
        except _kafka().errors.KafkaError as e:
            return ('retry' if getattr(e, 'retriable', False) else 'failed'), _describe(e)
        while True:
            try:
                future.get(timeout=_POLL_SECONDS)
                return 'delivered', None
            except _kafka().errors.KafkaError as e:
                if future.is_done:
                    return ('retry' if getattr(e, 'retriable', False) else 'failed'), _describe(e)
            # Still pending. Giving up on it now could deliver it twice (it may yet arrive);
            # kafka-python settles it within delivery_timeout_ms.
            if storage._generation != generation:
                return 'closed', None
            started = storage._attempt_started
            if started is not None and time.monotonic() - started > _STALL_SECONDS:
                storage._set_down('no answer for %.0f s' % (time.monotonic() - started))

    def close(self):
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # closing must not raise at exit
                log.debug('closing the producer failed', exc_info=True)


_TOPIC_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-')


def _describe(error: Exception) -> str:
    text = str(error)
    name = type(error).__name__
    return name if not text or text == name else '%s: %s' % (name, text)


def _check_broker(entry):
    if not isinstance(entry, str) or '://' in entry or ' ' in entry:
        raise ValueError('brokers_ips: expected host:port entries')
    host, sep, port = entry.rpartition(':')
    if host.startswith('['):
        ok = host.endswith(']') and len(host) > 2
    else:
        ok = bool(host) and ':' not in host
    if not sep or not ok or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('brokers_ips: %r is not host:port (an IPv6 address goes in brackets: '
                         '[::1]:9092)' % entry)


def _producer_config(extra: Dict[str, object], with_ssl: bool) -> Dict[str, object]:
    """extra_config checked against what KafkaProducer accepts, names translated, values of
    the right type; a mistake is a ValueError naming the key (never showing the value)."""
    known = _kafka().KafkaProducer.DEFAULT_CONFIG
    config = dict(_DEFAULTS)
    for key, value in extra.items():
        name = _LIBRDKAFKA_NAMES.get(key) or str(key).replace('.', '_')
        where = 'extra_config: %s' % key
        if name in _NOT_IN_EXTRA:
            raise ValueError('%s: not allowed here: %s' % (where, _NOT_IN_EXTRA[name]))
        if name not in known:
            close = difflib.get_close_matches(name, [k for k in known if k not in _NOT_IN_EXTRA],
                                              n=1)
            raise ValueError('%s: not a kafka-python producer setting%s (see KafkaProducer in '
                             'kafka-python\'s documentation)' % (
                                 where, '; did you mean %r?' % close[0] if close else ''))
        config[name] = _value(where, name, value, known[name])
    compression = config.get('compression_type')
    if compression is not None:
        if compression not in _COMPRESSION:
            raise ValueError('extra_config: compression_type: expected one of gzip, snappy, lz4, '
                             'zstd or none')
        if not getattr(_kafka().codec, 'has_' + compression)():
            raise ValueError('extra_config: compression_type: %s needs a Python package the '
                             'agent does not ship; use gzip' % compression)
    protocol = config.setdefault('security_protocol', 'SSL' if with_ssl else 'PLAINTEXT')
    if protocol not in _SECURITY_PROTOCOLS:
        raise ValueError('extra_config: security_protocol: expected one of %s'
                         % ', '.join(_SECURITY_PROTOCOLS))
    if with_ssl and protocol not in ('SSL', 'SASL_SSL'):
        raise ValueError('ssl: given, but extra_config.security_protocol is %s (use SSL or '
                         'SASL_SSL)' % protocol)
    if config.get('acks', 1) not in (0, 1, -1, 'all'):
        raise ValueError('extra_config: acks: expected 0, 1, -1 or all')
    if config.get('enable_idempotence') and config.get('acks', 1) not in (-1, 'all'):
        raise ValueError('extra_config: enable_idempotence: needs acks: all')
    if protocol.startswith('SASL_'):
        _check_sasl(config)
    return config


def _check_sasl(config):
    """What kafka-python would find wrong only when it connects."""
    mechanism = config.get('sasl_mechanism')
    mechanisms = _kafka().sasl.SASL_MECHANISMS
    if mechanism not in mechanisms:
        raise ValueError('extra_config: sasl_mechanism: expected one of %s with security_protocol %s'
                         % (', '.join(sorted(mechanisms)), config['security_protocol']))
    if mechanism == 'PLAIN' or mechanism.startswith('SCRAM-'):
        for key in ('sasl_plain_username', 'sasl_plain_password'):
            if not config.get(key):
                raise ValueError('extra_config: %s required for SASL %s' % (key, mechanism))
    elif mechanism == 'OAUTHBEARER':
        raise ValueError('extra_config: sasl_mechanism: OAUTHBEARER needs a token provider object, '
                         'which a YAML config cannot give')
    elif mechanism == 'GSSAPI' and not _has_module('gssapi'):
        raise ValueError('extra_config: sasl_mechanism: GSSAPI needs the Python package gssapi, '
                         'which the agent does not ship')


def _has_module(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def _value(where, name, value, default):
    """`value` as the type kafka-python expects for `name` (YAML and librdkafka configs give
    numbers and booleans as text)."""
    if name == 'acks' and value in ('all', '-1', '0', '1'):
        return value if value == 'all' else int(value)
    if name == 'api_version':
        if isinstance(value, str):
            try:
                return tuple(int(p) for p in value.split('.'))
            except ValueError:
                raise ValueError('%s: expected a version like 2.5.0' % where)
        if isinstance(value, list) and all(isinstance(v, int) for v in value):
            return tuple(value)
        raise ValueError('%s: expected a version like 2.5.0' % where)
    if name == 'compression_type' and isinstance(value, str):
        return None if value.lower() == 'none' else value.lower()
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ('true', 'false'):
            return value.lower() == 'true'
        if not isinstance(value, bool):
            raise ValueError('%s: expected true or false' % where)
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value) if '.' in value or value.lower() == 'inf' else int(value)
            except ValueError:
                raise ValueError('%s: expected a number' % where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 and (
                name != 'acks'):
            raise ValueError('%s: expected a number >= 0' % where)
        return value
    if isinstance(value, list):
        raise ValueError('%s: expected a single value' % where)
    if default is None and name.endswith(('_ms', '_bytes')):  # a number that may be unset
        return _value(where, name, value, 0)
    return value
