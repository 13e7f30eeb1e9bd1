"""One benchmark job in a fresh process: `python -m benchmarks.worker < JOB_JSON`.

The driver (benchmarks/__main__.py) starts one per job, so that each job's peak RSS is its own
and imports and .pyc compilation happen before anything is timed. It prints one JSON object.
"""
import gc
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

from wca.cgroups import CgroupLayout
from wca.components import register_components
from wca.detectors import NOPAnomalyDetector
from wca.metrics import export_metrics_from_measurements, MetricName
from wca.runners import DetectionRunner, MeasurementRunner
from wca.nodes.static import StaticNode
from wca.storage import LogStorage
from wca.exposition import encode

_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def stats(samples):
    """Seconds in, milliseconds out: median, mean, spread (p10, p90, stdev), count."""
    ordered = sorted(samples)
    n = len(ordered)

    def quantile(q):
        return ordered[min(n - 1, max(0, int(round(q * (n - 1)))))]
    mean = sum(ordered) / n
    stdev = math.sqrt(sum((x - mean) ** 2 for x in ordered) / (n - 1)) if n > 1 else 0.0
    ms = 1000.0
    return {'median_ms': quantile(0.5) * ms, 'mean_ms': mean * ms, 'stdev_ms': stdev * ms,
            'p10_ms': quantile(0.1) * ms, 'p90_ms': quantile(0.9) * ms,
            'min_ms': ordered[0] * ms, 'max_ms': ordered[-1] * ms, 'count': n}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def cpu_times(function, count):
    """CPU seconds (user + system, this process) of each of `count` calls."""
    clock = time.process_time
    samples = []
    for _ in range(count):
        started = clock()
        function()
        samples.append(clock() - started)
    return samples


def floor_reader(files):
    """The bare reader: os.open, os.read to EOF, os.close of each file, nothing else."""
    def read_all():
        for path in files:
            try:
                fd = os.open(path, _FLAGS)
            except OSError:
                continue
            try:
                while len(os.read(fd, 65536)) == 65536:
                    pass
            finally:
                os.close(fd)
    return read_all


