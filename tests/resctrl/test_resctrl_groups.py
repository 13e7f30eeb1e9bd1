"""resctrl groups: the original's names, making and removing them, running out of RMIDs for real
(mkdir on a tmpfs with few inodes fails with ENOSPC), and the record of the agent's own groups."""
import errno
import logging
import os

import pytest

from conftest import require_root
from resctrl_tree import resctrl_tree
from wca.platforms import RDTInformation
from wca.resctrl.groups import (GroupRecord, OutOfIds, group_name, make_group, marked,
                                marked_groups, monitoring_group, out_of_ids_message, remove_group,
                                start_record, valid_name)


@pytest.fixture
def tree(tmp_path):
    with resctrl_tree(str(tmp_path / 'resctrl')) as made:
        yield made


def test_names_as_the_original_gave_them():
    assert group_name('/kubepods/besteffort/pod1234-ab') == 'kubepods-besteffort-pod1234-ab'
    assert group_name('/task1') == 'task1'
    assert group_name('/a/b/') == 'a-b'
    assert monitoring_group('a-b') == 'mon_groups/a-b'
    assert monitoring_group('a-b', 'gold') == 'gold/mon_groups/a-b'
    assert valid_name('kubepods-besteffort-pod1')
    for bad in ('', 'info', 'mon_groups', 'mon_data', '.', '..', 'a\nb', 'x' * 256):
        assert not valid_name(bad), bad


def test_make_and_remove_a_monitoring_group(tree):
    info = tree.information()
    assert make_group(tree, 'mon_groups/t1', info) is True
    files = sorted(os.listdir(tree.path('mon_groups/t1')))
    assert files == ['cpus', 'cpus_list', 'mon_data', 'tasks']
    assert make_group(tree, 'mon_groups/t1', info) is False  # EEXIST: it is there
    assert remove_group(tree, 'mon_groups/t1') is True
    assert remove_group(tree, 'mon_groups/t1') is False  # gone already
    assert tree.groups() == []


def test_mkdir_where_resctrl_refuses_is_an_error(tree):
    with pytest.raises(PermissionError):
        make_group(tree, 'info/x', tree.information())


def test_out_of_rmids_for_real(tree):
    require_root()
    tree.limit_groups(2)
    info = tree.information()
    assert make_group(tree, 'mon_groups/a', info) and make_group(tree, 'mon_groups/b', info)
    with pytest.raises(OutOfIds) as raised:
        make_group(tree, 'mon_groups/c', info)
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value) == ('out of RMIDs: all 176 monitoring groups the hardware has '
                                 '(info/L3_MON/num_rmids) are in use (the kernel says: Out of '
                                 'RMIDs)')
    assert tree.groups() == ['a', 'b']
    remove_group(tree, 'mon_groups/a')  # one frees up
    assert make_group(tree, 'mon_groups/c', info)
    assert tree.groups() == ['b', 'c']


def test_messages_name_the_limit():
    info = RDTInformation(num_rmids=176, num_closids=8)
    busy = out_of_ids_message(errno.EBUSY, True, info)
    assert busy.startswith('no free RMID yet: of the 176 RMIDs the hardware has')
    assert 'limbo' in busy and 'max_threshold_occupancy' in busy
    assert out_of_ids_message(errno.ENOSPC, False, info, 'Out of CLOSIDs') == (
        'out of CLOSIDs: all 8 control groups the hardware has (num_closids, the smaller of '
        'info/L3 and info/MB) are in use (the kernel says: Out of CLOSIDs)')
    assert out_of_ids_message(errno.ENOSPC, True, RDTInformation(), 'ok') == (
        'out of RMIDs: all monitoring groups the hardware has (info/L3_MON/num_rmids) are in use')


def boot_id(tmp_path, value):
    path = tmp_path / ('boot_id_' + value)
    path.write_text(value + '\n')
    return str(path)


