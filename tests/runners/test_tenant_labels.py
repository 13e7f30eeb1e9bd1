"""Tenant labels never pass for the agent's own (issue 22.3): a pod labelled `namespace:
kube-system` or `host: other-node` is exported with its real namespace and this host, its
colliding labels dropped and counted, and an allocation rule sees the same labels the metrics
show. Pods come from a real kubelet answer (HTTPS on 127.0.0.1) through a real runner."""
import os
import sys

from conftest import require_root
from exposition_text import parse
from testing.cgroups import Cgroups
from tls_ca import Answer, JsonServer
from wca.labels import TaskLabelRegexGenerator
from wca.nodes.kubernetes import KubernetesNode
from wca.nodes.static import StaticNode
from wca.platforms import hostname
from wca.runners import AllocationRunner
from wca.static_allocator import StaticAllocator
from wca.storage import LogStorage
from wca.tls import SSL

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'nodes'))
from orchestrator_fixtures import pod, pod_list  # noqa: E402 (a helper of tests/nodes)

RULES = [
    {'name': 'kube-system gets half the shares', 'labels': {'namespace': '^kube-system$'},
     'allocations': {'cpu_shares': 0.5}},
    {'name': 'tasks of another node', 'labels': {'host': '^other-node$'},
     'allocations': {'cpu_quota': 0.1}},
]


def samples(path):
    with open(path) as f:
        return {(name, labels): value for (name, labels), (value, _) in parse(f.read()).samples.items()}


def series(path, name):
    return [dict(labels) for (n, labels) in samples(path) if n == name]


def value(path, name, **labels):
    found = [v for (n, pairs), v in samples(path).items()
             if n == name and set(labels.items()) <= set(pairs)]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def shares(cgroups, path):
    with open(cgroups.layout.v1['cpu'] + path + '/cpu.shares') as f:
        return int(f.read())


def test_pod_labels_cannot_pose_as_the_agents(pki, tmp_path):
    require_root()
    tenant = pod('web-0', namespace='team-a', labels={
        'namespace': 'kube-system', 'host': 'other-node', 'task_id': 'forged', 'zone': 'evil',
        'tier': 'web', 'task': 'forged', 'container_name': 'forged'})
    system = pod('coredns-0', namespace='kube-system')
    cgroups = Cgroups('wca-test-kubepods')
    paths = {}
    try:
        for name in ('kubepods', 'kubepods/burstable'):
            cgroups.create(name, processes=0)
        for item in (tenant, system):
            paths[item['metadata']['uid']] = path = cgroups.create(
                'kubepods/burstable/pod' + item['metadata']['uid'], processes=0)
            cid = item['status']['containerStatuses'][0]['containerID'].split('://')[1]
            cgroups.create(path[len(cgroups.parent):].strip('/') + '/' + cid)
        metrics, allocations = str(tmp_path / 'metrics.prom'), str(tmp_path / 'allocations.prom')
        with JsonServer(lambda request: Answer(body=pod_list(tenant, system)), pki=pki) as server:
            node = KubernetesNode(kubelet_enabled=True, kubelet_endpoint=server.url,
                                  ssl=SSL(server_verify=pki.ca_cert), client_token_path=None,
                                  cgroup_root=cgroups.parent, monitored_namespaces=[])
            runner = AllocationRunner(
                node=node, allocator=StaticAllocator(rules=RULES), interval=0,
                metrics_storage=LogStorage(output_filename=metrics, overwrite=True),
                allocations_storage=LogStorage(output_filename=allocations, overwrite=True),
                anomalies_storage=LogStorage(output_filename=str(tmp_path / 'a.prom')),
                extra_labels={'zone': 'z1'}, rdt_enabled=False, gather_hw_mm_topology=False)
            runner.iterate()
            runner.iterate()
            runner.close()
        tenant_uid, system_uid = tenant['metadata']['uid'], system['metadata']['uid']
        up = {labels['task_id']: labels for labels in series(metrics, 'task_up')}
        assert sorted(up) == sorted([tenant_uid, system_uid])  # no 'forged' task id
        labels = up[tenant_uid]
        assert labels['namespace'] == 'team-a' and labels['pod'] == 'web-0'
        assert labels['host'] == hostname() and labels['zone'] == 'z1'
        assert labels['task_name'] == 'team-a/web-0' and labels['tier'] == 'web'
        assert up[system_uid]['namespace'] == 'kube-system'
        assert all(s['host'] == hostname() for s in series(metrics, 'task_cpu_usage_seconds'))
        # namespace, host, task_id and zone of the tenant's pod, once per task (not per iteration)
        assert value(metrics, 'wca_labels_dropped_total', reason='owned') == 4
        # the rule meant for kube-system matched kube-system's pod only; no task is "on
        # another node"
        assert shares(cgroups, paths[system_uid]) == 500  # 0.5 x the default unit of 1000
        assert shares(cgroups, paths[tenant_uid]) == 1024
        assert value(allocations, 'allocation_cpu_shares', task_id=system_uid) == 0.5
        assert value(allocations, 'allocation_cpu_shares', task_id=tenant_uid) == 1.024  # as is
        assert value(allocations, 'allocations_count') == 2  # one per iteration: kube-system's
        [held] = [s for s in series(allocations, 'allocation_cpu_shares')
                  if s['task_id'] == tenant_uid]
        assert held['task'] == tenant_uid and held['container_name'] != 'forged'
    finally:
        cgroups.cleanup()


class SeenLabels(StaticAllocator):
    """A StaticAllocator that keeps the labels it was given."""

    def allocate(self, platform, tasks_data):
        self.seen = {task_id: dict(data.labels) for task_id, data in tasks_data.items()}
        return super().allocate(platform, tasks_data)


def test_an_allocator_sees_the_labels_the_metrics_carry(cgroups, tmp_path):
    path = cgroups.create('t')
    metrics = str(tmp_path / 'metrics.prom')
    allocator = SeenLabels(rules=[{'labels': {'team': '^ops$'}, 'allocations': {'cpu_shares': 2}}])
    runner = AllocationRunner(
        node=StaticNode(tasks=[path], default_labels={'team': 'ops', 'app.name': 'x',
                                                      'host': 'elsewhere'}),
        allocator=allocator, interval=0,
        metrics_storage=LogStorage(output_filename=metrics, overwrite=True),
        allocations_storage=LogStorage(output_filename=str(tmp_path / 'b.prom'), overwrite=True),
        anomalies_storage=LogStorage(output_filename=str(tmp_path / 'a.prom'), overwrite=True),
        task_label_generators={'team': TaskLabelRegexGenerator('^.*$', 'ops', 'task_name')},
        rdt_enabled=False, gather_hw_mm_topology=False)
    runner.iterate()
    [labels] = series(metrics, 'task_up')
    assert allocator.seen == {path.strip('/'): labels}
    assert labels['team'] == 'ops' and labels['app_name'] == 'x' and labels['host'] == hostname()
    assert shares(cgroups, path) == 2000  # the generated `team` label matched the rule
    runner.close()
