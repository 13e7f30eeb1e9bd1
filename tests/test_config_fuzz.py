"""Config fuzzing: any YAML document either builds a runner or fails with ConfigError, and the
command line (`wca -c FILE --check-config`) answers 0 or 2, never a traceback.

Three kinds of documents: random plain structures dumped by PyYAML; flow-style text built
from the config's own vocabulary (component tags, keys, !Env, !!python/... and other YAML
tags, anchors and aliases, merge keys); and valid configs with their text damaged (bad
indentation, stray characters). Documents that once escaped as another exception are kept
as explicit examples. Merge keys, which the loader resolves itself, are also checked against
PyYAML's own loading of plain documents. CI runs a fixed set (derandomized);
WCA_FUZZ_EXAMPLES=N runs more.
"""
import inspect
import json
import os
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from conftest import REPO, plugin_env

from wca.config import ConfigError, load_config_text, registered_components
from wca.runners import Runner

SCALE = int(os.environ.get('WCA_FUZZ_EXAMPLES') or 0)
FUZZ = settings(max_examples=SCALE or 150, deadline=None, database=None,
                derandomize=os.environ.get('CI') == 'true' and not SCALE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

VALID = [
    'runner: !MeasurementRunner\n  node: !StaticNode\n    tasks: [a, /b/c]\n'
    '  metrics_storage: !LogStorage {}\n  interval: 1.5\n  extra_labels: {env: prod}\n'
    'loggers:\n  wca: debug\n',
    'runner: !DetectionRunner\n  node: !CgroupDirectoryNode\n    root: /\n    max_depth: 2\n'
    '  detector: !NOPAnomalyDetector\n  anomalies_storage: !FilterStorage\n'
    '    storages: [!LogStorage {output_filename: /tmp/x.prom, overwrite: true}]\n'
    '    filter: [anomaly]\n  action_delay: 5\n',
    'runner: !AllocationRunner\n  node: !StaticNode {}\n  allocator: !NOPAllocator {}\n'
    '  allocations_storage: !LogStorage {}\n',
    'runner: !MeasurementRunner\n  config: !MeasurementRunnerConfig\n    node: !StaticNode {}\n'
    '    iterations: 3\n',
]

TAGS = ['!MeasurementRunner', '!DetectionRunner', '!AllocationRunner',
        '!MeasurementRunnerConfig', '!DetectionRunnerConfig', '!StaticNode',
        '!CgroupDirectoryNode', '!LogStorage', '!FilterStorage', '!NOPAnomalyDetector',
        '!NOPAllocator', '!RDTAllocation', '!AllocationConfiguration', '!Env', '!Unknown',
        '!measurementrunner', '!!python/object:os.system', '!!python/name:os.system',
        '!!python/object/apply:os.system', '!!binary', '!!set', '!!omap', '!!pairs',
        '!!timestamp', '!!str', '!!int', '!!float', '!!bool', '!!null', '!!map', '!!seq',
        '!!merge', '!!value', '!<!MeasurementRunner>', '!<tag:yaml.org,2002:str>', '!']
KEYS = ['runner', 'loggers', 'node', 'config', 'metrics_storage', 'interval', 'extra_labels',
        'iterations', 'rdt_enabled', 'event_names', 'enable_derived_metrics', 'proc_root',
        'sys_root', 'cgroup_layout', 'detector', 'anomalies_storage', 'action_delay',
        'allocator', 'allocations_storage', 'allocation_configuration', 'tasks',
        'require_pids', 'default_labels', 'tasks_labels', 'root', 'max_depth', 'leaves_only',
        'labels', 'output_filename', 'overwrite', 'include_timestamp', 'storages', 'filter',
        'name', 'l3', 'mb', 'cpu_quota_period', 'wca', '<<', '?', '', 'password', 'HOME']
SCALARS = ['0', '1', '-1', '2', '32', '33', '3600', '3601', '1.5', '-0.0', '.nan', '.inf',
           '-.inf', '1e400', '0x1F', '0o17', '017', '1_000', '1:30', 'true', 'false', 'yes',
           'no', 'on', 'null', '~', "''", '""', '"a\\"b"', 'abc', '/', '/tmp', '/tmp/x.prom',
           'relative/path', '/no/such/dir/x', '/proc', 'HOME', 'PATH', 'WCA_FUZZ_UNSET',
           'debug', 'trace', 'INFO', 'bogus', 'L3:0=fffff', 'MB:0=50', '2001-12-14', '=', '<<',
           '"\\0"', '"\\x00"', "'it''s'", 'a b', '#x', '0b101', '0b', '0x', '+1', '.5']


# Each registered component's keyword arguments, so generated mappings get past "unknown key".
PARAMS = {name: [p for p in inspect.signature(cls).parameters] or ['x']
          for name, cls in registered_components().items()}
COMPONENTS = sorted(PARAMS)
RUNNERS = sorted(name for name, cls in registered_components().items()
                 if inspect.isclass(cls) and issubclass(cls, Runner))


def _scalar_text():
    return st.one_of(st.sampled_from(SCALARS),
                     st.text(max_size=8).map(json.dumps))  # a valid double-quoted scalar


def _mapping(pairs):
    return '{' + ', '.join('%s: %s' % kv for kv in pairs) + '}'


# Values of a merge key: aliases (of whatever the anchors hold), lists of them, mappings.
MERGES = st.one_of(st.sampled_from(['*a', '*b', '[*a, *b]', '[*b, *a]', '[*a, *a]', '[]', '{}',
                                    '[*a, {}]', '[*a, 1]', '1', '~']),
                   st.lists(st.sampled_from(['*a', '*b']), min_size=2, max_size=6).map(
                       lambda items: '[' + ', '.join(items) + ']'))


def _component(children):
    """`!Name {arg: value, ...}` with the component's own argument names, and sometimes a
    merge key among them."""
    pairs = st.lists(st.tuples(st.integers(0, 63), children), max_size=4)

    @st.composite
    def component(draw):
        name = draw(st.sampled_from(COMPONENTS))
        chosen = {}
        for index, value in draw(pairs):
            chosen.setdefault(PARAMS[name][index % len(PARAMS[name])], value)
        items = list(chosen.items())
        if draw(st.integers(0, 3)) == 0:
            items.insert(draw(st.integers(0, len(items))), ('<<', draw(MERGES)))
        return '!%s %s' % (name, _mapping(items))
    return component()


def _flow(children):
    """One level of flow-style YAML: [&anchor] then a component, a plain or tagged mapping, a
    sequence, or a tagged scalar."""
    pair = st.one_of(st.tuples(st.one_of(st.sampled_from(KEYS), _scalar_text()), children),
                     st.tuples(st.just('<<'), MERGES))
    mapping = st.lists(pair, max_size=4).map(_mapping)
    sequence = st.lists(children, max_size=4).map(lambda items: '[' + ', '.join(items) + ']')
    tagged = st.tuples(st.sampled_from(TAGS), st.one_of(mapping, sequence, _scalar_text())).map(
        ' '.join)
    node = st.one_of(_component(children), mapping, sequence, tagged)
    return st.tuples(st.sampled_from([''] * 8 + ['&a ', '&b ']), node).map(''.join)


FLOW = st.recursive(st.one_of(_scalar_text(), st.sampled_from(['*a', '*b', '{}', '[]', '{}', '[]'])),
                    _flow, max_leaves=20)
# A runner with a node most of the time, so documents get past the first required key.
RUNNER = st.tuples(st.sampled_from(RUNNERS), st.booleans(), st.lists(
    st.tuples(st.sampled_from(sorted({p for r in RUNNERS for p in PARAMS[r]})), FLOW),
    max_size=4, unique_by=lambda kv: kv[0])).map(
    lambda t: '!%s %s' % (t[0], _mapping(([('node', '!StaticNode {tasks: [a]}')] if t[1] else [])
                                         + [kv for kv in t[2] if kv[0] != 'node'])))
VOCABULARY_DOCS = st.one_of(
    st.tuples(st.one_of(RUNNER, FLOW), st.one_of(st.just(''), FLOW.map(
        lambda t: '\nloggers: ' + t))).map(lambda parts: 'runner: ' + parts[0] + parts[1]),
    st.tuples(FLOW, RUNNER).map(lambda parts: 'base: &a %s\nrunner: %s' % parts),
    FLOW,
    st.tuples(st.sampled_from(['%YAML 1.1\n---\n', '%TAG ! tag:yaml.org,2002:python/object:\n---\n',
                               '---\n', '--- !MeasurementRunner\n', '...\n', '\t']),
              st.one_of(RUNNER, FLOW).map(lambda t: 'runner: ' + t)).map(''.join),
)

PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers()),
                        children, max_size=4)),
    max_leaves=20)
