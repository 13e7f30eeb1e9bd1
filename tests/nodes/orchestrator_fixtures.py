"""Test helpers (not a test module) for the orchestrator nodes: payloads shaped like a real
kubelet `/pods` (a v1 PodList) and a real Mesos agent `GET_STATE` answer, and real cgroup trees
laid out as the kubelet makes them, under a test-owned root."""
import os
import secrets
import time
import uuid

from wca.cgroups.layout import CgroupLayout

NODE_IP = '10.128.0.7'
STARTED = '2024-05-02T09:41:12Z'
SCHEMES = {'containerd': 'containerd', 'cri-o': 'cri-o', 'docker': 'docker'}

# Container resources of each QoS class, as the apiserver stores them (defaulted).
QOS_RESOURCES = {
    'Guaranteed': {'requests': {'cpu': '500m', 'memory': '256Mi'},
                   'limits': {'cpu': '500m', 'memory': '256Mi'}},
    'Burstable': {'requests': {'cpu': '250m', 'memory': '64Mi'}, 'limits': {'memory': '128Mi'}},
    'BestEffort': {},
}


def container_id():
    return secrets.token_hex(32)


def _container_spec(name, resources, image='registry.k8s.io/pause:3.9', **extra):
    spec = {
        'name': name, 'image': image, 'resources': resources,
        'terminationMessagePath': '/dev/termination-log', 'terminationMessagePolicy': 'File',
        'imagePullPolicy': 'IfNotPresent',
        'volumeMounts': [{'name': 'kube-api-access-x8z5q', 'readOnly': True,
                          'mountPath': '/var/run/secrets/kubernetes.io/serviceaccount'}],
    }
    spec.update(extra)
    return spec


def _running_status(name, runtime, cid, ready=True, image='registry.k8s.io/pause:3.9'):
    return {
        'name': name, 'state': {'running': {'startedAt': STARTED}}, 'lastState': {},
        'ready': ready, 'restartCount': 0, 'image': image,
        'imageID': image.split(':')[0] + '@sha256:' + 'ab' * 32,
        'containerID': '%s://%s' % (SCHEMES[runtime], cid), 'started': True,
    }


def _conditions(ready):
    status = 'True' if ready else 'False'
    return [
        {'type': 'PodReadyToStartContainers', 'status': 'True', 'lastProbeTime': None,
         'lastTransitionTime': STARTED},
        {'type': 'Initialized', 'status': 'True', 'lastProbeTime': None,
         'lastTransitionTime': STARTED},
        {'type': 'Ready', 'status': status, 'lastProbeTime': None, 'lastTransitionTime': STARTED},
        {'type': 'ContainersReady', 'status': status, 'lastProbeTime': None,
         'lastTransitionTime': STARTED},
        {'type': 'PodScheduled', 'status': 'True', 'lastProbeTime': None,
         'lastTransitionTime': STARTED},
    ]


def pod(name, qos='Burstable', runtime='containerd', namespace='default', containers=('app',),
        ready=True, labels=None, resources=None, host_ip=NODE_IP, init_containers=(),
        sidecars=(), terminating=False, uid=None):
    """A Running pod as the kubelet's /pods shows it. `resources` (per container) default to
    the QoS class's; `init_containers` ran to completion; `sidecars` are init containers with
    restartPolicy: Always (still running)."""
    uid = uid or str(uuid.uuid4())
    resources = QOS_RESOURCES[qos] if resources is None else resources
    ids = {c: container_id() for c in tuple(containers) + tuple(sidecars) + tuple(init_containers)}
    metadata = {
        'name': name, 'namespace': namespace, 'uid': uid, 'resourceVersion': '48213',
        'creationTimestamp': STARTED, 'generateName': name.rsplit('-', 1)[0] + '-',
        'labels': dict({'app.kubernetes.io/name': name.rsplit('-', 1)[0],
                        'pod-template-hash': '7d9f8c6b5'}, **(labels or {})),
        'annotations': {'kubernetes.io/config.seen': '2024-05-02T09:41:10.114Z',
                        'kubernetes.io/config.source': 'api'},
        'ownerReferences': [{'apiVersion': 'apps/v1', 'kind': 'ReplicaSet',
                             'name': name.rsplit('-', 1)[0], 'uid': str(uuid.uuid4()),
                             'controller': True, 'blockOwnerDeletion': True}],
    }
    if terminating:
        metadata['deletionTimestamp'] = '2024-05-02T10:02:00Z'
        metadata['deletionGracePeriodSeconds'] = 30
    spec = {
        'containers': [_container_spec(c, resources) for c in containers],
        'restartPolicy': 'Always', 'terminationGracePeriodSeconds': 30, 'dnsPolicy': 'ClusterFirst',
        'serviceAccountName': 'default', 'serviceAccount': 'default', 'nodeName': 'worker-1',
        'securityContext': {}, 'schedulerName': 'default-scheduler', 'priority': 0,
        'enableServiceLinks': True, 'preemptionPolicy': 'PreemptLowerPriority',
        'volumes': [{'name': 'kube-api-access-x8z5q', 'projected': {'defaultMode': 420}}],
        'tolerations': [{'key': 'node.kubernetes.io/not-ready', 'operator': 'Exists',
                         'effect': 'NoExecute', 'tolerationSeconds': 300}],
    }
    init_specs = [_container_spec(c, resources, image='busybox:1.36') for c in init_containers]
    init_specs += [_container_spec(c, resources, image='envoyproxy/envoy:v1.29',
                                   restartPolicy='Always') for c in sidecars]
    if init_specs:
        spec['initContainers'] = init_specs
    init_statuses = [{
        'name': c, 'state': {'terminated': {'exitCode': 0, 'reason': 'Completed',
                                            'startedAt': STARTED, 'finishedAt': STARTED,
                                            'containerID': '%s://%s' % (SCHEMES[runtime], ids[c])}},
        'lastState': {}, 'ready': True, 'restartCount': 0, 'image': 'busybox:1.36',
        'imageID': 'docker.io/library/busybox@sha256:' + 'cd' * 32,
        'containerID': '%s://%s' % (SCHEMES[runtime], ids[c]), 'started': False,
    } for c in init_containers]
    init_statuses += [_running_status(c, runtime, ids[c], ready, 'envoyproxy/envoy:v1.29')
                      for c in sidecars]
    status = {
        'phase': 'Running', 'conditions': _conditions(ready), 'hostIP': host_ip,
        'hostIPs': [{'ip': host_ip}], 'podIP': '10.244.1.%d' % (len(name) % 250),
        'podIPs': [{'ip': '10.244.1.%d' % (len(name) % 250)}], 'startTime': STARTED,
        'containerStatuses': [_running_status(c, runtime, ids[c], ready) for c in containers],
        'qosClass': qos,
    }
    if init_statuses:
        status['initContainerStatuses'] = init_statuses
    return {'metadata': metadata, 'spec': spec, 'status': status}


