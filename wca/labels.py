"""Task labels made from other labels (option `task_label_generators`: label name -> generator).

Applied once, when a task appears (a task's labels do not change while it lives), to the task's
labels plus task_id and task_name. A label the task already has is never overwritten; a
generator that answers None adds nothing.

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
from typing import Dict, Optional

from wca.nodes.base import Task

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

    def apply(self, task: Task, labels: Dict[str, str]) -> None:
        """Adds the generated labels to `labels` (the task's metric labels) in place."""
        view = copy.copy(task)  # the node's task is left as it is
        view.labels = dict(task.labels, task_id=task.task_id, task_name=task.name)
        for name, generator in self.generators.items():
            if name in labels:
                log.debug('task %s already has label %s: not generated', task.task_id, name)
                continue
            try:
                value = generator.generate(view)
            except Exception:  # a plugin generator's bug: no label, the task is still measured
                log.exception('task %s: label generator %s failed', task.task_id, name)
                continue
            if value is not None:
                labels[name] = str(value)
