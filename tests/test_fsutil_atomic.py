"""fsutil.write_atomically: the old contents or the new ones, never a part, and no leftovers."""
import errno
import os
import subprocess

import pytest

from conftest import require_root
from wca import fsutil


def test_the_file_is_replaced_whole_with_its_mode(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text('old')
    fsutil.write_atomically(str(path), b'new contents', 0o600)
    assert path.read_text() == 'new contents'
    assert os.stat(str(path)).st_mode & 0o777 == 0o600
    assert os.listdir(str(tmp_path)) == ['state.json']


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """The disk fills up (a 16 KiB tmpfs of this test's own) in the middle of the write."""
    require_root()
    mount = str(tmp_path / 'tiny')
    os.mkdir(mount)
    subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'size=16k,mode=0755', 'wca-test', mount])
    try:
        path = os.path.join(mount, 'state.json')
        fsutil.write_atomically(path, b'old')
        with pytest.raises(OSError) as error:
            fsutil.write_atomically(path, b'x' * (1 << 20))
        assert error.value.errno == errno.ENOSPC
        with open(path, 'rb') as f:
            assert f.read() == b'old'
        assert os.listdir(mount) == ['state.json']
    finally:
        subprocess.check_call(['umount', mount])
    with pytest.raises(OSError):
        fsutil.write_atomically(str(tmp_path / 'missing' / 'state.json'), b'new')
    assert not os.path.exists(str(tmp_path / 'missing'))


def test_nothing_planted_at_a_temporary_name_is_followed(tmp_path):
    """In a directory others can write, a link planted at the old predictable name
    (<path>.<pid>.tmp) is neither followed nor replaced."""
    victim = tmp_path / 'victim'
    victim.write_text('untouched')
    path = tmp_path / 'state.json'
    planted = tmp_path / ('state.json.%d.tmp' % os.getpid())
    os.symlink(str(victim), str(planted))
    fsutil.write_atomically(str(path), b'new')
    assert path.read_text() == 'new' and victim.read_text() == 'untouched'
    assert os.path.islink(str(planted))
