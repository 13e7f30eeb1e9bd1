"""Storages off the node at N tasks (default 1000): what one store() of an agent iteration's
metrics costs with KafkaStorage (to a real broker on 127.0.0.1: Tansu from .tools/bin, see
tools/install-test-tools) and PrometheusEndpointStorage (and a scrape of it), against
LogStorage (Prometheus text to a file).

The metrics are those of a real MeasurementRunner iteration over N tasks (a fixture tree of
cgroup v1 files, so no root is needed; their shape is what matters here). Runs in a fresh
interpreter (`python -m benchmarks.storages < JOB_JSON`), started by `python -m benchmarks`.

Reported per storage, in milliseconds (medians): `loop` is the wall time store() holds the
loop; `cpu` is the CPU of the whole process per store, including the storage's own threads
(Kafka: the sender and kafka-python's I/O thread, until the message is acknowledged).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TANSU = os.path.join(REPO, '.tools', 'bin', 'tansu')


def run(tasks: int, quick: bool = False) -> dict:
    """Runs the benchmark in a fresh interpreter; its results."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    process = subprocess.run([sys.executable, '-m', 'benchmarks.storages'],
                             input=json.dumps({'tasks': tasks, 'repeat': 5 if quick else 15}),
                             stdout=subprocess.PIPE, universal_newlines=True, cwd=REPO, env=env)
    if process.returncode != 0:
        raise SystemExit('storage benchmark failed (exit %d)' % process.returncode)
    return json.loads(process.stdout.strip().splitlines()[-1])


def report(result) -> list:
    """Lines for the benchmark's text report."""
    if not result:
        return []
    log = result['log']
    lines = ['', 'Storages at N=%d (%d metrics, %.1f MB of text per store; ms, medians; loop: '
             'what store() holds the loop, cpu: the whole process per store, own threads '
             'included):' % (result['tasks'], result['metrics'], result['text_bytes'] / 1e6)]
    lines.append('  %-44s loop %8.2f  cpu %8.2f' % ('LogStorage (file, overwrite)',
                                                    log['loop']['median_ms'],
                                                    log['cpu']['median_ms']))
    for key, title in (('endpoint', 'PrometheusEndpointStorage store'),
                       ('scrape_text', '  a scrape, text 0.0.4'),
                       ('scrape_openmetrics_gzip', '  a scrape, OpenMetrics + gzip (first)'),
                       ('kafka', 'KafkaStorage (waits for the ack)'),
                       ('kafka_no_wait', 'KafkaStorage, max_timeout_in_seconds: 0')):
        entry = result.get(key)
        if entry:
            lines.append('  %-44s loop %8.2f  cpu %8.2f  (x%.1f LogStorage cpu)' % (
                title, entry['loop']['median_ms'], entry['cpu']['median_ms'],
                entry['cpu']['median_ms'] / max(log['cpu']['median_ms'], 1e-9)))
    if result.get('kafka_messages'):
        lines.append('  (Kafka: %d messages per store, gzip-compressed by default)'
                     % result['kafka_messages'])
    if result.get('kafka_note'):
        lines.append('  KafkaStorage: %s' % result['kafka_note'])
    return lines


# --- the job, in its own interpreter -----------------------------------------------------------

def _agent_metrics(tasks):
    from benchmarks.tasks import FixtureTree
    from wca.nodes.static import StaticNode
    from wca.runners.measurement import MeasurementRunner
    from wca.storage.base import Storage

    class Capture(Storage):
        metrics = []

        def store(self, metrics):
            self.metrics = metrics

    capture = Capture()
    with FixtureTree(tasks) as tree:
        runner = MeasurementRunner(node=StaticNode(tasks=tree.paths), metrics_storage=capture,
                                   interval=0, cgroup_layout=tree.layout,
                                   gather_hw_mm_topology=False)
        runner.iterate()
        runner.iterate()
    return capture.metrics


