"""A config author's mistakes must not become someone else's way in (docs/security.md,
"Config authors"): a config that holds secrets and that others can read is warned about once
at start, naming the file and the keys, never the values. (A config or plugin directory others
could change is refused: tests/test_security.py, tests/test_plugindir.py and
tests/security/test_local_user.py.) The agent runs for real; the other reader is uid 65534.
"""
import os
import subprocess

import pytest

from conftest import plugin_env, wca_command
from test_local_user import config, node, user_can_read  # noqa: F401 (node: a fixture)


SECRETS = '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: []
  iterations: 1
  interval: 0.01
  metrics_storage: !KafkaStorage
    topic: wca
    brokers_ips: ['127.0.0.1:9']
    max_timeout_in_seconds: 0.1
    extra_config:
      security_protocol: SASL_PLAINTEXT
      sasl_mechanism: PLAIN
      sasl_plain_username: !Env WCA_TEST_KAFKA_USER
      sasl_plain_password: hunter2-in-the-config
'''


def agent(config_path, *args, **env):
    env = plugin_env(WCA_TEST_KAFKA_USER='wca-user-from-env', **env)
    return subprocess.run(wca_command('-c', config_path) + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


@pytest.mark.parametrize('args', [['--check-config'], ['--root']])
def test_the_agent_warns_once_about_secrets_others_can_read(node, args):  # noqa: F811
    path = os.path.join(node['base'], 'wca_config.yml')
    with open(path, 'w') as f:
        f.write(SECRETS)
    os.chmod(path, 0o644)  # as the RPM installed it before
    assert 'hunter2-in-the-config' in user_can_read(path)  # the user reads it
    result = agent(path, *args)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if 'readable by' in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].endswith(
        '%s is readable by everyone (mode 0644) and holds secrets or where they are '
        '(runner.metrics_storage.extra_config.sasl_plain_username, '
        'runner.metrics_storage.extra_config.sasl_plain_password): other local users can read '
        'them; fix with: chown root:wca %s && chmod 0640 %s (the group the agent runs as)' % (
            path, path, path))
    assert 'hunter2' not in result.stderr and 'wca-user-from-env' not in result.stderr
    os.chmod(path, 0o640)  # the fix: the user cannot read it, the agent says nothing
    assert user_can_read(path) is None
    result = agent(path, *args)
    assert result.returncode == 0 and 'readable by' not in result.stderr, result.stderr


def test_a_readable_config_without_secrets_is_not_warned_about(node):  # noqa: F811
    path = config(node)
    result = agent(path, '--check-config')
    assert result.returncode == 0 and 'readable by' not in result.stderr, result.stderr


@pytest.mark.parametrize('key, value, shown', [
    ('client_token_path', '{base}/token', 'runner.node.client_token_path'),
    ('client_token_path', '!Env WCA_TEST_TOKEN_PATH', 'runner.node.client_token_path'),
    ('ssl', '!SSL {{client_cert_path: {pki.client_cert}, client_key_path: {pki.client_key}}}',
     'runner.node.ssl.client_key_path'),
])
def test_token_and_key_paths_count_as_secrets(node, pki, key, value, shown):  # noqa: F811
    token = os.path.join(node['base'], 'token')
    with open(token, 'w') as f:
        f.write('a-token\n')
    path = os.path.join(node['base'], 'wca_config.yml')
    with open(path, 'w') as f:
        f.write(KUBELET.format(key=key, value=value.format(base=node['base'], pki=pki)))
    os.chmod(path, 0o644)
    result = agent(path, '--check-config', WCA_TEST_TOKEN_PATH=token)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if 'readable by' in line]
    assert len(warnings) == 1 and '(%s)' % shown in warnings[0], result.stderr
    assert 'client_cert_path' not in warnings[0]  # a certificate is public


KUBELET = '''\
runner: !MeasurementRunner
  node: !KubernetesNode
    kubelet_enabled: true
    kubelet_endpoint: https://127.0.0.1:10250
    node_ip: 127.0.0.1
    {key}: {value}
'''
