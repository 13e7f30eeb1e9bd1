"""Metrics on stderr arrive whole: a pipe that is full (also non-blocking), signals arriving
during the write, and log records of other threads, in a real child process."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, plugin_env

CHILD = textwrap.dedent('''
    import fcntl, logging, os, signal, sys, threading
    from wca.metrics import Metric, MetricType
    from wca.storage import LogStorage
    COUNT, NONBLOCKING = int(sys.argv[1]), sys.argv[2] == '1'
    if NONBLOCKING:
        fcntl.fcntl(2, fcntl.F_SETFL, fcntl.fcntl(2, fcntl.F_GETFL) | os.O_NONBLOCK)
    logging.basicConfig(stream=sys.stderr, format='LOG %(message)s', level=logging.INFO)
    metrics = [Metric('series', i, {'i': str(i), 'pad': 'x' * 40}, MetricType.GAUGE, 'Help.')
               for i in range(COUNT)]
    stop = threading.Event()

    def chatter():  # another thread logging all along
        while not stop.is_set():
            logging.info('a log line from another thread')
            stop.wait(0.0005)

    thread = threading.Thread(target=chatter)
    thread.start()
    signal.signal(signal.SIGALRM, lambda *args: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)  # signals all through the write
    try:
        LogStorage(include_timestamp=False).store(metrics)
        LogStorage(include_timestamp=False).store(metrics[:10])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.set()
        thread.join()
    sys.stderr.write('END\\n')
''')


@pytest.mark.parametrize('nonblocking', ['0', '1'])
def test_a_large_write_to_a_slow_pipe_under_signals_arrives_whole(nonblocking):
    count = 40000  # about 3 MB, some 50 pipe buffers
    child = subprocess.Popen([sys.executable, '-c', CHILD, str(count), nonblocking], cwd=REPO,
                             env=plugin_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    chunks = []
    try:
        while True:  # a slow reader: the pipe is full most of the time
            chunk = os.read(child.stderr.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
            time.sleep(0.001)
    finally:
        child.stderr.close()
        child.wait(30)
    text = b''.join(chunks).decode()
    assert child.returncode == 0, text[-2000:]
    lines = text.splitlines()
    assert lines[-1] == 'END'
    values = []
    for line in lines[:-1]:
        if line.startswith('LOG ') or line.startswith('# ') or not line:
            assert line in ('', '# HELP series Help.', '# TYPE series gauge',
                            'LOG a log line from another thread'), line
            continue
        name, _, value = line.partition(' ')
        assert name == 'series{i="%s",pad="%s"}' % (value, 'x' * 40), line
        values.append(int(value))
    assert values == list(range(count)) + list(range(10))
    assert 'LOG a log line from another thread' in lines  # the logging went on meanwhile
