"""The SSL component: its config checks, and real TLS connections made with its settings."""
import http.client
import ssl
import subprocess

import pytest

from tls_ca import Answer, JsonServer
from wca.config.loader import load_config_text
from wca.config.schema import ConfigError
from wca.nodes.http import JsonClient
from wca.tls import SSL


def test_requests_kwargs(pki, tmp_path):
    both = tmp_path / 'client.pem'  # a certificate with its key in one file
    both.write_text(open(pki.client_cert).read() + open(pki.client_key).read())
    assert SSL().requests_kwargs() == {'verify': True, 'cert': None}
    assert SSL(server_verify=False).requests_kwargs() == {'verify': False, 'cert': None}
    assert SSL(pki.ca_cert, str(both)).requests_kwargs() == {
        'verify': pki.ca_cert, 'cert': str(both)}
    assert SSL(pki.ca_cert, pki.client_cert, pki.client_key).requests_kwargs() == {
        'verify': pki.ca_cert, 'cert': (pki.client_cert, pki.client_key)}


@pytest.mark.parametrize('kwargs, problem', [
    (dict(server_verify='/nonexistent/ca.pem'), "server_verify: CA bundle '/nonexistent/ca.pem'"),
    (dict(server_verify=''), 'server_verify: expected true, false or a CA bundle path'),
    (dict(server_verify=1), 'server_verify: expected true, false or a CA bundle path'),
    (dict(client_key_path='KEY'), 'client_key_path: a client key needs client_cert_path too'),
    (dict(client_cert_path='/nonexistent/client.crt'), "client_cert_path: '/nonexistent/client.crt'"),
])
def test_bad_settings_are_config_errors(kwargs, problem, pki):
    if kwargs.get('client_key_path') == 'KEY':
        kwargs['client_key_path'] = pki.client_key
    with pytest.raises(ValueError) as error:
        SSL(**kwargs)
    assert str(error.value).startswith(problem)


def test_unusable_files_are_config_errors(pki, tmp_path):
    encrypted = str(tmp_path / 'encrypted.key')
    subprocess.check_call(['openssl', 'pkey', '-in', pki.client_key, '-aes256', '-passout',
                           'pass:do-not-print', '-out', encrypted])
    cases = [
        (dict(server_verify=pki.client_key), 'server_verify: %r is not a PEM CA bundle' % pki.client_key),
        (dict(client_cert_path=pki.client_cert, client_key_path=pki.server_key),
         'client_key_path: cannot use the client certificate and key: the key does not belong'),
        (dict(client_cert_path=pki.client_cert, client_key_path=encrypted),
         'client_key_path: cannot use the client certificate and key: the key is encrypted'),
        (dict(client_cert_path=pki.client_cert),
         'client_cert_path: cannot use the client certificate and key: not a PEM certificate'),
    ]
    for kwargs, problem in cases:
        with pytest.raises(ValueError) as error:
            SSL(**kwargs)
        assert str(error.value).startswith(problem), str(error.value)
        assert 'PRIVATE KEY' not in str(error.value) and 'do-not-print' not in str(error.value)
    assert SSL(server_verify=pki.directory).requests_kwargs()['verify'] == pki.directory


def test_config_errors_name_the_line_and_key(pki):
    text = ('runner: !MeasurementRunner\n'
            '  node: !MesosNode\n'
            '    ssl: !SSL\n'
            '      server_verify: true\n'
            '      client_key_path: %s\n' % pki.client_key)
    with pytest.raises(ConfigError) as error:
        load_config_text(text, 'wca.yml')
    assert str(error.value).startswith('wca.yml:5: runner.node.ssl.client_key_path: !SSL: '
                                       'a client key needs client_cert_path too'), str(error.value)
    with pytest.raises(ConfigError) as error:
        load_config_text(text.replace('true', '/etc/no-such-ca.pem').replace(
            '      client_key_path: %s\n' % pki.client_key, ''), 'wca.yml')
    assert str(error.value).startswith('wca.yml:4: runner.node.ssl.server_verify:'), str(error.value)


def _get(context, port):
    connection = http.client.HTTPSConnection('127.0.0.1', port, context=context, timeout=5)
    try:
        connection.request('GET', '/')
        return connection.getresponse().read()
    finally:
        connection.close()


def test_client_context_verifies_and_presents_the_client_certificate(pki):
    with JsonServer(lambda r: Answer(body={'subject': r.client_cert}), pki=pki,
                    client_auth=True) as server:
        good = SSL(pki.ca_cert, pki.client_cert, pki.client_key).client_context()
        assert b'wca-test-client' in _get(good, server.port)
        with pytest.raises(ssl.SSLError):
            _get(SSL(pki.other_ca_cert, pki.client_cert, pki.client_key).client_context(),
                 server.port)
        unverified = SSL(False, pki.client_cert, pki.client_key).client_context()
        assert b'wca-test-client' in _get(unverified, server.port)


def test_clients_refuse_tls_older_than_1_2():
    """Both the SSL context and the one `requests` gets (urllib3 1.26 would allow TLS 1.0)."""
    session = JsonClient(5)._new_session()
    contexts = [SSL(False).client_context(), SSL().client_context(),
                session.get_adapter('https://127.0.0.1/').poolmanager.connection_pool_kw[
                    'ssl_context']]
    for context in contexts:
        if hasattr(context, 'minimum_version'):
            assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        else:  # Python 3.6
            assert context.options & ssl.OP_NO_TLSv1 and context.options & ssl.OP_NO_TLSv1_1
