"""Endurance: the agent runs many iterations while task cgroups are created and removed.

Checked: no exception escapes an iteration and nothing is logged as an error; open file
descriptors and threads end where they started; RSS growth is bounded; and nothing the agent
keeps (runner, node, storage, all reachable from the runner) mentions a task that was removed.

The short variant runs in `make test` (about 10-20 s). The long one is marked slow and runs
only when asked: `pytest -m slow tests/runners/test_endurance.py`, or with WCA_ENDURANCE_SECONDS=N
(default 600 s when selected with -m slow).
"""
import gc
import logging
import os
import random
import threading
import time
import types

import pytest

from wca.detectors import NOPAnomalyDetector
from wca.nodes import Node, Task
from wca.runners import DetectionRunner, MeasurementRunner
from wca.nodes.static import CgroupDirectoryNode
from wca.storage import LogStorage

PAGE = os.sysconf('SC_PAGE_SIZE')


def open_fds():
    return len(os.listdir('/proc/self/fd'))


def native_threads():
    return len(os.listdir('/proc/self/task'))


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * PAGE / 2 ** 20


class Churn:
    """Creates and removes task cgroups (named churn-NNNNN, never reused) under the test's
    parent cgroup, from the test thread and from a background thread, under one lock."""

    def __init__(self, cgroups, seed=4):
        self.cgroups = cgroups
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.live = []  # relative paths of churned cgroups that exist
        self.removed = []  # their names, once removed
        self.serial = 0
        self._stop = threading.Event()
        self._thread = None

    def create(self):
        with self.lock:
            self.serial += 1
            path = self.cgroups.create('churn-%05d' % self.serial)
            self.live.append(path)
            return path

    def remove(self, path=None):
        with self.lock:
            if path is None:
                if not self.live:
                    return None
                path = self.live[self.random.randrange(len(self.live))]
            elif path not in self.live:
                return None
            self.live.remove(path)
            self.cgroups.remove(path)
            self.removed.append(path.rsplit('/', 1)[1])
            # The helper keeps every Popen it made; drop the dead ones so they are not counted.
            self.cgroups.processes = [p for p in self.cgroups.processes if p.poll() is None]
            return path

    def step(self, target):
        """One create or remove, drifting the number of live cgroups around `target`."""
        if len(self.live) < target or (len(self.live) <= 2 * target and self.random.random() < .5):
            self.create()
        else:
            self.remove()

    def start(self, target):
        def loop():
            while not self._stop.is_set():
                self.step(target)
                self._stop.wait(0.005)
        self._stop.clear()
        self._thread = threading.Thread(target=loop, name='churn', daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            assert not self._thread.is_alive()
            self._thread = None

    def remove_all(self):
        for path in list(self.live):
            self.remove(path)


class RacingNode(Node):
    """Discovery by CgroupDirectoryNode, made to race the measurement on purpose: every few
    calls a listed cgroup is removed right after discovery (it vanishes before it is read),
    and a "ghost" task is reported for a few calls before its cgroup exists, then while it
    exists, then after it is gone."""

    def __init__(self, inner: Node, churn: Churn):
        self.inner = inner
        self.churn = churn
        self.calls = 0
        self.ghost = None  # (task, relative path, first call)
        self.racing = True

    def get_tasks(self):
        self.calls += 1
        tasks = self.inner.get_tasks()
        if not self.racing:
            return tasks
        if self.calls % 5 == 0 and self.churn.live:
            self.churn.remove(self.churn.live[0])  # listed, now gone
        if self.ghost is None and self.calls % 9 == 0:
            with self.churn.lock:
                self.churn.serial += 1
                name = 'churn-%05d' % self.churn.serial
            path = self.churn.cgroups.parent + '/' + name
            self.ghost = (Task(name=name, task_id=path.strip('/'), cgroup_path=path), path,
                          self.calls)
        if self.ghost is not None:
            task, path, first = self.ghost
            age = self.calls - first
            if age == 3:  # it appears
                with self.churn.lock:
                    self.churn.cgroups.create(path.rsplit('/', 1)[1])
                    self.churn.live.append(path)
            elif age == 6:  # and goes away, still reported once more
                self.churn.remove(path)
            elif age > 6:
                self.ghost = None
                return tasks
            if task.task_id not in {t.task_id for t in tasks}:
                tasks = tasks + [task]
        return tasks


def reachable(*roots, exclude=()):
    """Every object reachable from roots, not following classes, modules and functions, nor
    the objects in exclude (the test's own)."""
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
            types.MethodType, types.CodeType)
    seen = {id(obj): obj for obj in exclude}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    excluded = {id(obj) for obj in exclude}
    return [obj for key, obj in seen.items() if key not in excluded]


def mentions(objects, names):
    """The strings among objects that contain one of names."""
    found = []
    for obj in objects:
        if isinstance(obj, bytes):
            obj = obj.decode('utf-8', 'replace')
        if isinstance(obj, str) and 'churn-' in obj:
            found.extend(obj for name in names if name in obj)
    return found


