"""Privileges: what the configured features need, and what this process has.

The agent runs as an unprivileged user with capabilities (see packaging/systemd/wca.service);
it refuses root unless told (--root), and names each missing privilege and how to grant it.
"""
import ctypes
import ctypes.util
import os
import stat
from typing import List, Optional

from dataclasses import dataclass

from wca import fsutil

CAP_DAC_OVERRIDE = 1
CAP_SETUID = 7
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38  # Linux 5.8: perf without CAP_SYS_ADMIN
CAP_SYS_PTRACE = 19
SECBIT_NO_SETUID_FIXUP = 1 << 2
PR_GET_SECUREBITS = 27


@dataclass(frozen=True)
class Privilege:
    name: str
    why: str
    grant: str


DAC_OVERRIDE = Privilege(
    'CAP_DAC_OVERRIDE', 'to write cgroup (and resctrl) files for allocations and RDT monitoring',
    'add CAP_DAC_OVERRIDE to AmbientCapabilities= and CapabilityBoundingSet= in the systemd unit'
    ' (packaging/systemd/wca.service does), or start it from root with: setpriv --reuid=wca '
    '--regid=wca --init-groups --inh-caps=+dac_override --ambient-caps=+dac_override wca ...')
SETUID = Privilege(
    'CAP_SETUID', 'to move tasks between resctrl groups',
    'add CAP_SETUID to AmbientCapabilities= and CapabilityBoundingSet= in the systemd unit')
NO_SETUID_FIXUP = Privilege(
    'SECBIT_NO_SETUID_FIXUP', 'to keep capabilities when changing the effective uid',
    'set SecureBits=no-setuid-fixup in the systemd unit')
PERF_EVENT_PARANOID = Privilege(
    'kernel.perf_event_paranoid <= 0', 'to open perf counters of other users\' processes (per '
    'task cgroup and uncore counters are system-wide per CPU)',
    'run: sysctl -w kernel.perf_event_paranoid=0 (and set it in /etc/sysctl.d/ to persist), or '
    'add CAP_PERFMON to AmbientCapabilities= and CapabilityBoundingSet= in the systemd unit')
# Working set size (wss_reset_cycles) and DIMMs (gather_hw_mm_topology). Measured on Linux 6.18:
# reading another user's /proc/<pid>/smaps_rollup fails with EACCES unless CAP_SYS_PTRACE (the
# kernel's PTRACE_MODE_READ check; CAP_DAC_OVERRIDE does not help), and /proc/<pid>/clear_refs
# is mode 0200, owned by the process's user, with no ptrace check: writing it takes
# CAP_DAC_OVERRIDE (CAP_SYS_PTRACE does not help).
SYS_PTRACE = Privilege(
    'CAP_SYS_PTRACE', 'to read /proc/<pid>/smaps_rollup of tasks\' processes that run as other '
    'users (working set size: wss_reset_cycles)',
    'add CAP_SYS_PTRACE to AmbientCapabilities= and CapabilityBoundingSet= in the systemd unit')
CLEAR_REFS = Privilege(
    'CAP_DAC_OVERRIDE', 'to write /proc/<pid>/clear_refs of tasks\' processes that run as other '
    'users (working set size resets: wss_reset_cycles, wss_stable_cycles)',
    'add CAP_DAC_OVERRIDE to AmbientCapabilities= and CapabilityBoundingSet= in the systemd unit')
DMI_TABLES = Privilege(
    'CAP_DAC_OVERRIDE', 'for dmidecode to read /sys/firmware/dmi/tables (gather_hw_mm_topology: '
    'true); it must be in the ambient set to pass to the dmidecode process',
    'add CAP_DAC_OVERRIDE to AmbientCapabilities= and CapabilityBoundingSet= in the systemd unit')


def effective_capabilities(proc: str = '/proc') -> int:
    for line in fsutil.read_text(os.path.join(proc, 'self/status')).splitlines():
        if line.startswith('CapEff:'):
            return int(line.split()[1], 16)
    return 0


def securebits() -> Optional[int]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        bits = libc.prctl(PR_GET_SECUREBITS, 0, 0, 0, 0)
    except (OSError, AttributeError):
        return None
    return None if bits < 0 else bits


def perf_event_paranoid(proc: str = '/proc') -> Optional[int]:
    try:
        return fsutil.read_int(os.path.join(proc, 'sys/kernel/perf_event_paranoid'))
    except (OSError, ValueError):
        return None


def required_privileges(runner) -> List[Privilege]:
    """What the configured runner needs: runners declare it with required_privileges()
    (plugin runners may too); a runner without that method needs nothing."""
    own = getattr(runner, 'required_privileges', None)
    return list(dict.fromkeys(own())) if callable(own) else []  # each once, in order


