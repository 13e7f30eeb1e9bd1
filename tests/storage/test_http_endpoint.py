"""PrometheusEndpointStorage: scraped by real HTTP clients on 127.0.0.1; stuck and greedy clients
cannot hold the loop or the other clients."""
import gzip
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import promtool_check
from exposition_text import expected, parse
from kafka_broker import free_port, wait_until
from wca.exposition import encode
from wca.metrics import Metric, MetricType
from wca.storage.http import EndpointError, PrometheusEndpointStorage, wants_openmetrics
from wca.tls import SSL

PROMETHEUS_ACCEPT = ('application/openmetrics-text;version=1.0.0,application/openmetrics-text;'
                     'version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1')


def metrics_of(iteration, tasks=3):
    out = [Metric('wca_iterations_total', iteration, {'host': 'node'}, MetricType.COUNTER,
                  'Number of "iterations".'),
           Metric('wca_up', 1, {'host': 'node'}, MetricType.GAUGE, 'Up.')]
    for t in range(tasks):
        labels = {'task_id': 'task-%d' % t, 'task_name': 'ns/"q"\\b\nline \u00fc', 'host': 'node'}
        out.append(Metric('task_cpu_usage_seconds', 1.5 * t + iteration, labels,
                          MetricType.COUNTER, 'CPU time\nused'))
        out.append(Metric('task_mem_usage_bytes', 1000 * t, labels, MetricType.GAUGE, 'memory'))
    return out


