"""runqueue_delay: /proc/<tid>/schedstat's run-queue wait summed over the threads of a task's
cgroup, for real processes contending for a CPU in real cgroups, and for files of every shape
in a tree laid out like /proc."""
import logging
import os
import signal
import sys
import time

import pytest

from procfs_fixtures import assert_located, config_error

from testing.recording import Recording
from wca.cgroups.layout import CgroupLayout
from wca.metrics import MetricName, MetricType
from wca.nodes.base import Task
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner
from wca.runqueue import RunqueueSource, RunqueueSourceFactory, run_delay

NAME = 'task_runqueue_delay_seconds_total'

# `busy` threads spinning until SIGUSR1 (then they end), and a main thread that sleeps; after
# the start and after the busy threads have ended it writes the number of live threads to
# `done` (a rename: a reader sees all of it or nothing).
SPINNERS = '''\
import os, signal, sys, threading
busy, done = int(sys.argv[1]), sys.argv[2]
stop = threading.Event()
def spin():
    while not stop.is_set():
        pass
def report():
    with open(done + '.tmp', 'w') as f:
        f.write(str(threading.active_count()))
    os.rename(done + '.tmp', done)
workers = [threading.Thread(target=spin) for _ in range(busy)]
for w in workers:
    w.start()
signal.signal(signal.SIGUSR1, lambda *_: stop.set())
report()
while not stop.is_set():
    signal.pause()
for w in workers:
    w.join()
report()
while True:
    signal.pause()
'''
HOG = 'while True: pass'


def wait_for(ready, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('%s: not after %ds' % (what, timeout))
        time.sleep(0.02)


def pin(cgroups, path, cpus='0'):
    with open(cgroups.layout.v1['cpuset'] + path + '/cpuset.cpus', 'w') as f:
        f.write(cpus)


def live_threads(done):
    try:
        with open(done) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def spinners(cgroups, path, tmp_path, busy):
    done = str(tmp_path / ('done-' + os.path.basename(path)))
    process = cgroups.add_process(path, [sys.executable, '-c', SPINNERS, str(busy), done])
    wait_for(lambda: live_threads(done) == busy + 1, 'the spinners start')
    return process, done


def schedstat_sum(pid):
    """The run-queue wait of a process's threads in seconds, read the plain way."""
    total = 0
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/schedstat' % (pid, tid)) as f:
                total += int(f.read().split()[1])
        except FileNotFoundError:
            pass
    return total / 1e9


def counter(runner, task_id):
    runner.iterate()
    values = [m.value for m in runner.config.metrics_storage.last(NAME)
              if m.labels['task_id'] == task_id]
    assert len(values) == 1, values
    return values[0]


def test_the_wait_grows_while_a_hog_shares_the_cpu(cgroups, tmp_path):
    lc, hog = cgroups.create('lc', processes=0), cgroups.create('hog', processes=0)
    pin(cgroups, lc)
    pin(cgroups, hog)
    process, _ = spinners(cgroups, lc, tmp_path, busy=1)  # one thread spins, one sleeps
    runner = MeasurementRunner(node=StaticNode(tasks=[lc]), metrics_storage=Recording(),
                               interval=0, runqueue_delay=True)
    low = schedstat_sum(process.pid)
    first = counter(runner, lc.strip('/'))
    high = schedstat_sum(process.pid)
    assert low <= first <= high  # the sum of the second fields of the cgroup's threads
    cgroups.add_process(hog, [sys.executable, '-c', HOG])
    # a spinning thread alone on its CPU waits little; with a hog there, about half the time
    wait_for(lambda: counter(runner, lc.strip('/')) - first >= 0.3, 'the spinner waits behind the hog')
    sample = runner.config.metrics_storage.last(NAME)[0]
    assert sample.type == MetricType.COUNTER and 'run queue' in sample.help
    runner.close()


def test_a_thread_that_ends_never_makes_the_counter_go_back(cgroups, tmp_path):
    lc, hog = cgroups.create('lc', processes=0), cgroups.create('hog', processes=0)
    pin(cgroups, lc)
    pin(cgroups, hog)
    cgroups.add_process(hog, [sys.executable, '-c', HOG])
    process, done = spinners(cgroups, lc, tmp_path, busy=3)
    runner = MeasurementRunner(node=StaticNode(tasks=[lc]), metrics_storage=Recording(),
                               interval=0, runqueue_delay=True)
    task_id = lc.strip('/')
    before = wait_for(lambda: (lambda v: v if v >= 0.3 else 0)(counter(runner, task_id)),
                      'the spinners wait behind the hog')
    os.kill(process.pid, signal.SIGUSR1)  # the three spinners end; the sleeping thread stays
    wait_for(lambda: live_threads(done) == 1, 'the spinners end')
    after = counter(runner, task_id)
    remaining = schedstat_sum(process.pid)
    # Usually what the threads alive now waited is less than what was counted before, so a
    # plain sum would have gone back; on a loaded machine the survivors may have waited more
    # meanwhile. Either way the counter never goes back.
    assert after >= before and after >= remaining
    assert counter(runner, task_id) >= after
    runner.close()


def test_on_cgroup2_the_threads_come_from_cgroup_threads(cgroups, tmp_path):
    if not cgroups.layout.unified:
        pytest.skip('no cgroup2 mounted')
    path = cgroups.create('lc', processes=0)
    process, _ = spinners(cgroups, path, tmp_path, busy=1)
    layout = CgroupLayout.with_unified({}, cgroups.layout.unified)
    source = RunqueueSourceFactory(layout).open(Task('t', 't', path))
    assert source.listings == [(cgroups.layout.unified + path,
                                cgroups.layout.unified + path + '/cgroup.threads')]
    low = schedstat_sum(process.pid)
    m = {}
    source.measure(m)
    assert low <= m[MetricName.TASK_RUNQUEUE_DELAY_SECONDS] <= schedstat_sum(process.pid)
    assert len(source.files) == 1 + 2  # the listing, and the two threads' files


class ProcTree:
    """A cgroup's `tasks` file and /proc/<tid>/schedstat files laid out as the kernel's."""

    def __init__(self, root):
        self.root = str(root)
        self.tasks = os.path.join(self.root, 'cgroup', 'tasks')
        os.makedirs(os.path.dirname(self.tasks))
        self.proc = os.path.join(self.root, 'proc')
        os.makedirs(self.proc)

    def set(self, threads):
        """threads: {tid: schedstat text, or None for a thread whose file is gone}."""
        with open(self.tasks, 'w') as f:
            f.write(''.join('%d\n' % tid for tid in threads))
        for tid, text in threads.items():
            directory = os.path.join(self.proc, str(tid))
            if text is None:
                if os.path.exists(directory):
                    os.remove(os.path.join(directory, 'schedstat'))
                    os.rmdir(directory)
                continue
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, 'schedstat'), 'w') as f:
                f.write(text)

    def source(self, errors):
        return RunqueueSource(Task('t', 't', '/t'), [(os.path.dirname(self.tasks), self.tasks)],
                              self.proc, errors)


