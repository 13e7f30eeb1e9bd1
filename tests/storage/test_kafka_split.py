"""Splitting an exposition into Kafka messages of a bounded size: each part valid on its own,
nothing lost, nothing twice (the original agent duplicated header lines and lost the last part)."""
import os
import string

from hypothesis import given, settings, strategies as st

from conftest import promtool_check
from exposition_text import parse
from wca.exposition import encode
from wca.metrics import Metric, MetricType
from wca.storage.families import families, sample_count, split_exposition

NAMES = ['a', 'task_cpu_usage_seconds', 'wca_iterations_total', 'b_sum', 'zz']
label_values = st.text(alphabet=string.ascii_letters + '"\\\n {}=,\u00fc', max_size=30)
metric = st.builds(
    lambda name, labels, value, kind: Metric(name, value, labels, kind, 'help of ' + name),
    st.sampled_from(NAMES),
    st.dictionaries(st.sampled_from(['task_id', 'host', 'x']), label_values, max_size=3),
    st.integers(-10 ** 6, 10 ** 6),
    st.sampled_from([MetricType.GAUGE, MetricType.COUNTER]))


def samples_of(data: bytes):
    return parse(data.decode()).samples


@settings(max_examples=150, deadline=None, database=None,
          derandomize=os.environ.get('CI') == 'true')
@given(st.lists(metric, max_size=60), st.integers(150, 3000))
def test_parts_fit_parse_and_add_up_to_the_whole(metrics, limit):
    data = encode(metrics, 1700000000123)[0].encode()
    parts, dropped = split_exposition(data, limit)
    whole = samples_of(data)
    headers = {f.name: f.headers for f in families(data)}
    longest = {f.name: len(b'\n'.join(f.headers)) + 2 for f in families(data)}
    merged = {}
    for part in parts:
        assert 0 < len(part) <= limit
        parsed = samples_of(part)
        assert parsed and not set(parsed) & set(merged)
        merged.update(parsed)
        for family in families(part):
            assert family.headers == headers[family.name]  # HELP and TYPE in every part
    too_long = [key for key in whole if key not in merged]
    assert len(too_long) == dropped
    for name, _ in too_long:  # only a sample that cannot fit even alone with its headers
        lines = [line for line in data.split(b'\n') if line.startswith(name.encode() + b'{') or
                 line.startswith(name.encode() + b' ')]
        assert max(len(line) for line in lines) + 1 + longest[name.encode()] > limit
    assert {k: v for k, v in whole.items() if k not in too_long} == merged
    order = [f.name for part in parts for f in families(part)]
    assert [n for i, n in enumerate(order) if i == 0 or order[i - 1] != n] == [
        f.name for f in families(data) if any(k[0] == f.name.decode() for k in merged)]
    assert sum(sample_count(p) for p in parts) == len(merged)


def test_a_small_exposition_is_one_message_unchanged():
    data = encode([Metric('a', 1, {}, MetricType.GAUGE, 'h')], 1)[0].encode()
    assert split_exposition(data, 1024) == ([data], 0)
    assert split_exposition(b'', 1024) == ([], 0)


def test_a_family_larger_than_the_limit_repeats_its_headers_and_each_part_passes_promtool():
    metrics = [Metric('task_mem_usage_bytes', i, {'task_id': 'task-%04d' % i}, MetricType.GAUGE,
                      'Memory "usage"\\n of a task.') for i in range(200)]
    metrics.append(Metric('wca_up', 1, {}, MetricType.GAUGE, 'Up.'))
    data = encode(metrics, 1700000000123)[0].encode()
    parts, dropped = split_exposition(data, 1500)
    assert dropped == 0 and len(parts) >= 4
    for part in parts[:-1]:
        assert part.startswith(b'# HELP task_mem_usage_bytes Memory "usage"\\\\n of a task.\n'
                               b'# TYPE task_mem_usage_bytes gauge\n')
    assert parts[-1].endswith(b'wca_up 1 1700000000123\n\n')  # the last part is not lost
    for part in parts:
        promtool_check(part)
    assert sum(sample_count(p) for p in parts) == 201


def test_a_sample_too_long_for_any_message_is_dropped_and_counted():
    metrics = [Metric('a', 1, {'big': 'x' * 3000}, MetricType.GAUGE, 'h'),
               Metric('a', 2, {'big': 'small'}, MetricType.GAUGE, 'h'),
               Metric('b', 3, {}, MetricType.GAUGE, 'h')]
    data = encode(metrics, None)[0].encode()
    parts, dropped = split_exposition(data, 1024)
    assert dropped == 1
    assert b''.join(parts) == (b'# HELP a h\n# TYPE a gauge\na{big="small"} 2\n\n'
                               b'# HELP b h\n# TYPE b gauge\nb 3\n\n')
