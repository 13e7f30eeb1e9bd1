"""The exposition text always parses: names that collide after sanitising, text that is not
valid UTF-8. Checked with the real promtool, and through the agent on a real cgroup."""
import os

from conftest import promtool_check
from wca.exposition import encode, render_labels, valid_text
from wca.metrics import Metric, MetricType
from wca.nodes.static import CgroupDirectoryNode
from wca.runners.measurement import MeasurementRunner
from wca.storage import LogStorage


def gauge(name, value, labels=None, help_text='Help.'):
    return Metric(name, value, labels or {}, MetricType.GAUGE, help_text)


def samples(text):
    return [line for line in text.splitlines() if line and not line.startswith('#')]


def test_metric_names_colliding_after_sanitising_keep_one_family_and_count_the_rest():
    problems = []
    text, dropped = encode([gauge('load-avg', 1, {'i': '1'}), gauge('load_avg', 2, {'i': '1'}),
                            gauge('load.avg', 3, {'i': '2'}), gauge('load-avg', 4, {'i': '3'}),
                            gauge('queue-depth', 5), gauge('queue.depth', 6)], problems=problems)
    promtool_check(text.encode())
    # the one spelt like the sanitised name wins; else the smallest name ('-' < '.')
    assert samples(text) == ['load_avg{i="1"} 2', 'queue_depth 5']
    assert text.count('# TYPE load_avg gauge') == 1
    assert dropped == 4  # load-avg's two samples, load.avg's one, queue.depth's one
    assert problems == [
        "metric 'load-avg' dropped: its name collides with 'load_avg' (both are load_avg)",
        "metric 'load.avg' dropped: its name collides with 'load_avg' (both are load_avg)",
        "metric 'queue.depth' dropped: its name collides with 'queue-depth' (both are queue_depth)"]
    # the same whatever the order of the metrics
    again, dropped_again = encode([
        gauge('queue.depth', 6), gauge('load-avg', 4, {'i': '3'}), gauge('queue-depth', 5),
        gauge('load.avg', 3, {'i': '2'}), gauge('load_avg', 2, {'i': '1'}),
        gauge('load-avg', 1, {'i': '1'})])
    assert (samples(again), dropped_again) == (samples(text), dropped)


def test_a_family_with_no_valid_sample_does_not_push_out_its_twin():
    text, dropped = encode([gauge('load_avg', 'not a number'), gauge('load-avg', 1)])
    assert samples(text) == ['load_avg 1'] and dropped == 1
    promtool_check(text.encode())


def test_label_names_colliding_after_sanitising_keep_one_label_and_count_the_samples():
    common = {'own_ip': '10.0.0.1', 'host': 'h'}
    plugin = dict(common, **{'own.ip': '192.168.0.9', 'task_id': 't1'})
    problems = []
    text, dropped = encode([gauge('m', 1, plugin), gauge('n', 2, plugin), gauge('m', 3, common),
                            gauge('o', 4, {'own-ip': 'b', 'own.ip': 'a'})], problems=problems)
    promtool_check(text.encode())
    assert samples(text) == ['m{host="h",own_ip="10.0.0.1",task_id="t1"} 1',
                             'm{host="h",own_ip="10.0.0.1"} 3',
                             'n{host="h",own_ip="10.0.0.1",task_id="t1"} 2',
                             'o{own_ip="b"} 4']  # neither is spelt own_ip: '-' < '.' wins
    assert dropped == 3  # m and n of the plugin's set, o: stored without a colliding label
    assert problems == [
        "label 'own.ip' (beside 'own-ip') of metric o dropped: the names are the same after sanitising",
        "label 'own.ip' (beside 'own_ip') of metric m dropped: the names are the same after sanitising",
        "label 'own.ip' (beside 'own_ip') of metric n dropped: the names are the same after sanitising"]
    assert render_labels({'own.ip': 'x', 'own_ip': 'y'}) == render_labels({'own_ip': 'y', 'own.ip': 'x'})


def test_a_collision_that_leaves_a_duplicate_series_drops_it_once():
    text, dropped = encode([gauge('m', 1, {'zo_ne': '1'}), gauge('m', 2, {'zo_ne': '1', 'zo.ne': '2'}),
                            gauge('m', 3, {'zo_ne': '3', 'zo.ne': '4'})])
    assert samples(text) == ['m{zo_ne="1"} 1', 'm{zo_ne="3"} 3']
    assert dropped == 2  # the duplicate series, and the sample stored without its 'zo.ne' label
    promtool_check(text.encode())