def missing_privileges(needed: List[Privilege], proc: str = '/proc') -> List[Privilege]:
    if not needed:
        return []
    caps = effective_capabilities(proc)
    missing = []
    for privilege in needed:
        if privilege is DAC_OVERRIDE and not caps & (1 << CAP_DAC_OVERRIDE):
            missing.append(privilege)
        elif privilege is SETUID and not caps & (1 << CAP_SETUID):
            missing.append(privilege)
        elif privilege is NO_SETUID_FIXUP and not (securebits() or 0) & SECBIT_NO_SETUID_FIXUP:
            missing.append(privilege)
        elif privilege is SYS_PTRACE and not caps & (1 << CAP_SYS_PTRACE):
            missing.append(privilege)
        elif privilege in (CLEAR_REFS, DMI_TABLES) and not caps & (1 << CAP_DAC_OVERRIDE):
            missing.append(privilege)
        elif privilege is PERF_EVENT_PARANOID:
            paranoid = perf_event_paranoid(proc)  # 0 and -1 are fine; unreadable is not
            if caps & (1 << CAP_PERFMON | 1 << CAP_SYS_ADMIN):
                continue  # the kernel lets these bypass perf_event_paranoid
            if paranoid is None or paranoid > 0:
                missing.append(privilege)
    return missing


def describe_missing(missing: List[Privilege]) -> str:
    lines = ['missing privilege%s (or run as root with --root):' % (
        's' if len(missing) > 1 else '')]
    for privilege in missing:
        lines.append('  %s, %s: %s' % (privilege.name, privilege.why, privilege.grant))
    return '\n'.join(lines)


def unsafe_file_reason(filename) -> Optional[str]:
    """Why a config file others could have written must be refused (group/world-writable, in
    such a directory, or owned by another user), or None when it is safe to load."""
    try:
        st = os.stat(filename)
    except OSError as e:
        return 'cannot read config: %s' % (e.strerror or e)
    if not stat.S_ISREG(st.st_mode):
        return 'config is not a regular file'
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return ('config is writable by group or others (mode %04o): others could make the agent '
                'run their code; fix with: chmod go-w %s' % (stat.S_IMODE(st.st_mode), filename))
    if st.st_uid not in (0, os.geteuid()):
        return ('config is owned by uid %d, neither root nor this user (uid %d); fix with: chown '
                'root %s' % (st.st_uid, os.geteuid(), filename))
    # Whoever can write to a directory on the way (to a symlink, or to the file it points at)
    # can replace the file, unless the directory is sticky like /tmp.
    for path in {os.path.abspath(filename), os.path.realpath(filename)}:
        directory = os.path.dirname(path)
        while True:
            try:
                dst = os.stat(directory)
            except OSError:
                break
            if dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not dst.st_mode & stat.S_ISVTX:
                return ('config directory %s is writable by group or others (mode %04o): others '
                        'could replace the config; fix with: chmod go-w %s' % (
                            directory, stat.S_IMODE(dst.st_mode), directory))
            if dst.st_uid not in (0, os.geteuid()):
                return ('config directory %s is owned by uid %d, neither root nor this user (uid '
                        '%d): its owner could replace the config; fix with: chown root %s' % (
                            directory, dst.st_uid, os.geteuid(), directory))
            if directory == os.path.dirname(directory):
                break
            directory = os.path.dirname(directory)
    return None


def other_readers(filename: str) -> Optional[str]:
    """Who besides root and this process's user and groups can read the file (through every
    directory above it), as 'everyone (mode 0644)' or 'group 100 (mode 0640)'; None when no
    one else can."""
    try:
        st = os.stat(filename)
        above = []
        directory = os.path.dirname(os.path.realpath(filename))
        while True:
            above.append(os.stat(directory).st_mode)
            if directory == os.path.dirname(directory):
                break
            directory = os.path.dirname(directory)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IROTH and all(m & stat.S_IXOTH for m in above):
        return 'everyone (mode %04o)' % mode
    own_groups = {0, os.getegid()} | set(os.getgroups())
    if mode & stat.S_IRGRP and st.st_gid not in own_groups and all(
            m & (stat.S_IXGRP | stat.S_IXOTH) for m in above):
        return 'group %d (mode %04o)' % (st.st_gid, mode)
    return None


def readable_secrets_warning(filename: str, keys: List[str]) -> Optional[str]:
    """The warning for a config that holds secrets (the keys, never their values) and that
    others can read, or None."""
    readers = other_readers(filename) if keys else None
    if not readers:
        return None
    return ('%s is readable by %s and holds secrets or where they are (%s): other local users '
            'can read them; fix with: chown root:wca %s && chmod 0640 %s (the group the agent '
            'runs as)' % (filename, readers, ', '.join(keys), filename, filename))