def fetch(url, method='GET', headers=None, context=None, timeout=5):
    """(status, headers, body) of one request by urllib, a real client."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture
def endpoints():
    made = []

    def make(**kwargs):
        kwargs.setdefault('port', free_port())
        endpoint = PrometheusEndpointStorage(**kwargs)
        made.append(endpoint)
        return endpoint
    yield make
    for endpoint in made:
        endpoint.close()


def test_a_scrape_gets_the_latest_store_in_text_format(endpoints):
    endpoint = endpoints()
    endpoint.store(metrics_of(1))
    url = 'http://127.0.0.1:%d/metrics' % endpoint.port
    status, headers, body = fetch(url)
    assert status == 200
    assert headers['Content-Type'] == 'text/plain; version=0.0.4; charset=utf-8'
    assert body == encode(metrics_of(1), None)[0].encode()
    promtool_check(body)
    parsed = parse(body.decode())
    assert {k: v for k, (v, stamp) in parsed.samples.items()} == expected(metrics_of(1))
    assert set(stamp for _, stamp in parsed.samples.values()) == {None}  # Prometheus stamps
    endpoint.store(metrics_of(2))
    assert parse(fetch(url)[2].decode()).samples[('wca_iterations_total', (('host', 'node'),))][0] == 2
    scrapes = {m.name: m.value for m in endpoint.metrics()}['wca_endpoint_scrapes_total']
    assert scrapes == 2
    promtool_check(encode(endpoint.metrics({'host': 'node'}), None)[0].encode())


def test_openmetrics_when_the_scraper_prefers_it(endpoints):
    endpoint = endpoints(include_timestamp=True)
    endpoint.store(metrics_of(3))
    status, headers, body = fetch('http://127.0.0.1:%d/metrics' % endpoint.port,
                                  headers={'Accept': PROMETHEUS_ACCEPT})
    assert status == 200
    assert headers['Content-Type'] == 'application/openmetrics-text; version=1.0.0; charset=utf-8'
    text = body.decode()
    assert text.endswith('\n# EOF\n') and '\n\n' not in text
    lines = text.splitlines()
    # A counter family drops _total, its samples keep it; the original's counters without the
    # suffix are 'unknown', so their series keep their names in Prometheus.
    assert '# TYPE wca_iterations counter' in lines
    assert '# HELP wca_iterations Number of \\"iterations\\".' in lines
    assert '# TYPE task_cpu_usage_seconds unknown' in lines
    assert '# HELP task_cpu_usage_seconds CPU time\\nused' in lines
    assert '# TYPE wca_up gauge' in lines
    samples = [line for line in lines if not line.startswith('#')]
    assert any(line.startswith('wca_iterations_total{host="node"} 3 ') for line in samples)
    for line in samples:  # timestamps in seconds, with milliseconds
        seconds = line.rsplit(' ', 1)[1]
        assert len(seconds.split('.')[1]) == 3 and abs(float(seconds) - time.time()) < 60
    assert not wants_openmetrics('text/plain;version=0.0.4')
    assert not wants_openmetrics('text/html,application/xhtml+xml,*/*;q=0.8')
    assert wants_openmetrics('application/openmetrics-text')
    assert not wants_openmetrics('application/openmetrics-text;q=0.1,text/plain;q=0.5')


def test_gzip_head_healthy_and_not_found(endpoints):
    endpoint = endpoints()
    endpoint.store(metrics_of(4, tasks=50))
    base = 'http://127.0.0.1:%d' % endpoint.port
    plain = fetch(base + '/metrics')[2]
    status, headers, body = fetch(base + '/metrics', headers={'Accept-Encoding': 'gzip'})
    assert status == 200 and headers['Content-Encoding'] == 'gzip'
    assert gzip.decompress(body) == plain and len(body) < len(plain) / 3
    status, headers, body = fetch(base + '/metrics', headers={
        'Accept-Encoding': 'gzip', 'Accept': PROMETHEUS_ACCEPT})
    assert gzip.decompress(body).endswith(b'# EOF\n')
    connection = http.client.HTTPConnection('127.0.0.1', endpoint.port, timeout=5)
    connection.request('HEAD', '/metrics')
    response = connection.getresponse()
    assert response.status == 200 and int(response.headers['Content-Length']) == len(plain)
    assert response.read() == b''
    connection.close()
    assert fetch(base + '/-/healthy')[0] == 200
    assert fetch(base + '/-/healthy', method='HEAD')[0] == 200
    for path in ('/', '/metricsx', '/metrics/x', '/-/ready'):
        assert fetch(base + path)[0] == 404, path
    status, headers, _ = fetch(base + '/metrics', method='POST')
    assert status == 405 and headers['Allow'] == 'GET, HEAD'
    assert fetch(base + '/nothing', method='DELETE')[0] == 404


def test_nothing_listens_before_the_first_store_and_a_taken_port_is_a_clear_error(endpoints):
    port = free_port()
    endpoint = endpoints(port=port)  # built (as --check-config does): the port stays free
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(('127.0.0.1', port))
        other.listen(1)
        with pytest.raises(EndpointError) as error:
            endpoint.store(metrics_of(1))
        assert str(error.value).startswith('cannot listen on 127.0.0.1:%d: Address already in use'
                                           % port)
        assert 'another process listens there' in str(error.value)
    endpoint.store(metrics_of(1))  # the next store tries again
    assert fetch('http://127.0.0.1:%d/metrics' % port)[0] == 200


def test_clients_that_never_send_or_never_read_hold_neither_the_loop_nor_others(endpoints):
    endpoint = endpoints(timeout=1.5, max_connections=8)
    big = metrics_of(5, tasks=40000)  # about 8 MB of text: more than socket buffers hold
    endpoint.store(big)
    threads = threading.active_count()
    silent = []
    for _ in range(3):  # connect and send nothing
        sock = socket.create_connection(('127.0.0.1', endpoint.port))
        silent.append(sock)
    greedy = socket.create_connection(('127.0.0.1', endpoint.port))  # asks and never reads
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    greedy.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
    time.sleep(0.3)
    small = metrics_of(6)
    started = time.monotonic()
    for _ in range(20):
        endpoint.store(small)
    assert (time.monotonic() - started) / 20 < 0.05  # the loop is not held
    started = time.monotonic()
    status, _, body = fetch('http://127.0.0.1:%d/metrics' % endpoint.port, timeout=3)
    assert status == 200 and body == encode(small, None)[0].encode()  # others are served
    assert time.monotonic() - started < 1.0
    # Past the timeout every stuck connection is cut, and its thread ends.
    assert wait_until(lambda: {m.name: m.value for m in endpoint.metrics()}[
        'wca_endpoint_connections_timed_out_total'] >= 4, timeout=5)
    assert wait_until(lambda: threading.active_count() <= threads, timeout=5), threading.enumerate()
    for sock in silent:
        sock.settimeout(2)
        assert sock.recv(100) == b''  # cut by the endpoint
    for sock in silent + [greedy]:
        sock.close()


def test_connections_beyond_max_connections_are_closed_at_once_and_counted(endpoints):
    endpoint = endpoints(timeout=1, max_connections=2)
    endpoint.store(metrics_of(1))
    idle = [socket.create_connection(('127.0.0.1', endpoint.port)) for _ in range(2)]
    time.sleep(0.2)
    extra = socket.create_connection(('127.0.0.1', endpoint.port))
    extra.settimeout(2)
    started = time.monotonic()
    assert extra.recv(100) == b''
    assert time.monotonic() - started < 0.5
    extra.close()
    assert {m.name: m.value for m in endpoint.metrics()}['wca_endpoint_connections_rejected_total'] == 1
    for sock in idle:
        sock.close()

    def served():
        try:
            return fetch('http://127.0.0.1:%d/metrics' % endpoint.port)[0] == 200
        except OSError:  # still full: closed at once
            return False
    assert wait_until(served)


def test_https_and_client_certificates(endpoints, pki):
    endpoint = endpoints(ssl=SSL(server_verify=False, client_cert_path=pki.server_cert,
                                 client_key_path=pki.server_key))
    endpoint.store(metrics_of(1))
    url = 'https://127.0.0.1:%d/metrics' % endpoint.port
    assert endpoint.url() == 'https://127.0.0.1:%d' % endpoint.port
    context = ssl.create_default_context(cafile=pki.ca_cert)
    status, _, body = fetch(url, context=context)
    assert status == 200 and body == encode(metrics_of(1), None)[0].encode()
    with pytest.raises(urllib.error.URLError):  # a client that trusts another CA refuses it
        fetch(url, context=ssl.create_default_context(cafile=pki.other_ca_cert))

    mutual = endpoints(ssl=SSL(server_verify=pki.ca_cert, client_cert_path=pki.server_cert,
                               client_key_path=pki.server_key), timeout=2)
    mutual.store(metrics_of(2))
    url = 'https://127.0.0.1:%d/metrics' % mutual.port
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        fetch(url, context=context)  # no client certificate
    stuck = socket.create_connection(('127.0.0.1', mutual.port))  # never starts TLS
    with_cert = ssl.create_default_context(cafile=pki.ca_cert)
    with_cert.load_cert_chain(pki.client_cert, pki.client_key)
    started = time.monotonic()
    assert fetch(url, context=with_cert)[0] == 200
    assert time.monotonic() - started < 1.0
    stuck.close()


def test_tls_options_are_checked_when_the_config_loads(pki):
    with pytest.raises(ValueError, match='ssl: the endpoint needs its certificate'):
        PrometheusEndpointStorage(port=9999, ssl=SSL(server_verify=pki.ca_cert))
    with pytest.raises(ValueError, match='port: expected a whole number'):
        PrometheusEndpointStorage(port=9100.5)


def test_ipv6_loopback(endpoints):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(('::1', 0))
    except OSError:
        pytest.skip('this host has no IPv6 loopback (::1)')
    endpoint = endpoints(host='::1')
    endpoint.store(metrics_of(1))
    assert endpoint.url() == 'http://[::1]:%d' % endpoint.port
    assert fetch(endpoint.url() + '/metrics')[0] == 200
