"""perf_event_open through ctypes, for real: the attribute layout, groups, the group read."""
import errno
import os
import time

import pytest

from wca.perf import syscall
from wca.perf.counters import open_group
from wca.perf.events import Event
from wca.perf.syscall import PERF_FLAG_FD_CLOEXEC, PERF_TYPE_SOFTWARE

TASK_CLOCK = Event('clock', PERF_TYPE_SOFTWARE, 1)
CONTEXT_SWITCHES = Event('cs', PERF_TYPE_SOFTWARE, 3)
PAGE_FAULTS = Event('faults', PERF_TYPE_SOFTWARE, 2)


def thread_time():
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)  # time.thread_time() is 3.7+


def _spin(seconds):
    """Runs for `seconds` of this thread's CPU time."""
    end = thread_time() + seconds
    while thread_time() < end:
        pass


def test_a_group_on_this_process_is_read_in_one_call():
    fds = open_group([TASK_CLOCK, CONTEXT_SWITCHES, PAGE_FAULTS], 0, -1, PERF_FLAG_FD_CLOEXEC)
    try:
        size = syscall.group_read_size(3)
        assert size == 8 * (3 + 2 * 3)
        unpack = syscall.group_reader(3).unpack
        # The leader is opened disabled: nothing counts until it is enabled.
        _spin(0.05)
        nr, enabled, running, clock, switches, faults = unpack(os.read(fds[0], size))
        assert (nr, enabled, running, clock) == (3, 0, 0, 0)
        started = thread_time()
        syscall.reset_and_enable(fds[0])
        _spin(0.2)
        time.sleep(0.01)  # at least one context switch
        bytearray(4 << 20)  # fresh pages: page faults
        nr, enabled, running, clock, switches, faults = unpack(os.read(fds[0], size))
        used = thread_time() - started
        # a task's events are enabled while it runs: the clock is the CPU time it used
        assert nr == 3 and enabled == running > 0
        assert 0.9 * used < clock / 1e9 < 1.1 * used + 0.005, (clock, used)
        assert switches >= 1 and faults >= 1
        # The ids the unpack skips are there: the full read has them between the values.
        raw = os.read(fds[0], size)
        assert len(raw) == size
    finally:
        syscall.close_all(fds)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_descriptors_are_close_on_exec():
    import fcntl
    fds = open_group([TASK_CLOCK], 0, -1, PERF_FLAG_FD_CLOEXEC)
    try:
        assert fcntl.fcntl(fds[0], fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        syscall.close_all(fds)


def test_a_failed_member_leaves_nothing_open():
    before = len(os.listdir('/proc/self/fd'))
    no_such_pmu = Event('nothing', 0x7FFF0000, 0)  # no PMU has this type: ENOENT
    with pytest.raises(syscall.PerfOpenError) as raised:
        open_group([TASK_CLOCK, CONTEXT_SWITCHES, no_such_pmu], 0, -1, PERF_FLAG_FD_CLOEXEC)
    assert raised.value.errno == errno.ENOENT and raised.value.what == 'nothing'
    assert 'nothing: No such file or directory' in str(raised.value)
    assert len(os.listdir('/proc/self/fd')) == before


def test_syscall_numbers_per_architecture():
    assert syscall.syscall_number('x86_64') == 298
    assert syscall.syscall_number('aarch64') == 241
    with pytest.raises(OSError) as raised:
        syscall.syscall_number('pdp11')
    assert raised.value.errno == errno.ENOSYS


def test_attribute_layout():
    attr = syscall.attr_bytes(4, 0x81d0, config1=0x12, disabled=True)
    data = attr.raw
    assert len(data) == syscall.ATTR_SIZE == 112
    fields = syscall._ATTR.unpack(data)
    type_, size, config, period, sample_type, read_format, flags = fields[:7]
    assert (type_, size, config, period) == (4, 112, 0x81d0, 0)
    assert read_format == 15  # GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | ID
    assert flags == 1 | 2 | 1 << 20  # disabled, inherit, exclude_guest
    assert fields[9] == 0x12  # config1
