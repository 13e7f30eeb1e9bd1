"""`make bench`, per-task /proc sources: `sched` (/proc/<tid>/sched of every thread) and the
working set size (/proc/<pid>/smaps_rollup of every process) at 100 tasks with a few threads
each, against a bare reader of the same files; and what each adds to a MeasurementRunner
iteration of the default metric set.

Each task is a real cgroup with one Python process of THREADS threads that touched TOUCH_MIB
of memory (the kernel's cost of smaps_rollup grows with the mapped memory). Needs root (real
cgroups); otherwise it is skipped and the output says so. Runs in a fresh interpreter
(`python -m benchmarks.procfs < JOB_JSON`), like benchmarks.worker.
"""
import json
import os
import subprocess
import sys
import time

THREADS = 4
TOUCH_MIB = 4
# A task's process: THREADS threads in all, blocked; TOUCH_MIB of memory touched once.
CHILD = '''\
import signal, sys, threading
memory = bytearray(int(sys.argv[2]) << 20)
for i in range(0, len(memory), 4096):
    memory[i] = 1
stop = threading.Event()
for _ in range(int(sys.argv[1]) - 1):
    threading.Thread(target=stop.wait, daemon=True).start()
signal.pause()
'''


def bench(args, repo: str) -> dict:
    """Creates the tasks, runs the worker, removes everything (also on Ctrl-C)."""
    if os.geteuid() != 0:
        return {'skipped': 'needs root: real cgroups with real threads'}
    from testing.cgroups import Cgroups
    count = args.procfs_tasks
    sys.stderr.write('sched and working set size, N=%d (%d threads each): creating tasks... '
                     % (count, THREADS))
    sys.stderr.flush()
    cgroups = Cgroups(prefix='wca-bench-procfs')
    try:
        paths = []
        for i in range(count):
            path = cgroups.create('task%04d' % i, processes=0)
            cgroups.add_process(path, [sys.executable, '-c', CHILD, str(THREADS), str(TOUCH_MIB)])
            paths.append(path)
        _wait_threads(cgroups, paths)
        sys.stderr.write('measuring... ')
        sys.stderr.flush()
        job = {'paths': paths, 'rounds': args.rounds, 'budget': args.budget,
               'min_iterations': args.min_iterations,
               'layout': {'v1': cgroups.layout.v1, 'unified': cgroups.layout.unified}}
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(p for p in (repo, env.get('PYTHONPATH')) if p)
        process = subprocess.run([sys.executable, '-m', 'benchmarks.procfs'], input=json.dumps(job),
                                 stdout=subprocess.PIPE, universal_newlines=True, cwd=repo, env=env)
        if process.returncode != 0:
            raise SystemExit('benchmark job procfs failed (exit %d)' % process.returncode)
        sys.stderr.write('done\n')
        return json.loads(process.stdout.strip().splitlines()[-1])
    finally:
        cgroups.cleanup()


def _wait_threads(cgroups, paths, timeout=60):
    deadline = time.monotonic() + timeout
    for path in paths:
        tasks = cgroups.layout.directories(path)[0] + '/tasks'
        while True:
            try:
                with open(tasks) as f:
                    if len(f.read().split()) >= THREADS:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit('the benchmark tasks did not start their threads')
            time.sleep(0.01)


def report(result) -> list:
    if not result:
        return []
    if 'skipped' in result:
        return ['sched and working set size: skipped (%s)' % result['skipped']]
    lines = ['sched and working set size at N=%d tasks (%d threads, %d MiB touched each), CPU ms '
             'per iteration, median (p10-p90):' % (result['tasks'], THREADS, TOUCH_MIB)]
    for name in ('sched', 'wss'):
        part = result[name]
        agent, floor = part['agent'], part['floor_python']
        lines.append('  %-6s %6.2f (%.2f-%.2f) vs bare reader %6.2f: %.2fx, %d files' % (
            name, agent['median_ms'], agent['p10_ms'], agent['p90_ms'], floor['median_ms'],
            agent['median_ms'] / floor['median_ms'] if floor['median_ms'] else float('nan'),
            part['files']))
    lines.append('  clear_refs of every process (a wss reset): %.2f ms' % (
        result['reset']['median_ms']))
    runner = result['runner']
    lines.append('  MeasurementRunner iteration: default set %.2f ms; + sched %.2f ms (%+.2f); '
                 '+ wss %.2f ms (%+.2f)' % (
                     runner['default']['median_ms'], runner['sched']['median_ms'],
                     runner['sched']['median_ms'] - runner['default']['median_ms'],
                     runner['wss']['median_ms'],
                     runner['wss']['median_ms'] - runner['default']['median_ms']))
    return lines


# --- the worker (a fresh interpreter) --------------------------------------------------------

def _job(job):
    import logging
    import tempfile
    from benchmarks.worker import floor_reader, peak_rss_mb, stats, traced_reads
    from wca.cgroups import CgroupLayout
    from wca.nodes.base import Task
    from wca.nodes.static import StaticNode
    from wca.runners import MeasurementRunner
    from wca.sched import SchedSourceFactory
    from wca.storage import LogStorage
    from wca.wss import WssSourceFactory

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    layout = CgroupLayout(v1=job['layout']['v1'], unified=job['layout'].get('unified'))
    tasks = [Task(p, p, p) for p in job['paths']]
    clock = time.process_time
    result = {'tasks': len(tasks)}

    def compare(sources):
        def measure():
            for source in sources:
                source.measure({})
        measure()
        files = [f for s in sources for f in s.files]
        traced = traced_reads(measure)
        if sorted(traced) != sorted(files):
            raise SystemExit('the floor file list differs from what the sources opened')
        reader = floor_reader(files)
        agent, floor = [], []
        per_round = max(job['min_iterations'] // job['rounds'] + 1, 10)
        for _ in range(job['rounds']):
            for _ in range(per_round):
                started = clock()
                measure()
                middle = clock()
                reader()
                agent.append(middle - started)
                floor.append(clock() - middle)
        return {'agent': stats(agent), 'floor_python': stats(floor), 'files': len(files)}

    result['sched'] = compare([SchedSourceFactory(None, layout).open(t) for t in tasks])
    wss = [WssSourceFactory(layout, 0).open(t) for t in tasks]
    result['wss'] = compare(wss)
    resets = []
    for _ in range(5):
        started = clock()
        for source in wss:
            source.clear(source.pids())
        resets.append(clock() - started)
    result['reset'] = stats(resets)
    with tempfile.TemporaryDirectory(prefix='wca-bench-out-') as out:
        def runner(**options):
            made = MeasurementRunner(node=StaticNode(tasks=job['paths']), interval=0,
                                     metrics_storage=LogStorage(
                                         output_filename=os.path.join(out, 'metrics.prom'),
                                         overwrite=True), cgroup_layout=layout, **options)
            for _ in range(3):
                made.iterate()
            return made
        runners = {'default': runner(), 'sched': runner(sched=True),
                   'wss': runner(wss_reset_cycles=0)}
        samples = {name: [] for name in runners}
        for _ in range(job['rounds'] * 4):
            for name, made in runners.items():  # interleaved: the same load for each
                started = clock()
                made.iterate()
                samples[name].append(clock() - started)
        result['runner'] = {name: stats(values) for name, values in samples.items()}
    result['peak_rss_mb'] = peak_rss_mb()
    return result


def main():
    job = json.loads(sys.stdin.read())
    from wca.components import register_components
    register_components()
    sys.stdout.write(json.dumps(_job(job)) + '\n')


if __name__ == '__main__':
    main()
