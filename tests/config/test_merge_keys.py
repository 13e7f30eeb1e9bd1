"""YAML merge keys (`<<: *base`, `<<: [*a, *b]`) as YAML specifies them, within the value
budget: a config's own keys win over merged ones, earlier merge sources win over later ones,
a merge chain costs memory in proportion to its text, and a config that would expand to
millions of values fails fast, in little memory, with a located error.

Peak memory is measured on the real command line: `python -m wca -c FILE --check-config` runs
with its address space limited (RLIMIT_AS) and its peak RSS is read from os.wait4.
"""
import os
import re
import resource
import subprocess
import textwrap
import time

import pytest

from conftest import REPO, plugin_env, wca_command, write_config

from wca.config import ConfigError, load_config_text
from wca.config.loader import MAX_VALUES
from wca.runners import Runner

ADDRESS_SPACE = 256 << 20  # the unbounded merge of PyYAML took 236 MB for 22 levels of doubling
PEAK_RSS_MB = 80  # --check-config of a minimal config peaks near 25 MB


def check_config_measured(tmp_path, path, *args, timeout=30):
    """(exit status, stderr, peak RSS in MB) of `wca -c path --check-config` run under
    ADDRESS_SPACE."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    err_path = tmp_path / 'stderr'
    with open(str(err_path), 'wb') as err:
        proc = subprocess.Popen(wca_command('-c', path, '--check-config', *args),
                                stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit,
                                cwd=REPO, env=plugin_env())
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            pytest.fail('--check-config ran for more than %d s' % timeout)
        time.sleep(0.02)
    proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return proc.returncode, err_path.read_text(), usage.ru_maxrss / 1024.0


def load(text):
    return load_config_text(textwrap.dedent(text), 'merge.yaml', Runner)


def labels(text):
    return load(text)['runner'].config.extra_labels


# --- YAML's merge semantics ---------------------------------------------------------------

def test_own_keys_override_merged_ones_in_plain_mappings():
    assert labels('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          extra_labels:
            <<: &base {env: prod, team: db, zone: a}
            zone: b
        ''') == {'env': 'prod', 'team': 'db', 'zone': 'b'}


def plain(text):
    """The `runner:` value of a document loaded with no type asked of it: plain YAML."""
    return load_config_text(textwrap.dedent(text), 'plain.yaml')['runner']


def test_an_own_key_wins_wherever_it_stands_and_earlier_sources_win():
    assert plain('''\
        runner:
          a: &a {env: a, only_a: x}
          labels:
            zone: own
            <<: [*a, &b {env: b, zone: b, only_b: y}]
        ''')['labels'] == {'zone': 'own', 'env': 'a', 'only_a': 'x', 'only_b': 'y'}


def test_merges_of_merges_follow_the_same_rules():
    assert plain('''\
        runner:
          - &a {k1: a, k2: a, k3: a}
          - &b {<<: *a, k2: b}
          - {<<: [&c {<<: *b, k3: c}, *a], k4: own}
        ''')[2] == {'k1': 'a', 'k2': 'b', 'k3': 'c', 'k4': 'own'}


def test_merged_values_are_built_like_own_ones():
    """A merged component is the one instance its anchor names; merged lists are values."""
    runner = plain('''\
        runner:
          - &a {storage: &s !LogStorage {}, tags: [x, y]}
          - {<<: *a, own: *s}
        ''')
    assert runner[1]['storage'] is runner[1]['own'] is runner[0]['storage']
    assert runner[1]['tags'] == ['x', 'y']


def test_merge_override_in_a_component_mapping():
    loaded = load('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          metrics_storage: !FilterStorage
            storages:
              - &base !LogStorage {output_filename: /tmp/x.prom, overwrite: false}
              - !LogStorage {<<: *base, overwrite: true}
        ''')
    storage = loaded['runner'].config.metrics_storage.storages[1]
    assert (storage.output_filename, storage.overwrite) == ('/tmp/x.prom', True)
    # derived from the winning value: no timestamps for the textfile collector
    assert storage.include_timestamp is False


def test_a_component_can_be_the_base_of_another(tmp_path):
    """`<<: *storage` takes a component's arguments; the agent runs with the merged ones: the
    override (overwrite) leaves one iteration in the file, the base (append) two."""
    appended, replaced = tmp_path / 'appended.prom', tmp_path / 'replaced.prom'
    path = write_config(tmp_path / 'wca.yaml', '''\
runner: !DetectionRunner
  node: !StaticNode {tasks: []}
  detector: !NOPAnomalyDetector
  interval: 0
  iterations: 2
  metrics_storage: &appending !LogStorage
    output_filename: %s
    include_timestamp: false
  anomalies_storage: !LogStorage
    <<: *appending
    output_filename: %s
    overwrite: true
''' % (appended, replaced))
    result = subprocess.run(wca_command('-c', path, '--root'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, cwd=REPO,
                            env=plugin_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r'^wca_up\{', appended.read_text(), re.M)) == 2
    assert len(re.findall(r'^anomaly_count\{', replaced.read_text(), re.M)) == 1


def test_merge_at_the_top_level():
    loaded = load('''\
        <<: {loggers: {wca: info}}
        runner: !MeasurementRunner {node: !StaticNode {tasks: []}}
        loggers: {wca: debug}
        ''')
    assert loaded['loggers'] == {'wca': 'debug'}


# --- errors -------------------------------------------------------------------------------

def error_of(text):
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value


@pytest.mark.parametrize('text, line, key', [
    ('''\
    runner: !MeasurementRunner
      node: !StaticNode {tasks: []}
      extra_labels: {<<: {a: x}, b: y, b: z}
    ''', 3, 'runner.extra_labels.b'),
    ('''\
    runner: !MeasurementRunner
      node: !StaticNode {tasks: []}
      metrics_storage: !LogStorage
        <<: {overwrite: false}
        output_filename: /tmp/x
        output_filename: /tmp/y
    ''', 6, 'runner.metrics_storage.output_filename'),
    ('''\
    runner: !MeasurementRunner
      node: !StaticNode {tasks: []}
      extra_labels:
        <<: &a {x: y}
        <<: *a
    ''', 5, 'runner.extra_labels.<<'),
])
def test_a_real_duplicate_key_is_still_an_error(text, line, key):
    error = error_of(text)
    assert (error.line, error.key_path) == (line, key)
    assert error.message.startswith('duplicate key')


def test_a_duplicate_key_inside_a_merge_source_is_named():
    error = error_of('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          extra_labels: {<<: [{a: x}, {c: y, c: z}]}
        ''')
    assert (error.line, error.key_path, error.message) == (
        3, 'runner.extra_labels.<<.c', 'duplicate key')


@pytest.mark.parametrize('value', ['5', '[*a, 1]', '[[*a]]', '!!str x', 'null'])
def test_a_merge_key_takes_mappings_only(value):
    error = error_of('''\
        runner: !MeasurementRunner
          node: !StaticNode
            default_labels: &a {k: v}
          extra_labels:
            <<: %s
        ''' % value)
    assert (error.line, error.key_path) == (5, 'runner.extra_labels.<<')
    assert error.message.startswith('a merge key (<<) takes a mapping or a list of mappings')


def test_merged_keys_are_checked_like_own_ones():
    error = error_of('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          extra_labels: &x {color: red}
          metrics_storage: !LogStorage {<<: *x}
        ''')
    assert (error.line, error.key_path) == (3, 'runner.metrics_storage.color')
    assert 'unknown key for !LogStorage' in error.message


def test_a_quoted_merge_key_is_a_plain_key():
    assert labels('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          extra_labels: {"<<": x, =: y}
        ''') == {'<<': 'x', '=': 'y'}


# --- the budget ---------------------------------------------------------------------------

def doubling_chain(depth):
    """`&l2 {<<: [&l1 {<<: [&l0 {a: x, b: y}, *l0]}, *l1]}`...: PyYAML's flatten_mapping
    copies 2**depth pairs; the merged mapping has two keys."""
    node = '&l0 {a: x, b: y}'
    for level in range(1, depth + 1):
        node = '&l%d {<<: [%s, *l%d]}' % (level, node, level - 1)
    return node


def test_a_doubling_merge_chain_loads_in_little_memory(tmp_path):
    text = ('runner: !MeasurementRunner\n  node: !StaticNode {tasks: []}\n'
            '  extra_labels: {<<: [%s], c: z}\n' % doubling_chain(40))  # 2**40 pairs copied
    assert len(text) < 1000
    path = write_config(tmp_path / 'chain.yaml', text)
    started = time.monotonic()
    status, stderr, peak = check_config_measured(tmp_path, path)
    assert status == 0, stderr
    assert time.monotonic() - started < 10
    assert peak < PEAK_RSS_MB, peak
    assert labels(text) == {'a': 'x', 'b': 'y', 'c': 'z'}  # in this process: once bounded


def test_merges_that_would_expand_to_millions_of_values_fail_fast(tmp_path):
    """Each level merges the one before and adds nine aliases of it: 10**7 values."""
    keys = ['k%d' % i for i in range(9)]
    lines = ['runner: !MeasurementRunner', '  node: !StaticNode {tasks: []}',
             '  metrics_storage: !TypedStorage', '    name: n', '    anything:',
             '      - &l0 {%s}' % ', '.join(k + ': x' for k in keys)]
    for level in range(1, 8):
        lines.append('      - &l%d {<<: *l%d, %s}' % (level, level - 1, ', '.join(
            'n%d_%s: *l%d' % (level, k, level - 1) for k in keys)))
    path = write_config(tmp_path / 'bomb.yaml', '\n'.join(lines) + '\n')
    assert os.path.getsize(path) < 1500
    started = time.monotonic()
    status, stderr, peak = check_config_measured(tmp_path, path, '-r',
                                                 'typed_components:TypedStorage')
    assert status == 2, stderr
    assert time.monotonic() - started < 10
    assert peak < PEAK_RSS_MB, peak
    assert stderr.startswith('wca: error: %s:' % path), stderr
    assert ': runner.metrics_storage.anything[' in stderr
    assert 'the config has more than %d values' % MAX_VALUES in stderr
    assert 'Traceback' not in stderr and len(stderr.splitlines()) == 1


def test_merged_pairs_count_against_the_budget():
    """A thousand merges of the same 200 keys: each merged pair is counted as it is looked
    at, so the merge stops at the budget, in the mapping that exceeds it."""
    base = '{%s}' % ', '.join('k%d: x' % i for i in range(200))
    error = error_of('''\
        runner: !MeasurementRunner
          node: !StaticNode
            default_labels: &a %s
          extra_labels:
            own: label
            <<: [%s]
        ''' % (base, ', '.join(['*a'] * 1000)))
    assert (error.line, error.key_path) == (6, 'runner.extra_labels')
    assert error.message == ('the config has more than %d values: do YAML merge keys (<<) '
                             'expand into each other?' % MAX_VALUES)