PLAIN_DOCS = st.one_of(
    PLAIN,
    st.fixed_dictionaries({'runner': PLAIN}),
    st.fixed_dictionaries({'runner': PLAIN, 'loggers': PLAIN}),
).flatmap(lambda value: st.sampled_from([
    yaml.safe_dump(value, default_flow_style=False),
    yaml.safe_dump(value, default_flow_style=True),
    yaml.dump(value, allow_unicode=True)]))


@st.composite
def damaged(draw):
    """A valid config with a few characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(['insert', 'delete', 'replace', 'indent']))
        char = draw(st.sampled_from(list(' \t\n:-!&*{}[],#|>"\'%@`?\\x0') + ['  ', '\x00']))
        if kind == 'insert':
            text = text[:at] + char + text[at:]
        elif kind == 'delete':
            text = text[:at] + text[at + 1:]
        elif kind == 'replace':
            text = text[:at] + char + text[at + 1:]
        else:  # shift one line left or right
            lines = text.split('\n')
            i = at % len(lines)
            lines[i] = lines[i][2:] if draw(st.booleans()) else '   ' + lines[i]
            text = '\n'.join(lines)
    return text


def loads_or_config_error(text):
    """The property: a dict with a Runner and loggers, or ConfigError; anything else fails."""
    try:
        loaded = load_config_text(text, 'fuzz.yaml', Runner)
    except ConfigError as e:
        assert str(e)  # it says something
        return 'error'
    assert isinstance(loaded, dict) and set(loaded) == {'runner', 'loggers'}
    assert isinstance(loaded['runner'], Runner)
    assert isinstance(loaded['loggers'], dict)
    return 'built'


# Documents that escaped load_config_text as another exception before it was fixed.
ESCAPED_ONCE = [
    'runner: &a [*a]\n',  # RecursionError: an alias inside its own anchor
    'runner: !MeasurementRunner\n  node: &n !StaticNode {tasks: [*n]}\n',  # RecursionError
    'runner: !MeasurementRunner {extra_labels: &x {<<: *x}}\n',  # merge into itself
    'runner: !MeasurementRunner {<<: 5}\n',  # ConstructorError from merging a scalar
    '<<: 1\n',
    'runner: !MeasurementRunner {node: !StaticNode {}, interval: !!int abc}\n',  # ValueError
    'runner: !MeasurementRunner {node: !StaticNode {}, interval: !!float ""}\n',  # IndexError
    'runner: !MeasurementRunner {node: !StaticNode {}, rdt_enabled: !!bool maybe}\n',  # KeyError
    '\x00runner: !MeasurementRunner\n',  # ReaderError from the loader's constructor
    'runner: !MeasurementRunner\n  node: !StaticNode {}\n  extra_labels: {a: "\x07"}\n',
]


@pytest.mark.parametrize('text', ESCAPED_ONCE)
def test_documents_that_once_escaped_are_config_errors(text):
    assert loads_or_config_error(text) == 'error'


@pytest.mark.parametrize('text', VALID)
def test_the_fuzzers_valid_documents_build(text):
    assert loads_or_config_error(text) == 'built'


@FUZZ
@given(PLAIN_DOCS)
def test_plain_yaml_structures(text):
    loads_or_config_error(text)


@FUZZ
@given(VOCABULARY_DOCS)
@example('runner: !MeasurementRunner {node: !StaticNode {}, interval: .nan}')
@example('runner: !MeasurementRunner {node: !StaticNode {}, extra_labels: {!StaticNode {}: 1}}')
@example('runner: !MeasurementRunner {node: !StaticNode {}, metrics_storage: !Env HOME}')
@example('runner: !!python/object/apply:os.system [true]')
@example('runner: !MeasurementRunner {node: &a !StaticNode {tasks: [x]}, metrics_storage: '
         '!FilterStorage {storages: [], <<: [*a, *a]}}')
@example('runner: !MeasurementRunner {extra_labels: &a {x: y}, node: !StaticNode {<<: *a}}')
def test_documents_in_the_configs_vocabulary(text):
    loads_or_config_error(text)


@FUZZ
@given(damaged())
def test_damaged_valid_configs(text):
    loads_or_config_error(text)


# --- merge keys: the loader resolves them itself, so PyYAML's own loading is the reference.

MERGE_KEYS = ['a', 'b', 'c', 'd', '7', '2.5', 'null', '"x y"']  # distinct values, as loaded


@st.composite
def merging_documents(draw):
    """`runner:` a list of anchored plain mappings with unique keys; each may merge earlier
    ones (`<<: *m0`, `<<: [*m2, *m0, *m2]`, an inline mapping) anywhere among its own keys,
    and hold aliases of earlier ones as values."""
    lines = []
    for i in range(draw(st.integers(1, 6))):
        earlier = st.integers(0, max(i - 1, 0)).map(lambda j: '*m%d' % j)
        value = st.just('v%d' % i)
        if i:
            value = st.one_of(value, earlier, st.lists(earlier, max_size=2).map(
                lambda items: '[' + ', '.join(items) + ']'))
        keys = draw(st.lists(st.sampled_from(MERGE_KEYS), unique=True, max_size=4))
        items = ['%s: %s' % (key, draw(value)) for key in keys]
        if i and draw(st.booleans()):
            source = st.one_of(earlier, st.sampled_from(MERGE_KEYS).map(
                lambda key: '{%s: inline}' % key))
            sources = draw(st.lists(source, min_size=1, max_size=4))
            merge = sources[0] if len(sources) == 1 and draw(st.booleans()) else (
                '[' + ', '.join(sources) + ']')
            items.insert(draw(st.integers(0, len(items))), '<<: ' + merge)
        lines.append('  - &m%d {%s}\n' % (i, ', '.join(items)))
    return 'runner:\n' + ''.join(lines)


@FUZZ
@given(merging_documents())
@example('runner:\n  - &m0 {a: v0, b: v0}\n  - &m1 {<<: [*m0, *m0], b: v1}\n'
         '  - {c: v2, <<: [*m1, {c: inline, d: inline}, *m0]}\n')
def test_merge_keys_mean_what_pyyaml_makes_of_them(text):
    """Own keys win over merged ones, earlier sources over later ones, merges of merges
    alike: the same plain values as yaml.safe_load (which copies what it merges)."""
    assert load_config_text(text, 'merge.yaml')['runner'] == yaml.safe_load(text)['runner']


CLI_DOCS = st.one_of(VOCABULARY_DOCS, damaged(), PLAIN_DOCS)


@settings(max_examples=max(SCALE // 10, 12), deadline=None, database=None,
          derandomize=os.environ.get('CI') == 'true' and not SCALE,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=CLI_DOCS)
@example(text=ESCAPED_ONCE[0])
@example(text=VALID[0])
def test_check_config_exits_0_or_2_without_a_traceback(tmp_path, text):
    path = tmp_path / 'wca.yaml'
    path.write_bytes(text.encode('utf-8', 'surrogateescape'))
    os.chmod(str(path), 0o600)
    result = subprocess.run([sys.executable, '-m', 'wca', '-c', str(path), '--check-config'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env=plugin_env(), universal_newlines=True, timeout=60)
    assert result.returncode in (0, 2), (result.returncode, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    if result.returncode == 2:
        assert result.stderr.startswith('wca: error: '), result.stderr
    expected = loads_or_config_error(text)
    assert result.returncode == (0 if expected == 'built' else 2), (text, result.stderr)
