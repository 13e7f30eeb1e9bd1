"""StaticAllocator: the same allocations every iteration, from rules given in the config and/or
in a rules file (the original agent's static_allocator_config.yaml format):

    - name: default rule for all          # for logs
      allocations: {cpu_quota: 1.0, cpu_shares: 10, cpuset_cpus: "1-3"}
    - name: tasks with label foo set to bar
      labels: {foo: bar}                  # label -> regular expression (re.match); any matches
      task_id: some-task                  # optional: exactly this task (and the labels, if given)
      allocations: {cpu_shares: 0.5, rdt: {name: '', l3: 'L3:0=0000f;1=0000f'}}

A rule without task_id and labels applies to every task. `rules` come first, then the file's;
a later rule overrides an earlier one per task and allocation type. The values are checked
against the platform by the AllocationRunner, per task and type, like any allocator's.

The file is read again when it changes (inode, size, modification or change time: an edit, a
replacement, a chmod), not every iteration (one stat() per iteration).
A file that is missing, unsafe (writable by others), unreadable or invalid keeps the rules last
loaded from it in effect: one error logged and counted (wca_static_allocator_config_errors_total)
per version of the file, and a line when it works again.
"""
import logging
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Pattern, Tuple  # noqa: F401

import yaml

from wca import allocations as checks
from wca.allocators import AllocationType, Allocator, RDTAllocation
from wca.config import Path
from wca.metrics import Metric, MetricName
from wca.security import unsafe_file_reason

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100000  # YAML aliases that expand into each other stop here
MAX_DEPTH = 64
RULE_KEYS = ('name', 'task_id', 'labels', 'allocations')
_STD = 'tag:yaml.org,2002:'
_SCALARS = {_STD + t for t in ('str', 'int', 'float', 'bool', 'null')}


class RulesError(ValueError):
    """The rules are not in the expected format; the message says where and why."""


class Rule(NamedTuple):
    name: str
    task_id: Optional[str]
    labels: Dict[str, Pattern]
    allocations: Dict[AllocationType, Any]

    def matches(self, task_id: str, labels: Dict[str, str]) -> bool:
        if self.task_id is not None and task_id != self.task_id:
            return False
        if self.labels:
            return any(name in labels and pattern.match(str(labels[name]))
                       for name, pattern in self.labels.items())
        return True


