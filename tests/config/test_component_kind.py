"""A component's kind is checked before it is built: a registered class whose constructor acts
(subprocess.Popen runs a command) must never be called where the config expects another kind,
nor anything inside it, nor anything inside a mapping or list standing where a component is
expected. Through the real command line: `wca -c FILE -r subprocess:Popen --check-config`,
with a marker file that a run command would create. The command inherits the agent's stdout
and stderr, so subprocess.run returns only once it has ended too: no race with the marker.
"""
import enum
import subprocess
import textwrap
from typing import Any, Dict, List, Optional, Union

import pytest

from conftest import REPO, plugin_env, wca_command, write_config

from wca.config import ConfigError, Numeric, Path, Str, load_config_text, register
from wca.config.schema import REGISTRY, class_fits
from wca.nodes.base import Node
from wca.runners.base import Runner
from wca.storage.base import Storage
from wca.storage.log import LogStorage

POPEN = '-r', 'subprocess:Popen'
TYPED = '-r', 'typed_components:TypedStorage'


def check_config(tmp_path, text, *args):
    """Writes the config (where {touch} is a Popen that creates the marker), runs
    --check-config, and returns the one error line; fails if the marker exists."""
    marker = tmp_path / 'ran'
    touch = '!Popen {args: [touch, %s]}' % marker
    path = write_config(tmp_path / 'wca.yaml', textwrap.dedent(text).format(touch=touch))
    result = subprocess.run(wca_command('-c', path, '--check-config', *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, cwd=REPO, env=plugin_env(), timeout=60)
    assert not marker.exists(), 'a command ran: ' + result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    return path, lines[0]


def test_the_runner_is_checked_before_it_is_built(tmp_path):
    path, line = check_config(tmp_path, 'runner: {touch}\n', *POPEN)
    assert line == ('wca: error: %s:1: runner: expected a Runner component (!AllocationRunner, '
                    '!DetectionRunner, !MeasurementRunner), got !Popen' % path)


@pytest.mark.parametrize('text, lineno, key, expected', [
    ('''\
     runner: !MeasurementRunner
       node: !StaticNode {{tasks: []}}
       metrics_storage: {touch}
     ''', 3, 'runner.metrics_storage', 'expected a Storage component ('),
    ('''\
     runner: !DetectionRunner
       node: !StaticNode {{tasks: []}}
       detector: !NOPAnomalyDetector
       anomalies_storage: !FilterStorage
         storages:
           - !LogStorage
           - {touch}
     ''', 7, 'runner.anomalies_storage.storages[1]', 'expected a Storage component ('),
    ('''\
     runner: !MeasurementRunner
       node: !StaticNode {{tasks: []}}
     loggers: {touch}
     ''', 3, 'loggers', 'expected a mapping of strings to strings or null'),
])
def test_a_component_of_the_wrong_kind_is_never_built(tmp_path, text, lineno, key, expected):
    path, line = check_config(tmp_path, text, *POPEN)
    assert line.startswith('wca: error: %s:%d: %s: %s' % (path, lineno, key, expected)), line
    assert line.endswith(', got !Popen'), line


@pytest.mark.parametrize('text, lineno, key, expected, got', [
    # a Storage where a Node is expected: its argument (anything: Any) is not built either
    ('''\
     runner: !MeasurementRunner
       node: !TypedStorage {{name: n, anything: {touch}}}
     ''', 2, 'runner.node', 'expected a Node component (', 'got !TypedStorage'),
    ('''\
     runner: !MeasurementRunner
       node: !StaticNode {{tasks: []}}
       metrics_storage: {{output_filename: {touch}}}
     ''', 3, 'runner.metrics_storage', 'expected a Storage component (', 'got a mapping'),
])
def test_nothing_inside_a_value_of_the_wrong_kind_is_built(tmp_path, text, lineno, key,
                                                           expected, got):
    path, line = check_config(tmp_path, text, *(POPEN + TYPED))
    assert line.startswith('wca: error: %s:%d: %s: %s' % (path, lineno, key, expected)), line
    assert line.endswith(', ' + got), line


class Probe:
    """A registered class of no component kind that records each construction."""
    built = []

    def __init__(self, **kwargs):
        Probe.built.append(kwargs)


class Vault(Storage):
    def __init__(self, password: Optional[int] = None):
        pass

    def store(self, metrics):
        pass


@pytest.fixture
def probe():
    """!Probe and !Vault registered in this process for one test."""
    register(Probe)
    register(Vault)
    del Probe.built[:]
    try:
        yield Probe.built
    finally:
        REGISTRY.pop('Probe', None)
        REGISTRY.pop('Vault', None)


@pytest.mark.parametrize('body, lineno, key, expected', [
    ('node: !Probe {}', 1, 'runner.node', 'expected a Node component ('),
    ('extra_labels: {team: !Probe {}}', 3, 'runner.extra_labels.team',
     'expected a string, got !Probe'),
    ('interval: !Probe {}', 3, 'runner.interval', 'expected a number in [0, 3600]'),
    ('metrics_storage: [!Probe {}]', 3, 'runner.metrics_storage',
     'expected a Storage component ('),
    ('metrics_storage: {x: !Probe {}}', 3, 'runner.metrics_storage',
     'expected a Storage component ('),
    ('metrics_storage: !FilterStorage {storages: [!LogStorage {}, !Probe {}]}', 3,
     'runner.metrics_storage.storages[1]', 'expected a Storage component ('),
    ('metrics_storage: !FilterStorage {storages: !Probe {}}', 3,
     'runner.metrics_storage.storages', 'expected a list of Storage components ('),
    ('metrics_storage: !FilterStorage {storages: [], filter: [!Probe {}]}', 3,
     'runner.metrics_storage.filter[0]', 'expected a string'),
])
def test_every_annotation_is_checked_before_building(probe, body, lineno, key, expected):
    node = 'node: !StaticNode {tasks: []}' if not body.startswith('node:') else 'interval: 1'
    text = 'runner: !MeasurementRunner\n  %s\n  %s\n' % (node, body)
    if body.startswith('node:'):
        text = 'runner: !MeasurementRunner {%s}\n' % body
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, 'probe.yaml', Runner)
    assert (caught.value.line, caught.value.key_path) == (lineno, key)
    assert expected in caught.value.message
    assert probe == []


