"""An open-loop Redis client at a fixed request rate, for the collocation benchmark.

redis-benchmark sends the next request when the last reply came (closed loop): it saturates the
server, and a stalled server just gets fewer requests, so its latencies hide the stall. This
client sends request i at start + i / rate whatever happened before (several at once when it
fell behind), on one connection in raw RESP, and takes each request's latency from the time it
was due to be sent to the time its whole reply arrived: queueing behind a stall counts
(no coordinated omission). Every request is the same read, so every reply is the same bytes:
the client checks each received byte against them and counts replies by length.

`python -m benchmarks.redis_client --port P --rate R --duration S --out FILE` writes the samples
(due time since start, latency; seconds, float64 pairs) to FILE and a JSON summary to stdout.
As root it runs at SCHED_FIFO priority 1 (it sleeps between requests, so it takes little
CPU), so that other processes on its CPU do not delay it and show up as server latency.
"""
import argparse
import array
import collections
import json
import os
import select
import socket
import sys
import time

LIST_KEY = b'bench:list'


def command(*args) -> bytes:
    """A RESP request (an array of bulk strings)."""
    parts = [b'*%d\r\n' % len(args)]
    for arg in args:
        arg = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b'$%d\r\n%s\r\n' % (len(arg), arg))
    return b''.join(parts)


def read_reply(sock, buffer=b''):
    """One whole RESP reply (any type); returns (reply bytes, what followed it)."""
    while True:
        end = _reply_end(buffer, 0)
        if end is not None:
            return buffer[:end], buffer[end:]
        data = sock.recv(65536)
        if not data:
            raise ConnectionError('redis closed the connection')
        buffer += data


def _reply_end(buffer, pos):
    """Where the reply starting at pos ends, or None when the buffer holds only part of it."""
    line_end = buffer.find(b'\r\n', pos)
    if line_end < 0:
        return None
    kind, value = buffer[pos:pos + 1], buffer[pos + 1:line_end]
    pos = line_end + 2
    if kind in (b'+', b'-', b':'):
        return pos
    if kind == b'$':
        size = int(value)
        return pos if size < 0 else (pos + size + 2 if len(buffer) >= pos + size + 2 else None)
    if kind == b'*':
        for _ in range(max(int(value), 0)):
            pos = _reply_end(buffer, pos)
            if pos is None:
                return None
        return pos
    raise ValueError('not a RESP reply: %r' % buffer[pos - 2 - len(value) - 1:pos][:40])


def connect(port: int, host: str = '127.0.0.1', timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def call(sock, *args) -> bytes:
    sock.sendall(command(*args))
    reply, rest = read_reply(sock)
    if rest:
        raise ValueError('unexpected bytes after a reply')
    if reply.startswith(b'-'):
        raise RuntimeError('redis: %s' % reply[1:].strip().decode(errors='replace'))
    return reply


def fill(port: int, elements: int, size: int = 8):
    """The list the benchmark reads: `elements` values of `size` bytes."""
    sock = connect(port)
    try:
        call(sock, 'DEL', LIST_KEY)
        for start in range(0, elements, 1000):
            values = [b'%0*d' % (size, i) for i in range(start, min(start + 1000, elements))]
            call(sock, 'RPUSH', LIST_KEY, *values)
    finally:
        sock.close()


def run(port: int, rate: float, duration: float, elements: int, start_at: float = None,
        drain: float = 5.0):
    """Sends LRANGE bench:list 0 elements-1 at `rate` per second for `duration` seconds; returns
    (samples: an array of (due time since start, latency) pairs; a summary dict). start_at: when
    the first request is due (time.monotonic(), the same clock in every process)."""
    sock = connect(port)
    request = command('LRANGE', LIST_KEY, 0, elements - 1)
    sock.sendall(request)
    expected, _ = read_reply(sock)
    if expected.startswith(b'-'):
        raise RuntimeError('redis: %s' % expected[1:].strip().decode(errors='replace'))
    size = len(expected)
    sock.setblocking(False)
    due = collections.deque()
    samples = array.array('d')
    start = start_at if start_at is not None else time.monotonic() + 0.05
    end, deadline = start + duration, start + duration + drain
    sent, next_due, offset = 0, start, 0  # offset: bytes of the current reply received
    while True:
        now = time.monotonic()
        if next_due <= now < end:
            count = 0
            while next_due <= now and next_due < end:  # behind: every request due goes now
                due.append(next_due)
                count += 1
                next_due = start + (sent + count) / rate
            _send_all(sock, request * count)
            sent += count
        if (next_due >= end and not due) or now > deadline:
            break
        wait = (next_due if next_due < end else deadline) - now
        if not select.select([sock], [], [], max(wait, 0.0))[0]:
            continue
        data = sock.recv(1 << 20)
        arrived = time.monotonic()
        if not data:
            raise ConnectionError('redis closed the connection')
        pos = 0
        while pos < len(data):
            take = min(size - offset, len(data) - pos)
            if data[pos:pos + take] != expected[offset:offset + take]:
                raise ValueError('an unexpected reply (an error from redis?): %r'
                                 % data[pos:pos + 80])
            offset, pos = offset + take, pos + take
            if offset == size:
                offset = 0
                when = due.popleft()
                samples.append(when - start)
                samples.append(arrived - when)
    sock.close()
    return samples, {'sent': sent, 'answered': len(samples) // 2, 'unanswered': len(due),
                     'rate': rate, 'duration': duration, 'reply_bytes': size}


def _send_all(sock, data):
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            select.select([], [sock], [], 1.0)
            continue
        view = view[sent:]


def realtime():
    """SCHED_FIFO 1 when allowed (as root): other processes on the client's CPU then do not delay
    the client; returns whether it is set."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return True
    except (AttributeError, OSError):
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.redis_client',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--rate', type=float, required=True, help='requests per second')
    parser.add_argument('--duration', type=float, required=True, help='seconds')
    parser.add_argument('--elements', type=int, default=100, help='LRANGE of this many values')
    parser.add_argument('--fill', action='store_true', help='first (re)create the list')
    parser.add_argument('--out', help='samples file (float64 pairs: due time, latency)')
    parser.add_argument('--cpu', type=int, help='pin the client to this CPU')
    parser.add_argument('--start-at', type=float,
                        help='when the first request is due (time.monotonic() of any process)')
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, [args.cpu])
    if args.fill:
        fill(args.port, args.elements)
    fifo = realtime()
    samples, summary = run(args.port, args.rate, args.duration, args.elements, args.start_at)
    summary['sched_fifo'] = fifo
    if args.out:
        with open(args.out, 'wb') as f:
            samples.tofile(f)
    latencies = sorted(samples[1::2])
    if latencies:
        summary['p50_ms'] = 1e3 * latencies[len(latencies) // 2]
        summary['p99_ms'] = 1e3 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    sys.stdout.write(json.dumps(summary) + '\n')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the benchmark tells
        sys.exit(130)
