"""The config schema: the registry of components, annotation types with value checks
(Numeric, Path, Str), and the check of a value against an annotation.

Imports nothing of wca, so any module can annotate its constructor with these.
"""
import enum
import importlib
import inspect
import os
import re
import sys
import typing
from typing import Any, Dict

REGISTRY = {}  # type: Dict[str, type]
_SECRET_KEY = re.compile(r'pass|secret|token|credential|auth', re.IGNORECASE)


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
    known = REGISTRY.get(name)
    if known is not None and known is not cls and (
            known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError('component name %r is taken by %s.%s; cannot register %s.%s' % (
            name, known.__module__, known.__qualname__, cls.__module__, cls.__qualname__))
    REGISTRY[name] = cls
    return cls


def registered_components() -> Dict[str, type]:
    return dict(REGISTRY)


def register_from_spec(spec: str) -> type:
    """Imports and registers `[package.]module:ClassName` (the -r/--register option)."""
    module_name, sep, class_name = spec.partition(':')
    if not sep or not module_name or not class_name:
        raise ConfigError('--register %r: expected [package.]module:ClassName' % spec)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # an ImportError, or anything the plugin's import raised
        raise ConfigError('--register %s: cannot import module %r: %s: %s' % (
            spec, module_name, type(e).__name__, exception_text(e)))
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

    @classmethod
    def accepts_class(cls, value_class):
        """Whether instances of value_class may pass check(): asked before a component is built."""
        return True


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

    def accepts_class(cls, value_class):
        return issubclass(value_class, (int, float)) and not issubclass(value_class, bool)
    return type('Numeric', (_Checked,), {'description': desc, 'check': classmethod(check),
                                         'accepts_class': classmethod(accepts_class),
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
    return type('Path', (_Checked,), {'description': desc, 'check': classmethod(check),
                                      'accepts_class': classmethod(_accepts_str)})


class Str(_Checked):
    """A string annotation (kept for configs and plugins written for the original agent)."""
    description = 'string'

    @classmethod
    def check(cls, value):
        return None if isinstance(value, str) else 'expected a string'

    @classmethod
    def accepts_class(cls, value_class):
        return _accepts_str(cls, value_class)


def _accepts_str(cls, value_class):
    return issubclass(value_class, str)


class Mismatch(Exception):
    """A value does not fit its annotation; the loader adds the location."""


class EnvValue(str):
    """A string read from the environment by `!Env NAME` (its value is never printed)."""
    env_name = ''


# ---------------------------------------------------------------------------------------------
# typing introspection that works on Python 3.6 (typing.List origins) and 3.7+ (list origins).

_ORIGINS = {typing.List: list, typing.Dict: dict, typing.Set: set, typing.Tuple: tuple,
            typing.Sequence: list, typing.Mapping: dict, typing.FrozenSet: frozenset}


def type_origin(tp):
    if sys.version_info >= (3, 8):
        origin = typing.get_origin(tp)
    else:
        origin = getattr(tp, '__origin__', None)
    if origin is None and tp in _ORIGINS:  # bare typing.List on 3.6
        return _ORIGINS[tp]
    if origin is not None and type(tp).__name__ == 'UnionType':  # int | None
        return typing.Union
    return _ORIGINS.get(origin, origin)


def type_args(tp):
    args = typing.get_args(tp) if sys.version_info >= (3, 8) else getattr(tp, '__args__', None)
    return tuple(a for a in (args or ()) if not isinstance(a, typing.TypeVar))


def describe(tp) -> str:
    """A type annotation in words, for error messages."""
    if tp is Any or tp is inspect.Parameter.empty or isinstance(tp, typing.TypeVar):
        return 'any value'
    if tp is type(None):
        return 'null'
    origin, args = type_origin(tp), type_args(tp)
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
        subclasses = sorted(n for n, c in REGISTRY.items() if issubclass(c, tp))
        if tp.__name__ in REGISTRY and subclasses == [tp.__name__]:
            return '!' + tp.__name__
        hint = ' (%s)' % ', '.join('!' + n for n in subclasses[:8]) if subclasses else ''
        return 'a %s component%s' % (tp.__name__, hint)
    return str(tp)


def _plural(description: str) -> str:
    """'a string' -> 'strings', 'an integer or null' -> 'integers or null', 'a Node component
    (...)' -> 'Node components (...)': list contents."""
    words = []
    for part in description.split(' or '):
        article, _, rest = part.partition(' ')
        if article in ('a', 'an') and rest:
            noun, space, tail = rest.partition(' ')
            if tail == 'component' or tail.startswith('component '):
                noun, tail = noun + ' component', tail[len('component'):].lstrip()
                space = ' ' if tail else ''
            part = noun + 's' + space + tail
        words.append(part)
    return ' or '.join(words)


def constructor_hints(cls):
    """Constructor annotations; unresolvable forward references count as Any."""
    init = cls.__init__
    for target in (init, cls):
        try:
            return typing.get_type_hints(target)
        except Exception:
            continue
    return {k: (Any if isinstance(v, str) else v)
            for k, v in getattr(init, '__annotations__', {}).items()}


def annotation_of(hints, params, key):
    """The resolved annotation of a parameter (from a synthesized __signature__ if need be)."""
    if key in hints:
        return hints[key]
    annotation = params[key].annotation if key in params else Any
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return Any
    return annotation


def alternatives(tp):
    return type_args(tp) if type_origin(tp) is typing.Union else (tp,)


def join_path(path, key):
    return '%s.%s' % (path, key) if path else str(key)


def shown_value(value, path):
    """How a bad value is shown in an error: secrets and !Env values never are."""
    if isinstance(value, EnvValue):
        return '(the value of !Env %s)' % value.env_name
    if secret_path(path):
        return '(value hidden)'
    if value is None:
        return 'null'
    if isinstance(value, (dict, list)):
        return 'a mapping' if isinstance(value, dict) else 'a list'
    if inspect.isclass(type(value)) and type(value).__name__ in REGISTRY:
        return '!' + type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def secret_path(path):
    """Whether the last key of a key path looks like it holds a secret (password, token...)."""
    return bool(path and _SECRET_KEY.search(path.rsplit('.', 1)[-1]))


def exception_text(e):
    text = str(e) or type(e).__name__
    return text.splitlines()[0] if text else type(e).__name__


def check_value(value, tp):
    """Returns value (converted where lossless: int to float, !Env text to numbers) or raises."""
    if tp is Any or tp is inspect.Parameter.empty or tp is object or isinstance(tp, typing.TypeVar):
        return value
    if tp is type(None):
        if value is None:
            return None
        raise Mismatch('expected null')
    origin = type_origin(tp)
    if origin is typing.Union:
        for alternative in type_args(tp):
            try:
                return check_value(value, alternative)
            except Mismatch:
                continue
        raise Mismatch('expected ' + describe(tp))
    if isinstance(value, EnvValue) and tp is not str and not (
            inspect.isclass(tp) and issubclass(tp, (str, Str))):
        value = _from_env(value)
    if origin in (list, set, frozenset, tuple):
        if not isinstance(value, list):
            raise Mismatch('expected ' + describe(tp))
        return value if origin is list else origin(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise Mismatch('expected ' + describe(tp))
        return value
    if not inspect.isclass(tp):
        return value  # an annotation we cannot check (a string, a NewType, ...)
    if issubclass(tp, _Checked):
        problem = tp.check(value)
        if problem:
            raise Mismatch(problem)
        return value
    if issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise Mismatch('expected ' + describe(tp))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise Mismatch('expected a number')
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch('expected an integer')
    if isinstance(value, tp):
        return value
    raise Mismatch('expected ' + describe(tp))


def class_fits(value_class, tp) -> bool:
    """Whether an instance of value_class could pass check_value(instance, tp). The loader asks
    before it builds a component (or a mapping's or a list's contents), so that nothing of the
    wrong kind is ever constructed: a constructor may act (a registered subprocess.Popen runs a
    command). A factory that is not a class is checked only once it is built."""
    if not inspect.isclass(value_class):
        return True
    if tp is Any or tp is inspect.Parameter.empty or tp is object or isinstance(tp, typing.TypeVar):
        return True
    if tp is type(None):
        return False
    origin = type_origin(tp)
    if origin is typing.Union:
        return any(class_fits(value_class, alternative) for alternative in type_args(tp))
    if origin in (list, set, frozenset, tuple):
        return issubclass(value_class, list)
    if origin is dict:
        return issubclass(value_class, dict)
    if not inspect.isclass(tp):
        return True  # an annotation check_value cannot check either
    if issubclass(tp, _Checked):
        return bool(tp.accepts_class(value_class))
    if issubclass(tp, enum.Enum):
        return issubclass(value_class, (tp, str, int, float))  # tp(value) converts these
    if tp in (int, float):
        return issubclass(value_class, (int, float) if tp is float else int) and not issubclass(
            value_class, bool)
    try:
        return issubclass(value_class, tp)
    except TypeError:  # an annotation issubclass cannot answer (a non-runtime Protocol, ...)
        return True


def _from_env(value):
    """!Env values are text; where a number or bool is expected, read them as YAML would."""
    import yaml  # only here: the schema needs no YAML otherwise
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
