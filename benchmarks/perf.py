"""perf counters at N tasks (default 10, 100, 1000): what the agent's per-task perf counters
cost per iteration, against the least any reader could spend: the same read() calls on the
same descriptors, from C (benchmarks/perf_floor.c, given the agent's descriptors) and Python.

Needs root and a perf_event cgroup hierarchy (cgroup2 will do). The tasks are real cgroups,
each with a process that wakes up once a second (perf_floor --tick), so that every task's
groups have run and give samples. Software events (task clock, context switches, CPU
migrations, page faults: 4 events, a group per CPU). Runs in a fresh interpreter per N
(`python -m benchmarks.perf < JOB_JSON`), started by `python -m benchmarks`.

Reported (CPU ms per iteration, medians): `sources`, the agent's perf task sources (read,
unpack, scale, sum, the task's measurements); the floors; and the whole iteration with and
without perf counters (the difference adds exporting and storing the perf metrics).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = ['task_task_clock_seconds_total', 'task_context_switches_total',
          'task_cpu_migrations_total', 'task_page_faults_total']


def compile_floor(directory):
    gcc = shutil.which('gcc')
    if not gcc:
        return None
    binary = os.path.join(directory, 'perf_floor')
    result = subprocess.run([gcc, '-O2', '-o', binary, os.path.join(REPO, 'benchmarks', 'perf_floor.c')],
                            stderr=subprocess.PIPE, universal_newlines=True)
    return binary if result.returncode == 0 else None


def run(sizes, budget: float, rounds: int, min_iterations: int, use_c: bool = True) -> dict:
    """Creates the tasks of each N and measures them in a fresh interpreter; the results, or
    {'skipped': why}."""
    from wca.cgroups import CgroupLayout
    from wca.perf.setup import perf_cgroup_root
    if os.geteuid() != 0:
        return {'skipped': 'not root: perf counters need real cgroups'}
    layout = CgroupLayout.detect()
    try:
        perf_cgroup_root(layout)
    except ValueError as e:
        return {'skipped': str(e)}
    results = {'sizes': [], 'events': EVENTS}
    with tempfile.TemporaryDirectory(prefix='wca-bench-perf-') as build:
        floor = compile_floor(build)
        if floor is None:
            return {'skipped': 'gcc is needed for the perf floor and the ticking tasks'}
        for count in sizes:
            sys.stderr.write('perf, N=%d: creating tasks... ' % count)
            sys.stderr.flush()
            tasks = perf_cgroups(layout)
            try:
                paths = []
                for i in range(count):
                    path = tasks.create('task%04d' % i, processes=0)
                    tasks.add_process(path, [floor, '--tick', '1000'])
                    paths.append(path)
                time.sleep(1.2)  # every task has woken up once
                sys.stderr.write('measuring... ')
                sys.stderr.flush()
                job = {'paths': paths, 'budget': budget, 'rounds': rounds,
                       'min_iterations': min_iterations, 'floor_c': floor if use_c else None}
                results['sizes'].append(_worker(job))
            finally:
                tasks.cleanup()
            sys.stderr.write('done\n')
    return results


def _worker(job):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    process = subprocess.run([sys.executable, '-m', 'benchmarks.perf'], input=json.dumps(job),
                             stdout=subprocess.PIPE, universal_newlines=True, cwd=REPO, env=env)
    if process.returncode != 0:
        raise SystemExit('perf benchmark failed (exit %d)' % process.returncode)
    return json.loads(process.stdout.strip().splitlines()[-1])


def perf_cgroups(layout):
    """testing.cgroups.Cgroups, in the v1 perf_event hierarchy too when it is mounted."""
    from testing.cgroups import Cgroups
    perf = layout.v1.get('perf_event')

    class PerfCgroups(Cgroups):
        def mounts(self):
            return super().mounts() + ([perf] if perf else [])
    return PerfCgroups(prefix='wca-bench-perf', layout=layout)


def report(result) -> list:
    """Lines for the benchmark's text report."""
    if not result:
        return []
    if result.get('skipped'):
        return ['', 'perf counters: skipped (%s)' % result['skipped']]
    lines = ['', 'perf counters (%s; a group per CPU; CPU ms per iteration, medians): sources = '
             'the agent\'s perf task sources (read, unpack, scale, sum); floors = the same read() '
             'calls on the same descriptors; iteration = the whole agent iteration with / '
             'without perf.' % ', '.join(result['events'])]
    header = '%6s %6s %8s %10s %9s %9s %9s %10s %10s %9s %9s' % (
        'N', 'reads', 'samples', 'sources', 'floor py', 'floor C', 'src/C', 'iter perf',
        'iter none', 'perf adds', 'adds/C')
    lines += [header, '-' * len(header)]
    for entry in result['sizes']:
        c = entry['floor_c']['median_ms'] if entry['floor_c'] else None
        adds = entry['iteration_perf']['median_ms'] - entry['iteration_plain']['median_ms']
        lines.append('%6d %6d %8d %10.3f %9.3f %9s %9s %10.2f %10.2f %9.2f %9s' % (
            entry['tasks'], entry['reads'], entry['samples'], entry['sources']['median_ms'],
            entry['floor_python']['median_ms'], '%.3f' % c if c else '-',
            '%.2f' % (entry['sources']['median_ms'] / c) if c else '-',
            entry['iteration_perf']['median_ms'], entry['iteration_plain']['median_ms'], adds,
            '%.2f' % (adds / c) if c else '-'))
    lines.append('(reads: group leaders read per iteration (tasks x CPUs); samples: tasks with perf '
                 'samples; perf adds: iteration with - without perf counters, including their export '
                 'and store)')
    return lines


