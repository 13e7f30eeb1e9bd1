"""KubernetesNode: the pods of this node, from the kubelet (`GET /pods`) or the kube-apiserver,
each mapped to its cgroups for either kubelet cgroup driver and the containerd, CRI-O and Docker
runtimes, on cgroup v1 and v2.

A pod is a task when it is Running and all its containers are ready, and its cgroup exists on
this machine (a pod whose cgroup is not there yet is skipped that iteration). What a pod needs
from the file system is worked out once, when it (or its containers) first appear.
"""
import logging
import os
import socket
import time
from enum import Enum
from typing import Dict, List, Optional, Set, Tuple, Union  # noqa: F401 (type comments)
from urllib.parse import quote

from dataclasses import dataclass, field

from wca import fsutil, identifiers
from wca.cgroups.layout import CgroupLayout, join
from wca.config import Numeric, Path, Str
from wca.exposition import sanitize_label_name
from wca.metrics import Metric, MetricName
from wca.nodes.base import Node, Task
from wca.nodes.http import (FetchError, JsonClient, TaskListKeeper, WarnOnce, check_endpoint,
                            safe_url)
from wca.tls import SSL

log = logging.getLogger(__name__)

SERVICE_TOKEN_FILENAME = '/var/run/secrets/kubernetes.io/serviceaccount/token'  # nosec: a path
SERVICE_CERT_FILENAME = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'
QOS_LABELNAME = 'app_kubernetes_io__qos_class'


class CgroupDriverType(str, Enum):
    SYSTEMD = 'systemd'
    CGROUPFS = 'cgroupfs'


class QosClass(str, Enum):
    BESTEFFORT = 'besteffort'
    BURSTABLE = 'burstable'
    GUARANTEED = 'guaranteed'


# The container's cgroup under its pod's, by driver and by the scheme of the container id
# (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`).
CONTAINER_CGROUPS = {
    (CgroupDriverType.CGROUPFS, 'containerd'): '{id}',
    (CgroupDriverType.CGROUPFS, 'cri-o'): 'crio-{id}',
    (CgroupDriverType.CGROUPFS, 'docker'): '{id}',
    (CgroupDriverType.SYSTEMD, 'containerd'): 'cri-containerd-{id}.scope',
    (CgroupDriverType.SYSTEMD, 'cri-o'): 'crio-{id}.scope',
    (CgroupDriverType.SYSTEMD, 'docker'): 'docker-{id}.scope',
}
RUNTIMES = frozenset(runtime for _, runtime in CONTAINER_CGROUPS)


def kubepods_path(driver: CgroupDriverType, cgroup_root: str = '/') -> str:
    """The kubelet's cgroup of all pods: every pod's cgroup lies under it."""
    slice_ = '.slice' if driver == CgroupDriverType.SYSTEMD else ''
    return '%s/kubepods%s' % (cgroup_root.rstrip('/'), slice_)


def pod_cgroup_path(driver: CgroupDriverType, qos: str, pod_uid: str, cgroup_root: str = '/') -> str:
    """The pod's cgroup, relative to the cgroup mounts, as the kubelet names it
    (pkg/kubelet/cm: guaranteed pods sit directly under kubepods, with either driver)."""
    root = kubepods_path(driver, cgroup_root)
    if driver == CgroupDriverType.SYSTEMD:
        uid = pod_uid.replace('-', '_')
        if qos == QosClass.GUARANTEED:
            return '%s/kubepods-pod%s.slice' % (root, uid)
        return '%s/kubepods-%s.slice/kubepods-%s-pod%s.slice' % (root, qos, qos, uid)
    if qos == QosClass.GUARANTEED:
        return '%s/pod%s' % (root, pod_uid)
    return '%s/%s/pod%s' % (root, qos, pod_uid)


def container_cgroup_name(driver: CgroupDriverType, runtime: str, container_id: str) -> Optional[str]:
    pattern = CONTAINER_CGROUPS.get((driver, runtime))
    return pattern.format(id=container_id) if pattern else None


