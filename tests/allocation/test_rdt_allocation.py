"""RDT allocation against a resctrl tree laid out like the kernel's on a two-socket server
(tests/resctrl_tree.py; this machine has no RDT), with real tasks whose threads are moved in:
control groups per allocation name, schemata written once and only when changed, the root
group reset at start, the checks against info/, and the kernel's refusals."""
import os

import pytest

from allocation_fixtures import (FixedAllocator, ListNode, proc_tree, rejected, runner, task,
                                 written)
from resctrl_tree import resctrl_tree
from wca import security
from wca.allocators import AllocationConfiguration, AllocationType as A, RDTAllocation
from wca.nodes.static import StaticNode
from wca.resctrl.schemata import check_l3, check_mb, parse_schemata
from wca.resctrl import tasks
from wca.resctrl.groups import group_name


@pytest.fixture
def tree(tmp_path):
    with resctrl_tree(str(tmp_path / 'resctrl')) as made:
        yield made


def rdt_runner(tree, tmp_path, node, answer, **options):
    options.setdefault('rdt_groups_file', str(tmp_path / 'groups'))
    return runner(node, FixedAllocator(answer), resctrl=tree, rdt_enabled=None, **options)


def schemata(tree, group=''):
    with open(tree.path(group, 'schemata')) as f:
        return {resource: {d: int(v, 16 if resource == 'L3' else 10) for d, v in domains.items()}
                for resource, domains in parse_schemata(f.read()).items()}


def threads(cgroups, path):
    with open(cgroups.layout.v1['cpu'] + path + '/tasks') as f:
        return {int(t) for t in f.read().split()}


def test_checks_of_the_strings():
    domains = ['0', '1']
    assert check_l3('L3:0=0ff;1=7f0', domains, '7ff', 2) == 'L3:0=ff;1=7f0'
    for text, message in (
            ('L3:2=f', 'L3 domain id 2 out of range: this platform has 0, 1'),
            ('L3:x=f', "L3 domain id 'x' is not a number (in 'L3:x=f')"),
            ('L3:0=fff', 'L3 mask fff of domain 0 is bigger than cbm_mask 7ff'),
            ('L3:0=505', 'L3 mask 505 of domain 0: its bits must be contiguous (one run of ones)'),
            ('L3:0=0', 'L3 mask 0 of domain 0: its bits must be contiguous (one run of ones)'),
            ('L3:0=1', 'L3 mask 1 of domain 0 has 1 bit, fewer than min_cbm_bits 2'),
            ('L3:0=zz', "L3 mask 'zz' of domain 0 is not hexadecimal"),
            ('L3:0=f;0=f', "domain 0 given twice in 'L3:0=f;0=f'"),
            ('MB:0=f', 'l3 must start with "L3:" (like "L3:0=fffff;1=fffff"), got \'MB:0=f\''),
            ('L3:0', "malformed domain '0' in 'L3:0' (expected id=value)")):
        with pytest.raises(ValueError) as error:
            check_l3(text, domains, '7ff', 2)
        assert str(error.value) == message, text
    assert check_mb('MB:0=25;1=100', domains, 10, 10) == 'MB:0=30;1=100'  # rounded up
    assert check_mb('MB:1=1000', domains, 10, 10, percent=False) == 'MB:1=1000'
    for text, message in (('MB:0=5', 'MB value 5 of domain 0 is below min_bandwidth 10'),
                          ('MB:0=101', 'MB value 101 of domain 0 is above 100 (percent)'),
                          ('MB:0=1.5', "MB value '1.5' of domain 0 is not a whole number"),
                          ('MB:3=50', 'MB domain id 3 out of range: this platform has 0, 1')):
        with pytest.raises(ValueError) as error:
            check_mb(text, domains, 10, 10)
        assert str(error.value) == message, text


def test_root_group_reset_at_start(tree, tmp_path):
    with open(tree.path('schemata'), 'w') as f:
        f.write('L3:0=1;1=3\nMB:0=20;1=30\n')
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {})
    made.iterate()
    assert schemata(tree) == {'L3': {'0': 0x7ff, '1': 0x7ff}, 'MB': {'0': 100, '1': 100}}
    made.close()
    with open(tree.path('schemata'), 'w') as f:
        f.write('L3:0=1;1=3\nMB:0=20;1=30\n')
    made, metrics, anomalies, stored = rdt_runner(
        tree, tmp_path, StaticNode(), {}, allocation_configuration=AllocationConfiguration(
            default_rdt_l3='L3:0=ff;1=ff', default_rdt_mb='MB:0=55;1=100'))
    made.iterate()
    assert schemata(tree) == {'L3': {'0': 0xff, '1': 0xff}, 'MB': {'0': 60, '1': 100}}
    made.close()


