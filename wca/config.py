"""YAML configuration: `!ClassName` tags for registered components only, each checked against
its constructor's annotations before anything runs.

Every problem becomes a ConfigError that names the file, the line, the key path and what was
expected; the command line turns it into one line on stderr and exit status 2.
"""
import difflib
import enum
import importlib
import inspect
import os
import re
import sys
import typing
from typing import Any, Dict, List, Optional

import yaml

from wca.security import unsafe_file_reason

_REGISTRY = {}  # type: Dict[str, type]
MAX_VALUES = 100000  # values (scalars, lists, mappings, components) one config may build

TOP_LEVEL_KEYS = ('runner', 'loggers')
_SECRET_KEY = re.compile(r'pass|secret|token|credential|auth', re.IGNORECASE)
_STD = 'tag:yaml.org,2002:'
_SCALAR_TAGS = {_STD + t for t in ('str', 'int', 'float', 'bool', 'null')}


class ConfigError(Exception):
    """A configuration problem, located as precisely as known."""

    def __init__(self, message, filename=None, line=None, key_path=None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.key_path = key_path

    def __str__(self):
        where = ''
        if self.filename:
            where = str(self.filename) + (':%d' % self.line if self.line else '') + ': '
        elif self.line:
            where = 'line %d: ' % self.line
        key = (self.key_path + ': ') if self.key_path else ''
        return where + key + self.message


# ---------------------------------------------------------------------------------------------
# Registration.

def register(cls):
    """Makes `!ClassName` usable in the YAML config (a decorator, or a plain call)."""
    name = cls.__name__
    known = _REGISTRY.get(name)
    if known is not None and known is not cls and (
            known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError('component name %r is taken by %s.%s; cannot register %s.%s' % (
            name, known.__module__, known.__qualname__, cls.__module__, cls.__qualname__))
    _REGISTRY[name] = cls
    return cls


def registered_components() -> Dict[str, type]:
    return dict(_REGISTRY)


def register_from_spec(spec: str) -> type:
    """Imports and registers `[package.]module:ClassName` (the -r/--register option)."""
    module_name, sep, class_name = spec.partition(':')
    if not sep or not module_name or not class_name:
        raise ConfigError('--register %r: expected [package.]module:ClassName' % spec)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # an ImportError, or anything the plugin's import raised
        raise ConfigError('--register %s: cannot import module %r: %s: %s' % (
            spec, module_name, type(e).__name__, _exception_text(e)))
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise ConfigError('--register %s: module %r has no class %r' % (
            spec, module_name, class_name))
    return register(cls)


# ---------------------------------------------------------------------------------------------
# Annotations with value checks: Numeric(0, 60), Path(absolute=True), Str.

class _Checked:
    """Base of annotation types that check a value: check() returns an error text or None."""
    description = 'value'

    @classmethod
    def check(cls, value):  # pragma: no cover - overridden
        return None


def Numeric(min_value=None, max_value=None):
    """An int or float annotation with an inclusive range, e.g. `interval: Numeric(0, 60)`."""
    desc = 'number' + (' in [%s, %s]' % (min_value, max_value) if min_value is not None
                       and max_value is not None else ' >= %s' % min_value if min_value is not None
                       else ' <= %s' % max_value if max_value is not None else '')

    def check(cls, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return 'expected a %s' % desc  # value != value: NaN
        if (min_value is not None and value < min_value) or (
                max_value is not None and value > max_value):
            return 'expected a %s' % desc  # the caller adds the value, unless it is a secret
        return None
    return type('Numeric', (_Checked,), {'description': desc, 'check': classmethod(check),
                                         'min_value': min_value, 'max_value': max_value})


def Path(absolute=False, must_exist=False, mode=None):
    """A file system path annotation: optionally absolute, optionally existing; with `mode`
    (os.R_OK, os.W_OK, ... as the original agent's Path took) existing and accessible so."""
    must_exist = must_exist or mode is not None
    desc = ('absolute ' if absolute else '') + 'path' + (
        ' to an existing file' if must_exist else '')

    def check(cls, value):
        if not isinstance(value, str) or not value:
            return 'expected %s %s' % ('an' if absolute else 'a', desc)
        if '\x00' in value:
            return 'a path cannot contain NUL'
        if absolute and not value.startswith('/'):
            return 'expected an absolute path (starting with /)'  # the caller adds the value
        if must_exist and not os.path.exists(value):
            return 'expected a path to an existing file'
        if mode is not None and not os.access(value, mode):
            return 'expected a path this user can %s' % '/'.join(
                word for bit, word in ((os.R_OK, 'read'), (os.W_OK, 'write'), (os.X_OK, 'execute'))
                if mode & bit) or 'access'
        return None
    return type('Path', (_Checked,), {'description': desc, 'check': classmethod(check)})


class Str(_Checked):
    """A string annotation (kept for configs and plugins written for the original agent)."""
    description = 'string'

    @classmethod
    def check(cls, value):
        return None if isinstance(value, str) else 'expected a string'


class _EnvValue(str):
    """A string read from the environment by `!Env NAME` (its value is never printed)."""
    env_name = ''


# ---------------------------------------------------------------------------------------------
# typing introspection that works on Python 3.6 (typing.List origins) and 3.7+ (list origins).

_ORIGINS = {typing.List: list, typing.Dict: dict, typing.Set: set, typing.Tuple: tuple,
            typing.Sequence: list, typing.Mapping: dict, typing.FrozenSet: frozenset}


def _origin(tp):
    if sys.version_info >= (3, 8):
        origin = typing.get_origin(tp)
    else:
        origin = getattr(tp, '__origin__', None)
    if origin is None and tp in _ORIGINS:  # bare typing.List on 3.6
        return _ORIGINS[tp]
    if origin is not None and type(tp).__name__ == 'UnionType':  # int | None
        return typing.Union
    return _ORIGINS.get(origin, origin)


def _args(tp):
    args = typing.get_args(tp) if sys.version_info >= (3, 8) else getattr(tp, '__args__', None)
    return tuple(a for a in (args or ()) if not isinstance(a, typing.TypeVar))


def describe(tp) -> str:
    """A type annotation in words, for error messages."""
    if tp is Any or tp is inspect.Parameter.empty or isinstance(tp, typing.TypeVar):
        return 'any value'
    if tp is type(None):
        return 'null'
    origin, args = _origin(tp), _args(tp)
    if origin is typing.Union:
        return ' or '.join(describe(a) for a in args)
    if origin in (list, set, frozenset, tuple):
        return 'a list' + (' of %s' % _plural(describe(args[0])) if args else '')
    if origin is dict:
        return 'a mapping' + (' of %s to %s' % (_plural(describe(args[0])),
                                                _plural(describe(args[1])))
                              if len(args) == 2 else '')
    if inspect.isclass(tp):
        if issubclass(tp, _Checked):
            text = tp.description
            if text.split(' ', 1)[0] in ('a', 'an'):
                return text
            return ('an ' if text[:1] in 'aeiou' else 'a ') + text
        if issubclass(tp, enum.Enum):
            return 'one of ' + ', '.join(repr(m.value) for m in tp)
        if tp is bool:
            return 'true or false'
        if tp in (int, float, str):
            return {int: 'an integer', float: 'a number', str: 'a string'}[tp]
        subclasses = sorted(n for n, c in _REGISTRY.items() if issubclass(c, tp))
        if tp.__name__ in _REGISTRY and subclasses == [tp.__name__]:
            return '!' + tp.__name__
        hint = ' (%s)' % ', '.join('!' + n for n in subclasses[:8]) if subclasses else ''
        return 'a %s component%s' % (tp.__name__, hint)
    return str(tp)


def _plural(description: str) -> str:
    """'a string' -> 'strings', 'an integer or null' -> 'integers or null': list contents."""
    words = []
    for part in description.split(' or '):
        article, _, rest = part.partition(' ')
        if article in ('a', 'an') and rest:
            noun, space, tail = rest.partition(' ')
            part = noun + 's' + space + tail
        words.append(part)
    return ' or '.join(words)


def _hints(cls):
    """Constructor annotations; unresolvable forward references count as Any."""
    init = cls.__init__
    for target in (init, cls):
        try:
            return typing.get_type_hints(target)
        except Exception:
            continue
    return {k: (Any if isinstance(v, str) else v)
            for k, v in getattr(init, '__annotations__', {}).items()}


# ---------------------------------------------------------------------------------------------
# Loading.

class _Mismatch(Exception):
    """A value does not fit its annotation; the builder adds the location."""


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
            if name not in _REGISTRY:
                close = difflib.get_close_matches(name, list(_REGISTRY) + ['Env'], 1)
                hint = '; did you mean !%s?' % close[0] if close else ''
                raise self.error('unknown tag !%s: not a registered component%s (register a '
                                 'plugin with -r module:%s)' % (name, hint, name), node, path)
            value = self._component(_REGISTRY[name], node, path)
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
        value = _EnvValue(os.environ[node.value])
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
        hints = _hints(cls)
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        named = [n for n, p in params.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        kwargs = {}
        for key_node, value_node in items:
            key = self.loader.construct_object(key_node) if isinstance(
                key_node, yaml.ScalarNode) else None
            key_path = _join(path, key)
            if not isinstance(key, str):
                raise self.error('keys of !%s must be names' % cls.__name__, key_node, path)
            if key in kwargs:
                raise self.error('duplicate key', key_node, key_path)
            if key not in named and not takes_any:
                close = difflib.get_close_matches(key, named, 1)
                hint = 'did you mean %r? ' % close[0] if close else ''
                raise self.error('unknown key for !%s; %sexpected one of: %s' % (
                    cls.__name__, hint, ', '.join(named) or '(no arguments)'), key_node, key_path)
            kwargs[key] = self.build(value_node, key_path, _annotation(hints, params, key))
        missing = [n for n in named if params[n].default is inspect.Parameter.empty
                   and n not in kwargs]
        if missing:
            raise self.error('!%s is missing required key%s: %s' % (
                cls.__name__, 's' if len(missing) > 1 else '', ', '.join(missing)), node, path)
        try:
            obj = cls(**kwargs)
        except Exception as e:
            text = e.message if isinstance(e, ConfigError) else _exception_text(e)
            # 'key: problem' from a constructor points at that key, when the config has it
            key, sep, problem = text.partition(': ')
            for key_node, value_node in items:
                if sep and getattr(key_node, 'value', None) == key:
                    raise self.error('!%s: %s' % (cls.__name__, problem), value_node,
                                     _join(path, key))
            raise self.error('!%s: %s' % (cls.__name__, text), node, path)
        self.components[id(node)] = obj
        return obj

    def _mapping(self, node, path, expected):
        self.loader.flatten_mapping(node)
        key_type, value_type = Any, Any
        for alternative in _alternatives(expected):
            if _origin(alternative) is dict:
                args = _args(alternative)
                key_type, value_type = args if len(args) == 2 else (Any, Any)
                break
        result = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, path, key_type)
            if isinstance(key, (list, dict)):
                raise self.error('mapping keys must be plain values', key_node, path)
            if key in result:
                raise self.error('duplicate key', key_node, _join(path, key))
            result[key] = self.build(value_node, _join(path, key), value_type)
        return result

    def _sequence(self, node, path, expected):
        item_type = Any
        for alternative in _alternatives(expected):
            if _origin(alternative) in (list, set, frozenset, tuple):
                args = _args(alternative)
                item_type = args[0] if args else Any
                break
        return [self.build(item, '%s[%d]' % (path, i), item_type)
                for i, item in enumerate(node.value)]

    def _coerce(self, value, expected, node, path):
        try:
            return _check(value, expected)
        except _Mismatch as e:
            shown = _shown(value, path)
            raise self.error('%s%s' % (e, (', got ' + shown) if shown else ''), node, path)


def _annotation(hints, params, key):
    """The resolved annotation of a parameter (from a synthesized __signature__ if need be)."""
    if key in hints:
        return hints[key]
    annotation = params[key].annotation if key in params else Any
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return Any
    return annotation


def _alternatives(tp):
    return _args(tp) if _origin(tp) is typing.Union else (tp,)


def _join(path, key):
    return '%s.%s' % (path, key) if path else str(key)


def _shown(value, path):
    """How a bad value is shown in an error: secrets and !Env values never are."""
    if isinstance(value, _EnvValue):
        return '(the value of !Env %s)' % value.env_name
    if path and _SECRET_KEY.search(path.rsplit('.', 1)[-1]):
        return '(value hidden)'
    if value is None:
        return 'null'
    if isinstance(value, (dict, list)):
        return 'a mapping' if isinstance(value, dict) else 'a list'
    if inspect.isclass(type(value)) and type(value).__name__ in _REGISTRY:
        return '!' + type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _exception_text(e):
    text = str(e) or type(e).__name__
    return text.splitlines()[0] if text else type(e).__name__


def _check(value, tp):
    """Returns value (converted where lossless: int to float, !Env text to numbers) or raises."""
    if tp is Any or tp is inspect.Parameter.empty or tp is object or isinstance(tp, typing.TypeVar):
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch('expected null')
    origin = _origin(tp)
    if origin is typing.Union:
        for alternative in _args(tp):
            try:
                return _check(value, alternative)
            except _Mismatch:
                continue
        raise _Mismatch('expected ' + describe(tp))
    if isinstance(value, _EnvValue) and tp is not str and not (
            inspect.isclass(tp) and issubclass(tp, (str, Str))):
        value = _from_env(value)
    if origin in (list, set, frozenset, tuple):
        if not isinstance(value, list):
            raise _Mismatch('expected ' + describe(tp))
        return value if origin is list else origin(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch('expected ' + describe(tp))
        return value
    if not inspect.isclass(tp):
        return value  # an annotation we cannot check (a string, a NewType, ...)
    if issubclass(tp, _Checked):
        problem = tp.check(value)
        if problem:
            raise _Mismatch(problem)
        return value
    if issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise _Mismatch('expected ' + describe(tp))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch('expected a number')
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch('expected an integer')
    if isinstance(value, tp):
        return value
    raise _Mismatch('expected ' + describe(tp))


def _from_env(value):
    """!Env values are text; where a number or bool is expected, read them as YAML would."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value


def load_config(filename: str, check_permissions: bool = True) -> Dict[str, Any]:
    """Loads, checks and builds the config: {'runner': Runner, 'loggers': {module: level}}."""
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
    return load_config_text(text, filename)


def load_config_text(text: str, filename: str = '<config>') -> Dict[str, Any]:
    from wca.runners import Runner  # late: runners import this module
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, ...)
        raise ConfigError('invalid YAML: %s' % _exception_text(e), filename,
                          text.count('\n', 0, e.position) + 1)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise ConfigError('invalid YAML: %s' % (e.problem or e.context), filename,
                              mark.line + 1 if mark else None)
        except yaml.YAMLError as e:
            raise ConfigError('invalid YAML: %s' % _exception_text(e), filename)
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
                config[key] = builder.build(value_node, key, Runner)
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


__all__ = ['ConfigError', 'register', 'register_from_spec', 'registered_components', 'load_config',
           'load_config_text', 'Numeric', 'Path', 'Str', 'describe', 'List', 'Dict', 'Optional']
