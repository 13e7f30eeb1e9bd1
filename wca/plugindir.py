"""The installed agent's plugin directory, /etc/wca/plugins: where `-r module:Class` finds
modules an operator drops in.

The packaged launchers run Python with -E (or -I), which ignores PYTHONPATH, so the RPM's
entry point (packaging/rpm/wca-main.py) and any other installed launcher call main() here
instead of wca.main.main(). The directory's finder comes last on sys.meta_path, after the
bundled packages and the standard library, so a plugin can never replace a module the agent
runs on.

Everything in it is code the agent runs with its capabilities, so it is code only root (or the
agent's own user) controls:
- at start, the directory, every directory above it and everything in it is checked; symbolic
  links are followed hop by hop (each link, where it leads, and every directory above each of
  those up to /), and a link that leads nowhere is refused (whoever creates its target would
  choose the code). Any problem refuses the directory: exit 2, one line.
- at import, a module is opened once, each directory on its real path with O_NOFOLLOW from /
  down, and the open descriptors are checked (owner, not writable by group or others); the
  module is compiled from the bytes read through that descriptor. A file swapped after the
  start check is refused, never run, and nothing is opened again by path after its check.
- only source (`name.py`, `package/__init__.py`) is loaded: never bytecode from __pycache__
  (which the standard loader trusts by timestamp and size), never extension modules.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import stat
import sys
from typing import List, Optional, Tuple

from wca.main import EXIT_CONFIG, main as wca_main

PLUGIN_DIR = '/etc/wca/plugins'
MAX_LINKS = 40  # as the kernel's limit on symbolic links in one lookup
# O_PATH: a directory the agent may only search (mode --x) is still walked and checked.
_OPEN_DIR = getattr(os, 'O_PATH', os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(
    os, 'O_CLOEXEC', 0)
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0)


def _own_reason(path: str, st: os.stat_result, uid: int, sticky_ok: bool) -> Optional[str]:
    if stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH) and not (
            sticky_ok and st.st_mode & stat.S_ISVTX):
        return ('%s is writable by group or others (mode %04o): others could make the agent run '
                'their code; fix with: chmod go-w %s' % (path, stat.S_IMODE(st.st_mode), path))
    if st.st_uid not in (0, uid):
        return ('%s is owned by uid %d, neither root nor this user (uid %d): its owner could '
                'make the agent run their code; fix with: chown root %s' % (
                    path, st.st_uid, uid, path))
    return None


def _above_reason(directory: str, uid: int) -> Optional[str]:
    """The directory and every one above it, up to / (sticky ones like /tmp are fine: no one
    can replace another's entries there)."""
    while True:
        reason = _own_reason(directory, os.stat(directory), uid, sticky_ok=True)
        if reason or directory == os.path.dirname(directory):
            return reason
        directory = os.path.dirname(directory)


def _path_reason(path: str, uid: int) -> Optional[str]:
    """The path, followed one symbolic link at a time: each link (its owner could point it
    elsewhere), each place it leads, the directories above each; then the file or directory
    it ends at. A link that leads nowhere is refused."""
    path = os.path.abspath(path)
    for _ in range(MAX_LINKS):
        directory = os.path.realpath(os.path.dirname(path))
        reason = _above_reason(directory, uid)
        if reason:
            return reason
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return ('%s does not exist, and a symbolic link in the plugin directory leads to it: '
                    'whoever creates it could make the agent run their code; remove the link'
                    % path)
        if not stat.S_ISLNK(st.st_mode):
            return _own_reason(path, st, uid, sticky_ok=False)
        if st.st_uid not in (0, uid):
            return ('symbolic link %s is owned by uid %d, neither root nor this user (uid %d): '
                    'its owner could point it at their code; fix with: chown -h root %s' % (
                        path, st.st_uid, uid, path))
        path = os.path.normpath(os.path.join(directory, os.readlink(path)))
    return '%s: too many levels of symbolic links' % path


def unsafe_reason(directory: str = PLUGIN_DIR) -> Optional[str]:
    """Why the plugin directory must not be used, or None when only root (or this user) can
    change its contents: the directory, the directories above it, and everything reachable in
    it, through symbolic links too (where they lead, and the directories above that)."""
    uid = os.geteuid()
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            return '%s is not a directory' % directory
        reason = _path_reason(directory, uid)
        if reason:
            return reason
        pending = [directory]
        seen = {os.path.realpath(directory)}
        while pending:
            current = pending.pop(0)
            for name in sorted(os.listdir(current)):
                path = os.path.join(current, name)
                st = os.lstat(path)
                real = os.path.realpath(path)
                if stat.S_ISLNK(st.st_mode):
                    reason = _path_reason(path, uid)
                    st = st if reason else os.stat(real)
                else:
                    reason = _own_reason(path, st, uid, sticky_ok=False)
                if reason:
                    return reason
                if stat.S_ISDIR(st.st_mode) and real not in seen:
                    seen.add(real)
                    pending.append(real)  # its entries are named by where they really are
    except OSError as e:
        return 'cannot check %s: %s' % (e.filename or directory, e.strerror or e)
    return None


def read_checked(path: str, uid: Optional[int] = None) -> bytes:
    """The contents of the file at `path` as it is when read, checked through the descriptors
    that read it: each directory from / down (opened without following links), then the file
    (regular, root's or this user's, writable by no one else). Raises ImportError naming the
    problem; there is no window between the check and the read."""
    uid = os.geteuid() if uid is None else uid
    real = os.path.realpath(path)
    parts = [p for p in real.split('/') if p]
    fd = os.open('/', _OPEN_DIR)
    shown = '/'
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                st = os.fstat(fd)
                reason = _own_reason(shown, st, uid, sticky_ok=True)
                if reason:
                    raise ImportError('plugin %s refused: %s' % (path, reason))
                child = os.open(part, _OPEN_FILE if last else _OPEN_DIR, dir_fd=fd)
            except OSError as e:
                raise ImportError('plugin %s refused: cannot open %s: %s (changed since it was '
                                  'checked?)' % (path, os.path.join(shown, part), e.strerror))
            os.close(fd)
            fd = child
            shown = os.path.join(shown, part)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImportError('plugin %s refused: %s is not a regular file' % (path, shown))
        reason = _own_reason(shown, st, uid, sticky_ok=False)
        if reason:
            raise ImportError('plugin %s refused: %s' % (path, reason))
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b''.join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


class PluginLoader(importlib.abc.Loader):
    """Runs the source it was given (read and checked by read_checked), and nothing else."""

    def __init__(self, origin: str, source: bytes, package_dir: Optional[str]):
        self.origin = origin
        self.source = source
        self.package_dir = package_dir  # where its submodules are, for a package

    def create_module(self, spec):
        return None  # the default module

    def exec_module(self, module):
        module.__cached__ = None  # no bytecode belongs to it
        code = compile(self.source, self.origin, 'exec', dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname):  # tracebacks show the lines that ran
        return importlib.util.decode_source(self.source)

    def is_package(self, fullname):
        return self.package_dir is not None


class PluginFinder(importlib.abc.MetaPathFinder):
    """Finds top-level modules in the plugin directory (placed last on sys.meta_path), or the
    submodules of plugin packages (placed first, so the standard path finder, which would read
    __pycache__ and re-open files by path, never loads them)."""

    def __init__(self, directory: str, submodules: bool):
        self.directory = directory
        self.submodules = submodules

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition('.')
        if bool(parent) != self.submodules:
            return None
        if parent:
            loader = getattr(getattr(sys.modules.get(parent), '__spec__', None), 'loader', None)
            if not isinstance(loader, PluginLoader) or loader.package_dir is None:
                return None
            base = loader.package_dir
        else:
            base = self.directory
        package = os.path.join(base, name)
        if os.path.isdir(package):
            origin = os.path.join(package, '__init__.py')
            if not os.path.lexists(origin):
                return None  # no namespace packages: a plugin package has an __init__.py
        else:
            origin = package + '.py'
            if not os.path.lexists(origin):
                return None
        source = read_checked(origin)
        real_package = os.path.dirname(os.path.realpath(origin)) if origin.endswith(
            os.sep + '__init__.py') else None
        loader = PluginLoader(origin, source, real_package)
        spec = importlib.machinery.ModuleSpec(fullname, loader, origin=origin,
                                              is_package=real_package is not None)
        spec.has_location = True  # __file__ is the module's path
        if real_package is not None:
            spec.submodule_search_locations = [real_package]
        return spec


def shadowed(directory: str, path: List[str]) -> List[Tuple[str, str]]:
    """The modules of the directory that an import would find earlier on `path` (or built in),
    as (module file, where the import finds it): -r loads those, never the plugin."""
    found = []
    for entry in sorted(os.listdir(directory)):
        full = os.path.join(directory, entry)
        if entry.endswith('.py') and os.path.isfile(full):
            name = entry[:-3]
        elif os.path.isdir(full) and entry.isidentifier() and not entry.startswith('__'):
            name = entry
        else:
            continue
        if name in sys.builtin_module_names:
            found.append((full, 'the built-in module %s' % name))
            continue
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            origin = spec.origin if spec.origin not in (None, 'namespace') else ', '.join(
                spec.submodule_search_locations or [])
            found.append((full, origin))
    return found


def add_plugin_directory(directory: str = PLUGIN_DIR) -> Optional[str]:
    """Makes the directory's modules importable (after everything else) when it exists and is
    safe; returns the error that refuses it (None when it was added or does not exist).
    Warns on stderr about plugin modules that another module of the same name hides."""
    if not os.path.lexists(directory):
        return None
    reason = unsafe_reason(directory)
    if reason:
        return 'plugin directory %s refused: %s' % (directory, reason)
    for module, origin in shadowed(directory, sys.path):
        sys.stderr.write('wca: warning: %s is not loaded by -r: its name is taken by %s; rename '
                         'it\n' % (module, origin))
    if not any(isinstance(f, PluginFinder) and f.directory == directory
               for f in sys.meta_path):
        sys.meta_path.insert(0, PluginFinder(directory, submodules=True))
        sys.meta_path.append(PluginFinder(directory, submodules=False))
    return None


def main(argv=None, directory: str = PLUGIN_DIR):
    """The installed agent's entry point: wca.main.main() with the plugin directory's
    modules importable, or exit 2 with one line on stderr when the directory is refused."""
    error = add_plugin_directory(directory)
    if error:
        sys.stderr.write('wca: error: %s\n' % error)
        sys.exit(EXIT_CONFIG)
    wca_main(argv)


if __name__ == '__main__':
    main()
