"""Kubernetes quantities and pod resources: every suffix, any resource name, and a bad
quantity left out with one warning (never a crash)."""
import logging

import pytest

from conftest import require_root
from orchestrator_fixtures import KubepodsTree, pod, pod_list, v1_layout
from tls_ca import Answer, JsonServer
from wca.nodes.kubernetes import KubernetesNode, derived_qos, parse_quantity, pod_resources
from wca.tls import SSL


@pytest.mark.parametrize('text, value', [
    ('1', 1), ('250m', 0.25), ('1.5', 1.5), ('.5', 0.5), ('5.', 5), ('+2', 2), ('-1', -1),
    ('500n', 500e-9), ('10u', 10e-6), ('100k', 1e5), ('100K', 1e5), ('64M', 64e6), ('2G', 2e9),
    ('3T', 3e12), ('1P', 1e15), ('2E', 2e18),
    ('1Ki', 1024), ('64Mi', 64 * 2 ** 20), ('1.5Gi', 1.5 * 2 ** 30), ('2Ti', 2 * 2 ** 40),
    ('1Pi', 2 ** 50), ('1Ei', 2 ** 60),
    ('1e3', 1000), ('1E3', 1000), ('1.5e-3', 0.0015), ('2e+2', 200), ('12E0', 12),
    (' 100Mi ', 100 * 2 ** 20), (2, 2), (0.5, 0.5),
])
def test_quantities(text, value):
    assert parse_quantity(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize('text', [
    '', 'abc', 'Mi', '1Xi', '1mi', '1.2.3', '1 Gi', 'inf', 'nan', '-inf', '1_000', '1e', '1e1.5',
    '0x10', '1Mi1', None, True, [], {'cpu': 1}, float('nan'),
])
def test_not_quantities(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_resources_of_any_name_summed_over_containers():
    containers = [
        {'name': 'trainer', 'resources': {
            'requests': {'cpu': '2', 'memory': '8Gi', 'nvidia.com/gpu': '1',
                         'hugepages-2Mi': '512Mi', 'ephemeral-storage': '10G'},
            'limits': {'cpu': '4', 'memory': '8Gi', 'nvidia.com/gpu': '1',
                       'hugepages-2Mi': '512Mi'}}},
        {'name': 'sidecar', 'resources': {'requests': {'cpu': '100m', 'memory': '64Mi',
                                                       'example.com/fpga': '2'}}},
        {'name': 'no-resources'},
    ]
    assert pod_resources(containers) == {
        'requests_cpu': 2.1, 'limits_cpu': 4.0, 'requests_memory': 8 * 2 ** 30 + 64 * 2 ** 20,
        'limits_memory': 8 * 2 ** 30, 'requests_nvidia.com/gpu': 1.0,
        'limits_nvidia.com/gpu': 1.0, 'requests_hugepages-2Mi': 512 * 2 ** 20,
        'limits_hugepages-2Mi': 512 * 2 ** 20, 'requests_ephemeral-storage': 10e9,
        'requests_example.com/fpga': 2.0,
        'cpus': 2.1, 'mem': 8 * 2 ** 30 + 64 * 2 ** 20, 'disk': 10e9}


@pytest.mark.parametrize('resources, qos', [
    ([{'requests': {'cpu': '1', 'memory': '1Gi'}, 'limits': {'cpu': '1', 'memory': '1Gi'}}],
     'guaranteed'),
    ([{'limits': {'cpu': '1', 'memory': '1Gi'}}], 'guaranteed'),
    ([{'requests': {'cpu': '1', 'memory': '1Gi'}, 'limits': {'cpu': '2', 'memory': '1Gi'}}],
     'burstable'),
    ([{'limits': {'cpu': '1', 'memory': '1Gi'}}, {}], 'burstable'),
    ([{'requests': {'nvidia.com/gpu': '1'}}, {}], 'besteffort'),
    ([{}, {}], 'besteffort'),
])
def test_qos_class_when_the_status_lacks_it(resources, qos):
    assert derived_qos([{'name': 'c%d' % i, 'resources': r} for i, r in enumerate(resources)]) == qos


def test_a_bad_quantity_is_left_out_with_one_warning(pki, caplog):
    require_root()
    tree = KubepodsTree(v1_layout())
    try:
        item = pod('train-0', 'Burstable', resources={
            'requests': {'cpu': '1', 'memory': 'lots', 'nvidia.com/gpu': '2'},
            'limits': {'memory': '4Gi', 'example.com/widgets': '3 widgets'}})
        no_qos = pod('old-0', 'Guaranteed')
        tree.add_pod(item, 'cgroupfs')
        tree.add_pod(no_qos, 'cgroupfs')
        del no_qos['status']['qosClass']  # derived from its resources
        with JsonServer(lambda r: Answer(body=pod_list(item, no_qos)), pki=pki) as server:
            node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                                  ssl=SSL(pki.ca_cert), client_token_path=None,
                                  cgroup_root=tree.root, cgroup_layout=tree.layout)
            for _ in range(3):
                tasks = {t.name: t for t in node.get_tasks()}
                item['metadata'].pop('resourceVersion', None)  # worked out again each time
    finally:
        tree.cleanup()
    assert tasks['default/train-0'].resources == {
        'requests_cpu': 1.0, 'requests_nvidia.com/gpu': 2.0, 'limits_memory': 4 * 2 ** 30,
        'cpus': 1.0}
    assert tasks['default/old-0'].qos == 'guaranteed'
    assert tasks['default/old-0'].labels['app_kubernetes_io__qos_class'] == 'guaranteed'
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert any("requests.memory of container app is not a Kubernetes quantity ('lots')" in w
               for w in warnings)
    assert node.errors_by_reason()['invalid_quantity'] == 2
