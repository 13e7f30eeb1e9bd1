"""perf_event_open(2) through ctypes: the attribute structure, the flags and ioctls the agent
uses, and the layout of a group read (PERF_FORMAT_GROUP).

Only what the agent needs: counting (never sampling) groups, on a cgroup and a CPU (per task)
or on a CPU alone (uncore PMUs).
"""
import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import struct

# perf_event_attr.type
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_RAW = 4

# perf_event_attr.read_format
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_ID = 1 << 2
PERF_FORMAT_GROUP = 1 << 3
READ_FORMAT = (PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
               | PERF_FORMAT_ID)

# perf_event_attr flag bits (the bitfield after read_format)
ATTR_DISABLED = 1 << 0
ATTR_INHERIT = 1 << 1
ATTR_EXCLUDE_GUEST = 1 << 20

PERF_SAMPLE_IDENTIFIER = 1 << 16

# perf_event_open flags
PERF_FLAG_FD_NO_GROUP = 1 << 0
PERF_FLAG_FD_OUTPUT = 1 << 1
PERF_FLAG_PID_CGROUP = 1 << 2
PERF_FLAG_FD_CLOEXEC = 1 << 3

# ioctls (_IO('$', n)), and the argument that applies them to the whole group
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_RESET = 0x2403
PERF_IOC_FLAG_GROUP = 1

# The syscall number per architecture (asm/unistd.h).
SYSCALL_NUMBERS = {'x86_64': 298, 'aarch64': 241, 'arm64': 241, 'riscv64': 241, 'i386': 336,
                   'i686': 336, 'armv7l': 364, 'ppc64le': 319, 'ppc64': 319, 's390x': 331}

# PERF_ATTR_SIZE_VER5 (Linux 4.1): every field the agent sets is in it; newer kernels accept it.
ATTR_SIZE = 112
# type size config sample_period sample_type read_format flags wakeup_events bp_type config1
# config2 branch_sample_type sample_regs_user sample_stack_user clockid sample_regs_intr
# aux_watermark sample_max_stack reserved
_ATTR = struct.Struct('=IIQQQQQIIQQQQIiQIHH')
assert _ATTR.size == ATTR_SIZE

# errnos meaning "this machine cannot count that event" rather than "something is wrong":
# no PMU for the type (ENOENT), the PMU refuses the mode or config (EOPNOTSUPP, EINVAL), no
# such device (ENODEV).
UNSUPPORTED = frozenset((errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV, errno.EINVAL))
OUT_OF_DESCRIPTORS = frozenset((errno.EMFILE, errno.ENFILE))

_libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class PerfOpenError(OSError):
    """perf_event_open failed; carries the errno and what was being opened."""

    def __init__(self, err: int, what: str):
        super().__init__(err, '%s: %s' % (what, os.strerror(err)))
        self.what = what


def syscall_number(machine: str = None) -> int:
    machine = machine or platform.machine()
    try:
        return SYSCALL_NUMBERS[machine]
    except KeyError:
        raise OSError(errno.ENOSYS, 'perf_event_open: unknown syscall number on %s' % machine)


def attr_bytes(type_: int, config: int, config1: int = 0, disabled: bool = False,
               inherit: bool = True, exclude_guest: bool = True):
    """A counting perf_event_attr (no sampling) with the group read format, as a buffer."""
    flags = (ATTR_DISABLED if disabled else 0) | (ATTR_INHERIT if inherit else 0) | (
        ATTR_EXCLUDE_GUEST if exclude_guest else 0)
    data = _ATTR.pack(type_, ATTR_SIZE, config, 0, PERF_SAMPLE_IDENTIFIER, READ_FORMAT, flags,
                      0, 0, config1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return ctypes.create_string_buffer(data, ATTR_SIZE)


_NR = None


def perf_event_open(attr, pid: int, cpu: int, group_fd: int, flags: int, what: str = 'event') -> int:
    """The new descriptor, or PerfOpenError. With PERF_FLAG_PID_CGROUP, pid is the descriptor
    of a cgroup directory."""
    global _NR
    if _NR is None:
        _NR = syscall_number()
    fd = _syscall(ctypes.c_long(_NR), attr, ctypes.c_long(pid), ctypes.c_long(cpu),
                  ctypes.c_long(group_fd), ctypes.c_ulong(flags))
    if fd < 0:
        raise PerfOpenError(ctypes.get_errno(), what)
    return fd


def reset_and_enable(leader_fd: int):
    """Zeroes the whole group and starts it (members were opened enabled: they follow)."""
    fcntl.ioctl(leader_fd, PERF_EVENT_IOC_RESET, PERF_IOC_FLAG_GROUP)
    fcntl.ioctl(leader_fd, PERF_EVENT_IOC_ENABLE, 0)


def group_read_size(events: int) -> int:
    """Bytes of one group read: nr, time_enabled, time_running, then (value, id) per event."""
    return 8 * (3 + 2 * events)


def group_reader(events: int) -> struct.Struct:
    """Unpacks a group read into (nr, time_enabled, time_running, value1, value2, ...): the
    ids are skipped as padding, so one unpack gives exactly what the agent uses."""
    return struct.Struct('=3Q' + 'Q8x' * events)


def close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