def pending_pod(name, qos='Burstable', namespace='default'):
    """Scheduled, its image still being pulled: no container ids yet."""
    item = pod(name, qos, namespace=namespace, ready=False)
    item['status']['phase'] = 'Pending'
    item['status'].pop('podIP')
    item['status'].pop('podIPs')
    for state in item['status']['containerStatuses']:
        state.update(state={'waiting': {'reason': 'ContainerCreating'}}, started=False)
        state.pop('containerID')
        state['imageID'] = ''
    return item


def pod_list(*pods):
    return {'kind': 'PodList', 'apiVersion': 'v1', 'metadata': {}, 'items': list(pods)}


def containers_of(item):
    """[(runtime scheme, id)] of a pod's running containers and sidecars."""
    spec = item['spec']
    names = [c['name'] for c in spec['containers']] + [
        c['name'] for c in spec.get('initContainers', []) if c.get('restartPolicy') == 'Always']
    statuses = {s['name']: s for s in item['status'].get('containerStatuses', [])
                + item['status'].get('initContainerStatuses', [])}
    return [tuple(statuses[n]['containerID'].split('://')) for n in names]


# ---------------------------------------------------------------------------------------------
# Mesos agent operator API: GET_STATE.

def mesos_task(name, pid, state='TASK_RUNNING', labels=None, resources=None, task_id=None):
    task_id = task_id or '%s.%s' % (name, uuid.uuid4())
    agent = {'value': 'b5e1c3a0-7f2d-4b8e-9a61-3c2f1d0e9b7a-S0'}
    framework = {'value': 'b5e1c3a0-7f2d-4b8e-9a61-3c2f1d0e9b7a-0000'}
    executor = {'value': 'thermos-' + task_id}
    resources = resources if resources is not None else [
        {'name': 'cpus', 'type': 'SCALAR', 'scalar': {'value': 1.5}, 'role': '*',
         'allocation_info': {'role': '*'}},
        {'name': 'mem', 'type': 'SCALAR', 'scalar': {'value': 1024.0}, 'role': '*',
         'allocation_info': {'role': '*'}},
        {'name': 'disk', 'type': 'SCALAR', 'scalar': {'value': 2048.0}, 'role': '*',
         'allocation_info': {'role': '*'}},
        {'name': 'ports', 'type': 'RANGES', 'ranges': {'range': [{'begin': 31000, 'end': 31001}]},
         'role': '*', 'allocation_info': {'role': '*'}},
    ]
    container_id = {'value': str(uuid.uuid4())}

    def status(state_name, with_pid):
        entry = {
            'task_id': {'value': task_id}, 'state': state_name, 'source': 'SOURCE_EXECUTOR',
            'agent_id': agent, 'executor_id': executor, 'timestamp': time.time(),
            'uuid': 'pX7Y1mQ2QxK0e5lJx3y7Ag==',
            'container_status': {
                'container_id': container_id,
                'network_infos': [{'ip_addresses': [{'protocol': 'IPv4', 'ip_address': NODE_IP}]}],
            },
        }
        if with_pid:
            entry['container_status']['executor_pid'] = pid
        return entry

    statuses = [status('TASK_STARTING', False)]
    if state != 'TASK_STAGING':
        statuses.append(status('TASK_RUNNING', pid is not None))
    if state not in ('TASK_STAGING', 'TASK_RUNNING'):
        statuses.append(status(state, False))
    if state == 'TASK_STAGING':
        statuses = []
    task = {
        'name': name, 'task_id': {'value': task_id}, 'framework_id': framework,
        'executor_id': executor, 'agent_id': agent, 'state': state, 'resources': resources,
        'statuses': statuses, 'status_update_state': state,
        'status_update_uuid': 'pX7Y1mQ2QxK0e5lJx3y7Ag==',
        'discovery': {'visibility': 'FRAMEWORK', 'name': name},
        'container': {'type': 'MESOS', 'mesos': {'image': {'type': 'DOCKER',
                                                           'docker': {'name': 'ubuntu:22.04'}}}},
    }
    if labels is not None:
        task['labels'] = {'labels': [{'key': k, 'value': v} for k, v in labels.items()]}
    return task


