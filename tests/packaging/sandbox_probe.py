"""Runs inside wca.service's sandbox (the installed unit, with only ExecStart, Type, Restart and
WatchdogSec changed by a drop-in) and tries what the agent needs and what it must not do.

    python3 sandbox_probe.py RESULT_FILE TCP_PORT CGROUP_MOUNT...

Writes {check: "ok" or the error} as JSON to RESULT_FILE (in the state directory, the only
place it may write).
"""
import ctypes
import errno
import json
import os
import socket
import struct
import sys
import uuid

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_perf_event_open = 298  # x86_64
PR_GET_SECUREBITS = 27


def check(results, name, func):
    try:
        value = func()
        results[name] = 'ok' if value is None else value
    except OSError as e:
        results[name] = '%s: %s' % (errno.errorcode.get(e.errno, e.errno), e.strerror)
    except Exception as e:  # noqa: B902 - the probe reports, the test judges
        results[name] = '%s: %s' % (type(e).__name__, e)


def read_proc():
    with open('/proc/1/status') as f:  # PID 1 is root's
        assert f.read().startswith('Name:')
    with open('/proc/1/cgroup') as f:
        f.read()
    with open('/proc/stat') as f:
        f.read()


def write_cgroup(mount):
    path = os.path.join(mount, 'wca-probe-' + uuid.uuid4().hex[:8])
    os.mkdir(path)  # root-owned parent: needs CAP_DAC_OVERRIDE, and a writable mount
    os.rmdir(path)


def perf_event_open():
    """A software counter (task clock) on this process, user space only, as perf stat would."""
    attr = bytearray(128)
    struct.pack_into('IIQ', attr, 0, 1, len(attr), 1)  # PERF_TYPE_SOFTWARE, TASK_CLOCK
    struct.pack_into('Q', attr, 40, (1 << 5) | (1 << 6))  # exclude_kernel, exclude_hv
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    fd = libc.syscall(SYS_perf_event_open, buf, 0, -1, -1, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    os.close(fd)


def tcp(port):
    with socket.create_connection(('127.0.0.1', port), timeout=5) as conn:
        return 'ok' if conn.recv(16) == b'kafka\n' else 'wrong greeting'


def netlink():
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()


def write_file(path):
    with open(path, 'w') as f:
        f.write('probe\n')
    os.unlink(path)


def status_field(name):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(name + ':'):
                return line.split()[1]


def euid_round_trip():
    """What a resctrl task move does: effective uid 0 and back, keeping the capabilities."""
    own = os.geteuid()
    os.seteuid(0)
    os.seteuid(own)
    return 'CapEff=' + status_field('CapEff')


def main():
    result_file, port, mounts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    results = {'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),
               'CapEff': status_field('CapEff'), 'CapAmb': status_field('CapAmb'),
               'securebits': libc.prctl(PR_GET_SECUREBITS, 0, 0, 0, 0)}
    check(results, 'read_proc', read_proc)
    for mount in mounts:
        check(results, 'write_cgroup ' + mount, lambda: write_cgroup(mount))
    check(results, 'perf_event_open', perf_event_open)
    check(results, 'tcp', lambda: tcp(port))
    check(results, 'euid_round_trip', euid_round_trip)
    check(results, 'write_state_dir', lambda: write_file('/var/lib/wca/probe-write'))
    # What the sandbox must refuse:
    check(results, 'write_etc', lambda: write_file('/etc/wca-probe'))
    check(results, 'write_usr', lambda: write_file('/usr/lib64/wca/probe'))
    check(results, 'netlink', netlink)
    check(results, 'sched_setaffinity', lambda: os.sched_setaffinity(0, {0}))
    check(results, 'list_root_home', lambda: sorted(os.listdir('/root')))
    check(results, 'see_host_tmp', lambda: 'visible' if os.path.exists('/tmp/wca-probe-marker')
          else 'ok')
    with open(result_file, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)


if __name__ == '__main__':
    main()
