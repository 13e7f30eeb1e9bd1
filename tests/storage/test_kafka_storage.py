"""KafkaStorage against a real broker (Tansu) and a real consumer: what is read back, split
messages, TLS, the agent end to end; and the config checks, which need no broker."""
import logging
import socket
import ssl
import subprocess
import time

import pytest

from conftest import plugin_env, promtool_check, require_tool, wca_command, write_config
from exposition_text import expected, parse
from kafka_broker import Broker, iteration_of, TLSFront, consume, free_port, wait_until
from wca.metrics import Metric, MetricType
from wca.storage.kafka import KafkaStorage
from wca.tls import SSL


def metrics_of(iteration, tasks=3):
    """Metrics shaped like the agent's, with label values that need escaping."""
    out = []
    for t in range(tasks):
        labels = {'task_id': 'task-%d' % t, 'task_name': 'ns/"q"\\b\nline \u00fc', 'host': 'node'}
        out.append(Metric('task_cpu_usage_seconds', 1.5 * t + iteration, labels,
                          MetricType.COUNTER, 'CPU "time"\nused'))
        out.append(Metric('task_mem_usage_bytes', 1000 * t + iteration, labels, MetricType.GAUGE,
                          'memory'))
    out.append(Metric('test_iteration', iteration, {}, MetricType.GAUGE, 'which store() call'))
    return out


def test_consumer_reads_back_what_was_stored(kafka_broker, storages):
    storage = storages(topic='wca-metrics', brokers_ips=[kafka_broker.bootstrap])
    sent = [metrics_of(i) for i in range(3)]
    before = int(time.time() * 1000)
    for batch in sent:
        storage.store(batch)
    assert wait_until(lambda: storage.counts()['delivered'] == 3)
    after = int(time.time() * 1000)
    records = consume(kafka_broker.bootstrap, 'wca-metrics', 3)
    assert len(records) == 3
    assert [r.key for r in records] == [socket.gethostname().encode()] * 3
    for batch, record in zip(sent, records):
        parsed = parse(record.value.decode())
        assert {key: value for key, (value, _) in parsed.samples.items()} == expected(batch)
        stamps = set(stamp for _, stamp in parsed.samples.values())
        assert len(stamps) == 1  # one millisecond timestamp for the whole store() call
        assert before <= stamps.pop() <= after
        assert parsed.order == sorted(parsed.order)
        assert parsed.types['task_cpu_usage_seconds'] == 'counter'
        assert parsed.helps['task_cpu_usage_seconds'] == 'CPU "time"\nused'
    promtool_check(records[0].value)
    assert storage.counts() == {'produced': 3, 'delivered': 3, 'dropped': 0, 'failed': 0,
                                'queued': 0, 'queued_bytes': 0, 'send_errors': 0}
    assert storage.dropped_count() == 0


def test_large_exposition_is_split_on_family_boundaries_and_reassembles(kafka_broker, storages):
    limit = 4096
    storage = storages(topic='wca-split', brokers_ips=[kafka_broker.bootstrap],
                       max_message_bytes=limit)
    batch = metrics_of(7, tasks=120)  # each task family is several times the limit
    storage.store(batch)
    produced = storage.counts()['produced']
    assert produced >= 6
    assert wait_until(lambda: storage.counts()['delivered'] == produced)
    records = consume(kafka_broker.bootstrap, 'wca-split', produced)
    assert len(records) == produced
    merged = {}
    parts_of = {}
    for record in records:
        assert len(record.value) <= limit
        promtool_check(record.value)  # each part is an exposition of its own
        parsed = parse(record.value.decode())
        for name in set(name for name, _ in parsed.samples):
            assert name in parsed.types and name in parsed.helps, name  # headers in each part
            parts_of[name] = parts_of.get(name, 0) + 1
        assert not set(merged) & set(parsed.samples)  # no sample twice
        merged.update(parsed.samples)
    assert {key: value for key, (value, _) in merged.items()} == expected(batch)
    assert parts_of['task_cpu_usage_seconds'] >= 3 and parts_of['test_iteration'] == 1
    assert storage.dropped_count() == 0


def test_a_broker_down_at_start_is_retried_not_a_failure(tmp_path, storages, caplog):
    caplog.set_level(logging.INFO, logger='wca.storage.kafka')
    port = free_port()
    storage = storages(topic='wca-late', brokers_ips=['127.0.0.1:%d' % port],
                       max_timeout_in_seconds=0.3,
                       extra_config={'reconnect_backoff_max_ms': 200, 'api_version_auto_timeout_ms': 500})
    durations = []
    for i in range(4):
        started = time.monotonic()
        storage.store(metrics_of(i))
        durations.append(time.monotonic() - started)
    assert max(durations) < 0.3 + 0.2, durations
    assert wait_until(lambda: storage.metrics()[-1].value == 0)  # wca_kafka_up
    assert storage.counts()['queued'] == 4 and storage.counts()['send_errors'] >= 1
    broker = Broker(require_tool('tansu', 'tools/install-test-tools'), tmp_path, port=port).start()
    try:
        assert wait_until(lambda: storage.counts()['delivered'] == 4, timeout=20), storage.counts()
        records = consume(broker.bootstrap, 'wca-late', 4)
    finally:
        broker.stop()
    assert [iteration_of(r.value) for r in records] == [0, 1, 2, 3]
    messages = [r.getMessage() for r in caplog.records if r.name == 'wca.storage.kafka']
    down = [m for m in messages if 'cannot connect' in m]
    assert len(down) == 1, messages  # logged when it starts, not at every retry
    assert [m for m in messages if 'delivering again' in m], messages
    assert storage.metrics()[-1].value == 1