def parse_rules(data, where: str = 'rules') -> List[Rule]:
    """A list of rules (plain YAML values) checked; RulesError names the rule and the key."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise RulesError('%s: expected a list of rules, got %s' % (where, _kind(data)))
    return [_rule(item, '%s[%d]' % (where, index)) for index, item in enumerate(data)]


def _rule(item, where) -> Rule:
    if not isinstance(item, dict):
        raise RulesError('%s: expected a rule (a mapping with name, labels, task_id, '
                         'allocations), got %s' % (where, _kind(item)))
    name = item.get('name')
    if name is not None:
        where = '%s (%s)' % (where, name)
    unknown = [key for key in item if key not in RULE_KEYS]
    if unknown:
        raise RulesError('%s: unknown key %r; a rule has: %s' % (where, unknown[0],
                                                                 ', '.join(RULE_KEYS)))
    if 'allocations' not in item:
        raise RulesError('%s: missing "allocations"' % where)
    task_id = item.get('task_id')
    if task_id is not None and not isinstance(task_id, str):
        raise RulesError('%s: task_id: expected a string, got %s' % (where, _kind(task_id)))
    labels = item.get('labels') or {}
    if not isinstance(labels, dict):
        raise RulesError('%s: labels: expected a mapping of label to regular expression, got %s'
                         % (where, _kind(labels)))
    patterns = {}
    for label, expression in labels.items():
        try:
            patterns[str(label)] = re.compile(str(expression))
        except re.error as e:
            raise RulesError('%s: labels.%s: %r is not a regular expression: %s' % (
                where, label, expression, e))
    allocations = item.get('allocations') or {}
    if not isinstance(allocations, dict):
        raise RulesError('%s: allocations: expected a mapping of allocation type to value, got '
                         '%s' % (where, _kind(allocations)))
    return Rule(str(name) if name is not None else where, task_id, patterns,
                {kind: value for kind, value in (_allocation(key, value, where)
                                                 for key, value in allocations.items())})


def _allocation(key, value, where) -> Tuple[AllocationType, Any]:
    try:
        kind = AllocationType(key)
    except ValueError:
        raise RulesError('%s: allocations: unknown allocation type %r; expected one of: %s' % (
            where, key, ', '.join(t.value for t in AllocationType)))
    try:
        if kind is AllocationType.RDT:
            value = _rdt(value)
        elif kind is AllocationType.QUOTA:
            checks.check_quota(value)
        elif kind is AllocationType.SHARES:
            checks.check_shares(value)
        elif kind is AllocationType.CPUSET_MEMORY_MIGRATE:
            value = checks.check_memory_migrate(value)
        elif kind in (AllocationType.CPUSET_CPUS, AllocationType.CPUSET_MEMS):
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # cpuset_cpus: 3 in YAML is the list "3"
            if isinstance(value, str):
                checks.parse_list(value, 'cpu' if kind is AllocationType.CPUSET_CPUS else 'node')
        elif kind is AllocationType.MIGRATE_PAGES:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise checks.InvalidAllocation('expected a NUMA node number, got %r' % (value,))
    except checks.InvalidAllocation as e:
        raise RulesError('%s: allocations.%s: %s' % (where, kind.value, e))
    return kind, value


def _rdt(value) -> RDTAllocation:
    if isinstance(value, RDTAllocation):
        return value
    if not isinstance(value, dict):
        raise checks.InvalidAllocation('expected a mapping of name, l3, mb, got %s' % _kind(value))
    unknown = [key for key in value if key not in ('name', 'l3', 'mb')]
    if unknown:
        raise checks.InvalidAllocation('unknown key %r; rdt has: name, l3, mb' % (unknown[0],))
    for key in ('name', 'l3', 'mb'):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise checks.InvalidAllocation('%s: expected a string, got %s'
                                           % (key, _kind(value[key])))
    return RDTAllocation(name=value.get('name'), l3=value.get('l3'), mb=value.get('mb'))


def _kind(value) -> str:
    return 'null' if value is None else type(value).__name__


def load_yaml(text: str, filename: str):
    """Plain YAML (standard tags only) with merge keys, within a budget of values, so that
    aliases expanding into each other cannot exhaust memory. RulesError on anything else."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise RulesError('%s:%s: invalid YAML: %s' % (filename, mark.line + 1 if mark else '?',
                                                          e.problem or e.context))
        except yaml.YAMLError as e:
            raise RulesError('%s: invalid YAML: %s' % (filename, e))
        return _Builder(loader, filename).build(node, 0) if node is not None else None
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader, filename):
        self.loader = loader
        self.filename = filename
        self.budget = MAX_VALUES

    def error(self, node, message):
        return RulesError('%s:%d: %s' % (self.filename, node.start_mark.line + 1, message))

    def build(self, node, depth):
        self.budget -= 1
        if self.budget < 0:
            raise self.error(node, 'more than %d values: do YAML aliases expand into each other?'
                             % MAX_VALUES)
        if depth > MAX_DEPTH:
            raise self.error(node, 'nested too deeply (or an alias holds itself)')
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALARS:
            try:
                return self.loader.construct_object(node, deep=True)
            except (ValueError, yaml.YAMLError):
                raise self.error(node, '%r is not a valid %s' % (node.value, node.tag[len(_STD):]))
        if isinstance(node, yaml.SequenceNode) and node.tag == _STD + 'seq':
            return [self.build(child, depth + 1) for child in node.value]
        if isinstance(node, yaml.MappingNode) and node.tag == _STD + 'map':
            return self._mapping(node, depth)
        raise self.error(node, 'tag %s is not allowed in a rules file (plain YAML only)' % node.tag)

    def _mapping(self, node, depth) -> dict:
        own, merged = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == _STD + 'merge':
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                    else [value_node]
                for source in reversed(sources):  # of `<<: [*a, *b]` the earlier one wins
                    built = self.build(source, depth + 1)
                    if not isinstance(built, dict):
                        raise self.error(source, 'a merge key (<<) takes mappings only')
                    merged.update(built)
                continue
            key = self.build(key_node, depth + 1)
            try:
                if key in own:
                    raise self.error(key_node, 'duplicate key %r' % (key,))
            except TypeError:
                raise self.error(key_node, 'a key must be a plain value')
            own[key] = self.build(value_node, depth + 1)
        merged.update(own)
        return merged


