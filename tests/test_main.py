"""The command line as an operator runs it: `python -m wca ...` in a subprocess.

Options, exit codes, root refusal, signals, per-module log levels, the seed plugins of
extending.txt run exactly as the README shows them, and detector and allocator plugins written
against the plugin contract (shared/plugin-api.md) running on real cgroups.
"""
import ast
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import PLUGINS, REPO, plugin_env, stop_process, wca_command, write_config

from wca import __version__

EXAMPLES = os.path.join(REPO, 'examples')
LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (TRACE|DEBUG|INFO|WARNING|ERROR|'
                      r'CRITICAL) \{[^}]+\} \[([\w.]+)\] ')


def run_wca(*args, env=None, cwd=None, timeout=60):
    return subprocess.run(wca_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env or plugin_env(), cwd=cwd or REPO,
                          timeout=timeout)


def start_wca(*args, env=None, cwd=None):
    return subprocess.Popen(wca_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env or plugin_env(), cwd=cwd or REPO)


def wait_for(predicate, timeout=20.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process is not None and process.poll() is not None:
            return predicate()
        time.sleep(0.05)
    return False


def measurement_config(tmp_path, output, extra=''):
    return write_config(tmp_path / 'wca.yaml', '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: []
  metrics_storage: !LogStorage
    output_filename: %s
%s''' % (output, extra))


def parse_samples(text):
    """Prometheus text -> [(name, labels, value)]."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        match = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)', line)
        assert match, line
        labels = dict((k, v.replace('\\"', '"').replace('\\n', '\n').replace('\\\\', '\\'))
                      for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ''))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


# --- options ------------------------------------------------------------------------------

def test_version():
    result = run_wca('--version')
    assert result.returncode == 0
    assert result.stdout.strip() == 'wca ' + __version__
    assert re.match(r'^\d+\.\d+\.\d+', __version__)


def test_help_lists_the_options():
    result = run_wca('--help')
    assert result.returncode == 0
    for option in ('-c CONFIG, --config CONFIG', '-r MODULE:CLASS, --register MODULE:CLASS',
                   '-l [MODULE:]LEVEL', '-0, --root', '--check-config', '--version'):
        assert option in result.stdout, option


def test_unknown_option_is_a_usage_error():
    result = run_wca('--no-such-option')
    assert result.returncode == 2
    assert 'unrecognized arguments: --no-such-option' in result.stderr
    assert 'Traceback' not in result.stderr


def test_check_config_exits_0_for_valid_and_2_for_invalid(tmp_path):
    output = tmp_path / 'metrics.prom'
    good = measurement_config(tmp_path, output)
    result = run_wca('-c', good, '--check-config')
    assert (result.returncode, result.stdout, result.stderr) == (
        0, '%s: config is valid\n' % good, '')
    assert not output.exists(), '--check-config must not run the runner'
    bad = write_config(tmp_path / 'bad.yaml', open(good).read() + '  interval: -1\n')
    result = run_wca('-c', bad, '--check-config')
    assert result.returncode == 2
    assert result.stderr == 'wca: error: %s:6: runner.interval: expected a number in [0, 3600], ' \
                            'got -1\n' % bad


def test_check_config_does_not_need_root_permission_or_privileges(tmp_path):
    # As root without --root, --check-config still checks (the Ansible role validates a
    # template as root before installing it); an AllocationRunner config needs no capability
    # to be checked.
    path = write_config(tmp_path / 'wca.yaml', '''\
runner: !AllocationRunner
  node: !StaticNode {tasks: []}
  allocator: !NOPAllocator
''')
    result = run_wca('-c', path, '--check-config')
    assert result.returncode == 0, result.stderr


def test_root_is_refused_without_root_option(tmp_path):
    assert os.geteuid() == 0, 'the tests run as root (the Makefile and CI run them with sudo)'
    output = tmp_path / 'metrics.prom'
    path = measurement_config(tmp_path, output, '  iterations: 1\n')
    result = run_wca('-c', path)
    assert result.returncode == 1
    assert result.stderr.startswith('wca: refusing to run as root: ')
    assert '--root (-0)' in result.stderr and 'Privileges' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not output.exists()
    for option in ('--root', '-0'):
        result = run_wca('-c', path, option)
        assert result.returncode == 0, result.stderr
        assert re.search(r'^wca_up\{', output.read_text(), re.M)


def test_runner_exit_code_is_the_process_exit_status(tmp_path):
    path = write_config(tmp_path / 'wca.yaml', 'runner: !LoggingRunner\n  status: 3\n')
    result = run_wca('-c', path, '-r', 'plugin_runners:LoggingRunner', '--root')
    assert result.returncode == 3, result.stderr


# --- signals ------------------------------------------------------------------------------

@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize('interval', [0.1, 60])
def test_signals_stop_the_loop_cleanly(tmp_path, sig, interval):
    output = tmp_path / 'metrics.prom'
    path = measurement_config(tmp_path, output, '  interval: %s\n' % interval)
    process = start_wca('-c', path, '--root')
    try:
        assert wait_for(lambda: output.exists() and 'wca_up' in output.read_text(),
                        process=process), process.communicate(timeout=5)
        started = time.monotonic()
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=5)
        assert time.monotonic() - started < 5
    finally:
        stop_process(process, signal.SIGKILL)
    assert process.returncode == 0, stderr
    assert 'stopped by %s' % sig.name in stderr
    assert 'Traceback' not in stderr and 'KeyboardInterrupt' not in stderr


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_a_plugin_runner_without_stop_method(tmp_path, sig):
    ready = tmp_path / 'ready'
    path = write_config(tmp_path / 'wca.yaml', 'runner: !SleepingRunner\n  ready: %s\n' % ready)
    process = start_wca('-c', path, '-r', 'plugin_runners:SleepingRunner', '--root')
    try:
        assert wait_for(ready.exists, process=process), process.communicate(timeout=5)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=5)
    finally:
        stop_process(process, signal.SIGKILL)
    assert process.returncode == 0, stderr
    assert 'Traceback' not in stderr


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_signal_before_the_loop_ends_quietly_and_not_as_valid(tmp_path, sig):
    """Interrupted while loading plugins: no traceback, and --check-config does not say 0."""
    marker = tmp_path / 'importing'
    path = write_config(tmp_path / 'wca.yaml', 'runner: !SleepingRunner\n  ready: /nonexistent\n')
    process = subprocess.Popen(
        wca_command('-c', path, '-r', 'slow_import:Slow', '-r', 'plugin_runners:SleepingRunner',
                    '--check-config'),
        env=plugin_env(WCA_TEST_IMPORT_MARKER=str(marker)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True)
    try:
        assert wait_for(marker.exists, process=process), process.communicate(timeout=5)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=5)
    finally:
        stop_process(process, signal.SIGKILL)
    assert process.returncode == 128 + sig, stderr
    assert 'Traceback' not in stderr and 'valid' not in stdout


# --- logging ------------------------------------------------------------------------------

def probe(tmp_path, *args, config_extra=''):
    """Runs LoggingRunner; returns {(logger, level, text)} from stderr, checking the format."""
    path = write_config(tmp_path / 'wca.yaml', 'runner: !LoggingRunner\n' + config_extra)
    result = run_wca('-c', path, '-r', 'plugin_runners:LoggingRunner', '--root', *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ''
    seen = set()
    for line in result.stderr.splitlines():
        match = LOG_LINE.match(line)
        assert match, 'not a log line: %r' % line
        seen.add((match.group(2), match.group(1)))
    return seen


PLUGIN, WCA_PROBE = 'plugin_runners', 'wca.plugin_probe'


def test_default_levels(tmp_path):
    # wca.* logs at INFO, other modules (plugins, libraries) at WARNING.
    assert probe(tmp_path) == {(WCA_PROBE, 'INFO'), (WCA_PROBE, 'WARNING'),
                               (PLUGIN, 'WARNING')}


def test_level_option_sets_the_agent_level(tmp_path):
    seen = probe(tmp_path, '-l', 'debug')
    assert (WCA_PROBE, 'DEBUG') in seen and ('wca.main', 'DEBUG') in seen
    assert (PLUGIN, 'INFO') not in seen and (PLUGIN, 'DEBUG') not in seen


def test_level_option_for_one_module(tmp_path):
    seen = probe(tmp_path, '--log', 'plugin_runners:debug')
    assert {(PLUGIN, 'DEBUG'), (PLUGIN, 'INFO'), (PLUGIN, 'WARNING')} <= seen
    assert (WCA_PROBE, 'DEBUG') not in seen and ('wca.main', 'DEBUG') not in seen


def test_repeated_level_options(tmp_path):
    seen = probe(tmp_path, '-l', 'error', '-l', 'plugin_runners:info')
    assert seen == {(PLUGIN, 'INFO'), (PLUGIN, 'WARNING')}


def test_loggers_in_the_config(tmp_path):
    seen = probe(tmp_path, config_extra='loggers:\n  plugin_runners: info\n  wca: warning\n')
    assert seen == {(PLUGIN, 'INFO'), (PLUGIN, 'WARNING'), (WCA_PROBE, 'WARNING')}


def test_command_line_level_wins_over_the_config(tmp_path):
    seen = probe(tmp_path, '-l', 'wca.plugin_probe:error',
                 config_extra='loggers:\n  wca.plugin_probe: debug\n')
    assert {s for s in seen if s[0] == WCA_PROBE} == set()


def test_level_of_a_built_in_module(tmp_path):
    # interval 0.000001: every iteration takes longer, which the measurement runner reports
    # at debug level.
    output = tmp_path / 'metrics.prom'
    path = measurement_config(tmp_path, output, '  interval: 0.000001\n  iterations: 3\n')
    result = run_wca('-c', path, '--root', '-l', 'wca.runners.measurement:debug')
    assert result.returncode == 0, result.stderr
    assert re.search(r' DEBUG \{MainThread\} \[wca\.runners\.measurement\] iteration took ',
                     result.stderr)
    assert '[wca.main]' not in result.stderr  # wca.main stays at INFO (it logs at DEBUG here)
    result = run_wca('-c', path, '--root')
    assert result.returncode == 0 and ' DEBUG ' not in result.stderr, result.stderr


@pytest.mark.parametrize('option', ['bogus', 'wca:bogus', 'wca.main:'])
def test_bad_level_option(tmp_path, option):
    path = measurement_config(tmp_path, tmp_path / 'm.prom')
    result = run_wca('-c', path, '--check-config', '-l', option)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith('wca: error: -l/--log: unknown log level')


# --- the seed plugins of extending.txt, as the README shows them -----------------------------

def readme_env(**extra):
    """`PYTHONPATH=examples`, as in the README (plus the checkout, where wca is)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(['examples', REPO]), **extra)
    return env


def test_hello_world_runner_as_root_with_root_option():
    result = run_wca('-c', 'configs/extending/hello_world.yaml',
                     '-r', 'hello_world_runner:HelloWorldRunner', '--root', env=readme_env())
    assert (result.returncode, result.stdout) == (0, 'Hello world!\n'), result.stderr


class _Collector(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.received.append((self.path, self.headers['Content-Type'], json.loads(body.decode())))
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_collector():
    class Handler(_Collector):
        received = []
    server = HTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_address[1], Handler.received
    finally:
        server.shutdown()
        server.server_close()


def test_http_storage_posts_json(tmp_path, http_collector):
    endpoint, received = http_collector
    seed = open(os.path.join(REPO, 'configs/extending/measurement_http_storage.yaml')).read()
    assert '    metrics_storage: !HTTPStorage\n' in seed
    # The seed posts to 127.0.0.1:8000; this test's server has a free port instead.
    path = write_config(tmp_path / 'http.yaml', seed.replace(
        '    metrics_storage: !HTTPStorage\n',
        '    metrics_storage: !HTTPStorage\n      http_endpoint: %s\n' % endpoint))
    process = start_wca('-c', path, '-r', 'http_storage:HTTPStorage', '--root',
                        '--log', 'http_storage:info',
                        env=readme_env(NO_PROXY='127.0.0.1', no_proxy='127.0.0.1'))
    try:
        assert wait_for(lambda: len(received) >= 2, process=process), \
            process.communicate(timeout=5)
    finally:
        status = stop_process(process)
    stdout, stderr = process.communicate()
    assert status == 0, stderr
    assert re.search(r' INFO \{MainThread\} \[http_storage\] sending!$', stderr, re.M), stderr
    assert 'failed to store' not in stderr
    path_, content_type, body = received[0]
    assert (path_, content_type) == ('/', 'application/json')
    assert body['wca_up'] == 1 and body['wca_tasks'] == 0
    assert body['platform_mem_usage_bytes'] > 0


# --- plugins written against the contract --------------------------------------------------

CONTRACT_MODULES = {'wca.detectors', 'wca.allocators', 'wca.metrics', 'wca.config',
                    'wca.platforms', 'wca.runners', 'wca.storage', 'wca.nodes'}


@pytest.mark.parametrize('name', ['contract_detector.py', 'contract_allocator.py'])
def test_contract_plugins_import_only_the_contract(name):
    tree = ast.parse(open(os.path.join(PLUGINS, name)).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert {m for m in imported if m.split('.')[0] == 'wca'} <= CONTRACT_MODULES


def run_algorithm(tmp_path, cgroups, runner, algorithm, register, iterations=2):
    tasks = [cgroups.create('a'), cgroups.create('b')]
    files = {role: tmp_path / (role + '.prom')
             for role in ('metrics', 'anomalies', 'allocations')}
    storages = '\n'.join('  %s_storage: !LogStorage {output_filename: %s}' % (role, path)
                         for role, path in sorted(files.items())
                         if role != 'allocations' or runner == 'AllocationRunner')
    path = write_config(tmp_path / 'wca.yaml', '''\
runner: !%s
  node: !StaticNode
    tasks: [%s]
%s
  interval: 0
  iterations: %d
%s
''' % (runner, ', '.join(tasks), algorithm, iterations, storages))
    result = run_wca('-c', path, '-r', register, '--root')
    assert result.returncode == 0, result.stderr
    ids = sorted(t.strip('/') for t in tasks)
    return ids, {role: parse_samples(f.read_text()) for role, f in files.items()
                 if f.exists()}, result.stderr


def test_contract_detector_anomalies_land_in_anomalies_storage(tmp_path, cgroups):
    (a, b), stored, stderr = run_algorithm(tmp_path, cgroups, 'DetectionRunner', '''\
  detector: !ContractDetector
    resource: memory bandwidth
    threshold: 7''', 'contract_detector:ContractDetector')
    assert 'failed' not in stderr, stderr
    anomalies = stored['anomalies']
    samples = [(labels, value) for name, labels, value in anomalies if name == 'anomaly']
    assert len(samples) == 4  # two anomalies in each of two iterations
    pairs = {(lab['contended_task_id'], lab['contending_task_id']) for lab, _ in samples}
    assert pairs == {(a, b), (b, a)}
    for labels, value in samples:
        assert value == 1
        assert labels['resource'] == 'memory bandwidth'
        assert labels['type'] == 'contention'
        assert 'host' in labels
    uuids = {lab['uuid'] for lab, _ in samples}
    assert len(uuids) == 1, 'the same task set must give the same uuid: %s' % uuids
    anomaly_uuid = uuids.pop()
    assert str(uuid.UUID(anomaly_uuid)) == anomaly_uuid
    context = [(lab, v) for name, lab, v in anomalies if name == 'contract_threshold']
    assert len(context) == 4
    for labels, value in context:
        assert value == 7
        assert labels['uuid'] == anomaly_uuid and labels['type'] == 'anomaly'
        assert labels['task'] in (a, b)
    counts = [v for name, lab, v in anomalies if name == 'anomaly_count']
    assert counts == [2, 2]
    assert [v for name, lab, v in anomalies if name == 'contract_detector_tasks'] == [2, 2]
    assert not [s for s in stored['metrics'] if s[0] == 'anomaly']
    measured = {lab.get('task_id') for name, lab, v in stored['metrics'] if name == 'task_up'}
    assert measured == {a, b}


def test_contract_allocator_valid_allocations_are_stored_invalid_ones_counted(tmp_path, cgroups):
    (a, b), stored, stderr = run_algorithm(
        tmp_path, cgroups, 'AllocationRunner', '  allocator: !ContractAllocator',
        'contract_allocator:ContractAllocator', iterations=1)
    allocations = stored['allocations']
    by_name = {}
    for name, labels, value in allocations:
        by_name.setdefault(name, []).append((labels, value))
    # What each task holds after the iteration: a's new values (applied to its cgroups), b's
    # unchanged ones (all of b's were rejected).
    assert sorted((lab['task_id'], v) for lab, v in by_name['allocation_cpu_quota']) == [
        (a, 0.5), (b, 1.0)]
    assert sorted((lab['task_id'], v) for lab, v in by_name['allocation_cpu_shares']) == [
        (a, 2), (b, 1.024)]
    assert [v for lab, v in by_name['allocation_cpuset_cpus_number_of_cpus']
            if lab['task_id'] == a] == [1]
    assert 'allocation_rdt_l3_cache_ways' not in by_name  # no resctrl here: rdt is rejected
    assert by_name['allocations_count'][0][1] == 8  # returned: 4 for a, 3 for b, 1 for no task
    assert by_name['allocations_errors'][0][1] == 5
    rejected = [line for line in stderr.splitlines() if 'allocation rejected' in line]
    assert len(rejected) == 5, stderr
    assert all(' WARNING ' in line for line in rejected)
    for text in ("task %r: cpu_quota" % b, "unknown allocation type 'no_such_allocation'",
                 "task %r: cpuset_cpus" % b, "'no-such-task': cpu_quota: not a task of this "
                 "iteration", "task %r: rdt: resctrl is not mounted" % a):
        assert any(text in line for line in rejected), (text, rejected)
    assert [v for name, lab, v in stored['anomalies'] if name == 'contract_allocator_calls'] == [1]