def test_a_bad_default_is_a_clear_error_at_start(tree, tmp_path, caplog):
    made, metrics, anomalies, stored = rdt_runner(
        tree, tmp_path, StaticNode(), {}, iterations=1,
        allocation_configuration=AllocationConfiguration(default_rdt_l3='L3:0=fff;1=7ff'))
    assert made.run() == 1
    assert ('cannot reset the root resctrl group: L3 mask fff of domain 0 is bigger than cbm_mask '
            '7ff (default_rdt_l3 / default_rdt_mb of allocation_configuration)') in caplog.text


def test_tasks_moved_into_their_group_schemata_written_once(tree, tmp_path, cgroups):
    a, b = cgroups.create('a'), cgroups.create('b')
    be = RDTAllocation(name='be', l3='L3:0=00f;1=00f', mb='MB:0=25')
    answer = {a.strip('/'): {A.RDT: be}, b.strip('/'): {A.RDT: be}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a, b]),
                                                  answer)
    made.iterate()
    assert schemata(tree, 'be') == {'L3': {'0': 0xf, '1': 0xf}, 'MB': {'0': 30, '1': 100}}
    assert set(tree.tasks('be')) == threads(cgroups, a) | threads(cgroups, b)
    assert written(stored)['rdt'] == 2
    assert stored.value('allocation_rdt_mb', task_id=a.strip('/'), domain_id='0') == 30
    # the monitoring groups moved with the tasks, under the control group
    made.iterate()  # (their threads are written into them by the next measurement)
    assert tree.groups('be') == sorted(group_name(p) for p in (a, b))
    assert set(tree.tasks(os.path.join('be', 'mon_groups', group_name(a)))) == threads(cgroups, a)
    assert written(stored)['rdt'] == 2  # the kernel holds it: nothing written
    seen = made.config.allocator.seen[a.strip('/')][A.RDT]
    assert (seen.name, seen.l3, seen.mb) == ('be', 'L3:0=f;1=f', 'MB:0=30;1=100')
    # a thread that appears later joins the task's group (and monitoring group) next iteration
    late = cgroups.add_process(a)
    made.iterate()
    assert late.pid in tree.tasks('be')
    assert late.pid in tree.tasks(os.path.join('be', 'mon_groups', group_name(a)))
    # a new schemata for the group: written once
    answer[a.strip('/')] = answer[b.strip('/')] = {A.RDT: RDTAllocation(name='be', l3='L3:1=7f0')}
    made.iterate()
    made.iterate()
    assert schemata(tree, 'be')['L3'] == {'0': 0xf, '1': 0x7f0}
    assert written(stored)['rdt'] == 4
    made.close()
    assert not os.path.exists(tree.path('be'))  # the agent's groups go with it


def test_a_group_without_tasks_is_removed(tree, tmp_path, cgroups):
    a = cgroups.create('a')
    answer = {a.strip('/'): {A.RDT: RDTAllocation(name='be')}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a]), answer)
    made.iterate()
    assert os.path.isdir(tree.path('be'))
    answer[a.strip('/')] = {A.RDT: RDTAllocation(name='')}  # back to the root group
    made.iterate()
    assert not os.path.exists(tree.path('be'))
    assert threads(cgroups, a) <= set(tree.tasks(''))
    answer[a.strip('/')] = {A.RDT: RDTAllocation()}  # default name: from the task id
    made.iterate()
    assert os.path.isdir(tree.path(group_name(a)))
    cgroups.remove(a)  # the task goes: its group too
    made.iterate()
    assert not os.path.exists(tree.path(group_name(a)))
    made.close()


