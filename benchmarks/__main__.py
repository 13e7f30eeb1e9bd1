"""`python -m benchmarks` (`make bench BENCH_ARGS=...`): the agent's cost per iteration.

For each N (default 10, 100, 1000) it creates N task cgroups with a sleeping process in each
(as root; otherwise a fixture tree, and says so), and in a fresh process per N runs the
measurement iteration (default metric set, Prometheus text to a file) many times, timing CPU
(user + system) per iteration. Interleaved with it, the floor: a bare reader of exactly the
files the agent read, in Python (os.open/os.read) and in C (when gcc is there). Then
LogStorage serialisation of 100k metrics and the DetectionRunner (NOP detector) overhead at
the largest N. Last, the collocation benchmark (benchmarks/collocation.py: redis-server with
stress-ng beside it, alone, without control and with the interference controller); run alone
with `python -m benchmarks collocation [options]`. A table goes to stdout and everything to a
JSON file. See docs/benchmarks.md.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile

from benchmarks import collocation, collocation_results, perf, procfs, storages
from benchmarks.tasks import make_tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL_RATIO, GOAL_PER_TASK_MS, GOAL_RSS_MB = 1.5, 0.15, 60.0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m benchmarks', description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='10,100,1000',
                        help='task counts, comma separated (default: 10,100,1000)')
    parser.add_argument('--budget', type=float, default=8.0,
                        help='CPU seconds of agent iterations per N, roughly (default: 8)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='agent/floor interleaving rounds per N (default: 5)')
    parser.add_argument('--min-iterations', type=int, default=30,
                        help='at least this many iterations per N (default: 30)')
    parser.add_argument('--storage-metrics', type=int, default=100000,
                        help='metrics for the LogStorage benchmark (default: 100000; 0: skip)')
    parser.add_argument('--storage-tasks', type=int, default=1000,
                        help='tasks for the Kafka/endpoint/LogStorage store comparison '
                             '(benchmarks/storages.py; default: 1000; 0: skip)')
    parser.add_argument('--procfs-tasks', type=int, default=100,
                        help='tasks for the sched and working set size benchmark '
                             '(benchmarks/procfs.py; default: 100; 0: skip)')
    parser.add_argument('--no-perf', action='store_true',
                        help='skip the perf counters benchmark (benchmarks/perf.py)')
    parser.add_argument('--no-collocation', action='store_true',
                        help='skip the collocation benchmark (benchmarks/collocation.py; alone: '
                             'python -m benchmarks collocation --help)')
    parser.add_argument('--no-detection', action='store_true',
                        help='skip the DetectionRunner overhead benchmark')
    parser.add_argument('--no-c', action='store_true', help='skip the C floor')
    parser.add_argument('--fixture', action='store_true',
                        help='use a fixture tree of regular files even as root')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: small budget, 2 rounds, 10 iterations, 10k metrics')
    parser.add_argument('--profile', action='store_true',
                        help='also print a cProfile of the agent iteration at the largest N')
    parser.add_argument('--json', metavar='PATH',
                        help='where to write the results (default: bench-results/bench-DATE.json)')
    parser.add_argument('--compare', metavar='OLD_JSON',
                        help='a previous results file to print the change against')
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(n) for n in args.sizes.split(',') if n.strip()})
    except ValueError:
        parser.error('--sizes: expected numbers like 10,100,1000')
    if not args.sizes or args.sizes[0] < 1:
        parser.error('--sizes: expected positive numbers')
    if args.quick:
        args.budget, args.rounds, args.min_iterations = 1.0, 2, 10
        args.storage_metrics = min(args.storage_metrics, 10000)
    return args


def run_worker(job):
    """Runs one job in a fresh interpreter; returns its JSON answer."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    process = subprocess.run([sys.executable, '-m', 'benchmarks.worker'],
                             input=json.dumps(job), stdout=subprocess.PIPE,
                             universal_newlines=True, cwd=REPO, env=env)
    if process.returncode != 0:
        raise SystemExit('benchmark job %s failed (exit %d)' % (job['job'], process.returncode))
    return json.loads(process.stdout.strip().splitlines()[-1])


def compile_floor(directory):
    gcc = shutil.which('gcc')
    if not gcc:
        return None, 'gcc not found'
    binary = os.path.join(directory, 'floor')
    source = os.path.join(REPO, 'benchmarks', 'floor.c')
    result = subprocess.run([gcc, '-O2', '-o', binary, source], stderr=subprocess.PIPE,
                            universal_newlines=True)
    if result.returncode != 0:
        return None, 'gcc failed: ' + result.stderr.strip()[:200]
    return binary, 'gcc -O2'


def environment(kind):
    def first_line(command):
        try:
            return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  universal_newlines=True, cwd=REPO).stdout.strip()
        except OSError:
            return ''
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return {'date': datetime.datetime.now().isoformat(timespec='seconds'),
            'python': platform.python_version(), 'kernel': platform.release(),
            'cpus': os.cpu_count(), 'cpu_model': model, 'tasks_kind': kind,
            'root': os.geteuid() == 0,
            'commit': first_line(['git', 'rev-parse', '--short', 'HEAD']),
            'dirty': bool(first_line(['git', 'status', '--porcelain', '--', 'wca']))}


