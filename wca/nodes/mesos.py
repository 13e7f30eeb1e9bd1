"""MesosNode: the running tasks of this Mesos agent, from its operator API (`POST /api/v1`,
GET_STATE), each in the cgroup of its executor (from /proc/<pid>/cgroup)."""
import logging
from typing import Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass

from wca import fsutil, identifiers
from wca.config import Numeric, Path, Str
from wca.exposition import sanitize_label_name
from wca.metrics import Metric
from wca.nodes.base import Node, Task
from wca.nodes.http import (FetchError, JsonClient, TaskListKeeper, WarnOnce, check_endpoint,
                            safe_url)
from wca.tls import SSL

log = logging.getLogger(__name__)

MESOS_TASK_STATE_RUNNING = 'TASK_RUNNING'
MESOS_LABELS_PREFIXES_TO_DROP = ('org.apache.', 'aurora.metadata.')
MB = 1000 ** 2  # Mesos' mem and disk are in MB; tasks' resources are in bytes
CGROUPS_ROOT = '/mesos'  # the Mesos agent's --cgroups_root default


@dataclass
class MesosTask(Task):
    executor_pid: int = 0
    container_id: str = ''
    executor_id: str = ''
    agent_id: str = ''

    def __hash__(self):
        return hash(self.task_id)


def sanitize_label(key: str) -> str:
    """A Mesos (Aurora) label key as a Prometheus label name: 'org.apache.' and
    'aurora.metadata.' dropped, '.' -> '_'."""
    for prefix in MESOS_LABELS_PREFIXES_TO_DROP:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return sanitize_label_name(key.replace('.', '_'))


def scalar_resources(resources: List[dict]) -> Dict[str, float]:
    """The scalar resources by name (summed over roles); mem and disk in bytes."""
    result = {}  # type: Dict[str, float]
    for resource in resources:
        if not isinstance(resource, dict) or resource.get('type') != 'SCALAR':
            continue  # RANGES (ports) and SETS are no amounts
        name, scalar = resource.get('name'), resource.get('scalar')
        value = scalar.get('value') if isinstance(scalar, dict) else None
        if isinstance(name, str) and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            result[name] = result.get(name, 0.0) + float(value)
    for name in ('mem', 'disk'):
        if name in result:
            result[name] *= MB
    return result


def cgroup_of(proc_root: str, pid: int) -> str:
    """The cgroup of `pid`: its cpu controller's (cgroup v1), else its cgroup v2 one. Raises
    OSError (the process is gone) or ValueError (no such line)."""
    unified = None
    for line in fsutil.read_text('%s/%d/cgroup' % (proc_root, pid)).splitlines():
        hierarchy, _, rest = line.partition(':')
        controllers, _, path = rest.partition(':')
        if 'cpu' in controllers.split(','):
            return path
        if hierarchy == '0' and not controllers:
            unified = path
    if unified is None:
        raise ValueError('no cpu controller line')
    return unified


class _BadTask(Exception):
    pass


def _value(parent: dict, key: str) -> str:
    """`parent[key]['value']`, the shape of every Mesos id."""
    value = parent.get(key)
    value = value.get('value') if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise _BadTask('no %s' % key)
    return value


