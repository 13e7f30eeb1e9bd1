"""systemd's notify protocol against a real AF_UNIX datagram socket, as systemd binds it
(a path in the file system, or a name in the abstract namespace), and the agent speaking it."""
import os
import signal
import socket
import subprocess
import uuid

import pytest

from conftest import plugin_env, stop_process, wca_command, write_config

from wca import sdnotify


class Listener:
    """The service manager's end: a bound datagram socket that collects what arrives."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(address)

    def receive(self, timeout=10.0):
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()

    def receive_until(self, state, timeout=20.0):
        """Every message up to and including `state`."""
        seen = []
        while not seen or seen[-1] != state:
            try:
                seen.append(self.receive(timeout))
            except socket.timeout:
                raise AssertionError('no %s within %ss; got %r' % (state, timeout, seen))
        return seen

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(tmp_path, monkeypatch):
    path = str(tmp_path / 'notify')
    bound = Listener(path)
    monkeypatch.setenv('NOTIFY_SOCKET', path)
    yield bound
    bound.close()


@pytest.mark.parametrize('state', ['READY=1', 'WATCHDOG=1', 'STOPPING=1'])
def test_each_state_arrives_on_a_socket_in_the_file_system(listener, state):
    assert sdnotify.notify(state) is True
    assert listener.receive() == state


def test_states_arrive_in_order(listener):
    for state in ('READY=1', 'WATCHDOG=1', 'WATCHDOG=1', 'STOPPING=1'):
        assert sdnotify.notify(state)
    assert [listener.receive() for _ in range(4)] == [
        'READY=1', 'WATCHDOG=1', 'WATCHDOG=1', 'STOPPING=1']


def test_abstract_namespace_socket(monkeypatch):
    name = 'wca-test-notify-%s' % uuid.uuid4().hex
    bound = Listener('\0' + name)
    try:
        monkeypatch.setenv('NOTIFY_SOCKET', '@' + name)
        for state in ('READY=1', 'WATCHDOG=1', 'STOPPING=1'):
            assert sdnotify.notify(state) is True
            assert bound.receive() == state
    finally:
        bound.close()


def test_not_under_systemd(monkeypatch):
    monkeypatch.delenv('NOTIFY_SOCKET', raising=False)
    assert sdnotify.notify('READY=1') is False
    monkeypatch.setenv('NOTIFY_SOCKET', '')
    assert sdnotify.notify('READY=1') is False


def test_unreachable_socket_returns_false_without_raising(tmp_path, monkeypatch):
    monkeypatch.setenv('NOTIFY_SOCKET', str(tmp_path / 'no-such-socket'))
    assert sdnotify.notify('WATCHDOG=1') is False
    # a regular file where the socket should be
    (tmp_path / 'file').write_text('')
    monkeypatch.setenv('NOTIFY_SOCKET', str(tmp_path / 'file'))
    assert sdnotify.notify('WATCHDOG=1') is False
    # the service manager went away: the socket file stays, nobody listens
    gone = Listener(str(tmp_path / 'gone'))
    gone.close()
    monkeypatch.setenv('NOTIFY_SOCKET', str(tmp_path / 'gone'))
    assert sdnotify.notify('STOPPING=1') is False
    # an abstract name nobody bound
    monkeypatch.setenv('NOTIFY_SOCKET', '@wca-test-unbound-%s' % uuid.uuid4().hex)
    assert sdnotify.notify('READY=1') is False


# --- the watchdog period (sd_watchdog_enabled(3)) ------------------------------------------

@pytest.mark.parametrize('usec,pid,expected', [
    ('60000000', None, 30.0),          # WatchdogSec=60, no WATCHDOG_PID
    ('60000000', 'self', 30.0),        # WATCHDOG_PID is this process
    ('1000000', 'self', 0.5),
    ('3', None, 1.5e-06),
    ('60000000', 'other', None),       # inherited by a child of the service: not ours
    ('60000000', 'junk', None),
    (None, None, None),                # no watchdog
    (None, 'self', None),
    ('', None, None),
    ('0', None, None),
    ('-5', None, None),
    ('sixty', None, None),
])
def test_watchdog_period(monkeypatch, usec, pid, expected):
    for name, value in (('WATCHDOG_USEC', usec), ('WATCHDOG_PID', pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            value = {'self': str(os.getpid()), 'other': str(os.getpid() + 1)}.get(value, value)
            monkeypatch.setenv(name, value)
    assert sdnotify.watchdog_period() == expected


# --- the agent speaking it -------------------------------------------------------------------

def agent_env(notify_socket):
    env = plugin_env(NOTIFY_SOCKET=notify_socket)
    for name in ('WATCHDOG_USEC', 'WATCHDOG_PID'):
        env.pop(name, None)
    return env


def config(tmp_path, runner_extra):
    return write_config(tmp_path / 'wca.yml', '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: []
  metrics_storage: !LogStorage
    output_filename: %s
%s''' % (tmp_path / 'metrics.prom', runner_extra))


def test_agent_says_ready_watchdog_each_iteration_and_stopping(tmp_path, listener):
    path = config(tmp_path, '  interval: 0.05\n  iterations: 3\n')
    result = subprocess.run(wca_command('-c', path, '--root'), env=agent_env(
        os.environ['NOTIFY_SOCKET']), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = listener.receive_until('STOPPING=1')
    assert seen[0] == 'READY=1'
    assert seen.count('WATCHDOG=1') >= 3
    assert set(seen) == {'READY=1', 'WATCHDOG=1', 'STOPPING=1'}


def test_agent_says_stopping_on_sigterm_during_a_long_wait(tmp_path, listener):
    path = config(tmp_path, '  interval: 3600\n')
    process = subprocess.Popen(wca_command('-c', path, '--root'), env=agent_env(
        os.environ['NOTIFY_SOCKET']), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True)
    try:
        assert listener.receive_until('WATCHDOG=1')[0] == 'READY=1'  # the first iteration
        process.send_signal(signal.SIGTERM)
        assert listener.receive_until('STOPPING=1')[-1] == 'STOPPING=1'
        assert process.wait(timeout=20) == 0
    finally:
        stop_process(process)


def test_agent_leaves_a_watchdog_meant_for_another_process_alone(tmp_path, listener):
    """$WATCHDOG_PID names another process (the variables were inherited): no pings while
    waiting. (The pings of the agent's own watchdog: tests/runners/test_run_loop.py.)"""
    env = agent_env(os.environ['NOTIFY_SOCKET'])
    env.update(WATCHDOG_USEC='400000', WATCHDOG_PID='1')
    path = config(tmp_path, '  interval: 3600\n')
    process = subprocess.Popen(wca_command('-c', path, '--root'), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True)
    try:
        assert listener.receive_until('WATCHDOG=1')[0] == 'READY=1'  # the first iteration
        with pytest.raises(socket.timeout):
            listener.receive(timeout=1)  # five pings' time at 0.2 s
        process.send_signal(signal.SIGTERM)
        assert listener.receive_until('STOPPING=1') == ['STOPPING=1']
        assert process.wait(timeout=20) == 0
    finally:
        stop_process(process)