def get_state(launched, completed=()):
    tasks = {'queued_tasks': [], 'completed_tasks': list(completed)}
    if launched:
        tasks['launched_tasks'] = list(launched)  # protobuf JSON leaves empty lists out
    return {
        'type': 'GET_STATE',
        'get_state': {
            'get_tasks': tasks,
            'get_executors': {'executors': []},
            'get_frameworks': {'frameworks': []},
            'get_agent': {'agent_info': {'hostname': 'worker-1', 'port': 5051,
                                         'id': {'value': 'b5e1c3a0-S0'}}},
        },
    }


# ---------------------------------------------------------------------------------------------
# Cgroup trees as the kubelet makes them, in the hierarchies of a given layout.

def v1_layout():
    layout = CgroupLayout.detect()
    return CgroupLayout({c: m for c, m in layout.v1.items() if c in ('cpu', 'cpuacct', 'memory')})


def v2_layout():
    layout = CgroupLayout.detect()
    assert layout.unified, 'no cgroup2 mount on this machine'
    return CgroupLayout.with_unified({}, layout.unified)


# What the kubelet and the runtimes make, written out here (not computed by the code under
# test): pod cgroups by driver and QoS class, container cgroups by driver and runtime.
POD_CGROUPS = {
    ('cgroupfs', 'Guaranteed'): '{root}/kubepods/pod{uid}',
    ('cgroupfs', 'Burstable'): '{root}/kubepods/burstable/pod{uid}',
    ('cgroupfs', 'BestEffort'): '{root}/kubepods/besteffort/pod{uid}',
    ('systemd', 'Guaranteed'): '{root}/kubepods.slice/kubepods-pod{uid_}.slice',
    ('systemd', 'Burstable'):
        '{root}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice',
    ('systemd', 'BestEffort'):
        '{root}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice',
}
CONTAINER_CGROUPS = {
    ('cgroupfs', 'containerd'): '{id}',
    ('cgroupfs', 'cri-o'): 'crio-{id}',
    ('cgroupfs', 'docker'): '{id}',
    ('systemd', 'containerd'): 'cri-containerd-{id}.scope',
    ('systemd', 'cri-o'): 'crio-{id}.scope',
    ('systemd', 'docker'): 'docker-{id}.scope',
}


def kubelet_paths(item, driver, root, uid=None):
    uid = uid or item['metadata']['uid']
    path = POD_CGROUPS[driver, item['status']['qosClass']].format(
        root=root, uid=uid, uid_=uid.replace('-', '_'))
    return path, [path + '/' + CONTAINER_CGROUPS[driver, runtime].format(id=cid)
                  for runtime, cid in containers_of(item)]


class KubepodsTree:
    """Creates a pod's cgroup and its containers' under a test-owned cgroup root (the
    kubelet's --cgroup-root) in every hierarchy of `layout`; removes it all in cleanup()."""

    def __init__(self, layout):
        self.layout = layout
        self.root = '/wca-test-kubepods-%s' % uuid.uuid4().hex[:10]
        self.made = []  # absolute directories, parents first

    def mkdir(self, relative):
        for mount in self.layout.hierarchies():
            path = mount.rstrip('/')
            for part in relative.strip('/').split('/'):
                path += '/' + part
                if not os.path.isdir(path):
                    os.mkdir(path)
                    self.made.append(path)

    def add_pod(self, item, driver, with_containers=True, uid=None):
        """Makes the pod's cgroup and its containers' where the kubelet (with `driver`) and
        the container runtime put them; returns their paths relative to the mounts."""
        path, children = kubelet_paths(item, driver, self.root, uid)
        self.mkdir(path)
        if with_containers:
            for child in children:
                self.mkdir(child)
        return path, children

    def cleanup(self):
        for path in reversed(self.made):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        self.made = []
