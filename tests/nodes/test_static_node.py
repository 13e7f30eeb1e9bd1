"""Discovery without an orchestrator: a static list, and the children of a cgroup directory."""
import pytest

from wca.nodes.static import CgroupDirectoryNode, StaticNode


def test_static_node_tasks_and_labels():
    node = StaticNode(tasks=['task1', '/group/task2'], default_labels={'env': 'dev'},
                      tasks_labels={'task1': {'env': 'prod', 'tier': 'lc'}})
    tasks = {t.task_id: t for t in node.get_tasks()}
    assert tasks['task1'].cgroup_path == '/task1' and tasks['task1'].name == 'task1'
    assert tasks['task1'].labels == {'env': 'prod', 'tier': 'lc'}
    assert tasks['group/task2'].cgroup_path == '/group/task2'
    assert tasks['group/task2'].labels == {'env': 'dev'}
    assert node.get_tasks()[0] is node.get_tasks()[0]  # the same objects every time


@pytest.mark.parametrize('kwargs, message', [
    ({'tasks': ['/']}, 'not a cgroup path'),
    ({'tasks': ['a/../../etc']}, 'not a cgroup path'),
    ({'tasks': ['a'], 'tasks_labels': {'b': {}}}, 'not in tasks: b'),
])
def test_static_node_rejects_bad_tasks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StaticNode(**kwargs)


def test_static_node_require_pids(cgroups):
    busy = cgroups.create('busy')
    idle = cgroups.create('idle', processes=0)
    node = StaticNode(tasks=[busy, idle], require_pids=True)
    assert [t.cgroup_path for t in node.get_tasks()] == [busy]


def test_directory_node_finds_children_leaves_and_pids(cgroups):
    parent = cgroups.create('pod', processes=0)
    c1 = cgroups.create('pod/c1')
    cgroups.create('pod/c2', processes=0)
    other = cgroups.create('other')
    node = CgroupDirectoryNode(root=cgroups.parent, max_depth=2)
    found = [t.cgroup_path for t in node.get_tasks()]
    assert found == sorted([parent, c1, parent + '/c2', other])
    leaves = CgroupDirectoryNode(root=cgroups.parent, max_depth=2, leaves_only=True)
    assert [t.cgroup_path for t in leaves.get_tasks()] == sorted([c1, parent + '/c2', other])
    with_pids = CgroupDirectoryNode(root=cgroups.parent, max_depth=2, require_pids=True)
    assert [t.cgroup_path for t in with_pids.get_tasks()] == sorted([c1, other])
    direct = CgroupDirectoryNode(root=cgroups.parent, labels={'source': 'dir'})
    tasks = direct.get_tasks()
    assert [t.task_id for t in tasks] == sorted([parent.strip('/'), other.strip('/')])
    assert tasks[0].labels == {'source': 'dir'}
    assert direct.get_tasks()[0] is tasks[0]  # unchanged tasks keep their identity


@pytest.mark.parametrize('kwargs', [{'root': 'relative'}, {'root': '/a/../b'}, {'max_depth': 0}])
def test_directory_node_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        CgroupDirectoryNode(**kwargs)
