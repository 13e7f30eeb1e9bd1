"""Prometheus text storages: the exposition format, stderr/file/overwrite, filtering."""
import os
import threading

import pytest

from wca.exposition import encode
from wca.metrics import Metric, MetricType
from wca.storage import FailedDeliveryException, FilterStorage, LogStorage, Storage


def gauge(name, value, **labels):
    return Metric(name, value, labels, MetricType.GAUGE, 'Help of %s.' % name)


def test_encode_groups_families_sorted_with_help_and_type():
    shared = {'task_id': 't1', 'host': 'h'}
    text, dropped = encode([
        gauge('zeta', 1, a='1'),
        Metric('alpha', 2.5, shared, MetricType.COUNTER, 'Alpha help.'),
        gauge('zeta', 2, a='2'),
        Metric('alpha', 3, dict(shared, task_id='t2'), MetricType.COUNTER, 'ignored'),
    ], timestamp_ms=1700000000000)
    assert dropped == 0
    assert text == (
        '# HELP alpha Alpha help.\n# TYPE alpha counter\n'
        'alpha{host="h",task_id="t1"} 2.5 1700000000000\n'
        'alpha{host="h",task_id="t2"} 3 1700000000000\n\n'
        '# HELP zeta Help of zeta.\n# TYPE zeta gauge\n'
        'zeta{a="1"} 1 1700000000000\nzeta{a="2"} 2 1700000000000\n\n')


def test_encode_escapes_and_sanitizes():
    text, _ = encode([Metric('bad-name.x', 1, {'app.kubernetes.io/name': 'a"b\\c\nd', '__x': 'y',
                                               '1st': 'z'}, None, 'line1\nline2 \\')])
    assert text == ('# HELP bad_name_x line1\\nline2 \\\\\n'
                    'bad_name_x{_1st="z",app_kubernetes_io_name="a\\"b\\\\c\\nd",label__x="y"} 1\n\n')


def test_encode_special_values_and_drops_what_is_not_a_number():
    text, dropped = encode([gauge('v', float('nan'), i='1'), gauge('v', float('inf'), i='2'),
                            gauge('v', float('-inf'), i='3'), gauge('v', True, i='4'),
                            gauge('v', 'text', i='5'), gauge('v', None, i='6'),
                            gauge('v', 7, i='1')])  # duplicate series
    assert 'v{i="1"} NaN\nv{i="2"} +Inf\nv{i="3"} -Inf\nv{i="4"} 1\n' in text
    assert 'i="5"' not in text and 'i="6"' not in text
    assert dropped == 3


def test_log_storage_to_stderr(capsys):
    storage = LogStorage()
    storage.store([gauge('wca_up', 1)])
    err = capsys.readouterr().err
    line = err.splitlines()[2]
    name, value, timestamp = line.split()
    assert (name, value) == ('wca_up', '1') and len(timestamp) == 13


def test_log_storage_appends_to_file(tmp_path):
    path = str(tmp_path / 'metrics.prom')
    storage = LogStorage(output_filename=path)
    storage.store([gauge('a', 1)])
    storage.store([gauge('a', 2)])
    with open(path) as f:
        samples = [line for line in f.read().splitlines() if line.startswith('a ')]
    assert [s.split()[1] for s in samples] == ['1', '2']


def test_overwrite_replaces_atomically_without_timestamps(tmp_path):
    path = str(tmp_path / 'wca.prom')
    storage = LogStorage(output_filename=path, overwrite=True)
    big = [gauge('series', i, i=str(i)) for i in range(20000)]
    storage.store(big)
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            with open(path) as f:
                text = f.read()
            seen.append(text.endswith('\n\n') and text.count('\n') == 20000 + 3)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(10):
            storage.store(big)
    finally:
        stop.set()
        thread.join()
    assert seen and all(seen)  # never a half-written file
    with open(path) as f:
        assert f.readlines()[2] == 'series{i="0"} 0\n'  # no timestamp for the textfile collector
    assert os.listdir(str(tmp_path)) == ['wca.prom']  # no temporary files left


def test_log_storage_rejects_bad_settings_but_not_a_directory_made_later(tmp_path):
    with pytest.raises(ValueError, match='overwrite needs output_filename'):
        LogStorage(overwrite=True)
    LogStorage(output_filename=str(tmp_path / 'missing' / 'x.prom'))  # checked when storing


def test_unwritable_file_raises_failed_delivery_and_counts_drops(tmp_path):
    path = tmp_path / 'dir'
    path.mkdir()
    storage = LogStorage(output_filename=str(path / 'm.prom'))
    os.rmdir(str(path))
    with pytest.raises(FailedDeliveryException, match='directory %s does not exist' % path):
        storage.store([gauge('a', 1), gauge('b', 2)])
    assert storage.dropped_count() == 2


class Recording(Storage):
    def __init__(self, fail=False):
        self.stored, self.fail = [], fail

    def store(self, metrics):
        if self.fail:
            raise FailedDeliveryException('broker down')
        self.stored.append([m.name for m in metrics])


def test_filter_storage_passes_named_metrics_to_every_storage():
    first, broken, last = Recording(), Recording(fail=True), Recording()
    storage = FilterStorage(storages=[first, broken, last], filter=['b'])
    with pytest.raises(FailedDeliveryException, match='broker down'):
        storage.store([gauge('a', 1), gauge('b', 2)])
    assert first.stored == [['b']] and last.stored == [['b']]
    everything = Recording()
    FilterStorage(storages=[everything]).store([gauge('a', 1), gauge('b', 2)])
    assert everything.stored == [['a', 'b']]
