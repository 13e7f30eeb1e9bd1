"""YAML to components: `!ClassName` tags for registered components only, each checked against
its constructor's annotations (wca.config.schema) before it is built.

Every problem becomes a ConfigError that names the file, the line, the key path and what was
expected; the command line turns it into one line on stderr and exit status 2. The loader is
told the type of the root component; it imports no runner.
"""
import difflib
import inspect
import os
from typing import Any, Dict, Optional

import yaml

from wca.config.schema import (REGISTRY, ConfigError, EnvValue, Mismatch, alternatives,
                               annotation_of, check_value, constructor_hints, exception_text,
                               join_path, shown_value, type_args, type_origin)
from wca.security import unsafe_file_reason

MAX_VALUES = 100000  # values (scalars, lists, mappings, components) one config may build
TOP_LEVEL_KEYS = ('runner', 'loggers')
_STD = 'tag:yaml.org,2002:'
_SCALAR_TAGS = {_STD + t for t in ('str', 'int', 'float', 'bool', 'null')}


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

    def error(self, message, node, path):
        return ConfigError(message, self.filename, node.start_mark.line + 1 if node else None,
                           path or None)

    def build(self, node, path, expected=Any):
        self.budget -= 1
        if self.budget < 0:
            raise self.error('the config has more than %d values: do YAML aliases expand into '
                             'each other?' % MAX_VALUES, node, path)
        tag = node.tag
        if tag.startswith('!') and not tag.startswith('!!'):
            name = tag[1:]
            if name == 'Env':
                return self._coerce(self._env(node, path), expected, node, path)
            if name not in REGISTRY:
                close = difflib.get_close_matches(name, list(REGISTRY) + ['Env'], 1)
                hint = '; did you mean !%s?' % close[0] if close else ''
                raise self.error('unknown tag !%s: not a registered component%s (register a '
                                 'plugin with -r module:%s)' % (name, hint, name), node, path)
            value = self._component(REGISTRY[name], node, path)
            return self._coerce(value, expected, node, path)
        if isinstance(node, yaml.MappingNode) and tag == _STD + 'map':
            return self._coerce(self._mapping(node, path, expected), expected, node, path)
        if isinstance(node, yaml.SequenceNode) and tag == _STD + 'seq':
            return self._coerce(self._sequence(node, path, expected), expected, node, path)
        if isinstance(node, yaml.ScalarNode) and tag in _SCALAR_TAGS:
            try:
                value = self.loader.construct_object(node, deep=True)
            except (ValueError, LookupError, yaml.YAMLError):  # e.g. `!!int abc`, `!!bool x`
                raise self.error('%r is not a valid %s' % (node.value, tag.replace(_STD, '!!')),
                                 node, path)
            return self._coerce(value, expected, node, path)
        raise self.error('tag %s is not allowed: only registered components (!ClassName), !Env '
                         'and plain YAML values are' % tag.replace(_STD, '!!'), node, path)

    def _env(self, node, path):
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            raise self.error('!Env takes the name of an environment variable', node, path)
        if node.value not in os.environ:
            raise self.error('environment variable %s (from !Env) is not set' % node.value,
                             node, path)
        value = EnvValue(os.environ[node.value])
        value.env_name = node.value
        return value

    def _component(self, cls, node, path):
        if id(node) in self.components:
            return self.components[id(node)]
        if isinstance(node, yaml.ScalarNode) and node.value == '':
            items = []
        elif isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            items = node.value
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
        for key_node, value_node in items:
            key = self.loader.construct_object(key_node) if isinstance(
                key_node, yaml.ScalarNode) else None
            key_path = join_path(path, key)
            if not isinstance(key, str):
                raise self.error('keys of !%s must be names' % cls.__name__, key_node, path)
            if key in kwargs:
                raise self.error('duplicate key', key_node, key_path)
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
            for key_node, value_node in items:
                if sep and getattr(key_node, 'value', None) == key:
                    raise self.error('!%s: %s' % (cls.__name__, problem), value_node,
                                     join_path(path, key))
            raise self.error('!%s: %s' % (cls.__name__, text), node, path)
        self.components[id(node)] = obj
        return obj

    def _mapping(self, node, path, expected):
        self.loader.flatten_mapping(node)
        key_type, value_type = Any, Any
        for alternative in alternatives(expected):
            if type_origin(alternative) is dict:
                args = type_args(alternative)
                key_type, value_type = args if len(args) == 2 else (Any, Any)
                break
        result = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, path, key_type)
            if isinstance(key, (list, dict)):
                raise self.error('mapping keys must be plain values', key_node, path)
            if key in result:
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


def load_config(filename: str, root_type: type = Any,
                check_permissions: bool = True) -> Dict[str, Any]:
    """Loads, checks and builds the config: {'runner': <a root_type>, 'loggers': {module:
    level}}."""
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
    return load_config_text(text, filename, root_type)


def load_config_text(text: str, filename: str = '<config>', root_type: type = Any
                     ) -> Dict[str, Any]:
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
        loader.flatten_mapping(root)
        config = {}  # type: Dict[str, Any]
        for key_node, value_node in root.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in TOP_LEVEL_KEYS:
                raise builder.error('unknown top-level key; expected: %s' % ', '.join(
                    TOP_LEVEL_KEYS), key_node, str(key))
            if key in config:
                raise builder.error('duplicate key', key_node, key)
            if key == 'runner':
                config[key] = builder.build(value_node, key, root_type)
            else:
                config[key] = _loggers(builder, value_node)
        if 'runner' not in config:
            raise ConfigError('missing required top-level key "runner" (for example: '
                              'runner: !MeasurementRunner)', filename, 1)
        config.setdefault('loggers', {})
        return config
    except yaml.MarkedYAMLError as e:  # from merging (`<<: 1`) while building
        mark = e.problem_mark or e.context_mark
        raise ConfigError('invalid YAML: %s' % (e.problem or e.context), filename,
                          mark.line + 1 if mark else None)
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
