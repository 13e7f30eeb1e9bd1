"""configs/interference load as shipped, and the detector's runs on a real task."""
import os
import re
import subprocess

from conftest import REPO, plugin_env, wca_command, write_config

CONFIGS = os.path.join(REPO, 'configs', 'interference')


def wca(*args):
    return subprocess.run(wca_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=plugin_env(), cwd=REPO, timeout=120)


def test_the_configs_load_as_shipped():
    assert sorted(os.listdir(CONFIGS)) == ['allocator.yaml', 'detector.yaml']
    for name in sorted(os.listdir(CONFIGS)):
        result = wca('-c', os.path.join(CONFIGS, name), '--check-config')
        assert result.returncode == 0, (name, result.stderr)


def test_an_unknown_signal_is_a_config_error_naming_the_line(tmp_path):
    with open(os.path.join(CONFIGS, 'detector.yaml')) as f:
        text = f.read().replace('signal: auto ', 'signal: ipc ')
    line = text.split('\n').index([x for x in text.split('\n') if 'signal: ipc' in x][0]) + 1
    result = wca('-c', write_config(tmp_path / 'bad.yaml', text), '--check-config')
    assert result.returncode == 2
    assert re.search(r'bad.yaml:%d: .*signal' % line, result.stderr), result.stderr


def test_the_detector_config_on_a_real_task(cgroups, tmp_path):
    path = cgroups.create('memcached')
    with open(os.path.join(CONFIGS, 'detector.yaml')) as f:
        text = f.read()
    for real, test in (('        - memcached\n        - batch\n', '        - %s\n' % path),
                       ('        memcached: {app: memcached}\n        batch: {app: batch, type: '
                        'best_efforts}\n', '        %s: {app: memcached}\n' % path.strip('/')),
                       ('    interval: 10 ', '    interval: 0.1\n    iterations: 3 '),
                       ('/var/lib/wca/metrics.prom', str(tmp_path / 'metrics.prom')),
                       ('/var/lib/wca/anomalies.prom', str(tmp_path / 'anomalies.prom')),
                       ('/var/lib/wca/interference_baselines.json', str(tmp_path / 'b.json'))):
        assert real in text, real
        text = text.replace(real, test)
    text = text.replace('    min_cpu_usage: 0.25 ', '    min_cpu_usage: 0 ')
    result = wca('-c', write_config(tmp_path / 'detector.yaml', text), '--root')
    assert result.returncode == 0, result.stderr
    anomalies = (tmp_path / 'anomalies.prom').read_text()
    # no PMU here: auto takes the CPU pressure; a sleeping task is never a victim
    assert re.search(r'^interference_signal\{[^}]*signal="cpu_pressure"[^}]*task_id="%s"'
                     % re.escape(path.strip('/')), anomalies, re.M), anomalies
    assert re.search(r'^interference_victim\{[^}]*\} 0$', anomalies, re.M)