class LogWatch(logging.Handler):
    """Counts the agent's log records, keeping the text of the first few errors only.

    While installed, the agent's records do not propagate: pytest's log capture would keep
    every one of them, and that memory would be counted as the agent's RSS growth."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.errors = []
        self.error_count = 0
        self.not_found = 0

    def emit(self, record):
        message = record.getMessage()
        if record.levelno >= logging.ERROR or record.exc_info:
            self.error_count += 1
            if len(self.errors) < 5:
                self.errors.append(message)
        if 'not measured until it appears' in message:
            self.not_found += 1

    def __enter__(self):
        agent = logging.getLogger('wca')
        self._saved = agent.level, agent.propagate
        agent.setLevel(logging.INFO)
        agent.propagate = False
        agent.addHandler(self)
        return self

    def __exit__(self, *exc):
        agent = logging.getLogger('wca')
        agent.removeHandler(self)
        agent.level, agent.propagate = self._saved


def task_ids_in(text):
    ids = set()
    for part in text.split('task_id="')[1:]:
        ids.add(part.split('"', 1)[0])
    return ids


def churn_run(cgroups, tmp_path, seconds=None, iterations=None, target=8, detection=False):
    """Runs the agent under churn for `seconds` or `iterations`; checks and returns figures."""
    with LogWatch() as log:
        result = _churn_run(cgroups, tmp_path, seconds, iterations, target, detection)
    assert not log.error_count, log.errors  # nothing failed, nothing escaped as an error
    assert log.not_found > 0  # a task was reported before its cgroup existed
    return result


def _churn_run(cgroups, tmp_path, seconds, iterations, target, detection):
    base = [cgroups.create('base-%d' % i) for i in range(3)]
    churn = Churn(cgroups)
    node = RacingNode(CgroupDirectoryNode(root=cgroups.parent, cgroup_layout=cgroups.layout),
                      churn)
    output = str(tmp_path / 'metrics.prom')
    common = dict(node=node, metrics_storage=LogStorage(output_filename=output, overwrite=True),
                  interval=0, cgroup_layout=cgroups.layout)
    if detection:
        runner = DetectionRunner(detector=NOPAnomalyDetector(), anomalies_storage=LogStorage(
            output_filename=str(tmp_path / 'anomalies.prom'), overwrite=True), **common)
    else:
        runner = MeasurementRunner(**common)
    for _ in range(target):
        churn.create()
    for _ in range(5):
        runner.iterate()
    gc.collect()
    fds, threads, py_threads = open_fds(), native_threads(), threading.active_count()
    rss_start = rss_mb()
    kept_start = len(reachable(runner, node.inner, exclude=[node]))
    rss_samples = []

    churn.start(target)
    try:
        started, count = time.monotonic(), 0
        while (iterations is not None and count < iterations) or (
                seconds is not None and time.monotonic() - started < seconds):
            runner.iterate()  # an exception here fails the test: none may escape
            count += 1
            if count % 50 == 0:
                rss_samples.append(rss_mb())
    finally:
        churn.stop()

    node.racing = False
    churn.remove_all()
    for _ in range(2):  # the first sees the removals, the second has nothing left over
        runner.iterate()
    gc.collect()

    live_ids = {path.strip('/') for path in base}
    assert set(runner.task_labels()) == live_ids
    assert {task.task_id for task in node.inner.get_tasks()} == live_ids
    text = open(output).read()
    assert task_ids_in(text) == live_ids
    assert sample_value(text, 'wca_tasks_waiting') == 0
    kept = reachable(runner, node.inner, exclude=[node])  # not the test's wrapper
    leftovers = mentions(kept, churn.removed)
    assert not leftovers, 'the agent still keeps %d strings about removed tasks, e.g. %r' % (
        len(leftovers), leftovers[:3])
    # Same tasks as at the start, so about the same state (not one entry per removed task).
    assert len(kept) < kept_start * 1.2 + 100, (kept_start, len(kept), len(churn.removed))

    assert open_fds() <= fds, 'file descriptors leaked: %d -> %d' % (fds, open_fds())
    # No thread left behind (one of an earlier test's may have ended meanwhile: fewer is fine).
    assert native_threads() <= threads and threading.active_count() <= py_threads, (
        threads, native_threads(), py_threads, threading.active_count())
    assert sample_value(text, 'wca_tasks_vanished_total') > 0  # the race was really run
    return {'iterations': count, 'removed': len(churn.removed), 'rss_start': rss_start,
            'rss_end': rss_mb(), 'rss_samples': rss_samples, 'kept_start': kept_start,
            'kept_end': len(kept)}


def sample_value(text, name):
    """The value of the sample of metric `name` (with any labels) in exposition text."""
    for line in text.splitlines():
        if line.startswith(name + '{') or line.startswith(name + ' '):
            return float(line.rsplit(' ', 1)[1] if '}' not in line else line.rsplit('} ', 1)[1].split()[0])
    raise AssertionError('no sample of %s' % name)


@pytest.mark.parametrize('detection', [False, True], ids=['measurement', 'detection'])
def test_agent_under_task_churn_keeps_nothing_of_removed_tasks(cgroups, tmp_path, detection):
    result = churn_run(cgroups, tmp_path, iterations=150, detection=detection)
    assert result['removed'] >= 30
    # Generous: the agent's own state is checked exactly above; this catches gross growth.
    assert result['rss_end'] - result['rss_start'] < 32, result


@pytest.mark.slow
def test_agent_under_task_churn_for_a_long_time(cgroups, tmp_path):
    """Deselected by default (setup.cfg); run it with: pytest -m slow tests/runners/test_endurance.py
    (10 minutes, or WCA_ENDURANCE_SECONDS=N)."""
    seconds = float(os.environ.get('WCA_ENDURANCE_SECONDS') or 600)
    result = churn_run(cgroups, tmp_path, seconds=seconds, target=20, detection=True)
    samples = result['rss_samples']
    assert result['iterations'] > 100 and len(samples) >= 4, result
    # Flat after warming up: the second half of the run grows by less than a few MB.
    half = samples[len(samples) // 2:]
    assert max(half) - half[0] < 8, result
    assert result['rss_end'] - result['rss_start'] < 48, result
