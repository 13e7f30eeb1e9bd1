"""The example configs of configs/kubernetes and configs/mesos load as shipped (with the
machine-specific paths and environment pointed at test files), and the kubelet one runs: the
agent, as an operator starts it, measures a pod served by a real HTTPS kubelet."""
import os
import subprocess

import pytest

from conftest import REPO, require_root, wca_command, write_config
from orchestrator_fixtures import KubepodsTree, pod, pod_list
from tls_ca import Answer, JsonServer
from wca.cgroups.layout import CgroupLayout

TOKEN = 'kubelet-example-token-93c1d7'
EXAMPLES = ['kubernetes/kubelet.yaml', 'kubernetes/kube-apiserver.yaml', 'mesos/mesos.yaml']


def localized(name, tmp_path, pki, extra=()):
    """The example with the paths of a real node replaced by test files."""
    token = tmp_path / 'token'
    token.write_text(TOKEN)
    with open(os.path.join(REPO, 'configs', name)) as f:
        text = f.read()
    for real, test in [('/var/run/secrets/kubernetes.io/serviceaccount/token', str(token)),
                       ('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', pki.ca_cert),
                       ('/etc/wca/mesos/ca.crt', pki.ca_cert),
                       ('/etc/wca/mesos/wca-client.crt', pki.client_cert),
                       ('/etc/wca/mesos/wca-client.key', pki.client_key),
                       ('/var/lib/wca/metrics.prom', str(tmp_path / 'metrics.prom'))] + list(extra):
        text = text.replace(real, test)
    return write_config(tmp_path / os.path.basename(name), text)


def run(args, env, timeout=60):
    environment = dict(os.environ, PYTHONPATH=REPO, **env)
    return subprocess.run(wca_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=environment, cwd=REPO, timeout=timeout)


ENV = {'KUBELET_ENDPOINT': 'https://127.0.0.1:10250', 'NODE_NAME': 'worker-1',
       'KUBERNETES_SERVICE_HOST': '10.96.0.1', 'KUBERNETES_SERVICE_PORT': '443',
       'HOST_IP': '10.128.0.7'}


@pytest.mark.parametrize('name', EXAMPLES)
def test_the_examples_are_valid_configs(name, tmp_path, pki):
    result = run(['-c', localized(name, tmp_path, pki), '--check-config'], ENV)
    assert result.returncode == 0, result.stderr
    assert 'config is valid' in result.stdout + result.stderr


def test_the_kubelet_example_measures_a_pod(tmp_path, pki):
    require_root()
    tree = KubepodsTree(CgroupLayout.detect())
    try:
        item = pod('api-0', 'Burstable', 'containerd', namespace='shop')
        tree.add_pod(item, 'systemd')
        config = localized('kubernetes/kubelet.yaml', tmp_path, pki, extra=[
            ('    kubelet_enabled: true\n',
             '    kubelet_enabled: true\n    cgroup_root: %s\n' % tree.root),
            ('  interval: 5\n', '  interval: 0.2\n  iterations: 2\n')])

        def kubelet(request):
            if request.headers.get('Authorization') != 'Bearer ' + TOKEN:
                return Answer(401, {'kind': 'Status', 'message': 'Unauthorized'})
            return Answer(body=pod_list(item))
        with JsonServer(kubelet, pki=pki) as server:
            result = run(['-c', config, '--root'], dict(ENV, KUBELET_ENDPOINT=server.url))
            assert [r.path for r in server.requests] == ['/pods', '/pods']
    finally:
        tree.cleanup()
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stderr
    with open(str(tmp_path / 'metrics.prom')) as f:
        text = f.read()
    up = [line for line in text.splitlines() if line.startswith('task_up{')]
    assert len(up) == 1, text
    for label in ('task_id="%s"' % item['metadata']['uid'], 'task_name="shop/api-0"',
                  'app_kubernetes_io__qos_class="burstable"', 'node="worker-1"'):
        assert label in up[0]
    assert 'task_requested_cpus{' in text
