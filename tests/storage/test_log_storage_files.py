"""LogStorage's files as the system meets them: modes under the unit's umask, read by another
user, short writes and full disks (a tiny tmpfs), and a directory that appears only later."""
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import REPO, require_root, require_tool, wca_command, write_config
from wca.metrics import Metric, MetricType
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner
from wca.storage import FailedDeliveryException, LogStorage

NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']


def gauge(name, value, **labels):
    return Metric(name, value, labels, MetricType.GAUGE, 'Help of %s.' % name)


def many(count):
    return [gauge('series', i, i=str(i)) for i in range(count)]


@pytest.fixture
def public_dir():
    """A directory everyone may enter (pytest's tmp_path is private to root)."""
    path = tempfile.mkdtemp(prefix='wca-test-storage-')
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def tiny_fs():
    """A 16 KiB tmpfs of this test's own: writes beyond it fail with ENOSPC."""
    require_root()
    path = tempfile.mkdtemp(prefix='wca-test-tmpfs-')
    subprocess.check_call(['mount', '-t', 'tmpfs', '-o', 'size=16k,mode=0755', 'wca-test', path])
    try:
        yield path
    finally:
        subprocess.check_call(['umount', path])
        os.rmdir(path)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)  # the systemd unit's UMask=0027
    try:
        yield
    finally:
        os.umask(old)


def read_as_nobody(path):
    require_root()
    require_tool('setpriv', 'apt-get install -y util-linux')
    result = subprocess.run(NOBODY + ['cat', path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.parametrize('overwrite', [True, False])
def test_files_are_world_readable_whatever_the_umask(public_dir, umask_027, overwrite):
    path = os.path.join(public_dir, 'metrics.prom')
    storage = LogStorage(output_filename=path, overwrite=overwrite)
    storage.store([gauge('wca_up', 1)])
    storage.store([gauge('wca_up', 1)])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    text = read_as_nobody(path)  # node_exporter's textfile collector is another user
    assert text.count('\nwca_up') == (1 if overwrite else 2)


def test_an_existing_appended_file_keeps_its_mode(public_dir, umask_027):
    path = os.path.join(public_dir, 'metrics.log')
    with open(path, 'w'):
        pass
    os.chmod(path, 0o600)  # the operator's choice
    LogStorage(output_filename=path).store([gauge('wca_up', 1)])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_full_disk_fails_the_replace_and_leaves_no_temporary_file(tiny_fs):
    path = os.path.join(tiny_fs, 'metrics.prom')
    storage = LogStorage(output_filename=path, overwrite=True)
    storage.store(many(10))
    with open(path) as f:
        before = f.read()
    with pytest.raises(FailedDeliveryException, match='No space left on device'):
        storage.store(many(2000))  # about 40 KB
    assert os.listdir(tiny_fs) == ['metrics.prom']
    with open(path) as f:
        assert f.read() == before  # readers still see the last complete file
    assert storage.dropped_count() == 2000


def test_a_failed_rename_leaves_no_temporary_file(public_dir):
    target = os.path.join(public_dir, 'metrics.prom')
    os.mkdir(target)  # a directory where the file should be: rename fails with EISDIR
    storage = LogStorage(output_filename=target, overwrite=True)
    with pytest.raises(FailedDeliveryException, match='cannot write .*metrics.prom: Is a directory'):
        storage.store(many(10))
    assert os.listdir(public_dir) == ['metrics.prom'] and os.listdir(target) == []


def test_a_short_append_is_completed_or_reported(tiny_fs):
    """The first write() of a 40 KB append to a 16 KB file system writes part of it: the rest
    is written by further calls, whose ENOSPC is then reported (not silently lost)."""
    path = os.path.join(tiny_fs, 'metrics.log')
    storage = LogStorage(output_filename=path)
    with pytest.raises(FailedDeliveryException, match='No space left on device'):
        storage.store(many(2000))
    assert 0 < os.path.getsize(path) <= 16384
    assert storage.dropped_count() == 2000
    os.unlink(path)
    storage.store(many(100))  # space again: appends work
    with open(path) as f:
        assert f.read().count('\nseries{') == 100


def test_a_missing_directory_is_a_runtime_error_not_a_config_error(public_dir, caplog):
    directory = os.path.join(public_dir, 'wca')
    path = os.path.join(directory, 'metrics.prom')
    storage = LogStorage(output_filename=path, overwrite=True)  # accepted before it exists
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage, interval=0)
    runner.iterate()
    runner.iterate()
    failures = [r.getMessage() for r in caplog.records if 'failed to store' in r.getMessage()]
    assert len(failures) == 1, failures  # logged once when it starts, counted every time
    assert 'directory %s does not exist' % directory in failures[0]
    os.mkdir(directory)  # the package (or the operator) creates it: the next store works
    runner.iterate()
    with open(path) as f:
        text = f.read()
    assert 'wca_storage_errors_total{' in text and 'storage="metrics_storage"} 2\n' in text
    dropped = [line for line in text.splitlines() if line.startswith('wca_metrics_dropped_total{')]
    assert dropped and int(dropped[0].split()[-1]) > 0


def test_check_config_of_the_packaged_config_needs_no_output_directory(tmp_path):
    """The packaged config names /var/lib/wca, which the package creates: a template is checked
    before installing it (here with a directory that surely does not exist)."""
    with open(os.path.join(REPO, 'packaging', 'wca_config.yml')) as f:
        packaged = f.read()
    assert 'output_filename: /var/lib/wca/metrics.prom' in packaged
    missing = str(tmp_path / 'not-created-yet')
    config = write_config(tmp_path / 'wca_config.yml', packaged.replace('/var/lib/wca', missing))
    result = subprocess.run(wca_command('-c', config, '--check-config'), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert result.returncode == 0, result.stdout.decode()
    assert not os.path.exists(missing)