def c_floor(binary, list_file, passes):
    out = subprocess.run([binary, list_file, str(passes)], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout
    return [float(line) for line in out.split()]


def traced_reads(function):
    """The files `function` opens read-only through os.open (the agent's only way to read)."""
    seen = []
    real_open = os.open

    def tracing_open(path, flags, *args, **kwargs):
        if flags & os.O_ACCMODE == os.O_RDONLY:
            seen.append(path)
        return real_open(path, flags, *args, **kwargs)
    os.open = tracing_open
    try:
        function()
    finally:
        os.open = real_open
    return seen


def _layout(job):
    if job.get('layout'):
        return CgroupLayout(v1=job['layout']['v1'], unified=job['layout'].get('unified'))
    return None


def _measurement_runner(job, out_dir, cls=MeasurementRunner, **extra):
    return cls(node=StaticNode(tasks=job['paths']),
               metrics_storage=LogStorage(output_filename=os.path.join(out_dir, 'metrics.prom'),
                                          overwrite=True),
               interval=0, cgroup_layout=_layout(job), **extra)


def _iterations(seconds_per_iteration, budget, minimum):
    return max(minimum, int(budget / max(seconds_per_iteration, 1e-6)))


def job_agent(job, out_dir):
    """The measurement iteration at N tasks, with the Python and C floors interleaved."""
    runner = _measurement_runner(job, out_dir)
    runner.setup()
    for _ in range(3):  # the first iteration sets up every task's files and labels
        runner.iterate()
    files = runner.files()
    traced = traced_reads(runner.iterate)
    if sorted(traced) != sorted(files):
        extra, missing = set(traced) - set(files), set(files) - set(traced)
        raise SystemExit('the floor file list differs from what the agent opened: '
                         'not listed %s, not opened %s' % (sorted(extra)[:5], sorted(missing)[:5]))
    metrics = runner.iterate()
    warm = min(cpu_times(runner.iterate, 3))
    rounds = job['rounds']
    per_round = _iterations(warm, job['budget'] / rounds, job['min_iterations'] // rounds + 1)
    list_file = os.path.join(out_dir, 'files.txt')
    with open(list_file, 'w') as f:
        f.write('\n'.join(files) + '\n')
    reader = floor_reader(files)
    agent, floor_py, floor_c = [], [], []
    rss_agent = None
    clock = time.process_time
    for _ in range(rounds):
        # One agent iteration, then one Python floor pass, so that both see the same load
        # from the rest of the machine; the C floor runs its passes after each round.
        for _ in range(per_round):
            started = clock()
            runner.iterate()
            middle = clock()
            reader()
            agent.append(middle - started)
            floor_py.append(clock() - middle)
        if rss_agent is None:
            rss_agent = peak_rss_mb()
        if job.get('floor_c'):
            floor_c.extend(c_floor(job['floor_c'], list_file, per_round))
    result = {
        'tasks': len(job['paths']), 'measured_tasks': len(runner.task_labels()),
        'files_per_iteration': len(files), 'metrics_per_iteration': len(metrics),
        'output_bytes': os.path.getsize(os.path.join(out_dir, 'metrics.prom')),
        'iterations': len(agent), 'agent': stats(agent), 'floor_python': stats(floor_py),
        'floor_c': stats(floor_c) if floor_c else None,
        'peak_rss_mb': peak_rss_mb(), 'peak_rss_mb_after_first_agent_round': rss_agent,
    }
    if job.get('profile'):
        result['profile'] = _profile(runner, per_round)
    return result


def _profile(runner, count):
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        runner.iterate()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats('tottime').print_stats(25)
    return text.getvalue()


def job_detection(job, out_dir):
    """One DetectionRunner iteration (NOP detector) against a MeasurementRunner iteration on
    the same tasks: the difference is what the runner adds around an algorithm."""
    measurement = _measurement_runner(job, out_dir)
    detection = _measurement_runner(
        job, out_dir, DetectionRunner, detector=NOPAnomalyDetector(),
        anomalies_storage=LogStorage(output_filename=os.path.join(out_dir, 'anomalies.prom'),
                                     overwrite=True))
    for runner in (measurement, detection):
        for _ in range(3):
            runner.iterate()
    warm = min(cpu_times(detection.iterate, 3))
    rounds = job['rounds']
    per_round = _iterations(warm, job['budget'] / 2 / rounds, job['min_iterations'] // rounds + 1)
    m_samples, d_samples = [], []
    for _ in range(rounds):
        m_samples.extend(cpu_times(measurement.iterate, per_round))
        d_samples.extend(cpu_times(detection.iterate, per_round))
    m, d = stats(m_samples), stats(d_samples)
    return {'tasks': len(job['paths']), 'measurement': m, 'detection': d,
            'overhead_ms': d['median_ms'] - m['median_ms']}


def job_storage(job, out_dir):
    """LogStorage (Prometheus text, overwrite) of `metrics` metrics shaped like the agent's:
    many tasks, each with its own label set shared by its ~10 metrics."""
    count = job['metrics']
    per_task = 10
    metrics = []
    task = 0
    measurements = {
        MetricName.TASK_CPU_USAGE_SECONDS: 1234.5678, MetricName.TASK_MEM_USAGE_BYTES: 12345678,
        MetricName.TASK_MEM_MAX_USAGE_BYTES: 23456789, MetricName.TASK_MEM_LIMIT_BYTES: 2 ** 62,
        MetricName.TASK_MEM_SOFT_LIMIT_BYTES: 2 ** 62, MetricName.TASK_MEM_PAGE_FAULTS: 98765,
        MetricName.TASK_CPU_PERIODS: 0, MetricName.TASK_CPU_THROTTLED_PERIODS: 0,
        MetricName.TASK_UP: 1, MetricName.TASK_LAST_SEEN: time.time(),
    }
    assert len(measurements) == per_task
    while len(metrics) < count:
        labels = {'host': 'node-17.example.com', 'task_id': 'default/task-%06d' % task,
                  'task_name': 'task-%06d' % task, 'app': 'memcached', 'tier': 'production'}
        metrics.extend(export_metrics_from_measurements(measurements, labels))
        task += 1
    del metrics[count:]
    storage = LogStorage(output_filename=os.path.join(out_dir, 'storage.prom'), overwrite=True)
    storage.store(metrics)  # warm-up
    samples = cpu_times(lambda: storage.store(metrics), job['repeat'])
    encode_only = cpu_times(lambda: encode(metrics), job['repeat'])
    store = stats(samples)
    return {'metrics': count, 'store': store, 'encode': stats(encode_only),
            'us_per_metric': store['median_ms'] * 1000.0 / count,
            'output_bytes': os.path.getsize(os.path.join(out_dir, 'storage.prom')),
            'peak_rss_mb': peak_rss_mb()}


JOBS = {'agent': job_agent, 'detection': job_detection, 'storage': job_storage}


def main():
    job = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    register_components()
    gc.collect()
    with tempfile.TemporaryDirectory(prefix='wca-bench-out-') as out_dir:
        result = JOBS[job['job']](job, out_dir)
    sys.stdout.write(json.dumps(result) + '\n')


if __name__ == '__main__':
    main()
