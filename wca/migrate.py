"""migrate_pages(2): move a process's memory pages from some NUMA nodes to others, through
ctypes (no numactl or libnuma needed).

    long migrate_pages(int pid, unsigned long maxnode,
                       const unsigned long *old_nodes, const unsigned long *new_nodes);

The node masks are arrays of C unsigned longs, bit n of word n / bits-per-long for node n; the
kernel reads maxnode - 1 bits of them (maxnode is one more than the bits given, as libnuma
passes it). It returns the number of pages it could not move, or fails with ESRCH (no such
process), EPERM (the process is another user's and the caller lacks CAP_SYS_PTRACE, or a target
node is outside the process's cpuset.mems and the caller lacks CAP_SYS_NICE; also a seccomp
filter that refuses the call), or EINVAL (a node without memory, or none the caller's own
cpuset allows).

Without CAP_SYS_NICE only the pages no other process maps are moved (MPOL_MF_MOVE).
"""
import ctypes
import ctypes.util
import errno
import os
import platform
from typing import Iterable, Optional

NUMBERS = {'x86_64': 256, 'aarch64': 238}  # __NR_migrate_pages
_BITS = ctypes.sizeof(ctypes.c_ulong) * 8
_libc = None


class MigrateUnsupported(OSError):
    """This machine's architecture has no known system call number for migrate_pages."""


def syscall_number(machine: Optional[str] = None) -> int:
    machine = machine or platform.machine()
    if machine not in NUMBERS:
        raise MigrateUnsupported(errno.ENOSYS, 'migrate_pages: no system call number known for '
                                               '%s (known: %s)' % (machine, ', '.join(NUMBERS)))
    return NUMBERS[machine]


def nodemask(nodes: Iterable[int], words: int = 0):
    """A C unsigned long array (at least `words` long) with the bits of `nodes` set."""
    nodes = sorted(set(nodes))
    if nodes and nodes[0] < 0:
        raise ValueError('NUMA node %d' % nodes[0])
    words = max(words, (nodes[-1] // _BITS + 1) if nodes else 1)
    mask = (ctypes.c_ulong * words)()
    for node in nodes:
        mask[node // _BITS] |= 1 << (node % _BITS)
    return mask


def migrate_pages(pid: int, old_nodes: Iterable[int], new_nodes: Iterable[int]) -> int:
    """Moves the pages of process `pid` on `old_nodes` to `new_nodes`; returns the number of
    pages that could not be moved. Raises OSError with the kernel's errno."""
    number = syscall_number()
    old_nodes, new_nodes = list(old_nodes), list(new_nodes)
    words = len(nodemask(old_nodes + new_nodes))
    old, new = nodemask(old_nodes, words), nodemask(new_nodes, words)
    libc = _load()
    result = libc.syscall(ctypes.c_long(number), ctypes.c_long(pid),
                          ctypes.c_ulong(words * _BITS + 1), old, new)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def _load():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        libc.syscall.restype = ctypes.c_long
        _libc = libc
    return _libc