def sanitize_label(key: str) -> str:
    """A pod label key as a Prometheus label name: '.' and '-' -> '_', '/' -> '__' (as the
    original agent did: app.kubernetes.io/name -> app_kubernetes_io__name)."""
    return sanitize_label_name(key.replace('.', '_').replace('-', '_').replace('/', '__'))


# ---------------------------------------------------------------------------------------------
# Quantities: <number><suffix>, suffix one of the binary (Ki..Ei), decimal (n u m k M G T P E)
# or exponent (e3, E-2) forms of k8s.io/apimachinery/pkg/api/resource.

_BINARY = {'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40, 'Pi': 2 ** 50, 'Ei': 2 ** 60}
_DECIMAL = {'n': 1e-9, 'u': 1e-6, 'm': 1e-3, 'k': 1e3, 'K': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12,
            'P': 1e15, 'E': 1e18}  # 'K' is not Kubernetes', but the original agent took it
_DIGITS = frozenset('0123456789')


def parse_quantity(value: Union[str, int, float]) -> float:
    """A Kubernetes quantity ('100m', '1.5Gi', '1e3', '2') as a float; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError('not a quantity')
    if isinstance(value, (int, float)):
        if value != value or value in (float('inf'), float('-inf')):
            raise ValueError('not a quantity')
        return float(value)
    if not isinstance(value, str):
        raise ValueError('not a quantity')
    text = value.strip()
    multiplier = 1.0
    if text[-2:] in _BINARY:
        text, multiplier = text[:-2], float(_BINARY[text[-2:]])
    else:
        cut = max(text.rfind('e'), text.rfind('E'))
        exponent = text[cut + 1:]
        if cut > 0 and _is_number(exponent, integer=True):
            text, multiplier = text[:cut], 10.0 ** int(exponent)
        elif text[-1:] in _DECIMAL:
            text, multiplier = text[:-1], _DECIMAL[text[-1:]]
    if not _is_number(text):
        raise ValueError('not a quantity')
    return float(text) * multiplier


def _is_number(text: str, integer: bool = False) -> bool:
    """[+-]digits[.digits] (no 'inf', 'nan' or '1_000', which float() would take)."""
    if text[:1] in ('+', '-'):
        text = text[1:]
    whole, dot, fraction = text.partition('.')
    if integer and dot:
        return False
    return bool(whole or fraction) and set(whole) <= _DIGITS and set(fraction) <= _DIGITS


def pod_resources(containers: List[dict], on_bad=None) -> Dict[str, float]:
    """requests_<name> and limits_<name> summed over containers (any resource name:
    cpu, memory, ephemeral-storage, nvidia.com/gpu, hugepages-2Mi...), plus `cpus`, `mem` and
    `disk` (the requests of cpu, memory and ephemeral-storage). A quantity that does not parse
    is left out and reported with on_bad(container_name, kind, resource_name, value)."""
    resources = {}  # type: Dict[str, float]
    for container in containers:
        spec = container.get('resources') or {}
        if not isinstance(spec, dict):
            continue
        for kind in ('requests', 'limits'):
            values = spec.get(kind) or {}
            if not isinstance(values, dict):
                continue
            for name, text in values.items():
                try:
                    value = parse_quantity(text)
                except ValueError:
                    if on_bad:
                        on_bad(container.get('name'), kind, name, text)
                    continue
                key = '%s_%s' % (kind, name)
                resources[key] = resources.get(key, 0.0) + value
    for source, target in (('requests_cpu', 'cpus'), ('requests_memory', 'mem'),
                           ('requests_ephemeral-storage', 'disk')):
        if source in resources:
            resources[target] = resources[source]
    return resources


def derived_qos(containers: List[dict]) -> str:
    """The QoS class from the containers' cpu and memory requests and limits, for a pod whose
    status does not carry it (the kubelet's rules, without defaulting)."""
    guaranteed, any_set = True, False
    for container in containers:
        spec = container.get('resources') or {}
        requests, limits = spec.get('requests') or {}, spec.get('limits') or {}
        for name in ('cpu', 'memory'):
            if name in requests or name in limits:
                any_set = True
            if name not in limits or (name in requests and requests[name] != limits[name]):
                guaranteed = False
    if guaranteed and any_set:
        return QosClass.GUARANTEED.value
    return QosClass.BURSTABLE.value if any_set else QosClass.BESTEFFORT.value


@dataclass
class KubernetesTask(Task):
    qos: str = ''

    def __hash__(self):
        return hash(self.task_id)


class _BadPod(Exception):
    """A pod object without what every pod has (uid, name, namespace, containers)."""


def _mapping(parent: dict, key: str) -> dict:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _BadPod('%s is not an object' % key)
    return value


def _list(parent: dict, key: str) -> list:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _BadPod('%s is not a list of objects' % key)
    return value


def _text(parent: dict, key: str, what: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise _BadPod('no %s' % what)
    return value


@dataclass
class KubernetesNode(Node):
    """The pods of this node: from the kubelet (kubelet_enabled: true, `GET /pods`) or the
    kube-apiserver (`GET /api/v1/namespaces/<ns>/pods` with the field selector
    spec.nodeName=<node_name>, pods whose status.hostIP is node_ip).

    cgroup_driver: the kubelet's (cgroupfs or systemd).
    ssl: TLS settings (server verification, client certificate); without it, the server is
        verified against server_cert_ca_path (when that file exists).
    client_token_path: a bearer token file (re-read every request: tokens rotate); null: none.
    server_cert_ca_path: the CA bundle of the server, when ssl does not say.
    kubelet_enabled, kubelet_endpoint: ask the kubelet, at this URL (https://; http:// only
        with allow_plain_http and without a token or client certificate).
    kubeapi_host, kubeapi_port: the apiserver (default: $KUBERNETES_SERVICE_HOST and _PORT).
    node_ip: this node's IP (apiserver mode: status.hostIP of its pods).
    node_name: this node's name (apiserver mode: the spec.nodeName asked for; default:
        $NODE_NAME, else the host name, as the kubelet names its node).
    timeout: seconds for a whole request.
    monitored_namespaces: pods of these namespaces only; empty: all.
    grace_period: seconds the last good task list is still reported while the endpoint fails.
    cgroup_root: the kubelet's --cgroup-root (the kubepods tree is under it).
    cgroup_layout: where the cgroup hierarchies are (default: detected).
    allow_plain_http: accept an http:// kubelet_endpoint (whoever holds the port answers).
    """
    cgroup_driver: CgroupDriverType = CgroupDriverType.CGROUPFS
    ssl: Optional[SSL] = None
    client_token_path: Optional[Path(absolute=True)] = SERVICE_TOKEN_FILENAME
    server_cert_ca_path: Optional[Path(absolute=True)] = SERVICE_CERT_FILENAME
    kubelet_enabled: bool = False
    kubelet_endpoint: Str = 'https://127.0.0.1:10250'
    kubeapi_host: Optional[Str] = None
    kubeapi_port: Optional[Union[Str, int]] = None  # a string too, for !Env
    node_ip: Optional[Str] = None
    timeout: Numeric(1, 60) = 5
    monitored_namespaces: List[Str] = field(default_factory=lambda: ['default'])
    grace_period: Numeric(0, 86400) = 60
    cgroup_root: Path(absolute=True) = '/'
    cgroup_layout: Optional[CgroupLayout] = None
    node_name: Optional[Str] = None
    allow_plain_http: bool = False

    def __post_init__(self):
        try:
            self.cgroup_driver = CgroupDriverType(self.cgroup_driver)
        except ValueError:
            raise ValueError('cgroup_driver: expected cgroupfs or systemd')
        if not isinstance(self.cgroup_root, str) or not self.cgroup_root.startswith('/'):
            raise ValueError('cgroup_root: expected a cgroup path starting with /')
        self.cgroup_root = identifiers.cgroup_path(self.cgroup_root, 'cgroup_root', root_ok=True)
        if not all(isinstance(ns, str) and ns and '/' not in ns
                   for ns in self.monitored_namespaces or ()):
            raise ValueError('monitored_namespaces: expected a list of namespace names')
        self._namespaces = frozenset(self.monitored_namespaces or ())
        self._token_path = self._check_token_path()
        if self.kubelet_enabled:
            self._urls = [check_endpoint('kubelet_endpoint', self.kubelet_endpoint,
                                         self.allow_plain_http, self._credentials()) + '/pods']
            source = 'kubelet %s' % safe_url(self.kubelet_endpoint)
        else:
            base = self._apiserver()
            if not self.node_ip:
                raise ValueError('node_ip: required when kubelet_enabled is false (the pods of '
                                 'this node are those whose status.hostIP is node_ip)')
            self.node_ip = str(self.node_ip).strip()
            self.node_name = _node_name(self.node_name)
            # Only this node's pods: less for the apiserver to send, and a request an
            # authorizer that sees field selectors can allow per node.
            query = '?fieldSelector=' + quote('status.phase=Running,spec.nodeName=%s' % (
                self.node_name), safe='')
            self._urls = [base + '/api/v1/namespaces/%s/pods' % quote(ns, safe='') + query
                          for ns in sorted(self._namespaces)] or [base + '/api/v1/pods' + query]
            source = 'kube-apiserver %s, node %s' % (base, self.node_name)
        self._client = JsonClient(self.timeout, self._tls())
        self._keeper = TaskListKeeper('KubernetesNode (%s)' % source, self.grace_period)
        self._warn = WarnOnce(self._keeper)
        self._known = {}  # type: Dict[str, Tuple[tuple, KubernetesTask]]  # uid -> (key, task)
        self._paths = {}  # type: Dict[tuple, Tuple[str, List[str], bool]]  # resolved cgroups
        self._by_hash = set()  # type: Set[str]  # uids of pods found by their config hash
        self._layout = self.cgroup_layout
        self._source = source
        self._started = False
        self._skipped = _SkippedNamespaces(self._namespaces)

    def _check_token_path(self) -> Optional[str]:
        path = self.client_token_path
        if path is None:
            return None
        if os.path.exists(path):
            return path
        if path != SERVICE_TOKEN_FILENAME:
            raise ValueError('client_token_path: %s does not exist' % path)
        if not self.kubelet_enabled and not (self.ssl and self.ssl.client_cert_path):
            raise ValueError('client_token_path: %s does not exist; the kube-apiserver needs a '
                             'token (or a client certificate in ssl)' % path)
        return None  # the default, outside a pod: no token

    def _credentials(self) -> Optional[str]:
        """What the kubelet would be sent to authenticate the agent (for check_endpoint)."""
        if self._token_path:
            return 'the bearer token of client_token_path (%s; null sends none)' % (
                self._token_path)
        if self.ssl is not None and self.ssl.client_cert_path:
            return 'the client certificate of ssl'
        return None

    def _apiserver(self) -> str:
        host = self.kubeapi_host or os.environ.get('KUBERNETES_SERVICE_HOST')
        port = self.kubeapi_port or os.environ.get('KUBERNETES_SERVICE_PORT') or '443'
        if not host:
            raise ValueError('kubeapi_host: required when kubelet_enabled is false (or set '
                             'KUBERNETES_SERVICE_HOST)')
        try:
            number = int(str(port).strip())
        except ValueError:
            number = 0
        if not 1 <= number <= 65535:
            raise ValueError('kubeapi_port: expected a port number (1-65535)')
        host = str(host).strip()
        if ':' in host and not host.startswith('['):
            host = '[%s]' % host  # an IPv6 address
        return check_endpoint('kubeapi_host', 'https://%s:%d' % (host, number))

    def _tls(self) -> Dict[str, object]:
        if self.ssl is not None:
            return self.ssl.requests_kwargs()
        ca = self.server_cert_ca_path
        return {'verify': ca if ca and os.path.exists(ca) else True, 'cert': None}

    # --- the node -------------------------------------------------------------------------

    def get_tasks(self) -> List[Task]:
        if not self._started:
            self._started = True
            log.info('KubernetesNode (%s): watching the pods of %s', self._source,
                     'the namespaces %s' % ', '.join(sorted(self._namespaces))
                     if self._namespaces else 'every namespace')
        try:
            pods = self._fetch()
        except FetchError as e:
            return self._keeper.failed(e)
        return self._keeper.succeeded(self._tasks(pods))

    def metrics(self, labels: Optional[Dict[str, str]] = None) -> List[Metric]:
        """wca_node_errors_total{reason} and wca_tasks_skipped_total{reason} of this node (for
        the runner to store)."""
        return self._keeper.metrics(labels) + self._skipped.metrics(labels)

    def errors_by_reason(self) -> Dict[str, int]:
        return self._keeper.errors_by_reason()

    def _fetch(self) -> List[object]:
        headers, secrets = {}, ()
        if self._token_path:
            try:
                token = fsutil.read_text(self._token_path).strip()
            except OSError as e:
                raise FetchError('credentials', 'cannot read the token file %s: %s' % (
                    self._token_path, e.strerror))
            if not token:
                raise FetchError('credentials', 'the token file %s is empty' % self._token_path)
            headers, secrets = {'Authorization': 'Bearer ' + token}, (token,)
        pods = []
        deadline = time.monotonic() + self.timeout  # for all the namespaces together
        for url in self._urls:
            answer = self._client.request('GET', url, headers, secrets=secrets,
                                          deadline=deadline)
            items = answer.get('items') if isinstance(answer, dict) else None
            if items is None and isinstance(answer, dict) and answer.get('kind') == 'PodList':
                items = []  # the kubelet sends "items": null for no pods
            if not isinstance(items, list):
                raise FetchError('invalid_payload', 'the answer of %s is not a PodList' %
                                 safe_url(url))
            pods.extend(items)
        return pods

    def _tasks(self, pods: List[object]) -> List[Task]:
        tasks, present = [], set()
        for index, pod in enumerate(pods):
            try:
                task = self._task(pod, present)
            except identifiers.Rejected as e:  # a hostile or broken id, a cgroup elsewhere
                name = _pod_name(pod, index)
                self._warn(('rejected', name), e.reason, 'pod %s rejected: %s', name, e.message)
                continue
            except (_BadPod, TypeError, ValueError, AttributeError) as e:  # an odd shape
                name = _pod_name(pod, index)
                problem = str(e) if isinstance(e, _BadPod) else 'unexpected shape (%s)' % (
                    type(e).__name__)
                self._warn(('pod', name), 'invalid_task', 'pod %s skipped: %s', name, problem)
                continue
            if task is not None:
                tasks.append(task)
        self._by_hash &= present
        if self._by_hash:
            tasks = self._unclaimed(tasks)
        self._warn.end_of_answer()
        self._skipped.end_of_answer()
        for uid in set(self._known) - present:
            del self._known[uid]
        for key in [k for k in self._paths if k[0] not in present]:
            del self._paths[key]
        return tasks

    def _task(self, pod: object, present: set) -> Optional[KubernetesTask]:
        if not isinstance(pod, dict):
            raise _BadPod('not an object')
        metadata, spec, status = _mapping(pod, 'metadata'), _mapping(pod, 'spec'), \
            _mapping(pod, 'status')
        uid = _text(metadata, 'uid', 'metadata.uid')
        name = '%s/%s' % (_text(metadata, 'namespace', 'metadata.namespace'),
                          _text(metadata, 'name', 'metadata.name'))
        if self._namespaces and metadata['namespace'] not in self._namespaces:
            self._skipped(uid, metadata['namespace'], name)
            return None
        if not self.kubelet_enabled and status.get('hostIP') != self.node_ip:
            return None
        identifiers.pod_uid(uid)
        present.add(uid)
        if status.get('phase') != 'Running':
            log.debug('pod %s (%s) skipped: phase %s', name, uid, status.get('phase'))
            return None
        containers = _list(spec, 'containers')
        if not containers:
            raise _BadPod('no spec.containers')
        # Sidecars (init containers that keep running) are part of the running pod.
        containers = containers + [c for c in _list(spec, 'initContainers')
                                   if c.get('restartPolicy') == 'Always']
        statuses = {s.get('name'): s for s in _list(status, 'initContainerStatuses')
                    + _list(status, 'containerStatuses')}
        ids = []
        for container in containers:
            state = statuses.get(container.get('name'))
            if not state or state.get('ready') is not True:
                log.debug('pod %s (%s) skipped: container %s not ready', name, uid,
                          container.get('name'))
                return None
            runtime, _, container_id = str(state.get('containerID') or '').partition('://')
            if not container_id:
                raise _BadPod('container %s is ready but has no containerID' % container.get('name'))
            if runtime in RUNTIMES:  # the ids of other runtimes never join a path
                identifiers.container_id(container_id)
            ids.append((runtime, container_id))
        qos = str(status.get('qosClass') or derived_qos(containers)).lower()
        if qos not in (QosClass.GUARANTEED, QosClass.BURSTABLE, QosClass.BESTEFFORT):
            raise _BadPod('unknown qosClass %r' % status.get('qosClass'))
        version = metadata.get('resourceVersion')
        key = (version, qos, tuple(ids))
        known = self._known.get(uid)
        if known is not None and known[0] == key and version is not None:
            return known[1]  # unchanged: the same object, so the runner's checks are cheap
        cgroups = self._cgroups(uid, name, qos, ids, metadata)
        if cgroups is None:
            return None
        labels = {sanitize_label(str(k)): str(v) for k, v in _mapping(metadata, 'labels').items()}
        labels[QOS_LABELNAME] = qos

        def bad_quantity(container, kind, resource, text):
            self._warn(('quantity', uid, container, kind, resource), 'invalid_quantity',
                       'pod %s: %s.%s of container %s is not a Kubernetes quantity (%r); left out',
                       name, kind, resource, container, text)

        task = KubernetesTask(
            name=name, task_id=uid, cgroup_path=cgroups[0], subcgroups_paths=list(cgroups[1]),
            labels=labels, qos=qos, resources=pod_resources(containers, bad_quantity))
        if known is not None and known[1] == task:
            task = known[1]
        if cgroups[2]:
            self._known[uid] = (key, task)
        return task

    def _cgroups(self, uid: str, name: str, qos: str, ids: List[Tuple[str, str]],
                 metadata: dict) -> Optional[Tuple[str, List[str], bool]]:
        """The pod's cgroup and its containers', as they exist on this machine; None (skip the
        pod this iteration) when the pod's does not exist yet. Raises identifiers.Rejected for
        a config hash of the wrong shape, or a cgroup that resolves outside kubepods (the pod's)
        or outside the pod's (a container's)."""
        cache_key = (uid, qos, tuple(ids))
        if cache_key in self._paths:
            return self._paths[cache_key]
        if self._layout is None:
            self._layout = CgroupLayout.detect()
        other = (CgroupDriverType.SYSTEMD if self.cgroup_driver == CgroupDriverType.CGROUPFS
                 else CgroupDriverType.CGROUPFS)
        found = None
        for driver in (self.cgroup_driver, other):
            for pod_uid in [uid] + _mirror_hash(metadata, uid):
                path = pod_cgroup_path(driver, qos, pod_uid, self.cgroup_root)
                directory = _existing(self._layout, path, kubepods_path(driver, self.cgroup_root))
                if directory:
                    found = driver, path, directory, pod_uid != uid
                    break
            if found:
                break
        if found is None:
            log.debug('pod %s (%s) skipped this iteration: its cgroup %s does not exist (yet)',
                      name, uid, pod_cgroup_path(self.cgroup_driver, qos, uid, self.cgroup_root))
            return None
        driver, path, directory, by_hash = found
        if driver != self.cgroup_driver:
            self._warn(('driver',), 'cgroup_driver',
                       'cgroup_driver is %s, but pod cgroups are where the %s driver puts them '
                       '(%s); using those: set cgroup_driver: %s', self.cgroup_driver.value,
                       driver.value, path, driver.value)
        subcgroups, complete = [], True
        for runtime, container_id in ids:
            child = container_cgroup_name(driver, runtime, container_id)
            if child is None:
                self._warn(('runtime', runtime), 'unknown_runtime',
                           'container runtime %r (from its container ids) is not one of %s; '
                           'its containers are measured as part of their pods only', runtime,
                           ', '.join(sorted(RUNTIMES)))
                continue
            if os.path.isdir(os.path.join(directory, child)):
                identifiers.check_resolved(os.path.join(directory, child), directory,
                                           'the container cgroup')
                subcgroups.append(path + '/' + child)
            else:
                complete = False  # looked for again next iteration
                log.debug('pod %s (%s): container cgroup %s/%s does not exist (yet)', name,
                          uid, path, child)
        result = path, subcgroups, complete
        if by_hash:
            self._by_hash.add(uid)
        else:
            self._by_hash.discard(uid)
        if complete:
            self._paths[cache_key] = result
        return result

    def _unclaimed(self, tasks: List[KubernetesTask]) -> List[KubernetesTask]:
        """The tasks without those found by a config hash whose cgroup another pod of the
        answer has as its own (a tenant's pod naming a static pod's hash)."""
        owned = {t.cgroup_path for t in tasks if t.task_id not in self._by_hash}
        kept = []
        for task in tasks:
            if task.task_id in self._by_hash and task.cgroup_path in owned:
                self._warn(('rejected', task.name), identifiers.OUTSIDE,
                           'pod %s rejected: its kubernetes.io/config.hash names the cgroup %s '
                           'of another pod', task.name, task.cgroup_path)
                continue
            kept.append(task)
        return kept


class _SkippedNamespaces:
    """Pods of namespaces not monitored: each counted once (while it stays in the answers) in
    wca_tasks_skipped_total{reason="namespace"}, each namespace logged once."""

    def __init__(self, monitored):
        self._monitored = ', '.join(sorted(monitored))
        self._count = 0
        self._logged = set()
        self._last = set()
        self._now = set()

    def __call__(self, uid: str, namespace: str, name: str):
        self._now.add(uid)
        if uid not in self._last:
            self._count += 1
        if namespace not in self._logged and len(self._logged) < 1000:
            self._logged.add(namespace)
            log.info('KubernetesNode: the pods of namespace %s (first: %s) are skipped: not in '
                     'monitored_namespaces (%s); counted in wca_tasks_skipped_total'
                     '{reason="namespace"}', namespace, name, self._monitored)

    def end_of_answer(self):
        self._last, self._now = self._now, set()

    def metrics(self, labels: Optional[Dict[str, str]] = None) -> List[Metric]:
        return [Metric.create_metric_with_metadata(
            MetricName.WCA_TASKS_SKIPPED, self._count, dict(labels or {}, reason='namespace'))]


_NODE_NAME_CHARS = frozenset('abcdefghijklmnopqrstuvwxyz0123456789.-')


def _node_name(configured: Optional[str]) -> str:
    """The node's name as the kubelet registers it: configured, $NODE_NAME (the downward API),
    else the host name in lower case (the kubelet's default without --hostname-override)."""
    name = str(configured or os.environ.get('NODE_NAME') or socket.gethostname()).strip().lower()
    if not name or len(name) > 253 or not set(name) <= _NODE_NAME_CHARS:
        raise ValueError('node_name: expected the name of this node, as `kubectl get nodes` shows '
                         'it, got %r' % name)
    return name


def _mirror_hash(metadata: dict, uid: str) -> List[str]:
    """A static pod seen through the apiserver (a mirror pod, with a uid of its own) is in the
    cgroup named by its config hash; the kubelet sets both annotations to it."""
    annotations = _mapping(metadata, 'annotations')
    config_hash = annotations.get('kubernetes.io/config.hash')
    if config_hash is None or config_hash == uid:
        return []
    identifiers.config_hash(config_hash)  # tenants set annotations: checked before any use
    if annotations.get('kubernetes.io/config.mirror') != config_hash:
        return []
    return [config_hash]


def _existing(layout: CgroupLayout, path: str, kubepods: str) -> Optional[str]:
    """The pod's directory in the first hierarchy that has it; identifiers.Rejected when it
    resolves (through a symlink) outside that hierarchy's kubepods cgroup."""
    for mount in layout.hierarchies():
        directory = join(mount, path)
        if os.path.isdir(directory):
            identifiers.check_resolved(directory, join(mount, kubepods), 'the pod cgroup')
            return directory
    return None


def _pod_name(pod: object, index: int) -> str:
    if isinstance(pod, dict) and isinstance(pod.get('metadata'), dict):
        metadata = pod['metadata']
        if isinstance(metadata.get('name'), str):
            return '%s/%s' % (metadata.get('namespace'), metadata['name'])
    return '#%d of the answer' % index
