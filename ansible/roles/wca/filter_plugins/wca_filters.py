"""Filters of the wca role: the agent's YAML config from variables, and kernel command lines.

Plain Python and PyYAML (no Ansible imports), so tests/ansible/ can import this file directly.

Components are mappings with a `kind` key naming the component class, the rest its arguments:

    {kind: CgroupDirectoryNode, root: /, max_depth: 2}   ->   !CgroupDirectoryNode
                                                                root: /
                                                                max_depth: 2
    {kind: Env, name: HOST_IP}                           ->   !Env HOST_IP

Kernel arguments are compared by key (the part before "="): `rdt=cmt` replaces `rdt=l3cat`.
"""
import re

import yaml

_IDENTIFIER = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class _Component(object):
    def __init__(self, kind, arguments):
        self.kind, self.arguments = kind, arguments


class _Env(object):
    def __init__(self, name):
        self.name = name


class _Dumper(yaml.SafeDumper):
    pass


def _represent_component(dumper, data):
    return dumper.represent_mapping('!' + data.kind, list(data.arguments.items()))


def _represent_env(dumper, data):
    return dumper.represent_scalar('!Env', data.name)


_Dumper.add_representer(_Component, _represent_component)
_Dumper.add_representer(_Env, _represent_env)


def _plain(value, where):
    """Ansible's str/dict/list subclasses as plain values, components and !Env as tagged."""
    if isinstance(value, dict):
        if 'kind' in value:
            kind = value['kind']
            if not isinstance(kind, str) or not _IDENTIFIER.match(kind):
                raise ValueError('%s.kind: expected a component class name such as '
                                 'LogStorage, got %r' % (where, kind))
            if kind == 'Env':
                name = value.get('name')
                if set(value) != {'kind', 'name'} or not isinstance(name, str) or not name:
                    raise ValueError('%s: an environment variable is written '
                                     '{kind: Env, name: VARIABLE}, got %r' % (where, dict(value)))
                return _Env(str(name))
            return _Component(str(kind), dict(
                (str(k), _plain(v, '%s.%s' % (where, k))) for k, v in value.items()
                if k != 'kind'))
        return dict((str(k), _plain(v, '%s.%s' % (where, k))) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v, '%s[%d]' % (where, i)) for i, v in enumerate(value)]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise ValueError('%s: cannot put a %s in the config' % (where, type(value).__name__))


def wca_config_yaml(config):
    """The agent's config file text: {'runner': component, 'loggers': {...}}."""
    return yaml.dump(_plain(config, 'config'), Dumper=_Dumper, default_flow_style=False,
                     sort_keys=False, width=1000, allow_unicode=True)


def _key(argument):
    return argument.split('=', 1)[0]


def _split(arguments):
    if isinstance(arguments, (list, tuple)):
        return [str(a) for a in arguments]
    return str(arguments or '').split()


def wca_kernel_args(current, wanted):
    """`current` with every wanted argument in it: an argument with the same key and another
    value is replaced in place; arguments not there yet are appended; the rest is kept."""
    wanted = _split(wanted)
    by_key = dict((_key(a), a) for a in wanted)
    result, placed = [], set()
    for argument in _split(current):
        key = _key(argument)
        if key in by_key:
            if key not in placed:
                result.append(by_key[key])
                placed.add(key)
            continue  # a second occurrence of the key goes
        result.append(argument)
    result += [a for a in wanted if _key(a) not in placed]
    return ' '.join(result)


def wca_kernel_args_conflicts(current, wanted):
    """The arguments of `current` that a wanted argument replaces (same key, other value)."""
    wanted = _split(wanted)
    keys, exact = set(_key(a) for a in wanted), set(wanted)
    return [a for a in _split(current) if _key(a) in keys and a not in exact]


def wca_kernel_args_without_conflicts(current, wanted):
    """`current` without the arguments a wanted one replaces (for GRUB_CMDLINE_LINUX_DEFAULT,
    which the kernel reads after GRUB_CMDLINE_LINUX)."""
    conflicts = set(wca_kernel_args_conflicts(current, wanted))
    return ' '.join(a for a in _split(current) if a not in conflicts)


def wca_kernel_args_missing(current, wanted):
    """The wanted arguments that `current` (e.g. /proc/cmdline) lacks."""
    present = set(_split(current))
    return [a for a in _split(wanted) if a not in present]


def wca_shell_variable(text, name):
    """The value of the last `NAME=value` line of a shell variables file such as
    /etc/default/grub, without its quotes ('' when there is none)."""
    value = ''
    pattern = re.compile(r'^%s=(.*?)\s*$' % re.escape(name))
    for line in str(text).splitlines():
        match = pattern.match(line)
        if match:
            value = match.group(1)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
                value = value[1:-1]
    return value


def wca_unquotable(values, spaces=False):
    """The values that cannot go, as they are, between the double quotes of a systemd
    EnvironmentFile line and through the unit's $WCA_ARGS splitting: those with a double or
    single quote, a backslash, $, a backquote or a control character, and (unless `spaces`)
    those with white space or that are empty."""
    bad = []
    for value in values:
        text = str(value)
        if any(c in '"\'\\$`' or ord(c) < 32 or ord(c) == 127 for c in text) or (
                not spaces and (not text or any(c.isspace() for c in text))):
            bad.append(text)
    return bad


class FilterModule(object):
    def filters(self):
        return {
            'wca_config_yaml': wca_config_yaml,
            'wca_kernel_args': wca_kernel_args,
            'wca_kernel_args_conflicts': wca_kernel_args_conflicts,
            'wca_kernel_args_without_conflicts': wca_kernel_args_without_conflicts,
            'wca_kernel_args_missing': wca_kernel_args_missing,
            'wca_shell_variable': wca_shell_variable,
            'wca_unquotable': wca_unquotable,
        }