@dataclass
class MesosNode(Node):
    """The running tasks of the local Mesos agent (Mesos containerizer).

    mesos_agent_endpoint: the agent's URL: https://, or http:// with allow_plain_http (and
        no client certificate).
    timeout: seconds for a whole request.
    ssl: TLS settings (server verification, client certificate).
    grace_period: seconds the last good task list is still reported while the agent fails.
    proc_root: where /proc is (for the executors' cgroups).
    cgroups_root: the agent's --cgroups_root ('mesos' or '/mesos'): an executor's cgroup must
        lie under it (a task naming any other process is rejected); '/': any but the root.
    allow_plain_http: accept an http:// endpoint (whoever holds the port answers, and names
        the processes the agent measures and allocates for).
    """
    mesos_agent_endpoint: Str = 'https://127.0.0.1:5051'
    timeout: Numeric(1, 60) = 5.
    ssl: Optional[SSL] = None
    grace_period: Numeric(0, 86400) = 60
    proc_root: Path(absolute=True) = '/proc'
    cgroups_root: Str = CGROUPS_ROOT
    allow_plain_http: bool = False

    def __post_init__(self):
        credentials = ('the client certificate of ssl' if self.ssl is not None
                       and self.ssl.client_cert_path else None)
        self._url = check_endpoint('mesos_agent_endpoint', self.mesos_agent_endpoint,
                                   self.allow_plain_http, credentials) + '/api/v1'
        self._client = JsonClient(self.timeout, self.ssl.requests_kwargs() if self.ssl else None)
        self._keeper = TaskListKeeper('MesosNode (%s)' % safe_url(self.mesos_agent_endpoint),
                                      self.grace_period)
        self._warn = WarnOnce(self._keeper)
        self._cgroups = {}  # type: Dict[Tuple[str, int], str]  # (task id, pid) -> cgroup
        self._known = {}  # type: Dict[str, MesosTask]  # unchanged tasks stay the same object
        self.cgroups_root = identifiers.cgroup_path(self.cgroups_root, 'cgroups_root',
                                                    root_ok=True)

    def get_tasks(self) -> List[Task]:
        try:
            launched = self._fetch()
        except FetchError as e:
            return self._keeper.failed(e)
        return self._keeper.succeeded(self._tasks(launched))

    def metrics(self, labels: Optional[Dict[str, str]] = None) -> List[Metric]:
        """wca_node_errors_total{reason} of this node (for the runner to store)."""
        return self._keeper.metrics(labels)

    def errors_by_reason(self) -> Dict[str, int]:
        return self._keeper.errors_by_reason()

    def _fetch(self) -> list:
        answer = self._client.request('POST', self._url, body={'type': 'GET_STATE'})
        state = answer.get('get_state') if isinstance(answer, dict) else None
        tasks = state.get('get_tasks') if isinstance(state, dict) else None
        if not isinstance(tasks, dict):
            raise FetchError('invalid_payload', 'the answer of %s is no GET_STATE response '
                             '(no get_state.get_tasks)' % safe_url(self._url))
        launched = tasks.get('launched_tasks', [])  # left out when there are none
        if not isinstance(launched, list):
            raise FetchError('invalid_payload', 'get_state.get_tasks.launched_tasks is not a list')
        return launched

    def _tasks(self, launched: list) -> List[Task]:
        tasks, present = [], set()
        for index, item in enumerate(launched):
            name = item.get('name') if isinstance(item, dict) else None
            key = name if isinstance(name, str) else '#%d' % index
            try:
                task = self._task(item, present)
            except identifiers.Rejected as e:  # a hostile or broken id, a cgroup elsewhere
                self._warn(('rejected', key), e.reason, 'task %s rejected: %s', key, e.message)
                continue
            except (_BadTask, TypeError, ValueError, AttributeError) as e:  # an odd shape
                problem = str(e) if isinstance(e, _BadTask) else 'unexpected shape (%s)' % (
                    type(e).__name__)
                self._warn(('task', key), 'invalid_task', 'task %s skipped: %s', key, problem)
                continue
            if task is not None:
                known = self._known.get(task.task_id)
                if known is not None and known == task:
                    task = known
                tasks.append(task)
        self._warn.end_of_answer()
        for key in [k for k in self._cgroups if k[0] not in present]:
            del self._cgroups[key]
        self._known = {task.task_id: task for task in tasks}
        return tasks

    def _task(self, item: object, present: set) -> Optional[MesosTask]:
        if not isinstance(item, dict):
            raise _BadTask('not an object')
        task_id = _value(item, 'task_id')
        present.add(task_id)
        statuses = item.get('statuses')
        if not isinstance(statuses, list) or not statuses or not isinstance(statuses[-1], dict):
            return None  # not started yet
        last = statuses[-1]
        if last.get('state') != MESOS_TASK_STATE_RUNNING:
            return None
        name = item.get('name')
        if not isinstance(name, str) or not name:
            raise _BadTask('no name')
        container = last.get('container_status')
        container = container if isinstance(container, dict) else {}
        container_id = _optional_value(container, 'container_id')
        executor_id = _optional_value(item, 'executor_id')
        for kind, value in (('container id', container_id), ('executor id', executor_id)):
            if value:  # they name the executor's cgroup and sandbox: Mesos' own rule for ids
                identifiers.path_component(value, kind)
        pid = container.get('executor_pid')
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            self._warn(('pid', task_id), 'task_skipped', 'task %s (%s) skipped: its status has no '
                       'container_status.executor_pid (is the Mesos containerizer used?)',
                       name, task_id)
            return None
        cgroup = self._cgroup(task_id, name, pid)
        if cgroup is None:
            return None
        labels_item = item.get('labels')
        labels = {}
        for label in (labels_item.get('labels') if isinstance(labels_item, dict) else None) or []:
            if isinstance(label, dict) and isinstance(label.get('key'), str):
                labels[sanitize_label(label['key'])] = str(label.get('value', ''))
        resources = item.get('resources')
        return MesosTask(
            name=name, task_id=task_id, cgroup_path=cgroup, labels=labels,
            resources=scalar_resources(resources if isinstance(resources, list) else []),
            executor_pid=pid, container_id=container_id, executor_id=executor_id,
            agent_id=_optional_value(item, 'agent_id'))

    def _cgroup(self, task_id: str, name: str, pid: int) -> Optional[str]:
        key = (task_id, pid)
        cgroup = self._cgroups.get(key)
        if cgroup is not None:
            return cgroup
        try:
            cgroup = cgroup_of(self.proc_root, pid)
        except OSError:
            log.debug('task %s (%s) skipped: its executor %d is gone', name, task_id, pid)
            return None
        except ValueError as e:
            self._warn(('cgroup', task_id), 'task_skipped', 'task %s (%s) skipped: %s in '
                       '%s/%d/cgroup', name, task_id, e, self.proc_root, pid)
            return None
        if cgroup == '/':
            self._warn(('cgroup', task_id), 'task_skipped', 'task %s (%s) skipped: its executor '
                       '%d is in the root cgroup (is the cgroups/cpu isolator on?)', name,
                       task_id, pid)
            return None
        # Any process can be named: only the containerizer's cgroups are the agent's to touch.
        identifiers.check_under(cgroup, self.cgroups_root, 'the cgroup of executor %d' % pid)
        self._cgroups[key] = cgroup
        return cgroup


def _optional_value(parent: dict, key: str) -> str:
    try:
        return _value(parent, key)
    except _BadTask:
        return ''
