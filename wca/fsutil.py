"""Tiny I/O helpers for kernel files (cgroupfs, procfs, sysfs, resctrlfs), in one place.

Kernel pseudo-files are read with os.open/os.read: no buffering layer, no decoding unless
asked. Parsing works on bytes with find/split, never regular expressions, on the hot path.
"""
import os
from typing import Dict, Iterable, Optional, Set

_CHUNK = 65536
# A seq_file read (most of /proc and cgroupfs) returns what fits in the kernel's buffer, one
# page at first: whole records, stopping where the next record does not fit. So a read shorter
# than this cannot be cut short by the buffer unless the next record is longer than the rest of
# a page (no kernel file of one-line records does that). Files read whole at once (sysfs,
# single_open ones) return everything in the first read anyway.
_WHOLE_BELOW = 2048
_FLAGS = os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0)


def read_bytes(path: str) -> bytes:
    """The whole file; raises OSError (ENOENT, ENODEV, EACCES...) like open() would.

    One read() for a short file (most cgroup and proc files: the hot path); a longer one is read
    until read() returns nothing, since the kernel hands it out a buffer at a time."""
    fd = os.open(path, _FLAGS)
    try:
        data = os.read(fd, _CHUNK)
        if len(data) < _WHOLE_BELOW:
            return data
        parts = [data]
        while True:
            data = os.read(fd, _CHUNK)
            if not data:
                return b''.join(parts)
            parts.append(data)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    return read_bytes(path).decode('utf-8', 'replace')


def read_int(path: str) -> int:
    return int(read_bytes(path))


def stat_value(data: bytes, key: bytes) -> Optional[int]:
    """The integer after `key ` at the start of a line of a `key value` file, or None."""
    if data.startswith(key + b' '):
        start = len(key) + 1
    else:
        start = data.find(b'\n' + key + b' ')
        if start < 0:
            return None
        start += len(key) + 2
    end = data.find(b'\n', start)
    return int(data[start:end] if end >= 0 else data[start:])


def parse_meminfo(data: bytes, prefix: bytes = b'') -> Dict[str, int]:
    """Parses /proc/meminfo or a NUMA node's meminfo (`Node 0 MemFree:  123 kB`) into bytes."""
    result = {}
    cut = len(prefix)
    for line in data.split(b'\n'):
        if cut:
            if not line.startswith(prefix):
                continue
            line = line[cut:]
        key, _, rest = line.partition(b':')
        fields = rest.split()
        if not fields:
            continue
        value = int(fields[0])
        if len(fields) > 1 and fields[1] == b'kB':
            value *= 1024
        result[key.strip().decode()] = value
    return result


def parse_cpu_list(text: str) -> Set[int]:
    """Kernel list format ('0-3,8,10-11') to a set; '' is the empty set."""
    cpus = set()
    for part in text.strip().split(','):
        if not part:
            continue
        low, sep, high = part.partition('-')
        if sep:
            cpus.update(range(int(low), int(high) + 1))
        else:
            cpus.add(int(low))
    return cpus


def format_cpu_list(cpus: Iterable[int]) -> str:
    """A set of ints back to the kernel list format."""
    ordered = sorted(set(cpus))
    ranges = []
    for cpu in ordered:
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ','.join(str(a) if a == b else '%d-%d' % (a, b) for a, b in ranges)


def write_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replaces the file at once (a temporary file in the same directory, flushed, renamed over
    it): a crash leaves the old contents or the new ones, never half of them. Raises OSError."""
    temporary = '%s.%d.tmp' % (path, os.getpid())
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)