def test_invalid_rdt_allocations_rejected_alone(tree, tmp_path, cgroups):
    paths = [cgroups.create(name) for name in 'abcdef']
    ids = [p.strip('/') for p in paths]
    answer = {
        ids[0]: {A.RDT: RDTAllocation(name='g1', l3='L3:0=f'), A.SHARES: 2},
        ids[1]: {A.RDT: RDTAllocation(name='g1', l3='L3:0=f0')},  # conflicts with ids[0]
        ids[2]: {A.RDT: RDTAllocation(name='g2', mb='MB:0=5')},  # below min_bandwidth
        ids[3]: {A.RDT: RDTAllocation(name='mon_groups')},
        ids[4]: {A.RDT: RDTAllocation(name='g3', l3='L3:2=f')},
        ids[5]: {A.RDT: RDTAllocation(name='g1', l3='L3:0=f')},  # the same as ids[0]: fine
    }
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=paths),
                                                  answer)
    made.iterate()
    assert rejected(stored) == {('rdt', 'conflict'): 1, ('rdt', 'invalid'): 3}
    assert sorted(os.listdir(tree.root)) == sorted(['g1', 'info', 'mon_data', 'mon_groups',
                                                    'cpus', 'cpus_list', 'mode', 'schemata', 'size',
                                                    'tasks'])
    assert set(tree.tasks('g1')) == threads(cgroups, paths[0]) | threads(cgroups, paths[5])
    assert read_shares(cgroups, paths[0]) == '2000'
    made.close()


def read_shares(cgroups, path):
    with open(cgroups.layout.v1['cpu'] + path + '/cpu.shares') as f:
        return f.read().strip()


def test_more_groups_than_closids(tmp_path, cgroups):
    with resctrl_tree(str(tmp_path / 'resctrl'), l3_closids=3, mb_closids=4) as tree:
        paths = [cgroups.create(name) for name in 'abc']
        answer = {p.strip('/'): {A.RDT: RDTAllocation(name='g' + p[-1])} for p in paths}
        made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=paths),
                                                      answer)
        made.iterate()
        assert rejected(stored) == {('rdt', 'out_of_closids'): 1}
        assert os.path.isdir(tree.path('ga')) and os.path.isdir(tree.path('gb'))
        assert not os.path.exists(tree.path('gc'))  # 3 CLOSIDs: the root group's and two
        made.close()


def test_the_kernel_out_of_closids(tmp_path, cgroups):
    """Another tool holds CLOSIDs: mkdir fails with ENOSPC, as the kernel's does."""
    with resctrl_tree(str(tmp_path / 'resctrl'), on_tmpfs_inodes=0) as tree:
        a = cgroups.create('a')
        made, metrics, anomalies, stored = rdt_runner(
            tree, tmp_path, StaticNode(tasks=[a]), {a.strip('/'): {A.RDT: RDTAllocation('x')}})
        made.iterate()
        assert rejected(stored) == {('rdt', 'out_of_closids'): 1}
        made.close()


def test_a_schemata_the_kernel_refuses_gives_its_reason(tree, tmp_path, cgroups, caplog):
    a, b = cgroups.create('a'), cgroups.create('b')
    os.mkdir(tree.path('a-refusing'))  # a group made by someone else, whose schemata is a real
    os.symlink(cgroups.layout.v1['cpu'] + b + '/cpu.shares',  # kernel file refusing the text
               tree.path('a-refusing', 'schemata'))
    for name in ('tasks', 'cpus'):
        open(tree.path('a-refusing', name), 'w').close()

    def answer(tasks_data):
        # what the kernel would say about the write to come (tasks made monitoring groups
        # meanwhile, and each mkdir sets it to ok)
        with open(tree.path('info', 'last_cmd_status'), 'w') as f:
            f.write('MB value 30 out of range [10,20]\n')
        return {a.strip('/'): {A.RDT: RDTAllocation(name='a-refusing', mb='MB:0=30'), A.SHARES: 3},
                b.strip('/'): {A.RDT: RDTAllocation(name='fine', l3='L3:0=3')}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a, b]),
                                                  answer)
    made.iterate()
    assert rejected(stored) == {('rdt', 'kernel_refused'): 1}
    lines = [r.getMessage() for r in caplog.records if 'allocation rejected' in r.getMessage()]
    assert any('Invalid argument (the kernel says: MB value 30 out of range [10,20])' in line
               for line in lines), lines
    assert read_shares(cgroups, a) == '3000'
    assert schemata(tree, 'fine')['L3']['0'] == 3
    made.close()


