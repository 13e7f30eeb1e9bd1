"""The agent with perf counters as an unprivileged user (uid 65534, with setpriv): refused with
the fix named while kernel.perf_event_paranoid forbids cgroup events, and counting a real
task when it has CAP_PERFMON. (CAP_DAC_READ_SEARCH only lets it reach the interpreter, which
may live under a 0700 home: the agent checks no such privilege.)"""
import os
import time

from conftest import unprivileged, wca_command

CONFIG = '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: [{task}]
  event_names: [task_task_clock_seconds_total, task_context_switches_total]
  interval: 0.3
  iterations: 6
  metrics_storage: !LogStorage
    output_filename: {out}/metrics.prom
    overwrite: true
'''


def paranoid():
    with open('/proc/sys/kernel/perf_event_paranoid') as f:
        return int(f.read())


def test_unprivileged_agent_with_perf_counters(perf_cgroups, shared_dir):
    busy = perf_cgroups.create('busy', processes=0)
    perf_cgroups.add_process(busy, ['sh', '-c', 'while :; do :; done'])
    config = os.path.join(shared_dir, 'wca.yaml')
    with open(config, 'w') as f:
        f.write(CONFIG.format(task=busy.strip('/'), out=os.path.join(shared_dir, 'out')))
    os.chmod(config, 0o644)
    refused = unprivileged(wca_command('-c', config), caps=[])
    if paranoid() > 0:
        assert refused.returncode == 1, refused.stderr
        assert 'kernel.perf_event_paranoid <= 0' in refused.stderr
        assert 'sysctl -w kernel.perf_event_paranoid=0' in refused.stderr
        assert 'CAP_PERFMON' in refused.stderr and 'Traceback' not in refused.stderr
    started = time.monotonic()
    counted = unprivileged(wca_command('-c', config), caps=['perfmon'])
    assert counted.returncode == 0, counted.stderr
    assert time.monotonic() - started < 30
    with open(os.path.join(shared_dir, 'out', 'metrics.prom')) as f:
        text = f.read()
    clock = [line for line in text.splitlines()
             if line.startswith('task_task_clock_seconds_total{')]
    assert len(clock) == 1 and float(clock[0].split()[1]) > 0, text
    assert 'wca_perf_open_failures_total{' in text
