"""The I/O helpers on real kernel files: whole files, whatever size the kernel hands out."""
import os
import threading

from wca import fsutil


def test_a_seq_file_longer_than_a_page_is_read_whole():
    """/proc/self/maps with many mappings comes out of the kernel a page at a time."""
    blocks = [bytearray(1 << 20) for _ in range(64)]  # noqa: F841 (mappings to list)
    with open('/proc/self/maps', 'rb') as f:
        expected_lines = len(f.read().splitlines())
    data = fsutil.read_bytes('/proc/self/maps')
    assert len(data) > 3 * 4096
    assert abs(len(data.splitlines()) - expected_lines) <= 2  # the reading may add a mapping


def test_a_cgroup_tasks_file_of_many_threads_is_read_whole(cgroups):
    path = cgroups.create('threads', processes=0)
    stop = threading.Event()
    mount = cgroups.layout.v1['cpu']
    threads = [threading.Thread(target=stop.wait) for _ in range(1200)]
    for thread in threads:
        thread.start()
    try:
        ids = [int(name) for name in os.listdir('/proc/self/task')]
        for tid in ids:
            with open(mount + path + '/tasks', 'w') as f:
                f.write(str(tid))
        data = fsutil.read_bytes(mount + path + '/tasks')
        assert sorted(int(t) for t in data.split()) == sorted(ids)
        assert len(data) > 4096
    finally:
        with open(mount + '/tasks', 'w') as f:  # back to the root group, threads and all
            for tid in os.listdir('/proc/self/task'):
                try:
                    f.write(tid)
                    f.flush()
                except OSError:
                    pass
        stop.set()
        for thread in threads:
            thread.join()


def test_a_short_file_is_read_with_one_call():
    assert fsutil.read_bytes('/proc/self/statm').count(b' ') == 6
    assert fsutil.read_int('/sys/devices/system/cpu/kernel_max') > 0