def test_required_control_missing_exits_at_start(tmp_path, caplog):
    with resctrl_tree(str(tmp_path / 'resctrl'), mb=False) as tree:
        made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {},
                                                      rdt_mb_control_required=True, iterations=1)
        assert made.run() == 1
        assert 'rdt_mb_control_required is true, but resctrl at %s has no memory bandwidth ' \
               'allocation' % tree.root in caplog.text
        made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {},
                                                      rdt_cache_control_required=True,
                                                      iterations=1)
        assert made.run() == 0


def test_required_without_resctrl(tmp_path, caplog):
    made, metrics, anomalies, stored = runner(StaticNode(), FixedAllocator({}), iterations=1,
                                              rdt_enabled=None, rdt_cache_control_required=True,
                                              proc_root=proc_tree(str(tmp_path / 'proc')))
    assert made.run() == 1
    assert 'rdt_cache_control_required is true, but resctrl is not mounted' in caplog.text
    with pytest.raises(ValueError) as error:
        runner(StaticNode(), FixedAllocator({}), rdt_enabled=False, rdt_mb_control_required=True)
    assert 'rdt_enabled is false, so RDT control cannot be required' in str(error.value)


def test_remove_all_resctrl_groups(tree, tmp_path):
    tree.mkdir('theirs')
    tree.mkdir('mon_groups/watched')
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {})
    made.iterate()
    assert os.path.isdir(tree.path('theirs')) and tree.groups() == ['watched']  # left alone
    made.close()
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {},
                                                  remove_all_resctrl_groups=True)
    made.iterate()
    assert not os.path.exists(tree.path('theirs')) and tree.groups() == []
    made.close()


def test_dry_run_leaves_resctrl_alone(tree, tmp_path, cgroups):
    with open(tree.path('schemata'), 'w') as f:
        f.write('L3:0=1;1=3\nMB:0=20;1=30\n')
    a = cgroups.create('a')
    made, metrics, anomalies, stored = rdt_runner(
        tree, tmp_path, StaticNode(tasks=[a]), {a.strip('/'): {A.RDT: RDTAllocation('x')}},
        dry_run=True, remove_all_resctrl_groups=True)
    made.iterate()
    assert schemata(tree) == {'L3': {'0': 1, '1': 3}, 'MB': {'0': 20, '1': 30}}
    assert not os.path.exists(tree.path('x'))
    assert stored.value('allocations_errors') == 0 and written(stored)['rdt'] == 0
    made.close()


def test_a_pods_threads_are_its_containers(tree, tmp_path, cgroups):
    pod = cgroups.create('pod', processes=0)
    containers = [cgroups.create('pod/c1'), cgroups.create('pod/c2')]
    node = ListNode([task(pod, containers, task_id='uid')])
    made, metrics, anomalies, stored = rdt_runner(
        tree, tmp_path, node, {'uid': {A.RDT: RDTAllocation(l3='L3:0=3;1=3')}})
    made.iterate()
    assert set(tree.tasks('uid')) == threads(cgroups, containers[0]) | threads(cgroups,
                                                                               containers[1])
    made.close()


def test_rdt_allocation_declares_the_privileges_it_needs(tree, tmp_path):
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {})
    assert made.required_privileges() == [security.DAC_OVERRIDE, security.SETUID,
                                          security.NO_SETUID_FIXUP]
    made, metrics, anomalies, stored = runner(StaticNode(), FixedAllocator({}), resctrl=tree,
                                              rdt_enabled=False)
    assert made.required_privileges() == [security.DAC_OVERRIDE]


def test_a_control_group_removed_by_someone_else_is_made_again(tree, tmp_path, cgroups, caplog):
    """rmdir of the agent's control group by hand: every iteration still stores its metrics, the
    group is made again with its schemata, the task's threads (and monitoring group) go back in;
    counted, and logged once."""
    a = cgroups.create('a')
    answer = {a.strip('/'): {A.RDT: RDTAllocation(name='be', l3='L3:0=00f;1=00f')}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a]), answer)
    made.iterate()
    made.iterate()
    mon_group = os.path.join('be', 'mon_groups', group_name(a))
    assert set(tree.tasks(mon_group)) == threads(cgroups, a)
    tree.rmdir('be')  # its monitoring group goes with it; the kernel puts its threads in root
    for iteration in range(3):
        made.iterate()
        assert metrics.value('wca_iterations_total') == 3 + iteration  # stored, every iteration
        assert metrics.value('task_up') == 1
    assert schemata(tree, 'be')['L3'] == {'0': 0xf, '1': 0xf}
    assert set(tree.tasks('be')) == threads(cgroups, a)
    assert set(tree.tasks(mon_group)) == threads(cgroups, a)
    assert metrics.value('wca_rdt_repairs_total', what='control_group_removed') == 1
    assert written(stored)['rdt'] == 2  # made, and made again
    assert rejected(stored) == {}
    warnings = [r.getMessage() for r in caplog.records if 'removed by someone else' in
                r.getMessage()]
    assert warnings == ["RDT: control group 'be' was removed by someone else; its tasks are in "
                        "the root group until their allocation is applied again",
                        'resctrl: monitoring group %s of task %s was removed by someone else; '
                        'made again' % (mon_group, a.strip('/'))]
    made.close()
    assert not os.path.exists(tree.path('be'))


