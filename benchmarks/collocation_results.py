"""The collocation benchmark's results (benchmarks/collocation.py): latency percentiles, CPU
seconds, the timeline of the controlled run, what the agent did, the goal of issue 16, and the
table."""
import os
import re

GOAL_P99_RATIO, GOAL_BE_SHARE = 1.5, 0.5
RUNS = {'alone': 'alone', 'nocontrol': 'no control', 'controlled': 'controlled',
        'idle': 'BE cpu.idle'}
# The agent's metrics that the results keep (their last values), and those the report shows.
AGENT_METRICS = ('interference', 'wca_interference', 'anomaly', 'wca_anomal')
SHOWN_METRICS = ('interference_victim', 'interference_throttle', 'interference_actions',
                 'interference_threshold', 'interference_baseline_mean')
SAMPLE = re.compile(r'^(\S+?(?:\{.*\})?) (\S+)(?: -?\d+)?$')


def latency(samples, begin, end) -> dict:
    """p50, p99, p99.9 and the count of the requests due in [begin, end) (seconds since the
    client's start)."""
    values = sorted(samples[i + 1] for i in range(0, len(samples), 2) if begin <= samples[i] < end)
    if not values:
        return {'requests': 0, 'p50_ms': float('nan'), 'p99_ms': float('nan'),
                'p999_ms': float('nan')}

    def q(p):
        return 1e3 * values[min(len(values) - 1, int(len(values) * p))]
    return {'requests': len(values), 'p50_ms': q(0.5), 'p99_ms': q(0.99), 'p999_ms': q(0.999)}


def usage_between(a, b) -> dict:
    seconds = b['time'] - a['time']
    lc, be = b['lc'] - a['lc'], b['be'] - a['be']
    busy = b['cpu_busy'] - a['cpu_busy']
    return {'seconds': seconds, 'lc_cpu_s': lc, 'be_cpu_s': be,
            'others_cpu_s': max(0.0, busy - lc - be),
            'lc_pressure': (b['lc_pressure'] - a['lc_pressure']) / seconds}


def timeline(ticks, samples) -> list:
    """Per tick interval: CPU seconds per second of LC and BE, the LC's CPU pressure, the BE
    limits at its end, and the p99 of the requests due in it."""
    rows = []
    for a, b in zip(ticks, ticks[1:]):
        seconds = b['t'] - a['t']
        if seconds <= 0:
            continue
        rows.append({'t': round(b['t'], 2), 'lc_cpu': (b['lc'] - a['lc']) / seconds,
                     'be_cpu': (b['be'] - a['be']) / seconds,
                     'lc_pressure': (b['lc_pressure'] - a['lc_pressure']) / seconds,
                     'be_limits': b['be_limits'],
                     'p99_ms': latency(samples, a['t'], b['t'])['p99_ms']})
    return rows


def agent_report(directory) -> dict:
    """What the agent did: its log lines about interference and throttling, the last values of its
    interference_* metrics, and errors."""
    report = {'log': [], 'metrics': {}, 'errors': []}
    try:
        with open(os.path.join(directory, 'agent.log'), errors='replace') as f:
            for line in f:
                low = line.lower()
                if 'interference' in low or 'throttl' in low or 'victim' in low:
                    report['log'].append(line.rstrip()[:300])
                elif ' error ' in low or 'traceback' in low or 'warning' in low:
                    report['errors'].append(line.rstrip()[:300])
    except OSError:
        pass
    last = {}
    for name in ('metrics.prom', 'anomalies.prom'):  # the allocator's metrics: anomalies_storage
        try:
            with open(os.path.join(directory, name), errors='replace') as f:
                for line in f:
                    if line.startswith(AGENT_METRICS):
                        match = SAMPLE.match(line.rstrip('\n'))
                        if match:
                            last[match.group(1)] = float(match.group(2))
        except OSError:
            pass
    report['metrics'] = last
    report['log'] = report['log'][-40:]
    report['errors'] = report['errors'][-10:]
    return report


def goal(runs) -> dict:
    """Issue 16's goal, when the alone and controlled runs are there."""
    alone, ctl = runs.get('alone'), runs.get('controlled')
    if not alone or not ctl:
        return {'checked': False}
    idle = alone['seconds'] - alone['lc_cpu_s']  # the LC CPU's time the LC task left idle
    be_needed = GOAL_BE_SHARE * idle * ctl['seconds'] / alone['seconds']
    ratio = ctl['p99_ms'] / alone['p99_ms'] if alone['p99_ms'] else float('inf')
    return {'checked': True, 'p99_ratio': ratio, 'p99_ok': ratio <= GOAL_P99_RATIO,
            'be_cpu_s': ctl['be_cpu_s'], 'be_needed_s': be_needed,
            'be_ok': ctl['be_cpu_s'] >= be_needed,
            'ok': ratio <= GOAL_P99_RATIO and ctl['be_cpu_s'] >= be_needed}


