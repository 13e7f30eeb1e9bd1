"""The fault-injection soak: the real agent (`python -m wca --config ... --root`, a subprocess)
measures and allocates churned pods for SOAK_SECONDS while soak_faults.Injector breaks one
thing after another; then the figures (docs/reliability.md) and whether they hold.

Settings (environment): SOAK_SECONDS (600), SOAK_INTERVAL (1.0), SOAK_PODS (6),
SOAK_STABLE_PODS (2 of them, never churned: the faults' preferred targets), SOAK_CHURN_SECONDS
(2: a pod replaced that often), SOAK_FAULT_SECONDS (8: a fault starts that often; each is held
SOAK_HOLD_SECONDS, 3), SOAK_SEED, SOAK_REPORT (the JSON report's path),
SOAK_FD_TOLERANCE (8), SOAK_THREAD_TOLERANCE (2), SOAK_RSS_TOLERANCE_MB (32).
"""
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from kafka_broker import Broker
from resctrl_tree import ResctrlTree
from soak_faults import FAULTS, Injector
from soak_world import (Churn, Kubelet, Pods, SmallDisk, TextfileWatch, parse_samples,
                        resources, stop_process, value)
from testing.cgroups import Cgroups
from tls_ca import make_pki

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOPIC = 'wca-soak'
TIMEOUT = 1  # the kubelet request's, seconds


def _env(name, default, kind=float):
    return kind(os.environ.get(name, default))


class Settings:
    def __init__(self):
        self.seconds = _env('SOAK_SECONDS', 600)
        self.interval = _env('SOAK_INTERVAL', 1.0)
        self.pods = _env('SOAK_PODS', 6, int)
        self.stable = _env('SOAK_STABLE_PODS', 2, int)  # of SOAK_PODS, never churned
        self.churn_every = _env('SOAK_CHURN_SECONDS', 2.0)
        self.fault_every = _env('SOAK_FAULT_SECONDS', 8.0)
        self.hold = _env('SOAK_HOLD_SECONDS', 3.0)
        self.recover = 10.0
        self.warmup = 10.0
        self.quiet = 10.0
        self.seed = _env('SOAK_SEED', int(time.time()), int)
        self.report = os.environ.get('SOAK_REPORT') or os.path.join(
            REPO, 'soak-results', 'soak.json')
        self.fd_tolerance = _env('SOAK_FD_TOLERANCE', 8, int)
        self.thread_tolerance = _env('SOAK_THREAD_TOLERANCE', 2, int)
        self.rss_tolerance = _env('SOAK_RSS_TOLERANCE_MB', 32, int) * 2 ** 20


RULES = """\
# The soak's StaticAllocator rules: every pod gets CPU quota and shares and its own RDT group.
- name: every pod
  allocations:
    cpu_quota: 0.5
    cpu_shares: 0.5
    rdt: {name: soak, l3: 'L3:0=00f;1=00f'}
"""

CONFIG = """\
# The soak's agent: kubelet pods, static allocations, textfile + Kafka (made by the soak).
runner: !AllocationRunner
  node: !KubernetesNode
    kubelet_enabled: true
    kubelet_endpoint: {kubelet}
    ssl: !SSL {{server_verify: {ca}}}
    client_token_path: null
    cgroup_driver: cgroupfs
    cgroup_root: {cgroup_root}
    timeout: {timeout}
    grace_period: 30
  allocator: !StaticAllocator
    config: {rules}
  metrics_storage: !FilterStorage
    storages:
      - !LogStorage {{output_filename: {textfile}, overwrite: true}}
      - !KafkaStorage {{topic: {topic}, brokers_ips: ['{bootstrap}']}}
  anomalies_storage: !LogStorage {{output_filename: {dir}/anomalies.prom, overwrite: true}}
  allocations_storage: !LogStorage {{output_filename: {dir}/allocations.prom, overwrite: true}}
  interval: {interval}
  rdt_enabled: true
  resctrl: !KernelShapedResctrl {{root: {resctrl}}}
  rdt_groups_file: {dir}/rdt-groups
"""