def _timed(function, repeat, settle=None):
    """(loop seconds, process CPU seconds) of each call; `settle` waits for the storage's own
    threads to finish the call's work before the CPU clock stops."""
    loops, cpus = [], []
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.monotonic()
        function()
        loops.append(time.monotonic() - wall)
        if settle:
            settle()
        cpus.append(time.process_time() - cpu)
    return loops, cpus


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _kafka(metrics, repeat, out):
    from wca.storage.kafka import KafkaStorage
    from benchmarks.worker import stats
    if not os.access(TANSU, os.X_OK):
        out['kafka_note'] = 'skipped: no broker (run tools/install-test-tools for .tools/bin/tansu)'
        return
    port = _free_port()
    broker = subprocess.Popen([TANSU, 'broker', '--listener-url', 'tcp://127.0.0.1:%d' % port,
                               '--advertised-listener-url', 'tcp://127.0.0.1:%d' % port,
                               '--storage-engine', 'memory://tansu/'],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for key, timeout in (('kafka', 0.5), ('kafka_no_wait', 0)):
            storage = KafkaStorage(topic='bench', brokers_ips=['127.0.0.1:%d' % port],
                                   max_timeout_in_seconds=timeout)
            deadline = time.monotonic() + 20
            storage.store(metrics)  # connects
            while storage.counts()['queued'] and time.monotonic() < deadline:
                time.sleep(0.01)
            if storage.counts()['delivered'] == 0:
                out['kafka_note'] = 'the broker did not answer; skipped'
                return

            def settle():
                while storage.counts()['queued']:
                    time.sleep(0.001)
            loops, cpus = _timed(lambda: storage.store(metrics), repeat, settle)
            out[key] = {'loop': stats(loops), 'cpu': stats(cpus)}
            counts = storage.counts()
            out['kafka_messages'] = counts['produced'] // (repeat + 1)
            storage.close(timeout=5)
    finally:
        broker.terminate()
        broker.wait()


def job(job):
    from benchmarks.worker import peak_rss_mb, stats
    from wca.exposition import encode
    from wca.storage.http import PrometheusEndpointStorage
    from wca.storage.log import LogStorage
    metrics = _agent_metrics(job['tasks'])
    repeat = job['repeat']
    out = {'tasks': job['tasks'], 'metrics': len(metrics),
           'text_bytes': len(encode(metrics, 0)[0].encode())}
    with tempfile.TemporaryDirectory(prefix='wca-bench-storage-') as directory:
        log = LogStorage(output_filename=os.path.join(directory, 'metrics.prom'), overwrite=True)
        log.store(metrics)
        loops, cpus = _timed(lambda: log.store(metrics), repeat)
        out['log'] = {'loop': stats(loops), 'cpu': stats(cpus)}

    endpoint = PrometheusEndpointStorage(port=_free_port())
    try:
        endpoint.store(metrics)
        loops, cpus = _timed(lambda: endpoint.store(metrics), repeat)
        out['endpoint'] = {'loop': stats(loops), 'cpu': stats(cpus)}
        url = 'http://127.0.0.1:%d/metrics' % endpoint.port

        def scrape(headers):
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        loops, cpus = _timed(lambda: scrape({}), repeat)
        out['scrape_text'] = {'loop': stats(loops), 'cpu': stats(cpus)}

        def fresh_scrape():  # a new store, then its first OpenMetrics + gzip scrape
            endpoint.store(metrics)
            scrape({'Accept': 'application/openmetrics-text', 'Accept-Encoding': 'gzip'})
        base = _timed(lambda: endpoint.store(metrics), repeat)[1]
        loops, cpus = _timed(fresh_scrape, repeat)
        store_cpu = sorted(base)[len(base) // 2]
        out['scrape_openmetrics_gzip'] = {'loop': stats([x - store_cpu for x in loops]),
                                          'cpu': stats([x - store_cpu for x in cpus])}
    finally:
        endpoint.close()
    _kafka(metrics, repeat, out)
    out['peak_rss_mb'] = peak_rss_mb()
    return out


def main():
    import logging
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = job(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(result) + '\n')


if __name__ == '__main__':
    main()
