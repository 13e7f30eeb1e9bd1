"""Where the cgroup hierarchies are: v1 controllers (mounted together or apart) and cgroup2,
detected from /proc/self/mounts or given by a test; and discovery of child cgroups."""
import errno
import os
from typing import Dict, FrozenSet, List, Optional, Set, Tuple  # noqa: F401 (type comments)

from dataclasses import dataclass, field

from wca import fsutil
from wca.identifiers import shown, traverses

V1_CONTROLLERS = ('cpu', 'cpuacct', 'cpuset', 'memory', 'perf_event')
GONE = (errno.ENOENT, errno.ENODEV, errno.ESRCH)  # errors of a file whose cgroup was removed


class CgroupNotFound(Exception):
    """The task's cgroup exists in none of the hierarchies the agent reads."""

    def __init__(self, cgroup_path, searched):
        super().__init__('cgroup %s not found under %s' % (cgroup_path, ', '.join(searched)))
        self.cgroup_path = cgroup_path


class UnsafeCgroupPath(CgroupNotFound):
    """A cgroup path with a '.' or '..' part or a NUL, from a node that did not check it: it is
    never joined to a mount (it could name a cgroup outside the task's)."""

    def __init__(self, cgroup_path):
        Exception.__init__(self, "cgroup path %s has a '.' or '..' part or a NUL; not used" %
                           shown(cgroup_path))
        self.cgroup_path = cgroup_path


class CgroupVanished(Exception):
    """The task's cgroup was removed while the agent was reading it."""

    def __init__(self, cgroup_path, filename):
        super().__init__('cgroup %s vanished (%s)' % (cgroup_path, filename))
        self.cgroup_path = cgroup_path


@dataclass(frozen=True)
class CgroupLayout:
    """Mount points: v1 controller -> mount, and the cgroup2 (unified) mount, if any."""
    v1: Dict[str, str] = field(default_factory=dict)
    unified: Optional[str] = None
    unified_controllers: FrozenSet[str] = frozenset()

    @classmethod
    def detect(cls, mounts_file: str = '/proc/self/mounts') -> 'CgroupLayout':
        v1, unified = {}, None
        for line in fsutil.read_text(mounts_file).splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            fstype, mount_point, options = fields[2], _unescape(fields[1]), fields[3].split(',')
            if fstype == 'cgroup':
                for option in options:
                    if option in V1_CONTROLLERS:
                        v1.setdefault(option, mount_point)
            elif fstype == 'cgroup2' and unified is None:
                unified = mount_point
        return cls.with_unified(v1, unified)

    @classmethod
    def with_unified(cls, v1: Dict[str, str], unified: Optional[str]) -> 'CgroupLayout':
        controllers = frozenset()
        if unified:
            try:
                controllers = frozenset(fsutil.read_text(
                    os.path.join(unified, 'cgroup.controllers')).split())
            except OSError:
                pass
        return cls(dict(v1), unified, controllers)

    def v2_has(self, controller: str) -> bool:
        return bool(self.unified) and controller in self.unified_controllers \
            and controller not in self.v1

    def hierarchies(self) -> List[str]:
        """Distinct mount points the agent measures from (for discovery)."""
        mounts = [self.v1[c] for c in ('cpuacct', 'cpu', 'memory') if c in self.v1]
        if self.unified:
            mounts.append(self.unified)
        return list(dict.fromkeys(mounts))

    def directories(self, cgroup_path: str) -> List[str]:
        return [join(mount, cgroup_path) for mount in self.hierarchies()]

    def list_cgroups(self, root: str = '/', max_depth: int = 1) -> List[str]:
        """Child cgroups of `root` (relative paths like '/a/b') in any hierarchy, sorted."""
        found = set()  # type: Set[str]
        for mount in self.hierarchies():
            _walk(join(mount, root), root.rstrip('/'), max_depth, found)
        return sorted(found)

    def pids(self, cgroup_path: str) -> List[int]:
        """Processes in the cgroup (from the first hierarchy that has it)."""
        for directory in self.directories(cgroup_path):
            try:
                return [int(p) for p in fsutil.read_bytes(
                    os.path.join(directory, 'cgroup.procs')).split()]
            except OSError:
                continue
        return []


def source_directory(layout: CgroupLayout, controller: str, cgroup_path: str) -> Optional[str]:
    """The directory of `cgroup_path` where `controller` lives: a v1 controller name, 'v2:' for
    the unified hierarchy, or 'v2:<controller>' for a controller enabled there (and not in
    v1); None when it is mounted nowhere."""
    if controller.startswith('v2:'):
        wanted = controller[3:]
        if not layout.unified or (wanted and not layout.v2_has(wanted)):
            return None
        return join(layout.unified, cgroup_path)
    mount = layout.v1.get(controller)
    return join(mount, cgroup_path) if mount else None


def member_listings(layout: CgroupLayout, cgroup_paths: List[str], controllers: Tuple[str, ...],
                    v1_file: str, v2_file: str) -> List[Tuple[str, str]]:
    """(cgroup directory, file listing its members) for each of `cgroup_paths` (a task's cgroup
    and its subcgroups) that exists: from the first v1 hierarchy of `controllers` that has it
    (`v1_file`: tasks or cgroup.procs), else from cgroup2 (`v2_file`)."""
    listings = []
    mounts = [(layout.v1.get(c), v1_file) for c in controllers] + [(layout.unified, v2_file)]
    for path in cgroup_paths:
        for mount, filename in mounts:
            if mount:
                directory = join(mount, path)
                if os.path.isdir(directory):
                    listings.append((directory, directory + '/' + filename))
                    break
    return listings


def _unescape(path):
    return path.replace('\\040', ' ').replace('\\011', '\t').replace('\\134', '\\')


def join(mount, cgroup_path):
    """The directory of `cgroup_path` under `mount`; UnsafeCgroupPath for one that could lead
    elsewhere (the last line of the identifier rule, wca/identifiers.py)."""
    if traverses(cgroup_path):
        raise UnsafeCgroupPath(cgroup_path)
    return mount.rstrip('/') + '/' + cgroup_path.strip('/') if cgroup_path.strip('/') else mount


def _walk(directory, relative, depth, found):
    if depth <= 0:
        return
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        child = relative + '/' + entry.name
        found.add(child)
        _walk(entry.path, child, depth - 1, found)
