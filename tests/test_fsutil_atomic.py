"""fsutil.write_atomically: the old contents or the new ones, never a part, and no leftovers."""
import os

import pytest

from wca import fsutil


def test_the_file_is_replaced_whole_with_its_mode(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text('old')
    fsutil.write_atomically(str(path), b'new contents', 0o600)
    assert path.read_text() == 'new contents'
    assert os.stat(str(path)).st_mode & 0o777 == 0o600
    assert os.listdir(str(tmp_path)) == ['state.json']


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'state.json'
    path.write_text('old')
    os.mkdir(str(tmp_path / ('state.json.%d.tmp' % os.getpid())))  # no temporary file there
    with pytest.raises(OSError):
        fsutil.write_atomically(str(path), b'new')
    assert path.read_text() == 'old'
    with pytest.raises(OSError):
        fsutil.write_atomically(str(tmp_path / 'missing' / 'state.json'), b'new')
    assert not os.path.exists(str(tmp_path / 'missing'))