def test_record_lists_what_is_made_and_not_removed(tmp_path):
    path = str(tmp_path / 'record')
    record = GroupRecord(path, '/sys/fs/resctrl', boot_id(tmp_path, 'b1'))
    assert record.leftovers() == []
    record.start([])
    for name in ('a', 'b', 'c'):
        record.made('mon_groups/' + name)
    record.removed('mon_groups/b')
    with open(path) as f:
        assert f.read() == ('boot_id b1\nroot /sys/fs/resctrl\n+mon_groups/a\n+mon_groups/b\n'
                            '+mon_groups/c\n-mon_groups/b\n')
    again = GroupRecord(path, '/sys/fs/resctrl', boot_id(tmp_path, 'b1'))
    assert again.leftovers() == ['mon_groups/a', 'mon_groups/c']
    # Another boot, or another resctrl root: those groups are gone (or not ours to touch).
    assert GroupRecord(path, '/sys/fs/resctrl', boot_id(tmp_path, 'b2')).leftovers() == []
    assert GroupRecord(path, '/mnt/resctrl', boot_id(tmp_path, 'b1')).leftovers() == []


def test_record_is_compacted(tmp_path):
    path = str(tmp_path / 'record')
    record = GroupRecord(path, '/r', boot_id(tmp_path, 'b1'))
    record.start(['mon_groups/kept'])
    for i in range(600):
        record.made('mon_groups/t%d' % i)
        record.removed('mon_groups/t%d' % i)
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) < 1010
    assert GroupRecord(path, '/r', boot_id(tmp_path, 'b1')).leftovers() == ['mon_groups/kept']


def test_a_missing_directory_of_the_record_is_made(tmp_path):
    path = tmp_path / 'var-lib-wca' / 'record'  # /var/lib/wca exists only after a package install
    record = GroupRecord(str(path), '/r', boot_id(tmp_path, 'b'))
    record.start([])
    record.made('mon_groups/a')
    assert record.writable
    assert path.read_text() == 'boot_id b\nroot /r\n+mon_groups/a\n'


def test_unwritable_record_is_one_warning_naming_file_and_reason(tmp_path, caplog):
    (tmp_path / 'a-file').write_text('')
    path = str(tmp_path / 'a-file' / 'record')
    record = GroupRecord(path, '/r', boot_id(tmp_path, 'b'))
    record.start([])
    record.made('mon_groups/a')
    record.removed('mon_groups/a')
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert warnings == ['resctrl groups record %s: cannot make its directory: File exists; going '
                        'on without it: the next start finds the groups this run leaves behind '
                        'by their mark only (set rdt_groups_file to a writable file)' % path]
    assert not record.writable and record.configured


def test_groups_the_agent_makes_carry_its_mark(tree):
    info = tree.information()
    make_group(tree, 'mon_groups/ours', info)
    make_group(tree, 'gold', info)
    tree.mkdir('mon_groups/theirs')
    assert marked(tree, 'mon_groups/ours') and marked(tree, 'gold')
    assert not marked(tree, 'mon_groups/theirs') and not marked(tree, 'mon_groups/missing')
    assert sorted(marked_groups(tree)) == ['gold', 'mon_groups/ours']


def test_start_removes_only_the_agents_leftovers(tree, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    info = tree.information()
    path = str(tmp_path / 'record')
    first = start_record(path, tree)
    for name in ('ours1', 'ours2'):
        first.made('mon_groups/' + name)
        make_group(tree, 'mon_groups/' + name, info)
    tree.mkdir('mon_groups/operators')  # not in the record, not marked: someone else's
    tree.mkdir('gold')  # a control group of another tool
    tree.mkdir('gold/mon_groups/theirs')
    make_group(tree, 'gold/mon_groups/ours3', info)  # the record lost it: marked
    # The agent is killed here; the next start removes its own groups and nothing else.
    second = start_record(path, tree)
    assert tree.groups() == ['operators']
    assert tree.groups('gold') == ['theirs']
    assert second.leftovers() == []
    assert 'removed 3 groups an earlier run left behind: gold/mon_groups/ours3, ' \
        'mon_groups/ours1, mon_groups/ours2' in caplog.text
