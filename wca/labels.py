"""Task labels made from other labels (option `task_label_generators`: label name -> generator).

Applied once, when a task appears (a task's labels do not change while it lives), to the task's
labels plus task_id and task_name. A generated label is the agent's: it wins over a task label
of the same name (which is dropped and counted, see TaskLabeller); a generator that answers
None adds nothing. The agent's other labels (host, extra_labels, task_id, task_name, the
orchestrator's) win over a generator.

    task_label_generators:
      aurora_instance: !TaskLabelRegexGenerator
        pattern: '.*-(\\d+)-.{36}'
        repl: '\\1'          # re.sub(pattern, repl, labels[source])
        source: task_id      # default: task_name
"""
import copy
import logging
import re
from abc import ABC, abstractmethod
from typing import Callable, Dict, Optional, Set, Tuple  # noqa: F401 (type comments)

from wca.exposition import sanitize_label_name
from wca.nodes.base import Task
from wca.nodes.kubernetes import QOS_LABELNAME, KubernetesTask

log = logging.getLogger(__name__)

_LABEL_NAME = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*\Z')


class TaskLabelGenerator(ABC):
    """Makes one label's value from a task (its labels include task_id and task_name)."""

    @abstractmethod
    def generate(self, task: Task) -> Optional[str]:
        """The label's value, or None for no label. Must not change `task`."""


def _check_template(pattern, repl: str):
    """re.error when `repl` refers to a group `pattern` lacks or has a bad escape: it is
    expanded against a pattern with the same groups that matches the empty string."""
    names = {index: name for name, index in pattern.groupindex.items()}
    probe = re.compile(''.join('(?P<%s>)' % names[i] if i in names else '()'
                               for i in range(1, pattern.groups + 1)))
    probe.sub(repl, '')


class TaskLabelRegexGenerator(TaskLabelGenerator):
    """The label is re.sub(pattern, repl, labels[source]); a task without the source label gets
    none (one warning per generator)."""

    def __init__(self, pattern: str, repl: str, source: str = 'task_name'):
        try:
            self.regex = re.compile(pattern)
        except re.error as e:
            raise ValueError('pattern: %r is not a valid regular expression: %s' % (pattern, e))
        try:
            _check_template(self.regex, repl)
        except (re.error, IndexError) as e:  # IndexError: an unknown group name (Python 3.11)
            raise ValueError('repl: %r does not fit pattern %r: %s' % (repl, pattern, e))
        if not source:
            raise ValueError('source: the name of a label is required (default: task_name)')
        self.pattern, self.repl, self.source = pattern, repl, source
        self._warned = False

    def generate(self, task: Task) -> Optional[str]:
        value = task.labels.get(self.source)
        if value is None:
            if not self._warned:
                self._warned = True
                log.warning('task label generator %r: task %s has no label %r: no label generated '
                            '(said once; tasks without it get none)', self.pattern, task.task_id,
                            self.source)
            return None
        return self.regex.sub(self.repl, str(value))

    def __repr__(self):
        return 'TaskLabelRegexGenerator(pattern=%r, repl=%r, source=%r)' % (
            self.pattern, self.repl, self.source)


def check_generators(generators: Optional[Dict[str, TaskLabelGenerator]]) -> None:
    """Config check: each target is a valid Prometheus label name. ValueError('key: problem')."""
    for name in generators or {}:
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith('__'):
            raise ValueError('task_label_generators: %r is not a label name (letters, digits and '
                             '_, not starting with a digit or __)' % (name,))


class LabelGenerators:
    """The configured generators, applied to a task's label set when the task appears."""

    def __init__(self, generators: Dict[str, TaskLabelGenerator]):
        self.generators = dict(generators)
        self.names = tuple(self.generators)

    def apply(self, task: Task, labels: Dict[str, str], view_labels: Optional[Dict] = None,
              keep: Tuple[str, ...] = ()) -> None:
        """Adds the generated labels to `labels` (the task's metric labels) in place. The
        generators see `view_labels` (default: the task's labels, task_id and task_name); a
        label named in `keep` (the agent's own: host, extra labels, task_id, ...) is not
        generated."""
        view = copy.copy(task)  # the node's task is left as it is
        view.labels = view_labels if view_labels is not None else dict(
            task.labels, task_id=task.task_id, task_name=task.name)
        for name, generator in self.generators.items():
            if name in keep:
                log.debug('task %s: label %s is the agent\'s: not generated', task.task_id, name)
                continue
            try:
                value = generator.generate(view)
            except Exception:  # a plugin generator's bug: no label, the task is still measured
                log.exception('task %s: label generator %s failed', task.task_id, name)
                continue
            if value is not None:
                labels[name] = str(value)


