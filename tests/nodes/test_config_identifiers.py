"""Cgroup paths from a config (static tasks, roots) follow the identifier rule and a bad one
stops the agent before it starts (exit 2, one line naming file, line and key); a path from a
node that did not check it (a plugin's) is never joined to a mount."""
import subprocess

import pytest

from conftest import REPO, plugin_env, wca_command, write_config
from wca.cgroups.layout import CgroupLayout, CgroupNotFound, UnsafeCgroupPath
from wca.cgroups.measure import TaskCgroup
from wca.nodes.static import StaticNode


@pytest.mark.parametrize('node, expected', [
    ('!StaticNode {tasks: [ok, "a/../../system.slice"]}', "task 'a/../../system.slice'"),
    ('!StaticNode {tasks: ["/", ok]}', "task '/'"),
    ('!StaticNode {tasks: ["a/\\0b"]}', 'a/\\x00b'),
    ('!StaticNode {tasks: ["a/\\nb"]}', 'a/\\nb'),
    ('!StaticNode {tasks: ["a/\\u2215..\\u2215etc"]}', 'printable ASCII'),
    ('!StaticNode {tasks: [".hidden"]}', "starts with '.'"),
    ('!CgroupDirectoryNode {root: "/kubepods/../system.slice"}', "root '/kubepods/../system.slice'"),
    ('!MesosNode {cgroups_root: "/mesos/.."}', "cgroups_root '/mesos/..'"),
    ('!KubernetesNode {kubelet_enabled: true, cgroup_root: "/a/.."}', "cgroup_root '/a/..'"),
])
def test_a_bad_configured_cgroup_path_is_a_config_error(tmp_path, node, expected):
    path = write_config(tmp_path / 'wca.yaml', 'runner: !MeasurementRunner\n  node: %s\n' % node)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env(),
                            cwd=REPO, timeout=60)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith('wca: error: %s:2: runner.node: ' % path), line
    assert expected in line and 'Traceback' not in line, line


def test_well_formed_static_paths_are_kept():
    """systemd's escapes and ':' or '@' in names are real cgroup names."""
    tasks = ['machine.slice/machine-qemu\\x2d1\\x2dvm.scope', '/user.slice/user@1000.service',
             'a:b/c=d+e']
    node = StaticNode(tasks=tasks)
    assert [t.cgroup_path for t in node.get_tasks()] == [
        '/machine.slice/machine-qemu\\x2d1\\x2dvm.scope', '/user.slice/user@1000.service',
        '/a:b/c=d+e']


@pytest.mark.parametrize('path', ['/a/../..', '/..', '/a/./b', '/a\x00b', '../etc'])
def test_a_path_that_could_lead_elsewhere_is_never_joined(cgroups, path):
    """A plugin's node gives a task such a path: the runner's sources see CgroupNotFound
    (the task is not measured, as one whose cgroup is missing) and nothing is opened."""
    layout = CgroupLayout.detect()
    with pytest.raises(UnsafeCgroupPath):
        layout.directories(path)
    with pytest.raises(CgroupNotFound, match='not used'):
        TaskCgroup(cgroups.parent + '/' + path, layout)
