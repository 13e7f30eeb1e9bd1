"""YAML to components: `!ClassName` tags for registered components only, each checked against
its constructor's annotations (wca.config.schema): its kind before it is built (a constructor
may act), its value after.

Every problem becomes a ConfigError that names the file, the line, the key path and what was
expected; the command line turns it into one line on stderr and exit status 2. The loader is
told the type of the root component; it imports no runner.

YAML merge keys (`<<: *base`, `<<: [*a, *b]`) are resolved here on the composed nodes, not by
PyYAML's flatten_mapping, which copies every merged pair into each mapping (a chain of
`<<: [*a, *a]` doubles at each level) and leaves overridden keys behind as duplicates. Each
mapping's merged pairs are worked out once, without copying a node, and count against the
value budget as they are produced.
"""
import difflib
import inspect
import logging
import os
import re
from typing import Any, Dict, List, Optional

import yaml

from wca.config.schema import (REGISTRY, ConfigError, EnvValue, Mismatch, alternatives,
                               annotation_of, check_value, class_fits, constructor_hints,
                               describe, exception_text, join_path, secret_path, shown_value,
                               type_args, type_origin)
from wca.security import readable_secrets_warning, unsafe_file_reason

log = logging.getLogger(__name__)

MAX_VALUES = 100000  # values (scalars, lists, mappings, components, merged keys) one config may hold
TOP_LEVEL_KEYS = ('runner', 'loggers')
_STD = 'tag:yaml.org,2002:'
_SCALAR_TAGS = {_STD + t for t in ('str', 'int', 'float', 'bool', 'null')}
_MERGE = _STD + 'merge'  # the `<<` key
_VALUE = _STD + 'value'  # the `=` key: a plain key, as PyYAML reads it
_NULLS = ('', '~', 'null', 'Null', 'NULL')
_KEY_FILE = re.compile(r'(^|_)key_?(file|path)$', re.IGNORECASE)  # where a private key is


def secret_key(path: str) -> bool:
    """Whether a key path's value is a secret or says where one is: what schema.secret_path
    hides in errors (passwords, tokens...), and private key files."""
    return secret_path(path) or bool(path and _KEY_FILE.search(path.rsplit('.', 1)[-1]))


# ---------------------------------------------------------------------------------------------
# Loading.

class _Loader(yaml.SafeLoader):
    """Composes nodes only: objects are built by _Builder, never by YAML tags themselves."""