class Soak:
    def __init__(self, settings, tansu):
        self.s = settings
        self.tansu = tansu
        self.started = time.monotonic()
        self.commit = _commit()  # of the code the agent runs: taken at its start
        self.kafka_iterations = set()
        self.kafka_messages = 0
        self.samples = {}
        self.stderr_text = ''
        self.stable = []

    def say(self, text):
        """Progress, on stderr (make soak shows it)."""
        sys.stderr.write('soak %6.1f s: %s\n' % (time.monotonic() - self.started, text))
        sys.stderr.flush()

    # --- the parts -------------------------------------------------------------------------

    def drain_kafka(self, then=None):
        """Reads every message the broker holds now (it is in memory: a restart empties it):
        until the consumer has caught up with the partitions' ends. With `then`: catches up,
        waits for the agent's next store, catches up again and calls then() at once, so that a
        message is lost with the broker only when the agent loses it."""
        from kafka import KafkaConsumer
        consumer = KafkaConsumer(TOPIC, bootstrap_servers=[self.broker.bootstrap],
                                 auto_offset_reset='earliest', enable_auto_commit=False,
                                 group_id=None)
        try:
            self._catch_up(consumer)
            if then is not None:
                self.textfile.wait_store(5)
                time.sleep(0.2)  # the store's message is delivered in the background
                self._catch_up(consumer)
                then()
        finally:
            consumer.close()

    def _catch_up(self, consumer):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    self._kafka_record(record.value)
            partitions = consumer.assignment()
            if not partitions:
                if time.monotonic() > deadline - 15:
                    return  # no topic yet: nothing was delivered
                continue
            ends = consumer.end_offsets(list(partitions))
            if all(consumer.position(p) >= ends[p] for p in partitions):
                return
        raise RuntimeError('the Kafka consumer did not catch up within 20 s')

    def _kafka_record(self, data):
        self.kafka_messages += 1
        iteration = value(parse_samples(data.decode('utf-8', 'replace')), 'wca_iterations_total')
        if iteration is not None:
            self.kafka_iterations.add(int(iteration))

    def _sample(self, when):
        """The agent's resources, at a moment with every pod measured and none churning."""
        deadline = time.monotonic() + 30
        while value(self.textfile.latest, 'wca_tasks') != self.s.pods and \
                time.monotonic() < deadline:
            self.textfile.wait_store(2)
        self.textfile.wait_store(5)  # just after a store: the agent waits for the next
        self.samples[when] = dict(resources(self.agent.pid), tasks=value(
            self.textfile.latest, 'wca_tasks'), seconds=round(time.monotonic() - self.started, 1))

    def _agent_command(self, config):
        return [sys.executable, '-m', 'wca', '--config', config, '--root',
                '-r', 'kernel_resctrl:KernelShapedResctrl', '--log', 'info']

    # --- the run ---------------------------------------------------------------------------

    def run(self):
        directory = tempfile.mkdtemp(prefix='wca-soak-')
        self.dir = directory
        parts = []
        try:
            return self._run(directory, parts)
        finally:
            for undo in reversed(parts):
                try:
                    undo()
                except Exception as e:
                    sys.stderr.write('soak cleanup: %s: %s\n' % (type(e).__name__, e))
            shutil.rmtree(directory, ignore_errors=True)

    def _run(self, directory, parts):
        s = self.s
        pki = make_pki(os.path.join(directory, 'pki'))
        self.broker = Broker(self.tansu, directory)
        self.broker.start()
        parts.append(self.broker.stop)
        self.tree = ResctrlTree(os.path.join(directory, 'resctrl'))
        self.disk = SmallDisk(os.path.join(directory, 'textfile'), 2, subprocess.check_call)
        parts.append(self.disk.unmount)
        cgroups = Cgroups(prefix='wca-soak')
        parts.append(cgroups.cleanup)
        self.kubelet = Kubelet(pki, slow_seconds=3 * TIMEOUT)
        self.kubelet.server.__enter__()
        parts.append(lambda: self.kubelet.server.__exit__(None, None, None))
        self.pods = Pods(cgroups, self.kubelet)
        churn = Churn(self.pods, s.pods, s.stable, s.churn_every)
        self.stable = churn.stable
        churn.fill()
        textfile = os.path.join(self.disk.path, 'wca.prom')
        rules = os.path.join(directory, 'rules.yaml')
        with open(rules, 'w') as f:
            f.write(RULES)
        config = os.path.join(directory, 'soak.yaml')
        with open(config, 'w') as f:
            f.write(CONFIG.format(kubelet=self.kubelet.server.url, ca=pki.ca_cert,
                                  cgroup_root=cgroups.parent, timeout=TIMEOUT, rules=rules,
                                  textfile=textfile, topic=TOPIC, bootstrap=self.broker.bootstrap,
                                  dir=directory, interval=s.interval, resctrl=self.tree.root))
        self.textfile = TextfileWatch(textfile)
        self.textfile.start()
        parts.append(self.textfile.stop)
        stderr_path = os.path.join(directory, 'agent.stderr')
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, HERE, os.path.join(REPO, 'tests')]))
        with open(stderr_path, 'wb') as stderr:
            self.agent = subprocess.Popen(self._agent_command(config), cwd=REPO, env=env,
                                          stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        parts.append(lambda: stop_process(self.agent, 10))
        if not self.textfile.wait_store(60):
            raise RuntimeError('the agent stored nothing in 60 s:\n' + _tail(stderr_path))
        self.say('the agent stores; warming up for %.0f s' % s.warmup)
        time.sleep(s.warmup)
        self._sample('start')
        self.say('start: %s' % self.samples['start'])
        churn.start()
        parts.append(churn.stop)
        injector = Injector(self, s.hold, s.recover, s.seed)
        end = self.started + s.seconds - s.quiet
        order = []
        while time.monotonic() < end and self.agent.poll() is None:
            if not order:
                order = injector.cycle()
            began = time.monotonic()
            injector.run_one(order.pop())
            left = began + s.fault_every - time.monotonic()
            if left > 0:
                time.sleep(min(left, max(0.0, end - time.monotonic())))
        churn.stop()
        self.say('faults and churn stopped; quiet for %.0f s' % s.quiet)
        time.sleep(s.quiet)
        if self.agent.poll() is None:
            self._sample('end')
            self.say('end: %s' % self.samples['end'])
        self.textfile.wait_store(5)
        self.drain_kafka()  # the last of this broker's life before the agent's goodbye
        self.say('stopping the agent')
        exit_code = stop_process(self.agent, 30)
        time.sleep(0.5)
        self.textfile.stop()
        self.drain_kafka()
        with open(stderr_path, errors='replace') as f:
            stderr_text = f.read()
        self.stderr_text = stderr_text
        return self._report(injector, churn, exit_code, stderr_text)

    # --- the figures -----------------------------------------------------------------------

    def _report(self, injector, churn, exit_code, stderr_text):
        s = self.s
        latest = self.textfile.latest
        # what the agent's self-metrics say, or its log of an iteration that failed before its
        # store (and so never said so in a metric)
        failed = [int(n) for n in re.findall(r'iteration (\d+) failed', stderr_text)]
        iterations = int(max([value(latest, 'wca_iterations_total') or 0] + failed +
                             list(self.kafka_iterations) + list(self.textfile.iterations_seen)))
        storage_errors = int(value(latest, 'wca_storage_errors_total', storage='metrics_storage')
                             or 0)
        expected = iterations - storage_errors
        full = injector.windows['textfile_disk_full']
        storage_down_bound = sum(math.ceil((b - a) / s.interval) + 1 for a, b in full)
        kafka = {k: int(value(latest, 'wca_kafka_messages_%s_total' % k) or 0)
                 for k in ('delivered', 'dropped', 'failed')}
        kafka_missing = sorted(set(range(1, iterations + 1)) - self.kafka_iterations)
        tracebacks = stderr_text.count('Traceback (most recent call last)')
        start, end = self.samples.get('start', {}), self.samples.get('end', {})
        growth = {k: end.get(k, 0) - start.get(k, 0) for k in ('fds', 'threads', 'rss_bytes')}
        counters = {'%s%s' % (n, '{%s}' % ','.join('%s="%s"' % kv for kv in ls) if ls else ''): v
                    for (n, ls), v in sorted(latest.items())
                    if n.endswith('_total') and v and (n.startswith('wca_') or 'alloc' in n)}
        failures = []
        if tracebacks:
            failures.append('%d tracebacks in the agent\'s stderr' % tracebacks)
        if self.textfile.stores < expected:
            failures.append('textfile: %d iterations stored, %d expected (%d run, %d counted as '
                            'storage errors)' % (self.textfile.stores, expected, iterations,
                                                 storage_errors))
        if storage_errors > storage_down_bound:
            failures.append('textfile: %d storage errors, but the disk was full for at most %d '
                            'iterations' % (storage_errors, storage_down_bound))
        if len(kafka_missing) > kafka['dropped'] + kafka['failed']:
            failures.append('kafka: %d iterations missing, %d counted as dropped or failed' % (
                len(kafka_missing), kafka['dropped'] + kafka['failed']))
        if not start or not end:
            failures.append('no resource sample at the %s' % ('start' if not start else 'end'))
        else:
            for key, tolerance in (('fds', s.fd_tolerance), ('threads', s.thread_tolerance),
                                   ('rss_bytes', s.rss_tolerance)):
                if growth[key] > tolerance:
                    failures.append('%s grew by %d (tolerance %d)' % (key, growth[key], tolerance))
        if exit_code != 0:
            failures.append('the agent exited with %s' % exit_code)
        if churn.errors:
            failures.append('the churn failed: %s' % churn.errors[0])
        return {
            'commit': self.commit, 'seconds': s.seconds, 'interval': s.interval, 'pods': s.pods,
            'seed': s.seed, 'ran_seconds': round(time.monotonic() - self.started, 1),
            'iterations': iterations,
            'textfile': {'stored': self.textfile.stores, 'expected': expected,
                         'storage_errors': storage_errors,
                         'disk_full_iterations_at_most': storage_down_bound},
            'kafka': dict(kafka, iterations_seen=len(self.kafka_iterations),
                          messages_read=self.kafka_messages, missing_count=len(kafka_missing),
                          missing=kafka_missing[:50]),
            'stored_anywhere': len(self.kafka_iterations | self.textfile.iterations_seen),
            'tracebacks': tracebacks, 'iterations_failed': len(failed),
            'resources': {'start': start, 'end': end, 'growth': growth,
                          'tolerance': {'fds': s.fd_tolerance, 'threads': s.thread_tolerance,
                                        'rss_bytes': s.rss_tolerance}},
            'faults': injector.counts, 'fault_log': injector.log,
            'churn': {'pods_added': churn.added, 'pods_removed': churn.removed},
            'kubelet_answers': self.kubelet.answers,
            'agent_counters': counters, 'agent_exit_code': exit_code,
            'failures': failures, 'passed': not failures,
        }


def table(report):
    """The report as a plain text table."""
    rows = [
        ('commit', report['commit']),
        ('duration', '%s s (ran %s s), interval %s s, %d pods' % (
            report['seconds'], report['ran_seconds'], report['interval'], report['pods'])),
        ('iterations run', report['iterations']),
        ('textfile: stored / expected', '%d / %d (%d storage errors counted; disk full for '
         '<= %d iterations)' % (report['textfile']['stored'], report['textfile']['expected'],
                                report['textfile']['storage_errors'],
                                report['textfile']['disk_full_iterations_at_most'])),
        ('kafka: iterations read', '%d (delivered %d, dropped %d, failed %d; missing %d)' % (
            report['kafka']['iterations_seen'], report['kafka']['delivered'],
            report['kafka']['dropped'], report['kafka']['failed'],
            report['kafka']['missing_count'])),
        ('tracebacks', report['tracebacks']),
    ]
    res = report['resources']
    for key in ('fds', 'threads', 'rss_bytes'):
        rows.append(('%s start -> end' % key, '%s -> %s (growth %s, tolerance %s)' % (
            res['start'].get(key), res['end'].get(key), res['growth'][key],
            res['tolerance'][key])))
    for name in FAULTS:
        c = report['faults'][name]
        rows.append(('fault %s' % name, 'injected %d: recovered %d, not recovered %d, target '
                     'churned away %d; skipped %d' % (c['injected'], c['recovered'],
                                                      c['not_recovered'], c['gone'], c['skipped'])))
    rows.append(('result', 'PASS' if report['passed'] else 'FAIL: ' + '; '.join(
        report['failures'])))
    width = max(len(k) for k, _ in rows)
    return '\n'.join('%-*s  %s' % (width, k, v) for k, v in rows)


def _tail(path, lines=40):
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:])


def _commit():
    try:
        head = subprocess.check_output(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                                       universal_newlines=True).strip()
        dirty = subprocess.call(['git', 'diff', '--quiet', 'HEAD'], cwd=REPO)
        return head + ('+changes' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
