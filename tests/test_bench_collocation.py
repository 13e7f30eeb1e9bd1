"""The collocation benchmark's client (benchmarks/redis_client.py) against a real RESP server on
127.0.0.1, and its goal check (benchmarks/collocation_results.py)."""
import socket
import threading
import time

import pytest

from benchmarks import collocation_results, redis_client

REPLY = b'*2\r\n$3\r\nabc\r\n$5\r\nhello\r\n'


class StallingServer:
    """Answers every request of the client (all the same bytes) with REPLY; once `stall_after`
    requests were answered, stops answering for `stall` seconds (a server that is not given
    the CPU); after `error_after` replies, answers an error instead."""

    def __init__(self, elements, stall_after=None, stall=0.0, error_after=None):
        self.request = redis_client.command('LRANGE', redis_client.LIST_KEY, 0, elements - 1)
        self.stall_after, self.stall, self.error_after = stall_after, stall, error_after
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.answered = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        buffer = b''
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                count, rest = divmod(len(buffer), len(self.request))
                assert buffer[:count * len(self.request)] == self.request * count
                buffer = buffer[count * len(self.request):]
                for _ in range(count):
                    if self.answered == self.stall_after:
                        time.sleep(self.stall)
                    error = self.error_after is not None and self.answered >= self.error_after
                    conn.sendall(b'-ERR wrong\r\n' if error else REPLY)
                    self.answered += 1

    def close(self):
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def server(request):
    made = []

    def make(**kwargs):
        made.append(StallingServer(**kwargs))
        return made[-1]
    yield make
    for s in made:
        s.close()


def test_requests_are_sent_at_the_rate_whatever_the_replies(server):
    s = server(elements=2)
    samples, summary = redis_client.run(s.port, rate=200.0, duration=1.0, elements=2)
    due = samples[0::2]
    assert summary['sent'] == summary['answered'] == 200
    assert summary['reply_bytes'] == len(REPLY)
    gaps = [b - a for a, b in zip(due, due[1:])]
    assert min(gaps) == pytest.approx(0.005, abs=1e-6) and max(gaps) == pytest.approx(0.005, abs=1e-6)


def test_a_stall_is_charged_to_every_request_queued_behind_it(server):
    """Open loop: the requests due while the server stalls all wait (a closed-loop client would
    have sent one request and measured one slow reply)."""
    s = server(elements=2, stall_after=50, stall=0.3)
    samples, summary = redis_client.run(s.port, rate=200.0, duration=1.0, elements=2)
    latencies = samples[1::2]
    assert summary['answered'] == 200
    assert max(latencies) >= 0.28
    # about 0.3 s x 200/s = 60 requests were due during the stall; each waited for its end
    assert sum(1 for v in latencies if v > 0.1) >= 35


def test_a_reply_that_is_not_the_first_one_stops_the_run(server):
    s = server(elements=2, error_after=10)
    with pytest.raises(ValueError, match='unexpected reply'):
        redis_client.run(s.port, rate=500.0, duration=1.0, elements=2)


def test_read_reply_takes_one_whole_reply_from_pieces():
    a, b = socket.socketpair()
    with a, b:
        reply = b'*3\r\n$3\r\nabc\r\n:42\r\n*1\r\n$-1\r\n'
        for i in range(0, len(reply), 4):
            a.sendall(reply[i:i + 4])
        a.sendall(b'+OK\r\n')
        whole, rest = redis_client.read_reply(b)
        assert whole == reply
        assert redis_client.read_reply(b, rest)[0] == b'+OK\r\n'


def run_result(p99, seconds=30.0, lc=6.0, be=0.0):
    return {'p99_ms': p99, 'seconds': seconds, 'lc_cpu_s': lc, 'be_cpu_s': be}


def test_goal_needs_both_the_latency_and_the_best_effort_share():
    alone = run_result(0.2, lc=6.0)  # 24 s idle: the BE tasks need 12 s
    assert collocation_results.goal({'alone': alone, 'controlled': run_result(0.29, be=12.5)})['ok']
    missed_latency = collocation_results.goal({'alone': alone, 'controlled': run_result(0.31, be=20.0)})
    assert not missed_latency['ok'] and not missed_latency['p99_ok'] and missed_latency['be_ok']
    starved = collocation_results.goal({'alone': alone, 'controlled': run_result(0.2, be=11.0)})
    assert not starved['ok'] and starved['p99_ok'] and not starved['be_ok']
    assert not collocation_results.goal({'alone': alone})['checked']


def test_the_agent_config_of_the_controlled_run_loads(tmp_path):
    """The benchmark's config for the agent, with the option names of issue 16, is one the agent
    takes (a renamed option would fail here rather than in a three-minute benchmark)."""
    from benchmarks import collocation
    from wca.config import load_config_text
    from wca.runners import Runner

    class Bench:  # what agent_config reads of a running benchmark
        args = collocation.parse_args([])
        lc, be, directory = '/colloc/redis', ['/colloc/stress0', '/colloc/stress1'], str(tmp_path)
    text = collocation.agent_config(Bench)
    runner = load_config_text(text, 'agent.yaml', Runner)['runner']
    allocator = runner.config.allocator
    assert type(allocator).__name__ == 'InterferenceAllocator'
    assert runner.config.interval == 0.5
    labels = runner.config.node.tasks_labels  # its tasks are cgroups with processes only
    assert labels['colloc/stress0']['type'] == labels['colloc/stress1']['type'] == 'best_efforts'
    assert 'type' not in labels['colloc/redis']