def test_threads_moved_out_of_a_control_group_are_moved_back(tree, tmp_path, cgroups,
                                                             monkeypatch):
    monkeypatch.setattr(tasks, 'VERIFY_SECONDS', 0)  # each group read back every iteration
    a = cgroups.create('a')
    answer = {a.strip('/'): {A.RDT: RDTAllocation(name='be')}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a]), answer)
    made.iterate()
    made.iterate()
    mine = threads(cgroups, a)
    with open(tree.path('be', 'tasks'), 'w') as f:  # someone moved them out (to another group)
        f.write('')
    made.iterate()
    assert set(tree.tasks('be')) == mine
    assert metrics.value('wca_rdt_repairs_total', what='threads_moved_back') >= len(mine)
    made.close()


def test_a_crashed_runs_control_groups_are_removed_at_the_next_start(tree, tmp_path, cgroups):
    """Killed with a task in its group, and its record lost: the next start removes the group it
    made (by its mark) and leaves another tool's alone."""
    a = cgroups.create('a')
    tree.mkdir('theirs')
    answer = {a.strip('/'): {A.RDT: RDTAllocation(name='be')}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a]), answer)
    made.iterate()
    assert os.path.isdir(tree.path('be')) and tree.groups('be') == [group_name(a)]
    os.unlink(str(tmp_path / 'groups'))  # killed; and the record is gone
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(), {})
    made.iterate()
    assert not os.path.exists(tree.path('be')) and os.path.isdir(tree.path('theirs'))
    made.close()


def test_a_control_group_removed_while_the_allocator_runs(tree, tmp_path, cgroups):
    """Removed between the read of what the kernel holds and the write: made again in that same
    iteration, the task's threads moved back in."""
    a = cgroups.create('a')
    removing = []

    def answer(tasks_data):
        if removing:
            tree.rmdir(removing.pop())
        return {a.strip('/'): {A.RDT: RDTAllocation(name='be', mb='MB:0=50')}}
    made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a]), answer)
    made.iterate()
    removing.append('be')
    made.iterate()
    assert schemata(tree, 'be')['MB'] == {'0': 50, '1': 100}
    assert set(tree.tasks('be')) == threads(cgroups, a)
    assert rejected(stored) == {} and written(stored)['rdt'] == 2
    made.iterate()  # (counted after this iteration's metrics were collected: in the next)
    assert metrics.value('wca_rdt_repairs_total', what='control_group_removed') == 1
    made.close()


def test_repairs_are_exported_where_resctrl_has_control_but_no_monitoring(tmp_path, cgroups):
    """A resctrl without info/L3_MON: the agent only allocates, and a control group removed by
    hand is still counted in wca_rdt_repairs_total (an iteration later: the allocation step
    finds it after the platform's metrics were collected)."""
    a = cgroups.create('a')
    answer = {a.strip('/'): {A.RDT: RDTAllocation(name='be', l3='L3:0=00f;1=00f')}}
    with resctrl_tree(str(tmp_path / 'resctrl'), monitoring=False) as tree:
        made, metrics, anomalies, stored = rdt_runner(tree, tmp_path, StaticNode(tasks=[a]), answer)
        made.iterate()
        tree.rmdir('be')
        made.iterate()
        made.iterate()
        assert metrics.value('wca_rdt_repairs_total', what='control_group_removed') == 1
        assert metrics.value('wca_rdt_groups_record_writable') == 1
        assert set(tree.tasks('be')) == threads(cgroups, a)
        made.close()
