"""The installed agent's plugin directory, /etc/wca/plugins: where `-r module:Class` finds
modules an operator drops in.

The packaged launchers run Python with -E (or -I), which ignores PYTHONPATH, so the RPM's
entry point (packaging/rpm/wca-main.py) and any other installed launcher call main() here
instead of wca.main.main(). The directory goes at the end of sys.path, after the bundled
packages and the standard library, so a plugin can never replace a module the agent runs on.
Everything in it is code the agent runs with its capabilities: it is refused (exit 2) when
anyone but root (or the agent's own user) could change what is in it.
"""
import importlib.machinery
import os
import stat
import sys
from typing import List, Optional, Tuple

from wca.main import EXIT_CONFIG, main as wca_main

PLUGIN_DIR = '/etc/wca/plugins'


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


def _path_reason(path: str, uid: int) -> Optional[str]:
    """The path itself, then every directory above it (sticky ones like /tmp are fine), on the
    way to the path as written and to where its symbolic links lead."""
    real = os.path.realpath(path)
    reason = _own_reason(real, os.stat(real), uid, sticky_ok=False)
    if reason:
        return reason
    for full in sorted({os.path.abspath(path), real}):
        directory = os.path.dirname(full)
        while True:
            reason = _own_reason(directory, os.stat(directory), uid, sticky_ok=True)
            if reason:
                return reason
            if directory == os.path.dirname(directory):
                break
            directory = os.path.dirname(directory)
    return None


def unsafe_reason(directory: str = PLUGIN_DIR) -> Optional[str]:
    """Why the plugin directory must not be used, or None when only root (or this user) can
    change its contents: the directory, the directories above it, and everything in it
    (where a symbolic link leads included)."""
    uid = os.geteuid()
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            return '%s is not a directory' % directory
        reason = _path_reason(directory, uid)
        if reason:
            return reason
        for dirpath, dirnames, filenames in os.walk(directory):
            for name in sorted(dirnames) + sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    reason = _path_reason(path, uid) if os.path.exists(path) else None
                else:
                    reason = _own_reason(path, os.lstat(path), uid, sticky_ok=False)
                if reason:
                    return reason
    except OSError as e:
        return 'cannot check %s: %s' % (e.filename or directory, e.strerror or e)
    return None


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
    """Appends the directory to sys.path when it exists and is safe; returns the error that
    refuses it (None when it was added or does not exist). Warns on stderr about plugin
    modules that another module of the same name hides."""
    if not os.path.lexists(directory):
        return None
    reason = unsafe_reason(directory)
    if reason:
        return 'plugin directory %s refused: %s' % (directory, reason)
    for module, origin in shadowed(directory, sys.path):
        sys.stderr.write('wca: warning: %s is not loaded by -r: its name is taken by %s; rename '
                         'it\n' % (module, origin))
    if directory not in sys.path:
        sys.path.append(directory)
    return None


def main(argv=None, directory: str = PLUGIN_DIR):
    """The installed agent's entry point: wca.main.main() with the plugin directory on
    sys.path, or exit 2 with one line on stderr when the directory is refused."""
    error = add_plugin_directory(directory)
    if error:
        sys.stderr.write('wca: error: %s\n' % error)
        sys.exit(EXIT_CONFIG)
    wca_main(argv)


if __name__ == '__main__':
    main()