def test_a_secret_key_does_not_show_what_it_got(probe):
    with pytest.raises(ConfigError) as caught:
        load_config_text('runner: !MeasurementRunner\n  node: !StaticNode {tasks: []}\n'
                         '  metrics_storage: !Vault {password: !Probe {}}\n',
                         'probe.yaml', Runner)
    assert caught.value.message == 'expected an integer or null, got (value hidden)'
    assert probe == []


def test_where_any_value_is_accepted_a_registered_class_is_built(tmp_path):
    """The check is by kind, not a ban: `anything` takes any value, so Popen runs there."""
    marker = tmp_path / 'ran'
    path = write_config(tmp_path / 'wca.yaml', textwrap.dedent('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          metrics_storage: !TypedStorage {name: n, anything: !Popen {args: [touch, %s]}}
        ''' % marker))
    result = subprocess.run(wca_command('-c', path, '--check-config', *(POPEN + TYPED)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, cwd=REPO, env=plugin_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert marker.exists()


class Color(enum.Enum):
    RED = 'red'


class Fancy(LogStorage):
    pass


@pytest.mark.parametrize('cls, annotation, fits', [
    (LogStorage, Storage, True),
    (Fancy, Storage, True),
    (Fancy, LogStorage, True),
    (LogStorage, Node, False),
    (LogStorage, Optional[Storage], True),
    (LogStorage, Optional[Node], False),
    (LogStorage, Union[Node, Storage], True),
    (LogStorage, List[Storage], False),
    (list, List[Storage], True),
    (list, Optional[Dict[str, str]], False),
    (dict, Optional[Dict[str, str]], True),
    (dict, Storage, False),
    (LogStorage, Any, True),
    (LogStorage, object, True),
    (subprocess.Popen, Runner, False),
    (subprocess.Popen, Numeric(0, 1), False),
    (int, Numeric(0, 1), True),
    (float, Numeric(0, 1), True),
    (bool, Numeric(0, 1), False),
    (bool, int, False),
    (int, float, True),
    (float, int, False),
    (str, Path(absolute=True), True),
    (dict, Path(), False),
    (str, Str, True),
    (list, Str, False),
    (str, Color, True),
    (Color, Color, True),
    (dict, Color, False),
    (dict, type(None), False),
    (LogStorage, 'ForwardReference', True),  # an annotation nobody can check
])
def test_class_fits_answers_as_check_value_would(cls, annotation, fits):
    assert class_fits(cls, annotation) is fits