def bench_sizes(args, floor_binary, results):
    for count in args.sizes:
        largest = count == args.sizes[-1]
        sys.stderr.write('N=%d: creating tasks... ' % count)
        sys.stderr.flush()
        with make_tasks(count, args.fixture) as tasks:
            results['environment']['tasks_kind'] = tasks.kind
            job = {'paths': tasks.paths, 'rounds': args.rounds, 'budget': args.budget,
                   'min_iterations': args.min_iterations, 'floor_c': floor_binary,
                   'layout': {'v1': tasks.layout.v1, 'unified': tasks.layout.unified}
                   if tasks.layout else None}
            sys.stderr.write('measuring... ')
            sys.stderr.flush()
            results['sizes'].append(run_worker(dict(job, job='agent',
                                                    profile=args.profile and largest)))
            if largest and not args.no_detection:
                sys.stderr.write('detection runner... ')
                sys.stderr.flush()
                results['detection'] = run_worker(dict(job, job='detection'))
        sys.stderr.write('done\n')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['collocation']:  # the collocation benchmark alone, with its own options
        return collocation.main(argv[1:])
    args = parse_args(argv)
    kind = 'fixture' if args.fixture or os.geteuid() != 0 else 'cgroupfs'
    results = {'environment': environment(kind), 'sizes': [], 'detection': None, 'storage': None}
    # SIGTERM ends like Ctrl-C, so the cgroups and sleeping processes are removed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with tempfile.TemporaryDirectory(prefix='wca-bench-') as build:
        floor_binary, floor_note = (None, 'skipped (--no-c)') if args.no_c else compile_floor(build)
        results['environment']['floor_c'] = floor_note
        bench_sizes(args, floor_binary, results)
    if args.storage_metrics:
        sys.stderr.write('LogStorage, %d metrics...\n' % args.storage_metrics)
        results['storage'] = run_worker({'job': 'storage', 'metrics': args.storage_metrics,
                                         'repeat': 3 if args.quick else 7})
    if args.storage_tasks:
        sys.stderr.write('storages at %d tasks...\n' % args.storage_tasks)
        results['storages'] = storages.run(args.storage_tasks, args.quick)
    if args.procfs_tasks:
        results['procfs'] = procfs.bench(args, REPO)
    if not args.no_perf and kind == 'cgroupfs':
        results['perf'] = perf.run(args.sizes, args.budget / 2, args.rounds, args.min_iterations,
                                   not args.no_c)
    if not args.no_collocation:
        results['collocation'] = collocation.bench(args.quick)
    path = args.json or os.path.join(
        REPO, 'bench-results', 'bench-%s.json' % datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write('\n')
    old = None
    if args.compare:
        with open(args.compare) as f:
            old = json.load(f)
    sys.stdout.write(report(results, old))
    shown = os.path.relpath(path) if os.path.abspath(path).startswith(REPO + os.sep) else path
    sys.stdout.write('\nresults: %s\n' % shown)
    for entry in results['sizes']:
        if entry.get('profile'):
            sys.stdout.write('\ncProfile of the agent iteration at N=%d:\n%s' % (
                entry['tasks'], entry['profile']))
    return 0


def _ratio(a, b):
    return a / b if b else float('nan')


def report(results, old=None) -> str:
    """The results as a plain-text table (and the change against `old`, when given)."""
    env = results['environment']
    lines = ['wca benchmark, %s: Python %s, Linux %s, %s CPUs (%s), commit %s%s' % (
        env['date'], env['python'], env['kernel'], env['cpus'], env['cpu_model'] or '?',
        env['commit'] or '?', ' + local changes' if env['dirty'] else '')]
    if env['tasks_kind'] == 'fixture':
        lines.append('NOTE: not root (or --fixture): tasks are a fixture tree of regular files, '
                     'not cgroupfs; reading them is cheaper than the kernel\'s cgroup files, so '
                     'compare these numbers only with other fixture runs.')
    else:
        lines.append('Tasks: real cgroups (cgroupfs), one sleeping process in each.')
    lines.append('CPU time (user+system) of one measurement iteration: default metric set, '
                 'Prometheus text to a file. Median, with p10-p90; floors read exactly the files '
                 'the agent read (C floor: %s).' % env.get('floor_c'))
    lines.append('')
    header = ('%6s %6s %8s %22s %9s %9s %9s %9s %8s %8s %8s' % (
        'N', 'files', 'metrics', 'agent ms (p10-p90)', 'ms/task', 'marginal', 'floor py',
        'floor C', 'agent/py', 'agent/C', 'RSS MB'))
    lines += [header, '-' * len(header)]
    previous = None
    sizes = results['sizes']
    for entry in sizes:
        n, agent = entry['tasks'], entry['agent']
        py, c = entry['floor_python'], entry['floor_c']
        marginal = ''
        if previous is not None:
            marginal = '%.4f' % ((agent['median_ms'] - previous['agent']['median_ms'])
                                 / (n - previous['tasks']))
        spread = '%.2f (%.2f-%.2f)' % (agent['median_ms'], agent['p10_ms'], agent['p90_ms'])
        lines.append('%6d %6d %8d %22s %9.4f %9s %9.2f %9s %8.2f %8s %8.1f' % (
            n, entry['files_per_iteration'], entry['metrics_per_iteration'], spread,
            agent['median_ms'] / n, marginal, py['median_ms'],
            '%.2f' % c['median_ms'] if c else '-', _ratio(agent['median_ms'], py['median_ms']),
            '%.2f' % _ratio(agent['median_ms'], c['median_ms']) if c else '-',
            entry['peak_rss_mb']))
        previous = entry
    lines.append('(ms/task: agent ms / N; marginal: extra ms per extra task since the previous '
                 'N; RSS: peak of the process that measured that N)')
    detection = results.get('detection')
    if detection:
        lines.append('')
        lines.append('DetectionRunner (NOP detector) at N=%d: %.2f ms per iteration vs %.2f ms '
                     'for MeasurementRunner: %+.2f ms added around the algorithm' % (
                         detection['tasks'], detection['detection']['median_ms'],
                         detection['measurement']['median_ms'], detection['overhead_ms']))
    storage = results.get('storage')
    if storage:
        lines.append('LogStorage, %d metrics: %.1f ms per store (%.2f us per metric; encode '
                     'alone %.1f ms), %.1f MB of text, peak RSS %.0f MB' % (
                         storage['metrics'], storage['store']['median_ms'],
                         storage['us_per_metric'], storage['encode']['median_ms'],
                         storage['output_bytes'] / 1e6, storage['peak_rss_mb']))
    lines += storages.report(results.get('storages'))
    lines += procfs.report(results.get('procfs'))
    lines += perf.report(results.get('perf'))
    lines += collocation_results.report_section(results.get('collocation'))
    if sizes:
        lines += [''] + goals(sizes)
    if old:
        lines += [''] + compare(old, results)
    return '\n'.join(lines) + '\n'


def goals(sizes):
    """Issue 4's goals, checked against the largest N (they are stated for N=1000)."""
    top = sizes[-1]
    agent = top['agent']['median_ms']
    lines = ['Goals at N=%d%s:' % (top['tasks'], '' if top['tasks'] >= 1000 else
                                   ' (stated for N=1000)')]

    def line(ok, text):
        lines.append('  [%s] %s' % ('ok' if ok else 'MISSED', text))
    ratio = _ratio(agent, top['floor_python']['median_ms'])
    line(ratio <= GOAL_RATIO, 'agent / Python floor %.2f <= %.1f' % (ratio, GOAL_RATIO))
    per_task = agent / top['tasks']
    line(per_task < GOAL_PER_TASK_MS, 'agent %.4f ms per task < %.2f' % (per_task, GOAL_PER_TASK_MS))
    line(top['peak_rss_mb'] < GOAL_RSS_MB, 'peak RSS %.1f MB < %.0f MB' % (
        top['peak_rss_mb'], GOAL_RSS_MB))
    if len(sizes) >= 3:
        # Linear: the extra cost of a task does not grow with N (within noise and cache effects).
        low, mid = sizes[-3], sizes[-2]
        m1 = (mid['agent']['median_ms'] - low['agent']['median_ms']) / (mid['tasks'] - low['tasks'])
        m2 = (agent - mid['agent']['median_ms']) / (top['tasks'] - mid['tasks'])
        line(m2 <= 1.5 * m1, 'linear: marginal cost per task %.4f ms (N %d-%d) vs %.4f ms (N %d-%d)'
             % (m2, mid['tasks'], top['tasks'], m1, low['tasks'], mid['tasks']))
    return lines


def compare(old, new):
    lines = ['Against %s (commit %s):' % (old['environment'].get('date'),
                                          old['environment'].get('commit'))]
    before = {e['tasks']: e for e in old.get('sizes', [])}
    for entry in new['sizes']:
        was = before.get(entry['tasks'])
        if not was:
            continue
        a, b = was['agent']['median_ms'], entry['agent']['median_ms']
        lines.append('  N=%-5d agent %.2f -> %.2f ms (%+.0f%%), agent/py %.2f -> %.2f, '
                     'RSS %.1f -> %.1f MB' % (
                         entry['tasks'], a, b, 100.0 * (b - a) / a,
                         _ratio(a, was['floor_python']['median_ms']),
                         _ratio(b, entry['floor_python']['median_ms']),
                         was['peak_rss_mb'], entry['peak_rss_mb']))
    if old.get('storage') and new.get('storage'):
        lines.append('  LogStorage %.1f -> %.1f ms' % (
            old['storage']['store']['median_ms'], new['storage']['store']['median_ms']))
    if old.get('detection') and new.get('detection'):
        lines.append('  DetectionRunner overhead %+.2f -> %+.2f ms' % (
            old['detection']['overhead_ms'], new['detection']['overhead_ms']))
    return lines


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write('interrupted; cgroups and processes removed\n')
        sys.exit(130)