class StaticAllocator(Allocator):
    """Allocations from `rules` and the rules file `config` (see the module's documentation)."""

    def __init__(self, rules: Optional[List[dict]] = None, config: Optional[Path()] = None):
        self.rules = rules
        self.config = config
        try:
            self._rules = parse_rules(rules, 'rules')
        except RulesError as e:
            raise ValueError(str(e))  # the config loader names the file and line
        self._file_rules = []  # type: List[Rule]
        self._stamp = None  # type: Optional[tuple]  what the file was when last read
        self._failing = None  # type: Optional[str]
        self.config_errors = 0

    def allocate(self, platform, tasks_data):
        if self.config:
            self._reload()
        rules = self._rules + self._file_rules
        allocations = {}  # type: Dict[str, Dict[AllocationType, Any]]
        for rule in rules:
            for task_id, data in tasks_data.items():
                if rule.matches(task_id, data.labels):
                    allocations.setdefault(task_id, {}).update(rule.allocations)
        make = Metric.create_metric_with_metadata
        metrics = [make(MetricName.STATIC_ALLOCATOR_RULES, len(rules))]
        if self.config:
            metrics.append(make(MetricName.STATIC_ALLOCATOR_CONFIG_ERRORS, self.config_errors))
        return allocations, [], metrics

    def _reload(self):
        path = self.config
        try:
            st = os.stat(path)
            # the inode, size and modification time say it changed; the change time also
            # catches chmod and chown (a file refused as unsafe, then fixed)
            stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # type: tuple
        except OSError as e:
            stamp = ('error', e.errno)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            rules = self._read(path)
        except RulesError as e:
            self.config_errors += 1
            self._failing = str(e)
            log.error('StaticAllocator: %s; %s', e, '%d rule%s loaded before stay in effect' % (
                len(self._file_rules), '' if len(self._file_rules) == 1 else 's')
                if self._file_rules else 'no rules from it until it is fixed')
            return
        if self._failing is not None:
            log.info('StaticAllocator: rules file %s works again', path)
            self._failing = None
        self._file_rules = rules
        log.info('StaticAllocator: %d rule%s loaded from %s', len(rules),
                 '' if len(rules) == 1 else 's', path)

    @staticmethod
    def _read(path) -> List[Rule]:
        if not os.path.exists(path):
            raise RulesError('rules file %s does not exist' % path)
        problem = unsafe_file_reason(path)
        if problem:
            problem = problem.replace('others could make the agent run their code',
                                      'others could change the allocations')
            raise RulesError('rules file %s refused: %s' % (path, problem.replace('config',
                                                                                  'file')))
        try:
            with open(path, 'rb') as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise RulesError('rules file %s: cannot read it: %s' % (path, e.strerror or e))
        if len(data) > MAX_FILE_BYTES:
            raise RulesError('rules file %s: larger than %d bytes' % (path, MAX_FILE_BYTES))
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError as e:
            raise RulesError('rules file %s: not UTF-8 text (byte %d)' % (path, e.start))
        try:
            return parse_rules(load_yaml(text, path), path)
        except RecursionError:
            raise RulesError('rules file %s: nested too deeply' % path)