# --- the job, in its own interpreter -----------------------------------------------------------

def job(job):
    """Times the perf sources, the floors and both iterations, interleaved as in worker.py."""
    from benchmarks.worker import cpu_times, peak_rss_mb, stats
    from wca.nodes.static import StaticNode
    from wca.perf.counters import PerfTaskSource
    from wca.runners.measurement import MeasurementRunner
    from wca.storage.log import LogStorage
    out_dir = tempfile.mkdtemp(prefix='wca-bench-perf-out-')
    try:
        def runner(**extra):
            return MeasurementRunner(
                node=StaticNode(tasks=job['paths']), interval=0,
                metrics_storage=LogStorage(output_filename=os.path.join(out_dir, 'metrics.prom'),
                                           overwrite=True), **extra)
        perf, plain = runner(event_names=EVENTS), runner()
        for _ in range(3):
            perf.iterate()
            plain.iterate()
        time.sleep(1.1)  # every task has woken up since its counters were opened: samples
        sources = [source for state in perf._tasks.tracked.values() for source in state.sources
                   if isinstance(source, PerfTaskSource)]
        leaders = [(fd, source.factory.read_size) for source in sources for fd in source.leaders]

        def agent_sources():
            for source in sources:
                source.measure({})

        def floor_python(read=os.read):
            for fd, size in leaders:
                read(fd, size)
        samples = 0
        for source in sources:
            m = {}
            source.measure(m)
            samples += bool(m)
        list_file = os.path.join(out_dir, 'leaders.txt')
        with open(list_file, 'w') as f:
            f.write(''.join('%d %d\n' % leader for leader in leaders))
        warm = min(cpu_times(perf.iterate, 3)) + min(cpu_times(plain.iterate, 3))
        rounds = job['rounds']
        per_round = max(job['min_iterations'] // rounds + 1,
                        int(job['budget'] / rounds / max(warm, 1e-6)))
        timed = {'sources': [], 'floor_python': [], 'iteration_perf': [], 'iteration_plain': []}
        floor_c = []
        clock = time.process_time
        for _ in range(rounds):
            for _ in range(per_round):
                t0 = clock()
                agent_sources()
                t1 = clock()
                floor_python()
                t2 = clock()
                perf.iterate()
                t3 = clock()
                plain.iterate()
                t4 = clock()
                timed['sources'].append(t1 - t0)
                timed['floor_python'].append(t2 - t1)
                timed['iteration_perf'].append(t3 - t2)
                timed['iteration_plain'].append(t4 - t3)
            if job.get('floor_c'):
                result = subprocess.run([job['floor_c'], list_file, str(per_round)],
                                        stdout=subprocess.PIPE, check=True, universal_newlines=True,
                                        pass_fds=[fd for fd, _ in leaders])
                floor_c.extend(float(line) for line in result.stdout.split())
        status = [s for s in perf._platform_sources if type(s).__name__ == 'PerfStatus'][0]
        result = {'tasks': len(job['paths']), 'reads': len(leaders), 'samples': samples,
                  'descriptors': status.descriptors, 'iterations': len(timed['sources']),
                  'floor_c': stats(floor_c) if floor_c else None, 'peak_rss_mb': peak_rss_mb()}
        for key, values in timed.items():
            result[key] = stats(values)
        perf.close()
        plain.close()
        return result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def main():
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    job_spec = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(job(job_spec)) + '\n')


if __name__ == '__main__':
    main()