class _Builder:
    def __init__(self, loader, filename):
        self.loader = loader
        self.filename = filename
        self.components = {}  # id(node) -> object: a YAML alias shares one instance
        self.budget = MAX_VALUES  # aliases of aliases must not expand without end
        self.merged = {}  # id(mapping node) -> its (key identity, key node, value node) triples
        self.secrets = {}  # key paths of secrets (and !Env values) in the file, in order

    def error(self, message, node, path):
        return ConfigError(message, self.filename, node.start_mark.line + 1 if node else None,
                           path or None)

    def spend(self, node, path, what):
        self.budget -= 1
        if self.budget < 0:
            raise self.error('the config has more than %d values: do YAML %s expand into '
                             'each other?' % (MAX_VALUES, what), node, path)

    def build(self, node, path, expected=Any):
        self.spend(node, path, 'aliases')
        tag = node.tag
        if tag.startswith('!') and not tag.startswith('!!'):
            name = tag[1:]
            if name == 'Env':
                self.secrets[path] = True
                return self._coerce(self._env(node, path), expected, node, path)
            if name not in REGISTRY:
                close = difflib.get_close_matches(name, list(REGISTRY) + ['Env'], 1)
                hint = '; did you mean !%s?' % close[0] if close else ''
                raise self.error('unknown tag !%s: not a registered component%s (register a '
                                 'plugin with -r module:%s)' % (name, hint, name), node, path)
            self._check_kind(REGISTRY[name], '!' + name, expected, node, path)
            value = self._component(REGISTRY[name], node, path)
            return self._coerce(value, expected, node, path)
        if isinstance(node, yaml.MappingNode) and tag == _STD + 'map':
            self._check_kind(dict, 'a mapping', expected, node, path)
            return self._coerce(self._mapping(node, path, expected), expected, node, path)
        if isinstance(node, yaml.SequenceNode) and tag == _STD + 'seq':
            self._check_kind(list, 'a list', expected, node, path)
            return self._coerce(self._sequence(node, path, expected), expected, node, path)
        if isinstance(node, yaml.ScalarNode) and tag in _SCALAR_TAGS:
            if node.value not in _NULLS and secret_key(path):
                self.secrets[path] = True
            try:
                value = self.loader.construct_object(node, deep=True)
            except (ValueError, LookupError, yaml.YAMLError):  # e.g. `!!int abc`, `!!bool x`
                raise self.error('%r is not a valid %s' % (node.value, tag.replace(_STD, '!!')),
                                 node, path)
            return self._coerce(value, expected, node, path)
        raise self.error('tag %s is not allowed: only registered components (!ClassName), !Env '
                         'and plain YAML values are' % tag.replace(_STD, '!!'), node, path)

    def _check_kind(self, cls, shown, expected, node, path):
        """Refuses a component (or a mapping, a list) that cannot be what `expected` asks for,
        before anything in it is built."""
        if not class_fits(cls, expected):
            raise self.error('expected %s, got %s' % (
                describe(expected), '(value hidden)' if secret_path(path) else shown), node, path)

    def _env(self, node, path):
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            raise self.error('!Env takes the name of an environment variable', node, path)
        if node.value not in os.environ:
            raise self.error('environment variable %s (from !Env) is not set' % node.value,
                             node, path)
        value = EnvValue(os.environ[node.value])
        value.env_name = node.value
        return value

    # --- merge keys -----------------------------------------------------------------------

    def pairs(self, node, path):
        """A mapping's (key identity, key node, value node) triples with its merge keys
        resolved as YAML specifies: its own keys win over merged ones, and of `<<: [*a, *b]`
        the earlier source wins. Worked out once per mapping node, sources first (without
        recursion: a chain of merges may be long)."""
        if id(node) not in self.merged:
            stack = [node]
            while stack:
                top = stack[-1]
                if id(top) in self.merged:
                    stack.pop()
                    continue
                pending = [source for source in self._merge_sources(top, path)
                           if id(source) not in self.merged]
                if pending:  # no cycle: load_config_text refused nodes that contain themselves
                    stack.extend(reversed(pending))
                else:
                    self.merged[id(top)] = self._resolve(top, path if top is node
                                                         else join_path(path, '<<'))
                    stack.pop()
        return self.merged[id(node)]

    def _merge_sources(self, node, path):
        sources = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            if isinstance(value_node, yaml.MappingNode):
                sources.append(value_node)
            elif isinstance(value_node, yaml.SequenceNode) and all(
                    isinstance(item, yaml.MappingNode) for item in value_node.value):
                sources.extend(value_node.value)
            else:
                raise self.error('a merge key (<<) takes a mapping or a list of mappings (such '
                                 'as *base or [*a, *b])', value_node, join_path(path, '<<'))
        return sources

    def _resolve(self, node, path):
        own = set()
        merges = 0
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                merges += 1
                if merges > 1:
                    raise self.error('duplicate key (one merge key takes a list: '
                                     '<<: [*a, *b])', key_node, join_path(path, '<<'))
                continue
            identity = self._identity(key_node)
            if identity in own:
                raise self.error('duplicate key', key_node, join_path(path, _key_text(key_node)))
            own.add(identity)
        if not merges:
            return [(self._identity(k), k, v) for k, v in node.value]
        seen = set(own)
        result = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                result.append((self._identity(key_node), key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
                value_node]
            for source in sources:
                for identity, merged_key, merged_value in self.merged[id(source)]:
                    self.spend(key_node, path, 'merge keys (<<)')  # overridden ones too
                    if identity not in seen:
                        seen.add(identity)
                        result.append((identity, merged_key, merged_value))
        return result

    def _identity(self, key_node):
        """What makes two keys the same key: the value of a plain scalar (`1` and `0x1` are
        one key), else the node itself (a tagged key is built, and compared, later)."""
        if key_node.tag == _VALUE:
            key_node.tag = _STD + 'str'
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag in _SCALAR_TAGS:
            try:
                return 'value', self.loader.construct_object(key_node, deep=True)
            except (ValueError, LookupError, yaml.YAMLError):
                pass  # an invalid key: building it says why
        return 'node', id(key_node)

    # --- components and plain values ------------------------------------------------------

    def _component(self, cls, node, path):
        if id(node) in self.components:
            return self.components[id(node)]
        if isinstance(node, yaml.ScalarNode) and node.value == '':
            items = []
        elif isinstance(node, yaml.MappingNode):
            items = self.pairs(node, path)
        else:
            raise self.error('!%s takes a mapping of its arguments' % cls.__name__, node, path)
        try:
            params = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            params = {}
        hints = constructor_hints(cls)
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        named = [n for n, p in params.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        kwargs = {}
        for identity, key_node, value_node in items:
            key = identity[1] if identity[0] == 'value' else None
            if not isinstance(key, str):
                raise self.error('keys of !%s must be names' % cls.__name__, key_node, path)
            key_path = join_path(path, key)
            if key not in named and not takes_any:
                close = difflib.get_close_matches(key, named, 1)
                hint = 'did you mean %r? ' % close[0] if close else ''
                raise self.error('unknown key for !%s; %sexpected one of: %s' % (
                    cls.__name__, hint, ', '.join(named) or '(no arguments)'), key_node, key_path)
            kwargs[key] = self.build(value_node, key_path, annotation_of(hints, params, key))
        missing = [n for n in named if params[n].default is inspect.Parameter.empty
                   and n not in kwargs]
        if missing:
            raise self.error('!%s is missing required key%s: %s' % (
                cls.__name__, 's' if len(missing) > 1 else '', ', '.join(missing)), node, path)
        try:
            obj = cls(**kwargs)
        except Exception as e:
            text = e.message if isinstance(e, ConfigError) else exception_text(e)
            # 'key: problem' from a constructor points at that key, when the config has it
            key, sep, problem = text.partition(': ')
            for _, key_node, value_node in items:
                if sep and getattr(key_node, 'value', None) == key:
                    raise self.error('!%s: %s' % (cls.__name__, problem), value_node,
                                     join_path(path, key))
            raise self.error('!%s: %s' % (cls.__name__, text), node, path)
        self.components[id(node)] = obj
        return obj

    def _mapping(self, node, path, expected):
        key_type, value_type = Any, Any
        for alternative in alternatives(expected):
            if type_origin(alternative) is dict:
                args = type_args(alternative)
                key_type, value_type = args if len(args) == 2 else (Any, Any)
                break
        result = {}
        for _, key_node, value_node in self.pairs(node, path):
            key = self.build(key_node, path, key_type)
            if isinstance(key, (list, dict)):
                raise self.error('mapping keys must be plain values', key_node, path)
            if key in result:  # tagged keys (!Env NAME) are known only once built
                raise self.error('duplicate key', key_node, join_path(path, key))
            result[key] = self.build(value_node, join_path(path, key), value_type)
        return result

    def _sequence(self, node, path, expected):
        item_type = Any
        for alternative in alternatives(expected):
            if type_origin(alternative) in (list, set, frozenset, tuple):
                args = type_args(alternative)
                item_type = args[0] if args else Any
                break
        return [self.build(item, '%s[%d]' % (path, i), item_type)
                for i, item in enumerate(node.value)]

    def _coerce(self, value, expected, node, path):
        try:
            return check_value(value, expected)
        except Mismatch as e:
            shown = shown_value(value, path)
            raise self.error('%s%s' % (e, (', got ' + shown) if shown else ''), node, path)


def _key_text(key_node):
    return key_node.value if isinstance(key_node, yaml.ScalarNode) else None


def load_config(filename: str, root_type: type = Any,
                check_permissions: bool = True) -> Dict[str, Any]:
    """Loads, checks and builds the config: {'runner': <a root_type>, 'loggers': {module:
    level}}. Warns when the file holds secrets (or !Env values) and others can read it."""
    if check_permissions:
        problem = unsafe_file_reason(filename)
        if problem:
            raise ConfigError(problem, filename)
    try:
        with open(filename, 'rb') as f:
            text = f.read()
    except OSError as e:
        raise ConfigError('cannot read config: %s' % (e.strerror or e), filename)
    try:
        text = text.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ConfigError('config is not UTF-8 text (byte %d)' % e.start, filename)
    secrets = []
    config = load_config_text(text, filename, root_type, secrets)
    warning = readable_secrets_warning(filename, secrets)
    if warning:
        log.warning('%s', warning)
    return config


def load_config_text(text: str, filename: str = '<config>', root_type: type = Any,
                     secrets: Optional[List[str]] = None) -> Dict[str, Any]:
    """Builds the config from its text; `secrets`, when given, gets the key paths that hold
    secrets or !Env values (never the values)."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, ...)
        raise ConfigError('invalid YAML: %s' % exception_text(e), filename,
                          text.count('\n', 0, e.position) + 1)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise ConfigError('invalid YAML: %s' % (e.problem or e.context), filename,
                              mark.line + 1 if mark else None)
        except yaml.YAMLError as e:
            raise ConfigError('invalid YAML: %s' % exception_text(e), filename)
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _STD + 'null'
                            and root.value in ('', '~', 'null')):
            raise ConfigError('config is empty: expected a mapping with a "runner" key', filename)
        if not isinstance(root, yaml.MappingNode) or root.tag != _STD + 'map':
            raise ConfigError('expected a mapping with a "runner" key at the top level', filename,
                              root.start_mark.line + 1)
        cycle = _cycle(root)
        if cycle is not None:
            raise ConfigError('invalid YAML: an alias makes this node contain itself', filename,
                              cycle.start_mark.line + 1)
        builder = _Builder(loader, filename)
        config = {}  # type: Dict[str, Any]
        for identity, key_node, value_node in builder.pairs(root, ''):
            key = identity[1] if identity[0] == 'value' else None
            if key not in TOP_LEVEL_KEYS:
                raise builder.error('unknown top-level key; expected: %s' % ', '.join(
                    TOP_LEVEL_KEYS), key_node, str(_key_text(key_node)))
            if key == 'runner':
                config[key] = builder.build(value_node, key, root_type)
            else:
                config[key] = _loggers(builder, value_node)
        if 'runner' not in config:
            raise ConfigError('missing required top-level key "runner" (for example: '
                              'runner: !MeasurementRunner)', filename, 1)
        config.setdefault('loggers', {})
        if secrets is not None:
            secrets.extend(builder.secrets)
        return config
    except yaml.MarkedYAMLError as e:  # a constructor error of PyYAML's not caught where built
        mark = e.problem_mark or e.context_mark
        raise ConfigError('invalid YAML: %s' % (e.problem or e.context), filename,
                          mark.line + 1 if mark else None)
    except RecursionError:  # composing or building `[[[[...]]]]` hundreds of levels deep
        raise ConfigError('the config nests too deeply (lists or mappings hundreds of levels '
                          'inside each other)', filename)
    finally:
        loader.dispose()


def _cycle(root):
    """A node that contains itself through an alias (`&a [*a]`), or None. YAML allows such a
    graph; building or merging it would recurse without end."""
    def children(node):
        if isinstance(node, yaml.MappingNode):
            return iter([child for pair in node.value for child in pair])
        return iter(node.value if isinstance(node, yaml.SequenceNode) else ())
    on_path, done = {id(root)}, set()
    stack = [(root, children(root))]
    while stack:
        node, pending = stack[-1]
        for child in pending:
            if id(child) in on_path:
                return child
            if id(child) not in done and isinstance(child, yaml.CollectionNode):
                on_path.add(id(child))
                stack.append((child, children(child)))
                break
        else:
            stack.pop()
            on_path.discard(id(node))
            done.add(id(node))
    return None


_LEVELS = ('TRACE', 'DEBUG', 'INFO', 'WARNING', 'WARN', 'ERROR', 'CRITICAL')


def _loggers(builder, node) -> Dict[str, str]:
    loggers = builder.build(node, 'loggers', Optional[Dict[str, str]]) or {}
    for module, level in loggers.items():
        if str(level).upper() not in _LEVELS:
            raise builder.error('unknown log level %r; expected one of: %s' % (
                level, ', '.join(name.lower() for name in _LEVELS)), node, 'loggers.' + module)
    return loggers
