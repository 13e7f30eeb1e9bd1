"""Privileges: what the configured features need, and what this process has.

The agent runs as an unprivileged user with capabilities (see packaging/systemd/wca.service);
it refuses root unless told (--root), and names each missing privilege and how to grant it.
"""
import ctypes
import ctypes.util
import os
from typing import List, Optional

from dataclasses import dataclass

from wca import fsutil

CAP_DAC_OVERRIDE = 1
CAP_SETUID = 7
SECBIT_NO_SETUID_FIXUP = 1 << 2
PR_GET_SECUREBITS = 27


@dataclass(frozen=True)
class Privilege:
    name: str
    why: str
    grant: str


DAC_OVERRIDE = Privilege(
    'CAP_DAC_OVERRIDE', 'to write cgroup (and resctrl) files for allocations',
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
    'kernel.perf_event_paranoid <= 0', 'to open perf counters of other users\' processes',
    'run: sysctl -w kernel.perf_event_paranoid=0 (and set it in /etc/sysctl.d/ to persist)')


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
    """What the configured runner needs; plugin runners may define required_privileges()."""
    own = getattr(runner, 'required_privileges', None)
    if callable(own):
        return list(own())
    from wca.runners.allocation import AllocationRunner
    return [DAC_OVERRIDE] if isinstance(runner, AllocationRunner) else []


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
        elif privilege is PERF_EVENT_PARANOID:
            paranoid = perf_event_paranoid(proc)  # 0 and -1 are fine; unreadable is not
            if paranoid is None or paranoid > 0:
                missing.append(privilege)
    return missing


def describe_missing(missing: List[Privilege]) -> str:
    lines = ['missing privilege%s (or run as root with --root):' % (
        's' if len(missing) > 1 else '')]
    for privilege in missing:
        lines.append('  %s, %s: %s' % (privilege.name, privilege.why, privilege.grant))
    return '\n'.join(lines)