def test_tls_to_the_broker_with_a_client_certificate(tmp_path, pki, storages):
    tansu = require_tool('tansu', 'tools/install-test-tools')
    broker_port = free_port()
    front = TLSFront(pki.server_cert, pki.server_key, broker_port, client_ca=pki.ca_cert)
    broker = Broker(tansu, tmp_path, port=broker_port, advertised_port=front.port).start()
    try:
        tls = SSL(server_verify=pki.ca_cert, client_cert_path=pki.client_cert,
                  client_key_path=pki.client_key)
        storage = storages(topic='wca-tls', brokers_ips=[broker.bootstrap], ssl=tls)
        for i in range(2):
            storage.store(metrics_of(i))
        assert wait_until(lambda: storage.counts()['delivered'] == 2), storage.counts()
        context = ssl.create_default_context(cafile=pki.ca_cert)
        context.load_cert_chain(pki.client_cert, pki.client_key)
        records = consume(broker.bootstrap, 'wca-tls', 2, security_protocol='SSL',
                          ssl_context=context)
        assert [iteration_of(r.value) for r in records] == [0, 1]

        # A broker whose certificate the CA does not vouch for gets nothing, and it is counted.
        failures = front.handshake_failures
        wrong = storages(topic='wca-tls', brokers_ips=[broker.bootstrap], max_timeout_in_seconds=0,
                         ssl=SSL(server_verify=pki.other_ca_cert, client_cert_path=pki.client_cert,
                                 client_key_path=pki.client_key),
                         extra_config={'api_version_auto_timeout_ms': 500})
        wrong.store(metrics_of(9))
        assert wait_until(lambda: wrong.counts()['send_errors'] >= 1)
        assert wrong.counts()['delivered'] == 0 and wrong.counts()['queued'] == 1
        assert front.handshake_failures > failures
    finally:
        broker.stop()
        front.close()