def report(results) -> list:
    env = results['environment']
    lines = ['Collocation (issue 16), %s: Linux %s, %s CPUs (%s), Python %s, commit %s%s' % (
        env['date'], env['kernel'], env['cpus'], env['cpu_model'] or '?', env['python'],
        env['commit'] or '?', ' + local changes' if env['dirty'] else ''),
        'redis-server on CPU %d, %s at %.0f requests/s from CPU %d (open loop); %d BE tasks '
        '(stress-ng --cpu 1) on CPU %d; %.0f s measured per run, after %.0f s settling once the '
        'BE tasks start.' % (env['lc_cpu'], env['request'], env['rate'], env['client_cpu'],
                             env['be_tasks'], env['lc_cpu'], env['measure_s'], env['settle_s'])]
    header = '%-11s %9s %9s %10s %9s %9s %9s %10s' % (
        'run', 'p50 ms', 'p99 ms', 'p99.9 ms', 'LC cpu s', 'BE cpu s', 'others s', 'LC psi s/s')
    lines += ['', header, '-' * len(header)]
    for name, title in RUNS.items():
        r = results['runs'].get(name)
        if not r:
            continue
        lines.append('%-11s %9.3f %9.3f %10.3f %9.2f %9.2f %9.2f %10.3f' % (
            title, r['p50_ms'], r['p99_ms'], r['p999_ms'], r['lc_cpu_s'], r['be_cpu_s'],
            r['others_cpu_s'], r['lc_pressure']))
    lines.append('(latency from when each request was due; CPU seconds from cpuacct over the '
                 'measured window; others: the rest of the LC CPU\'s busy time, /proc/stat; '
                 'LC psi: the LC cgroup\'s cpu.pressure "some" per second%s)' % (
                     '; BE cpu.idle: a reference, no agent, the BE cgroups with cpu.idle 1'
                     if 'idle' in results['runs'] else ''))
    ctl = results['runs'].get('controlled')
    if ctl and ctl.get('before'):
        b = ctl['before']
        lines.append('controlled, LC alone while the agent learned (%.0f s): p50 %.3f ms, p99 %.3f '
                     'ms, p99.9 %.3f ms' % (env['learn_s'] - 2, b['p50_ms'], b['p99_ms'],
                                            b['p999_ms']))
    if ctl and ctl.get('settling'):
        s = ctl['settling']
        lines.append('controlled, while settling (the first %.0f s of the BE tasks): p50 %.3f ms, '
                     'p99 %.3f ms' % (env['settle_s'], s['p50_ms'], s['p99_ms']))
    g = results['goal']
    if g['checked']:
        lines.append('')
        lines.append('Goal: [%s] controlled p99 %.2fx alone (<= %.1fx: %s); BE CPU %.2f s >= '
                     '%.2f s, half the LC CPU\'s idle time alone (%s)' % (
                         'PASS' if g['ok'] else 'FAIL', g['p99_ratio'], GOAL_P99_RATIO,
                         'ok' if g['p99_ok'] else 'missed', g['be_cpu_s'], g['be_needed_s'],
                         'ok' if g['be_ok'] else 'missed'))
    if ctl and ctl.get('timeline'):
        lines += ['', 'controlled, second by second from 3 s before the BE tasks start (t: seconds '
                  'since the client started; BE limits: CPUs, -1 for none):',
                  '%7s %9s %10s %8s %8s  %s' % ('t', 'p99 ms', 'LC psi', 'LC cpu', 'BE cpu',
                                                'BE limits')]
        for row in ctl['timeline']:
            if row['t'] >= (ctl.get('be_start_s') or 0) - 3:
                lines.append('%7.1f %9.3f %10.3f %8.2f %8.2f  %s' % (
                    row['t'], row['p99_ms'], row['lc_pressure'], row['lc_cpu'], row['be_cpu'],
                    ' '.join('%g' % v for v in row['be_limits'])))
    if ctl and ctl.get('agent'):
        agent = ctl['agent']
        if agent['errors']:
            lines.append('agent errors/warnings (last %d):' % len(agent['errors']))
            lines += ['  ' + line for line in agent['errors']]
        shown = sorted((k, v) for k, v in agent['metrics'].items()
                       if k.startswith(SHOWN_METRICS))
        if shown:
            lines.append('agent, last values:')
            lines += ['  %s %g' % (_short(k), v) for k, v in shown]
        if agent['log']:
            lines.append('agent log, interference lines (last %d):' % min(10, len(agent['log'])))
            lines += ['  ' + line for line in agent['log'][-10:]]
    return lines


def _short(series: str) -> str:
    """A series with only the labels that tell it apart here (task_id shortened, action)."""
    name, _, labels = series.partition('{')
    keep = [m.group(0) for m in re.finditer(r'(task_id|action|signal)="([^"]*)"', labels)]
    keep = [k.replace(k[k.index('"') + 1:k.rindex('/') + 1], '') if 'task_id' in k and '/' in k
            else k for k in keep]
    return '%s{%s}' % (name, ','.join(keep)) if keep else name


def report_section(results) -> list:
    """The collocation lines of `make bench`'s report."""
    if not results:
        return []
    if results.get('skipped'):
        return ['', 'Collocation: skipped: %s' % results['skipped']]
    return [''] + report(results)
