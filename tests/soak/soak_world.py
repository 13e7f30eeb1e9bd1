"""The world the soaked agent runs in, all real and on this machine: pods with real cgroups and
processes (churned), a kubelet over HTTPS on 127.0.0.1 that can be made slow, garbled or failing,
the agent's textfile watched with inotify, and the agent's own descriptors, threads and RSS."""
import ctypes
import errno
import os
import re
import select
import signal
import struct
import sys
import threading
import time

sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'nodes'))  # the kubelet's payloads: tests/nodes
from orchestrator_fixtures import containers_of, pod, pod_list  # noqa: E402
from tls_ca import Answer, JsonServer  # noqa: E402

# --- the kubelet -----------------------------------------------------------------------------

KUBELET_MODES = ('ok', 'slow', 'garbage', '500')


class Kubelet:
    """`GET /pods` over HTTPS, answering the current pod list, or (by `mode`) slowly (the
    headers after `slow_seconds`), with garbage (in turn: truncated JSON, an HTML page, a
    PodList whose extra items are not pods) or with 500."""

    def __init__(self, pki, slow_seconds):
        self.mode = 'ok'
        self.slow_seconds = slow_seconds
        self.pods = {}  # uid -> pod item
        self.lock = threading.Lock()
        self.answers = dict.fromkeys(KUBELET_MODES, 0)
        self._garbage = 0
        self.server = JsonServer(self._respond, pki=pki)

    def _respond(self, request):
        with self.lock:
            mode, items = self.mode, list(self.pods.values())
        self.answers[mode] += 1
        if request.path != '/pods':
            return Answer(404, {'kind': 'Status', 'code': 404})
        if mode == 'slow':
            return Answer(200, pod_list(*items), delay=self.slow_seconds)
        if mode == '500':
            return Answer(500, {'kind': 'Status', 'status': 'Failure', 'code': 500,
                                'message': 'soak: internal error'})
        if mode == 'garbage':
            self._garbage += 1
            kind = self._garbage % 3
            if kind == 0:
                return Answer(200, b'{"kind": "PodList", "items": [{"metadata": {"uid": ')
            if kind == 1:
                return Answer(200, b'<html><body>502 Bad Gateway</body></html>',
                              content_type='text/html')
            return Answer(200, pod_list(*(items + [7, 'pod', {'metadata': None},
                                                   {'metadata': {'uid': []}}])))
        return Answer(200, pod_list(*items))


# --- pods: real cgroups with real processes ---------------------------------------------------

class Pods:
    """Burstable pods (cgroupfs driver, containerd) under the cgroups' parent, which is the
    agent's cgroup_root: kubepods/burstable/pod<uid>/<container id>, one sleeping process in
    the container's cgroup, in every hierarchy testing.cgroups makes."""

    def __init__(self, cgroups, kubelet):
        self.cgroups = cgroups
        self.kubelet = kubelet
        self.lock = threading.RLock()
        self.count = 0
        cgroups.create('kubepods', processes=0)
        cgroups.create('kubepods/burstable', processes=0)

    @staticmethod
    def paths(item):
        pod_path = 'kubepods/burstable/pod' + item['metadata']['uid']
        return pod_path, [pod_path + '/' + cid for _, cid in containers_of(item)]

    def uids(self):
        with self.kubelet.lock:
            return list(self.kubelet.pods)

    def add(self):
        with self.lock:
            self.count += 1
            item = pod('soak-app-%d' % self.count, qos='Burstable', runtime='containerd')
            pod_path, containers = self.paths(item)
            self._make(pod_path, containers)
            with self.kubelet.lock:
                self.kubelet.pods[item['metadata']['uid']] = item
            return item['metadata']['uid']

    def _make(self, pod_path, containers):
        self.cgroups.create(pod_path, processes=0)
        for container in containers:
            self.cgroups.create(container, processes=1)

    def _unmake(self, pod_path, containers):
        for container in containers:
            self.cgroups.remove(self.cgroups.parent + '/' + container)
        self.cgroups.remove(self.cgroups.parent + '/' + pod_path)

    def remove(self, uid, cgroups_first=False):
        """The kubelet stops listing the pod and its cgroups go (in either order)."""
        with self.lock:
            with self.kubelet.lock:
                item = self.kubelet.pods.get(uid)
                if item is not None and not cgroups_first:
                    del self.kubelet.pods[uid]
            if item is None:
                return
            self._unmake(*self.paths(item))
            if cgroups_first:
                with self.kubelet.lock:
                    self.kubelet.pods.pop(uid, None)

    def recreate(self, uid):
        """The pod's cgroups removed (processes killed) and made again under the same names,
        with a new process; the kubelet's answer does not change."""
        with self.lock:
            with self.kubelet.lock:
                item = self.kubelet.pods.get(uid)
            if item is None:
                return False
            pod_path, containers = self.paths(item)
            self._unmake(pod_path, containers)
            self._make(pod_path, containers)
            return True

    def cgroup_file(self, uid, controller, name):
        """The path of a pod cgroup's file in a v1 controller's hierarchy."""
        mount = self.cgroups.layout.v1[controller]
        return '%s%s/kubepods/burstable/pod%s/%s' % (mount, self.cgroups.parent, uid, name)

    def pids(self, uid):
        with self.kubelet.lock:
            item = self.kubelet.pods.get(uid)
        if item is None:
            return []
        mount = self.cgroups.layout.v1['cpu']
        found = []
        for container in self.paths(item)[1]:
            try:
                with open('%s%s/%s/cgroup.procs' % (mount, self.cgroups.parent, container)) as f:
                    found.extend(int(p) for p in f.read().split())
            except OSError:
                pass
        return found


