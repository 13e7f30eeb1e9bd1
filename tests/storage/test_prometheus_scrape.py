"""End to end: a real Prometheus server scrapes PrometheusEndpointStorage, fed by a real
MeasurementRunner over real cgroups, and answers a query for a task metric."""
import json
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import require_tool, stop_process
from kafka_broker import free_port, wait_for_port
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner
from wca.storage.http import PrometheusEndpointStorage


def api(port, path, **params):
    url = 'http://127.0.0.1:%d/api/v1/%s?%s' % (port, path, urllib.parse.urlencode(params))
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.loads(response.read().decode())
    assert answer['status'] == 'success', answer
    return answer['data']


def test_prometheus_scrapes_the_agent_and_answers_a_query(cgroups, tmp_path):
    prometheus = require_tool('prometheus', 'tools/install-test-tools')
    task = cgroups.create('scraped').strip('/')
    endpoint = PrometheusEndpointStorage(port=free_port())
    runner = MeasurementRunner(node=StaticNode(tasks=['/' + task]), metrics_storage=endpoint,
                               interval=0, extra_labels={'env': 'e2e'})
    config = tmp_path / 'prometheus.yml'
    config.write_text('''\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: wca
    static_configs:
      - targets: ['127.0.0.1:%d']
''' % endpoint.port)
    port = free_port()
    log = open(str(tmp_path / 'prometheus.log'), 'wb')
    process = subprocess.Popen(
        [prometheus, '--config.file=%s' % config, '--storage.tsdb.path=%s' % (tmp_path / 'data'),
         '--web.listen-address=127.0.0.1:%d' % port, '--log.level=warn'],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        runner.iterate()  # the endpoint listens from the first store on
        wait_for_port(port, timeout=30, process=process)
        deadline = time.monotonic() + 40
        result = []
        while not result and time.monotonic() < deadline:
            runner.iterate()
            time.sleep(0.5)
            result = api(port, 'query', query='task_mem_usage_bytes{task_id="%s"}' % task)['result']
        assert result, 'no sample after 40 s; Prometheus said:\n' + open(
            str(tmp_path / 'prometheus.log')).read()
        labels = result[0]['metric']
        assert labels['job'] == 'wca' and labels['env'] == 'e2e' and labels['task_name'] == task
        assert float(result[0]['value'][1]) > 0
        target = api(port, 'targets')['activeTargets'][0]
        assert target['health'] == 'up' and target['lastError'] == '', target
        # Prometheus asks for OpenMetrics first; the series keep their text-format names.
        for name in ('wca_iterations_total', 'task_cpu_usage_seconds', 'platform_mem_usage_bytes'):
            assert api(port, 'query', query=name)['result'], name
        metadata = {m['metric']: m['type'] for m in api(
            port, 'targets/metadata', match_target='{job="wca"}')}
        assert metadata.get('wca_iterations') == 'counter', metadata  # an OpenMetrics family
        assert metadata.get('task_cpu_usage_seconds') == 'unknown', metadata
        assert metadata.get('task_mem_usage_bytes') == 'gauge', metadata
        scrapes = {m.name: m.value for m in endpoint.metrics()}['wca_endpoint_scrapes_total']
        assert scrapes >= 1
    finally:
        stop_process(process)
        log.close()
        endpoint.close()
