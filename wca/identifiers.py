"""The one rule for identifiers that come from an orchestrator or a config and end up in a
cgroup path: pod uids, container ids, the `kubernetes.io/config.hash` annotation, Mesos
executor and container ids, static task paths.

The agent writes quotas, cpusets, resctrl groups and `clear_refs` with root's privileges into
the cgroups these name, so whoever controls the payload (a tenant's pod status, a fake agent
on a free port, a config typo) must not be able to name a cgroup outside the task's own. Each
identifier is checked for the shape its producer gives it before it joins a path, and the
cgroup it leads to is checked to lie under the expected parent (also after symlinks).

A failed check raises Rejected; its `reason` is the `wca_node_errors_total` label. Imports
nothing of wca, so that every layer can use it.
"""
import os
import re

INVALID = 'invalid_identifier'  # an identifier without the shape its producer gives it
OUTSIDE = 'cgroup_outside_root'  # a cgroup that does not lie under the expected parent

NAME_MAX = 255  # the longest file name Linux takes (and the longest Mesos id)

_HEX64 = re.compile('[0-9a-f]{64}')  # containerd, CRI-O and Docker container ids
_HEX32 = re.compile('[0-9a-f]{32}')  # the kubelet's config hash (md5), a static pod's uid
_UUID = re.compile('[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


class Rejected(ValueError):
    """An identifier or a cgroup the agent must not use; `reason` is a metric label."""
    reason = INVALID

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidIdentifier(Rejected):
    def __init__(self, kind: str, value: object, why: str):
        super().__init__('%s %s %s' % (kind, shown(value), why))
        self.kind = kind
        self.why = why


class OutsideParent(Rejected):
    reason = OUTSIDE


def shown(value: object, limit: int = 80) -> str:
    """A value for a log line: quoted, control characters escaped, cut at `limit`."""
    text = ascii(value) if isinstance(value, str) else '(a %s)' % type(value).__name__
    return text if len(text) <= limit else text[:limit - 4] + '...' + text[-1]


def _text(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(kind, value, 'is not a non-empty string')
    if len(value) > NAME_MAX:
        raise InvalidIdentifier(kind, value, 'is longer than %d characters' % NAME_MAX)
    return value


def _shaped(kind: str, value: object, pattern, shape: str) -> str:
    text = _text(kind, value)
    if not pattern.fullmatch(text):
        raise InvalidIdentifier(kind, value, 'is not %s' % shape)
    return text


def container_id(value: object) -> str:
    """A container id of containerd, CRI-O or Docker: 64 lower-case hex digits."""
    return _shaped('container id', value, _HEX64, '64 hex digits')


def pod_uid(value: object) -> str:
    """A pod's uid: a UUID (pods from the apiserver) or 32 hex digits (static pods, whose uid
    in the kubelet is their config hash)."""
    text = _text('pod uid', value)
    if not (_UUID.fullmatch(text) or _HEX32.fullmatch(text)):
        raise InvalidIdentifier('pod uid', value, 'is not a UUID (or a config hash)')
    return text


def config_hash(value: object) -> str:
    """The `kubernetes.io/config.hash` annotation of a static pod: the kubelet's md5 of it,
    32 hex digits (never a UUID, so never another API pod's uid)."""
    return _shaped('config hash', value, _HEX32, '32 hex digits')


def _component_problem(text: str):
    """Why `text` cannot be one directory of a path, or None."""
    if len(text) > NAME_MAX:
        return 'is longer than %d characters' % NAME_MAX
    if '/' in text:
        return "contains '/'"
    if text.startswith('.'):
        return "starts with '.'"
    if not all(' ' <= c <= '~' for c in text):
        return 'has characters other than printable ASCII'
    return None


def path_component(value: object, kind: str = 'path component') -> str:
    """A name that becomes one directory of a path (a Mesos executor or container id, a part
    of a configured cgroup path): 1-255 printable ASCII characters, no '/', not starting with
    '.' (so neither '.' nor '..'). Mesos' own rule for ids, without control characters,
    non-ASCII look-alikes or hidden names."""
    text = _text(kind, value)
    problem = _component_problem(text)
    if problem:
        raise InvalidIdentifier(kind, value, problem)
    return text


def cgroup_path(value: object, kind: str = 'cgroup path', root_ok: bool = False) -> str:
    """A cgroup path relative to the cgroup mounts, each part a path_component; returned as
    '/a/b' (surplus '/' dropped). '/' itself only when `root_ok`."""
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(kind, value, 'is not a non-empty string')
    parts = [part for part in value.split('/') if part]
    if not parts and not root_ok:
        raise InvalidIdentifier(kind, value, 'names no cgroup below the root')
    for part in parts:
        problem = _component_problem(part)
        if problem:
            raise InvalidIdentifier(kind, value, 'has a part %s that %s' % (shown(part), problem))
    return '/' + '/'.join(parts)


def traverses(cgroup_path_: str) -> bool:
    """True for a path that a join could take elsewhere: a '.' or '..' part, or a NUL."""
    return '\0' in cgroup_path_ or any(part in ('.', '..') for part in cgroup_path_.split('/'))


def is_under(path: str, parent: str) -> bool:
    """The cgroup path lies strictly below `parent` (both '/'-separated, without '..')."""
    parent = parent.rstrip('/')
    return path.startswith(parent + '/') and len(path) > len(parent) + 1 and not traverses(path)


def check_under(path: str, parent: str, what: str) -> str:
    if not is_under(path, parent):
        raise OutsideParent('%s %s is not under %s' % (what, shown(path), parent or '/'))
    return path


def check_resolved(directory: str, parent_directory: str, what: str) -> str:
    """The directory, with every symlink resolved, lies strictly below the resolved parent:
    a symlink in a cgroup tree does not take a task's writes elsewhere."""
    resolved, parent = os.path.realpath(directory), os.path.realpath(parent_directory)
    if not resolved.startswith(parent.rstrip('/') + '/'):
        raise OutsideParent('%s %s resolves to %s, outside %s' % (what, directory, resolved,
                                                                  parent))
    return resolved
