"""The task lifecycle as a source sees it: opened once when the task appears, kept while the
node keeps listing it (also as new but equal objects, as orchestrator nodes return them),
closed once when it leaves or changes, and everything closed when the agent stops."""
from wca.cgroups.layout import CgroupNotFound
from wca.nodes.base import Task
from wca.runners.tasks import TaskTracker
from wca.sources import TaskSource, TaskSourceFactory


class Source(TaskSource):
    def __init__(self, log, task):
        self.log, self.task = log, task
        log.append(('open', task.task_id, task.cgroup_path))

    def measure(self, measurements):
        measurements['x'] = 1

    def close(self):
        self.log.append(('close', self.task.task_id, self.task.cgroup_path))


class Factory(TaskSourceFactory):
    def __init__(self):
        self.log, self.missing = [], set()

    def open(self, task):
        if task.cgroup_path in self.missing:
            raise CgroupNotFound(task.cgroup_path, ['/sys/fs/cgroup/cpu'])
        return Source(self.log, task)


def task(task_id, path=None, **labels):
    return Task(name=task_id, task_id=task_id, cgroup_path=path or '/' + task_id, labels=labels)


def tracker(factory):
    return TaskTracker([factory], lambda t: {'task_id': t.task_id}, lambda kind: None)


def test_equal_task_objects_keep_their_sources_open():
    factory = Factory()
    tasks = tracker(factory)
    for _ in range(3):  # a new, equal Task object every iteration
        tasks.sync([task('a', app='web'), task('b')])
    assert factory.log == [('open', 'a', '/a'), ('open', 'b', '/b')]


def test_a_task_that_leaves_or_changes_is_closed_once():
    factory = Factory()
    tasks = tracker(factory)
    tasks.sync([task('a'), task('b')])
    tasks.sync([task('a', '/moved')])  # b left, a's cgroup changed
    tasks.sync([task('a', '/moved')])
    assert factory.log[2:] == [('close', 'a', '/a'), ('close', 'b', '/b'), ('open', 'a', '/moved')]
    tasks.close()
    assert factory.log[-1] == ('close', 'a', '/moved')
    assert len(tasks) == 0


def test_a_task_whose_cgroup_is_missing_waits_and_is_opened_when_it_appears():
    factory = Factory()
    factory.missing.add('/late')
    tasks = tracker(factory)
    tasks.sync([task('late')])
    assert tasks.waiting == 1 and len(tasks) == 0 and factory.log == []
    factory.missing.clear()
    tasks.sync([task('late')])
    assert tasks.waiting == 0 and factory.log == [('open', 'late', '/late')]


def test_a_vanished_task_is_closed_when_dropped():
    factory = Factory()
    tasks = tracker(factory)
    tasks.sync([task('a')])
    tasks.drop('a')
    tasks.drop('a')
    assert factory.log == [('open', 'a', '/a'), ('close', 'a', '/a')]


def test_tasks_that_left_are_closed_before_new_ones_are_opened():
    """A task relaunched under a new id on the cgroup path of one that left (a Mesos or Aurora
    restart, a static task renamed): the old one's resources on that path (its resctrl group,
    its perf descriptors) are released before the new one's are made, never held twice."""
    factory = Factory()
    tasks = tracker(factory)
    tasks.sync([task('web-1', '/web'), task('db', '/db')])
    tasks.sync([task('db', '/db'), task('web-2', '/web')])
    assert factory.log[2:] == [('close', 'web-1', '/web'), ('open', 'web-2', '/web')]


def test_a_task_listed_twice_is_opened_once():
    factory = Factory()
    tasks = tracker(factory)
    tasks.sync([task('a'), task('a')])
    tasks.close()
    assert factory.log == [('open', 'a', '/a'), ('close', 'a', '/a')]