def test_the_agent_sends_every_iteration(kafka_broker, tmp_path):
    """python -m wca with a KafkaStorage: each iteration is one message, nothing is lost at
    exit, and the broker's host name form works."""
    port = kafka_broker.port
    path = write_config(tmp_path / 'wca.yaml', '''\
runner: !MeasurementRunner
  node: !StaticNode {tasks: []}
  interval: 0
  iterations: 3
  metrics_storage: !KafkaStorage
    topic: wca-agent
    brokers_ips: ['127.0.0.1:%d']
    max_timeout_in_seconds: 2
    extra_config: {compression.type: gzip, linger.ms: '0'}
''' % port)
    result = subprocess.run(wca_command('-c', path, '--root'), env=plugin_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    records = consume(kafka_broker.bootstrap, 'wca-agent', 3)
    assert len(records) == 3
    for record in records:
        samples = parse(record.value.decode()).samples
        assert [key for key in samples if key[0] == 'wca_up']
    promtool_check(records[-1].value)


# --- configuration: checked when the config loads, before anything connects -----------------

def test_check_config_neither_connects_nor_listens(tmp_path):
    """--check-config builds every component: KafkaStorage must not connect, the endpoint must
    not bind (both behind one FilterStorage: storages combine)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    listener.settimeout(0.3)
    port = free_port()
    try:
        path = write_config(tmp_path / 'wca.yaml', '''\
runner: !MeasurementRunner
  node: !StaticNode {tasks: []}
  metrics_storage: !FilterStorage
    storages:
      - !KafkaStorage {topic: wca, brokers_ips: ['127.0.0.1:%d']}
      - !PrometheusEndpointStorage {port: %d}
''' % (listener.getsockname()[1], port))
        result = subprocess.run(wca_command('-c', path, '--check-config'), env=plugin_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', port))  # still free


def test_an_unknown_producer_setting_is_a_config_error_naming_it(tmp_path):
    path = write_config(tmp_path / 'wca.yaml', '''\
runner: !MeasurementRunner
  node: !StaticNode {tasks: []}
  metrics_storage: !KafkaStorage
    topic: wca
    extra_config:
      security.protocol: SASL_SSL
      sasl.mechanism: PLAIN
      sasl.username: agent
      sasl.pasword: hunter2-secret
''')
    result = subprocess.run(wca_command('-c', path, '--check-config'), env=plugin_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert result.returncode == 2
    error = result.stderr.decode()
    assert 'wca.yaml:' in error and 'sasl.pasword' in error and 'not a kafka-python' in error
    assert 'Traceback' not in error and 'hunter2' not in error


@pytest.mark.parametrize('extra, message', [
    ({'linger_msec': 5}, "extra_config: linger_msec: not a kafka-python producer setting; did you "
                         "mean 'linger_ms'"),
    ({'bootstrap_servers': 'x:1'}, 'extra_config: bootstrap_servers: not allowed here: give the '
                                   'brokers in brokers_ips'),
    ({'compression_type': 'lz4'}, 'extra_config: compression_type: lz4 needs a Python package'),
    ({'compression_type': 'brotli'}, 'extra_config: compression_type: expected one of'),
    ({'linger_ms': 'soon'}, 'extra_config: linger_ms: expected a number'),
    ({'acks': 2}, 'extra_config: acks: expected 0, 1, -1 or all'),
    ({'security_protocol': 'SASL_PLAINTEXT', 'sasl_mechanism': 'PLAIN'},
     'extra_config: sasl_plain_username required'),
    ({'security_protocol': 'TLS'}, 'extra_config: security_protocol: expected one of'),
    ({'enable_idempotence': 'yes'}, 'extra_config: enable_idempotence: expected true or false'),
    ({'security_protocol': 'SASL_SSL', 'sasl_mechanism': 'OAUTHBEARER'},
     'OAUTHBEARER needs a token provider'),
    ({'security_protocol': 'SASL_SSL', 'sasl_mechanism': 'NTLM'},
     'extra_config: sasl_mechanism: expected one of'),
    ({'transactional_id': 'x'}, 'extra_config: transactional_id: not allowed here'),
])
def test_extra_config_mistakes(extra, message):
    with pytest.raises(ValueError) as error:
        KafkaStorage(topic='wca', extra_config=extra)
    assert message in str(error.value)


def test_extra_config_takes_kafka_python_and_the_original_librdkafka_names():
    storage = KafkaStorage(topic='wca', extra_config={
        'security.protocol': 'SASL_PLAINTEXT', 'sasl.mechanisms': 'SCRAM-SHA-512',
        'sasl.username': 'agent', 'sasl.password': 'secret', 'linger.ms': '5', 'acks': 'all',
        'compression_type': 'none', 'request_timeout_ms': 10000, 'api_version': '2.5.0',
        'send_buffer_bytes': '131072'})
    config = storage._config
    assert config['security_protocol'] == 'SASL_PLAINTEXT'
    assert config['sasl_mechanism'] == 'SCRAM-SHA-512' and config['sasl_plain_username'] == 'agent'
    assert config['linger_ms'] == 5 and config['acks'] == 'all' and config['compression_type'] is None
    assert config['api_version'] == (2, 5, 0) and config['send_buffer_bytes'] == 131072
    assert KafkaStorage(topic='wca')._config['compression_type'] == 'gzip'  # the default


@pytest.mark.parametrize('brokers', [
    ['kafka-1.example.com:9092', 'kafka-2:9093'], ['[::1]:9092'], ['10.0.0.1:9092', 'localhost:1']])
def test_brokers_may_be_host_names_and_addresses(brokers):
    assert KafkaStorage(topic='wca', brokers_ips=brokers).brokers_ips == brokers


@pytest.mark.parametrize('entry', ['kafka', 'kafka:0', 'kafka:65536', 'tcp://kafka:9092', '::1:9092',
                                   ':9092', 'kafka:port', ''])
def test_a_broker_that_is_not_host_port_is_refused(entry):
    with pytest.raises(ValueError, match='brokers_ips'):
        KafkaStorage(topic='wca', brokers_ips=[entry])


def test_other_option_checks(pki):
    assert KafkaStorage(topic='wca', broker_ips=['k:1']).brokers_ips == ['k:1']  # the seed's spelling
    with pytest.raises(ValueError, match='either brokers_ips or broker_ips'):
        KafkaStorage(topic='wca', brokers_ips=['a:1'], broker_ips=['b:1'])
    with pytest.raises(ValueError, match='topic: expected a Kafka topic name'):
        KafkaStorage(topic='metrics for wca')
    with pytest.raises(ValueError, match='max_message_bytes: must be at most max_request_size'):
        KafkaStorage(topic='wca', max_message_bytes=2 * 2 ** 20)
    assert KafkaStorage(topic='wca', max_message_bytes=2 * 2 ** 20,
                        extra_config={'max_request_size': 3 * 2 ** 20})
    with pytest.raises(ValueError, match='queue_max_bytes: must be at least max_message_bytes'):
        KafkaStorage(topic='wca', queue_max_bytes=4096)
    with pytest.raises(ValueError, match='ssl: given, but extra_config.security_protocol is PLAINTEXT'):
        KafkaStorage(topic='wca', ssl=SSL(server_verify=pki.ca_cert),
                     extra_config={'security_protocol': 'PLAINTEXT'})
    assert KafkaStorage(topic='wca', ssl=SSL(server_verify=pki.ca_cert))._config[
        'security_protocol'] == 'SSL'
