"""The original agent's configs/extra examples that use vmstat, zoneinfo, sched and
task_label_generators load as shipped, and run on real tasks (their task paths, output files,
interval and environment pointed at the test's)."""
import os
import re
import subprocess
import uuid

from conftest import REPO, plugin_env, promtool_check, wca_command, write_config

from wca.config.schema import REGISTRY


def shipped(name):
    with open(os.path.join(REPO, 'configs', 'extra', name)) as f:
        return f.read()


def localized(tmp_path, name, replacements):
    text = shipped(name)
    for real, test in replacements:
        assert real in text, real
        text = text.replace(real, test)
    return write_config(tmp_path / name, text)


def wca(*args, env=None):
    return subprocess.run(wca_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env or plugin_env(), cwd=REPO, timeout=120)


def test_static_measurements_loads_as_shipped():
    result = wca('-c', os.path.join(REPO, 'configs', 'extra', 'static_measurements.yaml'),
                 '--check-config')
    assert result.returncode == 0, result.stderr


def test_static_measurements_on_a_real_task(cgroups, tmp_path):
    from procfs_fixtures import Threaded
    path = cgroups.create('task1', processes=0)
    Threaded(cgroups, path, tmp_path, threads=3)
    out = tmp_path / 'metrics.prom'
    config = localized(tmp_path, 'static_measurements.yaml', [
        ('      - task1\n', '      - %s\n' % path),
        ('  zoneinfo: false\n', '  zoneinfo: false\n  interval: 0.1\n  iterations: 2\n  metrics_storage: '
                                '!LogStorage {output_filename: %s, overwrite: true}\n' % out)])
    result = wca('-c', config, '--root')
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    promtool_check(text.encode())
    keys = set(re.findall(r'^platform_vmstat\{[^}]*key="(\w+)"', text, re.M))
    assert {'nr_free_pages', 'nr_active_anon', 'nr_active_file'} <= keys
    assert all(k.startswith(('nr_active', 'nr_free_pages')) for k in keys)
    assert re.search(r'^platform_vmstat_pgfaults\{', text, re.M)
    assert 'platform_zoneinfo' not in text
    prio = re.search(r'^task_sched_stat\{[^}]*key="prio"[^}]*task_id="%s"[^}]*\} (\S+)$'
                     % re.escape(path.strip('/')), text, re.M)
    assert prio and float(prio.group(1)) == 3 * 120  # summed over the child's three threads


NUMA = 'numa_allocator_static.yaml'


def numa_replacements(tmp_path, paths, allocator=None):
    replacements = [
        ('      tasks:\n' + ''.join('      - specjbb2015/Group%d\n' % i for i in range(1, 9)),
         '      tasks:\n' + ''.join('      - %s\n' % p for p in paths)),
        ('    interval: 5\n', '    interval: 0.1\n    iterations: 2\n'),
        ('output_filename: metrics.prom', 'output_filename: %s' % (tmp_path / 'metrics.prom')),
        ('output_filename: allocations.prom', 'output_filename: %s' % (
            tmp_path / 'allocations.prom')),
        ('output_filename: anomalies.prom', 'output_filename: %s' % (tmp_path / 'anomalies.prom')),
    ]
    if allocator:
        text = shipped(NUMA)
        start = text.index('  allocator: !NUMAAllocator\n')
        end = text.index('  allocations_storage:')
        replacements.append((text[start:end], allocator))
    return replacements


def test_the_numa_allocator_config_loads(tmp_path):
    env = plugin_env(HOSTNAME='node-17')
    result = wca('-c', os.path.join(REPO, 'configs', 'extra', NUMA), '--check-config', env=env)
    if 'NUMAAllocator' in REGISTRY:
        assert result.returncode == 0, result.stderr
        return
    # NUMAAllocator is not in this build yet: the config must fail on that tag and nothing else.
    assert result.returncode == 2, result.stderr
    assert re.match(r'wca: error: \S+:%d: runner.allocator: unknown tag !NUMAAllocator' % (
        shipped(NUMA).split('\n').index('  allocator: !NUMAAllocator') + 1), result.stderr), \
        result.stderr
    swapped = localized(tmp_path, NUMA, numa_replacements(tmp_path, ['/x'], '  allocator: '
                                                                            '!NOPAllocator\n'))
    result = wca('-c', swapped, '--check-config', env=env)
    assert result.returncode == 0, result.stderr


def test_the_numa_allocator_config_on_real_tasks(cgroups, tmp_path):
    ids = ['aurora/www-data/prod/hello-%d-%s' % (i, uuid.uuid4()) for i in range(2)]
    paths = [cgroups.create(i.replace('/', '-')) for i in ids]
    allocator = None if 'NUMAAllocator' in REGISTRY else '  allocator: !NOPAllocator\n'
    config = localized(tmp_path, NUMA, numa_replacements(tmp_path, paths, allocator))
    result = wca('-c', config, '--root', env=plugin_env(HOSTNAME='node-17'))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / 'metrics.prom').read_text()
    promtool_check(text.encode())
    for i, path in enumerate(paths):
        up = re.search(r'^task_up\{([^}]*task_id="%s"[^}]*)\}' % re.escape(path.strip('/')), text,
                       re.M)
        assert up, text
        assert 'aurora_instance="%d"' % i in up.group(1) and 'node="node-17"' in up.group(1)
    promtool_check((tmp_path / 'allocations.prom').read_bytes())  # the allocator's answer
