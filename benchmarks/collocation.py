"""The collocation benchmark (`python -m benchmarks collocation`): what the interference
controller is for, on real contention.

A latency-critical (LC) task, redis-server, in a cgroup pinned to one CPU, is driven from
another CPU by an open-loop client at a fixed rate that leaves most of its CPU idle
(benchmarks/redis_client.py); best-effort (BE) tasks, `stress-ng --cpu 1` each in a cgroup of
its own labelled `type: best_efforts`, are pinned to the same CPU. Three runs:

  alone       the LC task alone
  no control  with the BE tasks and no agent
  controlled  with the BE tasks and the agent (`python -m wca --root`, an AllocationRunner
              with !InterferenceAllocator reading the LC's CPU pressure), which first learns
              the LC baseline while the LC task is alone

Each run: the client's p50/p99 latency and the CPU seconds (cpuacct) of the LC and BE tasks
over the measured window (after a settling time once the BE tasks start). The goal (issue 16):
controlled p99 within 1.5x of alone, while the BE tasks get at least half of the CPU time the
LC task left idle when alone. Needs root; installs the missing tools with
tools/install-bench-tools. See docs/benchmarks.md.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array

from benchmarks.collocation_results import RUNS, agent_report, goal, latency, report, \
    timeline, usage_between

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BE_LABEL = {'type': 'best_efforts'}
PARENT_SHARES = 262144  # the most cgroup v1 cpu.shares allows
# The agent's config for the controlled run; {...} are filled in. Option names: issue 16.
AGENT_CONFIG = '''\
# Written by benchmarks/collocation.py for its controlled run.
runner: !AllocationRunner
  node: !StaticNode
    tasks: {tasks}
    require_pids: true
    tasks_labels: {labels}
  interval: {interval}
  rdt_enabled: false
  rdt_groups_file: null
  vmstat: false
  zoneinfo: false
  gather_hw_mm_topology: false
  allocation_configuration: !AllocationConfiguration
    cpu_quota_period: {cpu_quota_period}
  metrics_storage: !LogStorage
    output_filename: {directory}/metrics.prom
  anomalies_storage: !LogStorage
    output_filename: {directory}/anomalies.prom
  allocations_storage: !LogStorage
    output_filename: {directory}/allocations.prom
  allocator: !InterferenceAllocator
    signal: cpu_pressure
    workload_label: app
    best_effort_label: type
    best_effort_value: best_efforts
    k_sigma: 2
    min_cpu_usage: 0.05
    min_outliers: 2
    window: {window}
    min_samples: {min_samples}
    antagonist_threshold: 0.35
    hold: {hold}
    recovery_period: {recovery_period}
    levels: 4
    cpu_quota_floor: {cpu_quota_floor}
    state_file: {directory}/interference-state.json
'''


def parse_args(argv):
    cpus = sorted(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(prog='python -m benchmarks collocation',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--lc-cpu', type=int, default=cpus[-1],
                        help='the CPU of the LC and BE tasks (default: the last, %d)' % cpus[-1])
    parser.add_argument('--client-cpu', type=int, default=cpus[0],
                        help='the CPU of the client and the agent (default: the first, %d)'
                        % cpus[0])
    parser.add_argument('--rate', type=float, default=3500,
                        help='requests per second (default: 3500: about 0.2 CPUs of redis)')
    parser.add_argument('--elements', type=int, default=600,
                        help='each request is LRANGE of this many values (default: 600, as '
                             'redis-benchmark\'s lrange_600)')
    parser.add_argument('--be-tasks', type=int, default=2,
                        help='BE tasks, each stress-ng --cpu 1 in a cgroup (default: 2)')
    parser.add_argument('--measure', type=float, default=30,
                        help='seconds measured in each run (default: 30)')
    parser.add_argument('--settle', type=float, default=10,
                        help='seconds after the BE tasks start before measuring (default: 10)')
    parser.add_argument('--learn', type=float, default=20,
                        help='seconds the agent watches the LC task alone (default: 20)')
    parser.add_argument('--interval', type=float, default=0.5,
                        help='the agent\'s interval, seconds (default: 0.5)')
    parser.add_argument('--cpu-quota-floor', type=float, default=0.25,
                        help='the CPUs each throttled BE task keeps (the allocator\'s '
                             'cpu_quota_floor; default: 0.25: two BE tasks at the floor can still '
                             'get the half of the idle CPU that the goal asks)')
    parser.add_argument('--cpu-quota-period', type=int, default=5000,
                        help='the agent\'s cpu_quota_period, microseconds (default: 5000: short '
                             'bursts of the BE tasks, and a quota of 0.2 CPUs is still the '
                             'kernel\'s least, 1 ms)')
    parser.add_argument('--runs', default='alone,nocontrol,controlled',
                        help='which runs, comma separated (default: alone,nocontrol,controlled; '
                             'idle: a reference, the BE cgroups with cpu.idle 1 and no agent)')
    parser.add_argument('--config', metavar='YAML',
                        help='the agent config for the controlled run instead of the built-in '
                             'one (its {tasks}, {labels}, {directory}, ... are filled in)')
    parser.add_argument('--keep', metavar='DIR',
                        help='keep the agent\'s config, log and metrics in DIR')
    parser.add_argument('--json', metavar='PATH', help='also write the results here')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 8 s measured, 4 s settling, 10 s learning')
    args = parser.parse_args(argv)
    if args.quick:
        args.measure, args.settle, args.learn = 8.0, 4.0, 10.0
    args.config_text = None
    if args.config:
        try:
            with open(args.config) as f:
                args.config_text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            parser.error('--config %s: %s' % (args.config, e))
    args.runs = [r.strip() for r in args.runs.split(',') if r.strip()]
    unknown = set(args.runs) - set(RUNS)
    if unknown:
        parser.error('--runs: unknown %s (%s)' % (', '.join(sorted(unknown)), ', '.join(RUNS)))
    if args.lc_cpu == args.client_cpu or not {args.lc_cpu, args.client_cpu} <= set(cpus):
        parser.error('--lc-cpu and --client-cpu must be two different CPUs of %s' % cpus)
    return args


class Bench:
    """The cgroups, redis-server, the BE tasks and the agent of one benchmark, removed by close()."""

    def __init__(self, args, directory):
        from testing.cgroups import Cgroups
        self.args, self.directory = args, directory
        self.cgroups = Cgroups(prefix='wca-bench-colloc')
        self.layout = self.cgroups.layout
        # The benchmark's parent cgroup outweighs everything else on the machine, so other
        # load on the LC's CPU disturbs the runs less; inside it, LC and BE cgroups have the
        # default weight each, as they would on a node.
        with open(self.layout.v1['cpu'] + self.cgroups.parent + '/cpu.shares', 'w') as f:
            f.write(str(PARENT_SHARES))
        self.lc = self._cgroup('redis')
        self.be = [self._cgroup('stress%d' % i) for i in range(args.be_tasks)]
        self.port = _free_port()
        self.redis = self.cgroups.add_process(self.lc, [
            'redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
            '--protected-mode', 'yes', '--save', '', '--appendonly', 'no', '--dir', directory,
            '--logfile', os.path.join(directory, 'redis.log'), '--daemonize', 'no'])
        self._wait_redis()
        self.agent = None

    def _cgroup(self, name):
        relative = self.cgroups.create(name, processes=0)
        with open(self.layout.v1['cpuset'] + relative + '/cpuset.cpus', 'w') as f:
            f.write(str(self.args.lc_cpu))
        return relative

    def _wait_redis(self, timeout=10.0):
        from benchmarks import redis_client
        deadline = time.monotonic() + timeout
        while True:
            try:
                redis_client.fill(self.port, self.args.elements)
                return
            except OSError:
                if self.redis.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit('redis-server did not start (see %s/redis.log)'
                                     % self.directory)
                time.sleep(0.05)

    def start_be(self, idle=False):
        """The BE tasks, their cgroups' CPU settings reset first (an agent that stopped leaves
        its limits behind); idle: cpu.idle 1 (the kernel's idle class for the group: a waking
        LC task preempts it at once), the reference run without an agent."""
        for relative in self.be:
            base = self.layout.v1['cpu'] + relative
            for name, value in (('cpu.cfs_quota_us', -1), ('cpu.cfs_period_us', 100000),
                                ('cpu.shares', 1024), ('cpu.idle', 1 if idle else 0)):
                if name == 'cpu.idle' and not os.path.exists(base + '/cpu.idle'):
                    if idle:
                        raise SystemExit('the idle run needs cpu.idle (Linux 5.15 or later)')
                    continue
                with open(base + '/' + name, 'w') as f:
                    f.write(str(value))
            self.cgroups.add_process(relative, ['stress-ng', '--cpu', '1', '--cpu-method', 'int64',
                                                '--timeout', '3600s', '--quiet'])

    def stop_be(self):
        for relative in self.be:
            self._kill_all(relative)

    def _kill_all(self, relative, timeout=10.0):
        """SIGKILL to every process in the cgroup, by pid read from the cgroup, until it is empty
        (stress-ng's workers are children of its parent: killing the parent alone leaves them)."""
        procs = self.layout.v1['cpuacct'] + relative + '/cgroup.procs'
        deadline = time.monotonic() + timeout
        while True:
            with open(procs) as f:
                pids = [int(p) for p in f.read().split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for process in self.cgroups.processes:
                if process.pid in pids:
                    process.wait()
            if time.monotonic() > deadline:
                raise SystemExit('could not stop the processes of %s' % relative)
            time.sleep(0.01)

    def start_agent(self, config_text):
        path = os.path.join(self.directory, 'agent.yaml')
        with open(path, 'w') as f:
            f.write(config_text)
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
        cpu = self.args.client_cpu
        log = open(os.path.join(self.directory, 'agent.log'), 'w')
        self.agent = subprocess.Popen(
            [sys.executable, '-m', 'wca', '--config', path, '--root', '--log', 'info'],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
            preexec_fn=lambda: os.sched_setaffinity(0, [cpu]))
        log.close()

    def stop_agent(self):
        if self.agent is None:
            return None
        if self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(15)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        code, self.agent = self.agent.returncode, None
        return code

    def usage(self, relative) -> float:
        """CPU seconds of the cgroup (cpuacct.usage)."""
        with open(self.layout.v1['cpuacct'] + relative + '/cpuacct.usage') as f:
            return int(f.read()) / 1e9

    def pressure(self, relative) -> float:
        """Seconds some thread of the cgroup waited for a CPU (cgroup2 cpu.pressure, some)."""
        if not self.layout.unified:
            return float('nan')
        try:
            with open(self.layout.unified + relative + '/cpu.pressure') as f:
                return int(f.readline().rsplit('total=', 1)[1]) / 1e6
        except (OSError, IndexError, ValueError):
            return float('nan')

    def cpu_limit(self, relative) -> float:
        """The cgroup's CPU limit in CPUs (cfs quota / period; -1: none)."""
        base = self.layout.v1['cpu'] + relative
        try:
            with open(base + '/cpu.cfs_quota_us') as f:
                quota = int(f.read())
            with open(base + '/cpu.cfs_period_us') as f:
                period = int(f.read())
        except (OSError, ValueError):
            return float('nan')
        return -1.0 if quota < 0 else round(quota / period, 3)

    def snapshot(self):
        return {'time': time.monotonic(), 'lc': self.usage(self.lc),
                'be': sum(self.usage(r) for r in self.be), 'lc_pressure': self.pressure(self.lc),
                'cpu_busy': _cpu_busy(self.args.lc_cpu)}

    def close(self):
        self.stop_agent()
        for relative in self.be + [self.lc]:
            try:
                self._kill_all(relative)
            except (OSError, SystemExit) as e:
                sys.stderr.write('collocation: cleaning up %s: %s\n' % (relative, e))
        self.cgroups.cleanup()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _cpu_busy(cpu) -> float:
    """Seconds the CPU was not idle since boot (/proc/stat, all but idle and iowait)."""
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith('cpu%d ' % cpu):
                fields = [int(v) for v in line.split()[1:]]
                return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf('SC_CLK_TCK')
    return float('nan')


def _sleep_until(when):
    while True:
        left = when - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


def start_client(bench, start_at, duration, out):
    return subprocess.Popen(
        [sys.executable, '-m', 'benchmarks.redis_client', '--port', str(bench.port),
         '--rate', str(bench.args.rate), '--duration', str(duration), '--elements',
         str(bench.args.elements), '--out', out, '--cpu', str(bench.args.client_cpu),
         '--start-at', repr(start_at)],
        stdout=subprocess.PIPE, universal_newlines=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO))


def finish_client(client, out):
    stdout, _ = client.communicate()
    if client.returncode != 0:
        raise SystemExit('the redis client failed (exit %d)' % client.returncode)
    summary = json.loads(stdout.strip().splitlines()[-1])
    samples = array('d')
    with open(out, 'rb') as f:
        samples.frombytes(f.read())
    return summary, samples


def measure(bench, name, lead, before_measure=None):
    """One run: the client for lead + settle + measure seconds; `before_measure` is called at
    lead seconds (to start the BE tasks). Returns the run's results, with a timeline of each
    second (CPU seconds, the LC's CPU pressure, the BE cgroups' CPU limits, latency)."""
    args = bench.args
    settle = args.settle if before_measure else 2.0
    out = os.path.join(bench.directory, 'samples-%s.bin' % name)
    start_at = time.monotonic() + 1.0
    total = lead + settle + args.measure
    client = start_client(bench, start_at, total, out)
    ticks = []
    try:
        _watch(bench, start_at, start_at + lead, ticks)
        if before_measure:
            before_measure()
        begin = start_at + lead + settle
        _watch(bench, start_at, begin, ticks)
        first = bench.snapshot()
        _watch(bench, start_at, begin + args.measure, ticks)
        last = bench.snapshot()
        summary, samples = finish_client(client, out)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    result = usage_between(first, last)
    result.update(latency(samples, lead + settle, total))
    if before_measure:
        result['settling'] = latency(samples, lead, lead + settle)
    if lead > 4.0:  # the LC task alone before the BE tasks start (the agent learning)
        result['before'] = latency(samples, 2.0, lead)
    result['unanswered'] = summary['unanswered']
    result['client_sched_fifo'] = summary['sched_fifo']
    result['be_start_s'] = lead if before_measure else None
    result['timeline'] = timeline(ticks, samples)
    return result


def _watch(bench, start_at, until, ticks):
    """Samples the counters and the BE cgroups' limits about once a second until `until`."""
    while True:
        now = time.monotonic()
        if now >= until:
            return
        if not ticks or now - start_at - ticks[-1]['t'] >= 1.0:
            tick = bench.snapshot()
            tick['t'] = tick.pop('time') - start_at
            tick['be_limits'] = [bench.cpu_limit(r) for r in bench.be]
            ticks.append(tick)
        time.sleep(min(0.1, until - now))


def agent_config(bench, text=None) -> str:
    args = bench.args
    names = [r.strip('/') for r in [bench.lc] + bench.be]
    labels = {bench.lc.strip('/'): {'app': 'redis'}}
    labels.update({r.strip('/'): dict(BE_LABEL, app='stress-ng') for r in bench.be})
    values = dict(
        tasks=json.dumps(names), labels=json.dumps(labels, sort_keys=True),
        interval=args.interval, directory=bench.directory, window=max(10.0, args.learn),
        min_samples=max(3, int(args.learn / args.interval / 2)), hold=max(2.0, args.settle),
        recovery_period=max(2.0, args.settle), cpu_quota_floor=args.cpu_quota_floor,
        cpu_quota_period=args.cpu_quota_period)
    # Only {name} of a known name is replaced: a YAML flow mapping such as {app: x} stays.
    return re.sub(r'\{(\w+)\}', lambda m: str(values.get(m.group(1), m.group(0))),
                  text or AGENT_CONFIG)


def controlled(bench, config_text):
    bench.start_agent(config_text)
    try:
        _wait_agent(bench)
        result = measure(bench, 'controlled', bench.args.learn, bench.start_be)
    finally:
        bench.stop_be()
        code = bench.stop_agent()
    result['agent_exit'] = code
    result['agent'] = agent_report(bench.directory)
    return result


def _wait_agent(bench, timeout=60.0):
    """Until the agent has stored its first metrics (its imports and setup take a while)."""
    path = os.path.join(bench.directory, 'metrics.prom')
    deadline = time.monotonic() + timeout
    while not (os.path.exists(path) and os.path.getsize(path)):
        if bench.agent.poll() is not None:
            raise SystemExit('the agent exited (%d) at start: see %s/agent.log' % (
                bench.agent.returncode, bench.directory))
        if time.monotonic() > deadline:
            raise SystemExit('the agent stored nothing in %.0f s' % timeout)
        time.sleep(0.1)


def run(args) -> dict:
    """The chosen runs; every process and cgroup removed at the end (also on Ctrl-C)."""
    environment = {'lc_cpu': args.lc_cpu, 'client_cpu': args.client_cpu, 'rate': args.rate,
                   'request': 'LRANGE of %d values' % args.elements, 'be_tasks': args.be_tasks,
                   'measure_s': args.measure, 'settle_s': args.settle, 'learn_s': args.learn,
                   'interval_s': args.interval}
    from benchmarks.__main__ import environment as machine  # date, commit, kernel, CPU model
    environment.update(machine('cgroupfs'))
    results = {'environment': environment, 'runs': {}}
    directory = args.keep or tempfile.mkdtemp(prefix='wca-bench-colloc-')
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    bench = Bench(args, directory)
    try:
        for name in args.runs:
            sys.stderr.write('collocation: %s... ' % name)
            sys.stderr.flush()
            if name == 'alone':
                results['runs'][name] = measure(bench, name, 0.0)
            elif name in ('nocontrol', 'idle'):
                idle = name == 'idle'
                try:
                    results['runs'][name] = measure(bench, name, 2.0,
                                                    lambda: bench.start_be(idle))
                finally:
                    bench.stop_be()
            else:
                results['runs'][name] = controlled(bench, agent_config(bench, args.config_text))
            sys.stderr.write('done\n')
    finally:
        bench.close()
        if not args.keep:
            _remove_tree(directory)
    results['goal'] = goal(results['runs'])
    return results


def _remove_tree(directory):
    import shutil
    shutil.rmtree(directory, ignore_errors=True)


def preflight() -> str:
    """Why the benchmark cannot run here, or ''."""
    if os.geteuid() != 0:
        return 'needs root (real cgroups, redis-server and stress-ng pinned to a CPU)'
    if len(os.sched_getaffinity(0)) < 2:
        return 'needs two CPUs (one for the LC task, one for the client)'
    tools = os.path.join(REPO, 'tools', 'install-bench-tools')
    if subprocess.run([tools]).returncode != 0:
        return 'redis-server, redis-tools or stress-ng missing (tools/install-bench-tools)'
    return ''


def bench(quick: bool) -> dict:
    """For `make bench`: the three runs with the default options (or skipped, and why)."""
    why = preflight()
    if why:
        sys.stderr.write('collocation: skipped: %s\n' % why)
        return {'skipped': why}
    return run(parse_args(['--quick'] if quick else []))


def main(argv) -> int:
    args = parse_args(argv)
    why = preflight()
    if why:
        sys.stderr.write('collocation: skipped: %s\n' % why)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results = run(args)
    sys.stdout.write('\n'.join(report(results)) + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1, sort_keys=True)
            f.write('\n')
    return 1 if results['goal']['checked'] and not results['goal']['ok'] else 0
