"""KafkaStorage while the broker is away: the loop is never held, the queue keeps what fits and
delivers it in order when the broker returns, and every message is accounted for."""
import logging
import socket
import time

from conftest import promtool_check, require_tool
from kafka_broker import Broker, iteration_of, consume, wait_until
from wca.exposition import encode
from wca.metrics import Metric, MetricType


def metrics_of(iteration, tasks=8):
    out = [Metric('test_iteration', iteration, {}, MetricType.GAUGE, 'which store() call')]
    for t in range(tasks):
        out.append(Metric('task_mem_usage_bytes', 1000 * t + iteration,
                          {'task_id': 'task-%d' % t, 'host': 'node'}, MetricType.GAUGE, 'memory'))
    return out


def balanced(counts):
    return counts['produced'] == (counts['delivered'] + counts['dropped'] + counts['failed']
                                  + counts['queued'])


def test_outage_keeps_what_fits_delivers_it_in_order_and_counts_the_rest(tmp_path, storages,
                                                                         caplog):
    caplog.set_level(logging.INFO, logger='wca.storage.kafka')
    broker = Broker(require_tool('tansu', 'tools/install-test-tools'), tmp_path).start()
    try:
        size = len(encode(metrics_of(10), int(time.time() * 1000))[0])
        fits = 5
        storage = storages(topic='wca-outage', brokers_ips=[broker.bootstrap],
                           max_timeout_in_seconds=0.5, max_message_bytes=1024,
                           queue_max_bytes=fits * size + size // 2,
                           extra_config={'reconnect_backoff_max_ms': 200})
        for i in range(3):
            storage.store(metrics_of(i))
        assert wait_until(lambda: storage.counts()['delivered'] == 3)
        assert [iteration_of(r.value) for r in consume(broker.bootstrap, 'wca-outage', 3)] == [
            0, 1, 2]

        broker.stop()
        durations = []
        for i in range(3, 23):
            started = time.monotonic()
            storage.store(metrics_of(i))
            durations.append(time.monotonic() - started)
            time.sleep(0.02)
        assert max(durations) <= 0.5 + 0.2, durations  # never longer than max_timeout_in_seconds
        assert sum(durations) < 2 * 0.5 + 1, durations  # and only until it is known to wait
        during = storage.counts()
        assert balanced(during) and during['produced'] == 23 and during['dropped'] >= 23 - 3 - fits - 1
        assert during['queued_bytes'] <= fits * size + size // 2 + size  # + the one being sent
        promtool_check(encode(storage.metrics({'host': 'node'}), None)[0].encode())

        broker.start()  # the same port, an empty broker
        assert wait_until(lambda: storage.counts()['queued'] == 0, timeout=30), storage.counts()
        after = storage.counts()
        assert balanced(after) and after['produced'] == 23 and after['failed'] == 0
        records = consume(broker.bootstrap, 'wca-outage', after['delivered'] - 3)
    finally:
        broker.stop()
    kept = [iteration_of(r.value) for r in records]
    assert len(kept) == after['delivered'] - 3
    assert kept == sorted(set(kept)) and kept[-1] == 22  # in order, no duplicates, the newest kept
    missing = set(range(3, 23)) - set(kept)
    assert len(missing) == after['dropped']  # what did not arrive is exactly what was counted
    assert len(kept) >= fits  # what fits in queue_max_bytes, counting the one in flight
    tail = [i for i in kept if i != 3]  # 3 may have been in flight when the broker went away
    assert max(missing) < min(tail)  # the oldest went first
    messages = [r.getMessage() for r in caplog.records if r.name == 'wca.storage.kafka']
    assert len([m for m in messages if 'wait in a queue' in m]) == 1, messages
    assert len([m for m in messages if 'delivering again' in m]) == 1, messages
    values = {m.name: m.value for m in storage.metrics()}
    assert values['wca_kafka_messages_dropped_total'] == after['dropped']
    assert values['wca_kafka_messages_delivered_total'] == after['delivered']
    assert values['wca_kafka_queue_bytes'] == values['wca_kafka_queue_messages'] == 0
    assert values['wca_kafka_up'] == 1 and values['wca_kafka_send_errors_total'] >= 0
    assert storage.dropped_count() == after['dropped'] * 9  # each message held 9 metrics


def test_a_broker_that_never_answers_does_not_hold_the_loop(storages, caplog):
    caplog.set_level(logging.INFO, logger='wca.storage.kafka')
    silent = socket.socket()  # accepts connections (the kernel does) and never says a word
    silent.bind(('127.0.0.1', 0))
    silent.listen(64)
    try:
        storage = storages(topic='wca-silent', brokers_ips=['127.0.0.1:%d' % silent.getsockname()[1]],
                           max_timeout_in_seconds=0.2,
                           extra_config={'api_version_auto_timeout_ms': 300})
        durations = []
        for i in range(8):
            started = time.monotonic()
            storage.store(metrics_of(i))
            durations.append(time.monotonic() - started)
            time.sleep(0.05)
        assert max(durations) <= 0.2 + 0.2, durations
        assert wait_until(lambda: {m.name: m.value for m in storage.metrics()}['wca_kafka_up'] == 0)
        counts = storage.counts()
        assert counts['queued'] == 8 and counts['delivered'] == 0 and balanced(counts)
        started = time.monotonic()
        storage.close(timeout=0.2)  # at exit: what is left is dropped, and said
        assert time.monotonic() - started < 1.5
    finally:
        silent.close()
    counts = storage.counts()
    assert counts['dropped'] == 8 and counts['queued'] == 0 and balanced(counts)
    messages = [r.getMessage() for r in caplog.records if r.name == 'wca.storage.kafka']
    assert len([m for m in messages if 'wait in a queue' in m]) == 1, messages
    assert [m for m in messages if '8 messages' in m and 'not delivered at exit' in m], messages
