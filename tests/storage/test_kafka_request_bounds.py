"""KafkaStorage with the producer's default settings against brokers that hold a connection and
never answer (a silent TCP listener, and one that answers a byte at a time): every store()
returns within max_timeout_in_seconds and a small margin, the failure is logged once and
counted, and close() at exit is bounded too. The broker requests themselves run in the sender
thread, each bounded by kafka-python's request timeout; the loop never waits for them."""
import logging
import socket
import threading
import time

import pytest

from kafka_broker import wait_until
from wca.metrics import Metric, MetricType

MAX_TIMEOUT = 0.5
MARGIN = 0.3


def metrics_of(iteration):
    return [Metric('test_iteration', iteration, {}, MetricType.GAUGE, 'which store() call')]


class Listener:
    """Accepts connections on 127.0.0.1 and never answers ('silent'), or answers whatever it
    is asked with a Kafka-framed response whose bytes come one every 0.2 s ('trickle')."""

    def __init__(self, mode):
        self.mode = mode
        self.accepted = 0
        self._socket = socket.socket()
        self._socket.bind(('127.0.0.1', 0))
        self._socket.listen(64)
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._threads = []
        self._connections = []

    def __enter__(self):
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for connection in self._connections:
            connection.close()
        self._socket.close()

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except socket.timeout:
                continue
            self.accepted += 1
            self._connections.append(connection)
            if self.mode == 'trickle':
                self._spawn(self._trickle, connection)

    def _trickle(self, connection):
        connection.settimeout(0.05)
        while not self._stop.is_set():
            try:
                request = connection.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not request:
                return
            # size, then the correlation id of the request, then the body: a byte at a time
            answer = (1000).to_bytes(4, 'big') + request[8:12] + bytes(996)
            for i in range(len(answer)):
                if self._stop.wait(0.2):
                    return
                try:
                    connection.sendall(answer[i:i + 1])
                except OSError:
                    return


@pytest.mark.parametrize('mode', ['silent', 'trickle'])
def test_store_is_bounded_with_the_default_producer_settings(mode, storages, caplog):
    caplog.set_level(logging.INFO, logger='wca.storage.kafka')
    with Listener(mode) as broker:
        storage = storages(topic='wca-bounds', brokers_ips=['127.0.0.1:%d' % broker.port],
                           max_timeout_in_seconds=MAX_TIMEOUT)
        durations = []
        for i in range(10):
            started = time.monotonic()
            storage.store(metrics_of(i))
            durations.append(time.monotonic() - started)
        assert max(durations) < MAX_TIMEOUT + MARGIN, durations
        assert sum(durations) < 2 * MAX_TIMEOUT + 10 * 0.05, durations  # paid once, not each time
        assert broker.accepted >= 1  # it was really asked
        # The failed attempt is counted and logged once (the producer gives up on its own).
        assert wait_until(lambda: storage.counts()['send_errors'] >= 1, timeout=10), \
            storage.counts()
        values = {m.name: m.value for m in storage.metrics()}
        assert values['wca_kafka_up'] == 0
        started = time.monotonic()
        storage.close(timeout=MAX_TIMEOUT)
        assert time.monotonic() - started < MAX_TIMEOUT + 1
    counts = storage.counts()
    assert counts['delivered'] == 0 and counts['dropped'] == 10 and counts['queued'] == 0
    messages = [r.getMessage() for r in caplog.records if r.name == 'wca.storage.kafka']
    assert len([m for m in messages if 'wait in a queue' in m]) == 1, messages
