"""resctrl detection (the mount table) and Platform.rdt_information from info/, on a tree laid
out like /sys/fs/resctrl (tests/resctrl_tree.py): this machine has no RDT."""
import os

import pytest

from resctrl_tree import ResctrlTree
from wca.platforms import RDTInformation
from wca.resctrl.info import Resctrl, ResctrlUnavailable, find_mount, resolve

MOUNTS = '''\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
resctrl /sys/fs/resctrl resctrl rw,relatime 0 0
'''


def mounts_file(tmp_path, text, name='mounts'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_mount_is_found_in_the_mount_table(tmp_path):
    assert find_mount(mounts_file(tmp_path, MOUNTS)) == '/sys/fs/resctrl'
    assert Resctrl.detect(mounts_file(tmp_path, MOUNTS)).root == '/sys/fs/resctrl'
    moved = MOUNTS.replace('resctrl /sys/fs/resctrl', 'resctrl /mnt/my\\040resctrl')
    assert find_mount(mounts_file(tmp_path, moved)) == '/mnt/my resctrl'


def test_this_machine_has_no_resctrl():
    with open('/proc/self/mounts') as f:
        mounted = any(line.split()[2] == 'resctrl' for line in f if len(line.split()) > 2)
    assert (find_mount() is not None) == mounted
    if not mounted:
        assert Resctrl.detect() is None


def test_absent_resctrl_is_off_unless_required(tmp_path):
    none = mounts_file(tmp_path, MOUNTS.splitlines()[0] + '\n', 'none')
    assert resolve(None, None, none) is None
    assert resolve(False, None, mounts_file(tmp_path, MOUNTS)) is None
    assert resolve(None, None, mounts_file(tmp_path, MOUNTS)).root == '/sys/fs/resctrl'
    with pytest.raises(ResctrlUnavailable) as raised:
        resolve(True, None, none)
    message = str(raised.value)
    assert 'rdt_enabled is true, but resctrl is not mounted' in message
    assert 'mount -t resctrl resctrl /sys/fs/resctrl' in message
    assert 'set it to false' in message


def test_two_socket_server_information(tmp_path):
    tree = ResctrlTree(str(tmp_path / 'resctrl'))
    assert tree.information() == RDTInformation(
        cbm_mask='7ff', min_cbm_bits='1', num_closids=8, mb_bandwidth_gran=10,
        mb_min_bandwidth=10, rdt_cache_monitoring_enabled=True, rdt_cache_control_enabled=True,
        rdt_mb_monitoring_enabled=True, rdt_mb_control_enabled=True,
        mon_features=('llc_occupancy', 'mbm_total_bytes', 'mbm_local_bytes'), num_rmids=176)
    assert tree.monitoring_domains() == ['mon_L3_00', 'mon_L3_01']
    assert tree.has_monitoring()
    assert tree.last_cmd_status() == 'ok'


def test_num_closids_is_the_smaller_of_l3_and_mb(tmp_path):
    tree = ResctrlTree(str(tmp_path / 'a'), l3_closids=4, mb_closids=8)
    assert tree.information().num_closids == 4
    assert ResctrlTree(str(tmp_path / 'b'), mb=False, l3_closids=16).information().num_closids == 16


def test_cache_only_server(tmp_path):
    info = ResctrlTree(str(tmp_path / 'r'), mb=False,
                       mon_features=('llc_occupancy',)).information()
    assert info.rdt_cache_control_enabled and not info.rdt_mb_control_enabled
    assert info.rdt_cache_monitoring_enabled and not info.rdt_mb_monitoring_enabled
    assert info.mb_bandwidth_gran is None and info.mb_min_bandwidth is None
    assert info.mon_features == ('llc_occupancy',)


def test_allocation_without_monitoring(tmp_path):
    tree = ResctrlTree(str(tmp_path / 'r'), monitoring=False)
    info = tree.information()
    assert not tree.has_monitoring()
    assert info.mon_features == () and info.num_rmids is None
    assert not info.rdt_cache_monitoring_enabled and not info.rdt_mb_monitoring_enabled
    assert info.rdt_cache_control_enabled and info.cbm_mask == '7ff'


def test_cdp_uses_l3data_and_old_kernels_without_mon_features(tmp_path):
    tree = ResctrlTree(str(tmp_path / 'r'))
    os.rename(tree.path('info/L3'), tree.path('info/L3DATA'))
    os.chmod(tree.path('schemata'), 0o644)
    with open(tree.path('schemata'), 'w') as f:
        f.write('L3DATA:0=7ff;1=7ff\nL3CODE:0=7ff;1=7ff\n    MB:0=100;1=100\n')
    os.unlink(tree.path('info/L3_MON/mon_features'))
    info = tree.information()
    assert info.cbm_mask == '7ff' and info.rdt_cache_control_enabled and info.rdt_mb_control_enabled
    assert info.mon_features == ('llc_occupancy', 'mbm_total_bytes', 'mbm_local_bytes')


def test_garbage_in_info_leaves_that_field_unset(tmp_path, caplog):
    tree = ResctrlTree(str(tmp_path / 'r'))
    os.chmod(tree.path('info/L3_MON/num_rmids'), 0o644)
    with open(tree.path('info/L3_MON/num_rmids'), 'w') as f:
        f.write('many\n')
    assert tree.information().num_rmids is None
    assert "expected a number, got 'many'" in caplog.text