def test_undecodable_bytes_in_label_values_and_help_are_escaped():
    name = os.fsdecode(b'caf\xc3\xa9-\xff\xfe-task')  # as os.listdir gives a non-UTF-8 name
    assert valid_text(name) == 'caf\u00e9-\\xff\\xfe-task'
    assert valid_text('lone \ud800 surrogate') == 'lone \\ud800 surrogate'
    assert valid_text('plain "text"') == 'plain "text"'
    text, dropped = encode([
        gauge('m', 1, {'task_id': name, 'quote': 'a"b'}),
        gauge('m', 2, {'task_id': 'ok'}),
        gauge('h', 3, help_text=os.fsdecode(b'help \xff with \\ backslash'))])
    assert dropped == 0
    data = text.encode('utf-8')  # would raise on a surrogate
    promtool_check(data)
    assert 'm{quote="a\\"b",task_id="caf\u00e9-\\\\xff\\\\xfe-task"} 1' in samples(text)
    assert 'm{task_id="ok"} 2' in samples(text)
    assert '# HELP h help \\\\xff with \\\\ backslash\n' in text


def test_log_storage_logs_each_collision_once_and_counts_it_every_time(tmp_path, caplog):
    path = str(tmp_path / 'metrics.prom')
    storage = LogStorage(output_filename=path, overwrite=True)
    metrics = [gauge('m', 1, {'own_ip': '10.0.0.1', 'own.ip': 'x'}), gauge('load-avg', 1),
               gauge('load_avg', 2), gauge('ok', 3)]
    for _ in range(3):
        storage.store(metrics)
    assert storage.dropped_count() == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert warnings == [
        "%s: label 'own.ip' (beside 'own_ip') of metric m dropped: the names are the same after "
        "sanitising" % path,
        "%s: metric 'load-avg' dropped: its name collides with 'load_avg' (both are load_avg)" % path]
    with open(path, 'rb') as f:
        data = f.read()
    promtool_check(data)
    assert samples(data.decode()) == ['load_avg 2', 'm{own_ip="10.0.0.1"} 1', 'ok 3']


def test_types_a_plain_sample_cannot_have_are_left_out():
    text, _ = encode([Metric('h', 1, {}, 'histogram', 'A plugin says histogram.'),
                      Metric('c_total', 1, {}, MetricType.COUNTER, 'Counter.')])
    assert '# TYPE h' not in text and '# TYPE c_total counter' in text
    promtool_check(text.encode())


def test_a_cgroup_name_that_is_not_utf8_costs_only_its_own_labels(cgroups, tmp_path):
    """A real cgroup named with a byte that is not UTF-8, discovered and measured by the agent:
    every task's metrics and the platform's are stored, and the file parses."""
    good = [cgroups.create('task-%d' % i) for i in range(2)]
    bad = cgroups.create(os.fsdecode(b'\xff-task'))  # os.mkdir of the bytes name
    assert os.fsencode(bad).endswith(b'/\xff-task')
    path = str(tmp_path / 'metrics.prom')
    runner = MeasurementRunner(node=CgroupDirectoryNode(root=cgroups.parent),
                               metrics_storage=LogStorage(output_filename=path, overwrite=True),
                               interval=0)
    runner.iterate()
    runner.iterate()
    with open(path, 'rb') as f:
        data = f.read()
    promtool_check(data)
    text = data.decode('utf-8')
    up = [line for line in samples(text) if line.startswith('task_up{')]
    ids = sorted(line.split('task_id="')[1].split('"')[0] for line in up)
    assert ids == sorted([p.strip('/') for p in good] + [cgroups.parent.strip('/') + '/\\\\xff-task'])
    for name in ('task_cpu_usage_seconds', 'task_mem_usage_bytes'):
        assert len([line for line in samples(text) if line.startswith(name + '{')]) == 3, name
    for name in ('platform_cpu_usage', 'platform_mem_usage_bytes', 'wca_up', 'wca_tasks{',
                 'wca_metrics_dropped_total'):
        assert any(line.startswith(name) for line in samples(text)), name
    assert 'wca_storage_errors_total{' in text
    assert [line for line in samples(text) if line.startswith('wca_storage_errors_total')][0].endswith(' 0')
