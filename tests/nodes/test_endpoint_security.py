"""Credentials never go to a plain http:// orchestrator, and plain HTTP at all needs an opt-in
(allow_plain_http: true). Whoever holds a free port on the node (the kubelet's old read-only
10255, Mesos' 5051) must get neither the agent's token nor its trust. Checked as an operator
meets it, with `python -m wca --check-config` (exit 2, file, line and key), and against a real
HTTP server on 127.0.0.1 that records what it is sent, for every configuration that loads."""
import itertools
import os
import subprocess

import pytest

from conftest import REPO, wca_command, write_config
from orchestrator_fixtures import get_state, pod_list
from tls_ca import Answer, JsonServer
from wca.config.loader import load_config_text
from wca.config.schema import ConfigError

TOKEN = 'sa-token-plain-http-5e2a9c'


def check_config(path):
    return subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=60)


def config(node, **options):
    lines = ''.join('    %s: %s\n' % item for item in options.items())
    return 'runner: !MeasurementRunner\n  node: !%s\n%s  metrics_storage: !LogStorage {}\n' % (
        node, lines)


@pytest.fixture
def token(tmp_path):
    path = tmp_path / 'token'
    path.write_text(TOKEN)
    return str(path)


@pytest.mark.parametrize('case', ['token', 'token and opt-in', 'client certificate',
                                  'password in the URL'])
def test_credentials_to_a_plain_http_url_are_a_config_error(case, tmp_path, token, pki):
    if case == 'client certificate':
        text = config('MesosNode', mesos_agent_endpoint='http://127.0.0.1:5051',
                      allow_plain_http='true',
                      ssl='!SSL {client_cert_path: %s, client_key_path: %s}' % (
                          pki.client_cert, pki.client_key))
        key, line, what = 'mesos_agent_endpoint', 3, 'the client certificate of ssl'
    elif case == 'password in the URL':
        text = config('KubernetesNode', kubelet_enabled='true', client_token_path='null',
                      allow_plain_http='true', kubelet_endpoint='http://wca:s3cret@127.0.0.1:10255')
        key, line, what = 'kubelet_endpoint', 6, 'the user and password in the URL'
    else:
        options = dict(kubelet_enabled='true', kubelet_endpoint='http://127.0.0.1:10255',
                       client_token_path=token)
        if case == 'token and opt-in':
            options['allow_plain_http'] = 'true'
        text = config('KubernetesNode', **options)
        key, line, what = 'kubelet_endpoint', 4, 'the bearer token of client_token_path'
    path = write_config(tmp_path / 'wca.yaml', text)
    result = check_config(path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith('wca: error: %s:%d: runner.node.%s: ' % (path, line, key)), \
        result.stderr
    assert what in result.stderr and 'would go in clear to http://127.0.0.1:' in result.stderr
    assert 'Traceback' not in result.stderr and 's3cret' not in result.stderr


@pytest.mark.parametrize('node, key, url', [
    ('KubernetesNode', 'kubelet_endpoint', 'http://127.0.0.1:10255'),
    ('MesosNode', 'mesos_agent_endpoint', 'http://127.0.0.1:5051'),
])
def test_plain_http_needs_the_opt_in(node, key, url, tmp_path):
    options = {key: url}
    if node == 'KubernetesNode':
        options.update(kubelet_enabled='true', client_token_path='null')
    path = write_config(tmp_path / 'wca.yaml', config(node, **options))
    result = check_config(path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith('wca: error: %s:%d: runner.node.%s: ' % (
        path, 3 + list(options).index(key), key)), result.stderr
    assert 'set allow_plain_http: true' in result.stderr

    opted_in = write_config(tmp_path / 'opted-in.yaml',
                            config(node, allow_plain_http='true', **options))
    result = check_config(opted_in)
    assert result.returncode == 0, result.stderr


def test_no_configuration_that_loads_sends_a_token_over_plain_http(tmp_path, token, pki):
    """Every combination of the options that touch credentials and plain HTTP, against a real
    HTTP server: those that load are asked once, and the server never sees an Authorization
    header (nor a client certificate: it cannot, over plain HTTP)."""
    with JsonServer(lambda r: Answer(body=get_state([]) if r.method == 'POST' else pod_list())) \
            as server:
        loaded = []
        kubelet = itertools.product([token, 'null'], ['true', 'false'],
                                    [None, '!SSL {client_cert_path: %s, client_key_path: %s}' % (
                                        pki.client_cert, pki.client_key)])
        for token_path, plain, ssl in kubelet:
            options = dict(kubelet_enabled='true', kubelet_endpoint=server.url,
                           client_token_path=token_path, allow_plain_http=plain, timeout=2)
            if ssl:
                options['ssl'] = ssl
            loaded += _load(config('KubernetesNode', **options))
        for plain, ssl in itertools.product(['true', 'false'], [None, '!SSL {}']):
            options = dict(mesos_agent_endpoint=server.url, allow_plain_http=plain, timeout=2)
            if ssl:
                options['ssl'] = ssl
            loaded += _load(config('MesosNode', **options))
        for node in loaded:
            node.get_tasks()
            assert not any(node.errors_by_reason().values()), node.errors_by_reason()
        requests = list(server.requests)
    assert len(loaded) == 3  # kubelet without token or certificate; Mesos with and without ssl
    assert len(requests) == len(loaded)
    assert [r for r in requests if 'Authorization' in r.headers] == []
    assert TOKEN not in repr(requests)


def _load(text):
    try:
        return [load_config_text(text, 'wca.yaml')['runner'].config.node]
    except ConfigError as e:
        assert 'http://' in str(e), str(e)
        return []