# ---------------------------------------------------------------------------------------------
# Whose label wins. Reasons a task label is dropped (wca_labels_dropped_total{reason}).
OWNED, SANITISED = 'owned', 'sanitised'
DROP_REASONS = (OWNED, SANITISED)


def orchestrator_labels(task: Task) -> Dict[str, str]:
    """What the orchestrator says of a task, as opposed to the labels its owner chose: a pod's
    namespace, name and QoS class (from the pod's metadata and status, which a tenant cannot set
    to another namespace's values)."""
    if isinstance(task, KubernetesTask):
        namespace, _, pod = task.name.partition('/')
        labels = {'namespace': namespace, 'pod': pod}
        if task.qos:
            labels[QOS_LABELNAME] = task.qos
        return labels
    return {}


class TaskLabeller:
    """A task's label set, worked out once when it appears: what its metrics carry and what
    detectors and allocators get as TaskData.labels (the same set).

    The agent's labels win: `host`, extra_labels (`common`), `task_id`, `task_name`, the
    orchestrator's (orchestrator_labels) and the generated ones (task_label_generators). A task
    label whose (sanitised) name is one of them is dropped (reason `owned`; not counted when
    its value is the agent's anyway, as the node's copy of a pod's QoS class); one whose name
    becomes another task label's only by sanitising (`own.ip` beside `own_ip`) is dropped too
    (reason `sanitised`: the label already spelt that way stays). Each drop is counted through
    `count(reason)`; the first of each label name and reason is logged as a warning."""

    def __init__(self, common: Dict[str, str], generators: Optional[LabelGenerators],
                 count: Callable[[str], None]):
        self.common = common
        self.generators = generators
        self.generated = frozenset(generators.names if generators is not None else ())
        self.count = count
        self._warned = set()  # type: Set[Tuple[str, str]]

    def labels(self, task: Task) -> Dict[str, str]:
        owned = dict(orchestrator_labels(task), task_id=task.task_id, task_name=task.name)
        owned.update(self.common)
        kept = {}  # type: Dict[str, str]
        named = [(sanitize_label_name(str(key)), key, value) for key, value in task.labels.items()]
        named.sort(key=lambda item: item[0] != item[1])  # names already valid first
        for name, key, value in named:
            if name in owned:
                if owned[name] != str(value):  # equal: the node's own copy (a pod's QoS class)
                    self._drop(task, key, name, OWNED)
            elif name in self.generated:
                self._drop(task, key, name, OWNED)
            elif name in kept:
                self._drop(task, key, name, SANITISED)
            else:
                kept[name] = str(value)
        labels = dict(kept)
        labels.update(owned)
        if self.generators is not None:
            view = {key: value for key, value in task.labels.items() if key not in owned}
            view.update(owned)
            self.generators.apply(task, labels, view, tuple(owned))
        return labels

    def _drop(self, task: Task, key, name: str, reason: str):
        self.count(reason)
        if (name, reason) in self._warned:
            log.debug('task %s: label %r dropped (%s)', task.task_id, key, reason)
            return
        self._warned.add((name, reason))
        if reason == OWNED:
            log.warning('task %s: label %r dropped: %r is a label the agent sets (the agent\'s '
                        'value is kept; said once for this name, counted in '
                        'wca_labels_dropped_total{reason="owned"})', task.task_id, key, name)
        else:
            log.warning('task %s: label %r dropped: its name is %r after sanitising, which '
                        'another label has (said once for this name, counted in '
                        'wca_labels_dropped_total{reason="sanitised"})', task.task_id, key, name)