def measure(source):
    m = {}
    source.measure(m)
    return m.get(MetricName.TASK_RUNQUEUE_DELAY_SECONDS)


def test_schedstat_lines_of_every_shape():
    assert run_delay(b'1221391447 60473520 1205\n') == 60473520
    assert run_delay(b'5 7 1') == 7  # no newline
    assert run_delay(b'0 0 0\n') == 0  # a kernel without CONFIG_SCHED_INFO
    for bad in (b'', b'1 2\n', b'1 2 3 4\n', b'1 x 3\n', b'1 -2 3\n'):
        with pytest.raises(ValueError):
            run_delay(bad)


def test_ended_moved_and_reused_threads_keep_the_counter_monotonic(tmp_path, caplog):
    tree = ProcTree(tmp_path)
    errors = {}
    source = tree.source(errors)
    tree.set({7: '10 1000000000 1\n', 8: '10 500000000 1', 9: '1 250000000 1\n'})
    assert measure(source) == 1.75
    # 8 ended (listed, its file gone), 9 left the cgroup, 7 waited more
    tree.set({7: '10 1100000000 1\n', 8: None})
    assert measure(source) == pytest.approx(1.1 + 0.5 + 0.25)
    # a new thread took id 7: its value is below the old one's, which is carried
    tree.set({7: '1 100000000 1\n', 10: '1 50000000 1\n'})
    assert measure(source) == pytest.approx(1.1 + 0.5 + 0.25 + 0.1 + 0.05)
    # the last thread ends: the carried total stays
    tree.set({})
    assert measure(source) == pytest.approx(2.0)
    assert errors == {} and not caplog.records


def test_a_file_that_cannot_be_parsed_keeps_the_threads_last_value(tmp_path, caplog):
    tree = ProcTree(tmp_path)
    errors = {}
    source = tree.source(errors)
    tree.set({7: '10 1000000000 1\n', 8: '1 2000000000 1\n'})
    assert measure(source) == 3.0
    with caplog.at_level(logging.WARNING):
        for bad in ('10 x 1\n', '10 20\n'):
            tree.set({7: bad, 8: '1 2000000000 1\n'})
            assert measure(source) == 3.0  # neither lost nor counted twice
    tree.set({7: '10 1500000000 1\n', 8: '1 2000000000 1\n'})
    assert measure(source) == 3.5
    assert errors == {'measurement': 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and '/proc/<tid>/schedstat' in warnings[0], warnings
    assert 'run-queue delay of it are dropped' in warnings[0]
    # a new thread whose first file cannot be parsed: nothing of it yet
    tree.set({7: '10 1500000000 1\n', 8: '1 2000000000 1\n', 9: 'garbage'})
    assert measure(source) == 3.5


def test_an_unreadable_listing_or_file_keeps_the_last_values(tmp_path):
    tree = ProcTree(tmp_path)
    errors = {}
    source = tree.source(errors)
    tree.set({7: '10 1000000000 1\n'})
    assert measure(source) == 1.0
    # the thread's file cannot be read, though the thread is there: kept, not carried
    os.remove(os.path.join(tree.proc, '7', 'schedstat'))
    os.mkdir(os.path.join(tree.proc, '7', 'schedstat'))
    assert measure(source) == 1.0
    os.rmdir(os.path.join(tree.proc, '7', 'schedstat'))
    tree.set({7: '10 1200000000 1\n'})
    assert measure(source) == 1.2  # not 2.2: it was not carried
    # the listing cannot be read: nothing is exported, nothing carried
    os.remove(tree.tasks)
    os.mkdir(tree.tasks)
    assert measure(source) is None
    os.rmdir(tree.tasks)
    tree.set({7: '10 1300000000 1\n'})
    assert measure(source) == pytest.approx(1.3)
    assert errors == {'measurement': 2}


def test_runqueue_delay_must_be_a_bool(tmp_path):
    path, line = config_error(tmp_path, '''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          runqueue_delay: sometimes
        ''')
    assert_located(line, path, 3, 'runner.runqueue_delay')