class Churn(threading.Thread):
    """Keeps `count` pods, `stable` of them for the whole run (long-running services: the
    targets of the faults whose recovery takes a while), the others replaced one every `every`
    seconds: a new one comes, the oldest goes (alternately unlisted first or its cgroups
    removed first)."""

    def __init__(self, pods, count, stable, every):
        super().__init__(name='soak-churn', daemon=True)
        self.pods, self.count, self.every = pods, count, every
        self.stable = [pods.add() for _ in range(min(stable, count))]
        self.stopping = threading.Event()
        self.added, self.removed = len(self.stable), 0
        self.errors = []

    def churned(self):
        return [uid for uid in self.pods.uids() if uid not in self.stable]

    def fill(self):
        while len(self.pods.uids()) < self.count:
            self.pods.add()
            self.added += 1

    def run(self):
        turn = 0
        while not self.stopping.wait(self.every):
            try:
                self.pods.add()
                self.added += 1
                uids = self.churned()
                while len(uids) + len(self.stable) > self.count:
                    turn += 1
                    self.pods.remove(uids.pop(0), cgroups_first=bool(turn % 2))
                    self.removed += 1
            except Exception as e:  # reported at the end: the soak's own failure, not the agent's
                self.errors.append('%s: %s' % (type(e).__name__, e))

    def stop(self):
        self.stopping.set()
        self.join(30)


# --- the textfile, watched -------------------------------------------------------------------

IN_MOVED_TO, IN_CREATE = 0x80, 0x100
_EVENT = struct.Struct('iIII')
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_samples(text):
    """{(name, ((label, value), ...)): value} of Prometheus text (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = tuple(sorted(_LABEL.findall(match.group(2) or '')))
            try:
                samples[match.group(1), labels] = float(match.group(3))
            except ValueError:
                pass
    return samples


def value(samples, name, **labels):
    """The sum of `name`'s samples whose labels include `labels` (None when there is none)."""
    found = [v for (n, ls), v in samples.items()
             if n == name and all((k, want) in ls for k, want in labels.items())]
    return sum(found) if found else None


class TextfileWatch(threading.Thread):
    """Counts every replacement of the textfile (inotify IN_MOVED_TO: the kernel queues each
    one, so none is missed however late this thread reads, as long as the writer creates its
    temporary file in the same directory, as LogStorage does) and parses the newest contents."""

    def __init__(self, path):
        super().__init__(name='soak-textfile', daemon=True)
        self.path = path
        self.stores = 0
        self.store_times = []
        self.latest = {}  # parsed samples of the newest textfile
        self.iterations_seen = set()
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1')
        # IN_CREATE too, though only IN_MOVED_TO is counted: the kernel merges an event into an
        # identical one still unread (the cookie is not compared), so renames must not follow
        # each other in the queue; the agent's temporary file is created between two.
        if libc.inotify_add_watch(self._fd, os.path.dirname(path).encode(),
                                  IN_MOVED_TO | IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), 'inotify_add_watch')
        self._name = os.path.basename(path).encode()

    def run(self):
        try:
            while not self.stopping.is_set():
                if not select.select([self._fd], [], [], 0.2)[0]:
                    continue
                try:
                    data = os.read(self._fd, 65536)
                except BlockingIOError:
                    continue
                count, at = 0, 0
                while at < len(data):
                    _, mask, _, size = _EVENT.unpack_from(data, at)
                    name = data[at + _EVENT.size:at + _EVENT.size + size].rstrip(b'\0')
                    at += _EVENT.size + size
                    if mask & IN_MOVED_TO and name == self._name:
                        count += 1
                if count:
                    self._read(count)
        finally:
            os.close(self._fd)

    def _read(self, count):
        try:
            with open(self.path) as f:
                samples = parse_samples(f.read())
        except OSError:
            samples = None
        with self.changed:
            self.stores += count
            self.store_times.extend([time.monotonic()] * count)
            if samples:
                self.latest = samples
                iteration = value(samples, 'wca_iterations_total')
                if iteration is not None:
                    self.iterations_seen.add(int(iteration))
            self.changed.notify_all()

    def wait_store(self, timeout):
        """Waits for the next store; whether one came."""
        with self.changed:
            before = self.stores
            return self.changed.wait_for(lambda: self.stores > before, timeout)

    def stop(self):
        self.stopping.set()
        self.join(10)


# --- the textfile's disk ---------------------------------------------------------------------

class SmallDisk:
    """A tmpfs of `megabytes` at `path` that fill() makes full (a filler file up to ENOSPC) and
    empty() frees."""

    def __init__(self, path, megabytes, run):
        self.path, self.run = path, run
        os.makedirs(path, exist_ok=True)
        run(['mount', '-t', 'tmpfs', '-o', 'size=%dm,mode=0755' % megabytes, 'wca-soak-textfile',
             path])
        self.filler = os.path.join(path, 'filler')

    def fill(self):
        block = b'\0' * 65536
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    os.write(fd, block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    if len(block) == 1:
                        return
                    block = block[:len(block) // 2]
        finally:
            os.close(fd)

    def empty(self):
        try:
            os.unlink(self.filler)
        except FileNotFoundError:
            pass

    def unmount(self):
        self.run(['umount', self.path])


# --- the agent's resources -------------------------------------------------------------------

def resources(pid):
    """{'fds', 'threads', 'rss_bytes'} of a process, from /proc."""
    fds = len(os.listdir('/proc/%d/fd' % pid))
    found = {'fds': fds}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            key, _, rest = line.partition(':')
            if key == 'Threads':
                found['threads'] = int(rest)
            elif key == 'VmRSS':
                found['rss_bytes'] = int(rest.split()[0]) * 1024
    return found


def stop_process(process, timeout=30):
    """SIGTERM, then SIGKILL after `timeout`; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except Exception:
            process.kill()
            process.wait()
    return process.returncode
