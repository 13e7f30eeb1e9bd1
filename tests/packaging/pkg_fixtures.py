"""Fixtures of the packaging tests (a pytest plugin): RPM builds, and a container with
systemd as PID 1 to install them in.

The tests are check_*.py, a name the agent's own pytest runs do not collect: they build RPMs
and boot a container, minutes of work. `make test-packaging` installs the tools they drive
and runs them as
    PYTHONPATH=tests/packaging .venv/bin/python -m pytest -p pkg_fixtures tests/packaging/check_*.py
A missing tool fails them in CI (CI=true); elsewhere they skip, naming the tool and the
command that installs it. (Not a conftest.py: tests/conftest.py is imported as `conftest` by
the agent's tests, and a second conftest module would take its place.)
"""
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CI = os.environ.get('CI') == 'true'
BUILD_RPM = os.path.join(REPO, 'packaging', 'rpm', 'build-rpm')
TESTBED = os.path.join(REPO, 'packaging', 'testbed', 'testbed')
RPMLINT_ARGS = ['-c', os.path.join(REPO, 'packaging', 'rpm', 'rpmlint.toml'),
                '-r', os.path.join(REPO, 'packaging', 'rpm', 'wca.rpmlintrc')]
# The two builds: EL7 with the rh-python36 collection (the default), and the system python3
# (the one installed in the testbed).
VARIANTS = {'el7': [], 'python3': ['--without', 'scl']}


def missing(what, install):
    message = '%s is missing; install it with: %s' % (what, install)
    if CI:
        pytest.fail('CI must not skip: ' + message)
    pytest.skip(message)


def require_tool(name, install='packaging/tools/install-deps test (as root)'):
    path = shutil.which(name)
    if not path:
        missing(name, install)
    return path


def require_root(what):
    if os.geteuid() != 0:
        missing('root (for %s)' % what, 'sudo make test-packaging')


def run(args, check=True, **kwargs):
    """Runs a command, returns its CompletedProcess with text stdout (stderr merged)."""
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError('%s exited %d:\n%s' % (' '.join(args), result.returncode,
                                                    result.stdout))
    return result


def build_rpms(source_dir, outdir, variant, env=None, rpmbuild_args=()):
    """Builds one variant with source_dir's build-rpm (and more rpmbuild options, e.g.
    --define 'wca_release 2'); returns {'binary': path, 'source': path}."""
    require_tool('rpmbuild', 'packaging/tools/install-deps build (as root)')
    run([os.path.join(source_dir, 'packaging', 'rpm', 'build-rpm'), outdir] + VARIANTS[variant]
        + list(rpmbuild_args), cwd=source_dir, env=env)
    rpms = sorted(os.listdir(outdir))
    binary = [f for f in rpms if f.endswith('.x86_64.rpm')]
    source = [f for f in rpms if f.endswith('.src.rpm')]
    assert len(binary) == 1 and len(source) == 1, rpms
    return {'binary': os.path.join(outdir, binary[0]), 'source': os.path.join(outdir, source[0])}


@pytest.fixture(scope='session')
def build_dir():
    path = tempfile.mkdtemp(prefix='wca-packaging-test.')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def copy_tree(source, dest):
    """A checkout's files as they are (uncommitted edits included) with its .git, in another
    directory; build outputs, virtualenvs and tools are left out."""
    os.makedirs(dest)
    tar = subprocess.Popen(['tar', '-C', source, '--exclude=./.venv*', '--exclude=./build',
                            '--exclude=./dist', '--exclude=./.tools', '--warning=no-file-changed',
                            '-cf', '-', '.'],
                           stdout=subprocess.PIPE)
    subprocess.run(['tar', '-C', dest, '-xf', '-'], stdin=tar.stdout, check=True)
    # 1: a file changed while it was read (others work in the same tree); the copy holds one
    # version of it, which is all a snapshot promises.
    assert tar.wait() in (0, 1)
    return dest


@pytest.fixture(scope='session')
def checkout(build_dir):
    """A snapshot of this checkout taken when the session starts, so that commits and edits
    made meanwhile (the working tree may be shared) do not change what the tests build."""
    return copy_tree(REPO, os.path.join(build_dir, 'checkout'))


@pytest.fixture(scope='session')
def rpms(build_dir, checkout):
    """Both variants, built once from the snapshot: {'el7': {...}, 'python3': {...}}."""
    return {variant: build_rpms(checkout, os.path.join(build_dir, 'first', variant), variant)
            for variant in VARIANTS}


def payload(rpm, dest):
    """Unpacks a binary RPM's files into dest (rpm2cpio | cpio)."""
    require_tool('rpm2cpio', 'apt-get install -y rpm2cpio')
    require_tool('cpio', 'apt-get install -y cpio')
    os.makedirs(dest)
    rpm2cpio = subprocess.Popen(['rpm2cpio', rpm], stdout=subprocess.PIPE)
    subprocess.run(['cpio', '-idm', '--quiet', '--no-absolute-filenames'], stdin=rpm2cpio.stdout,
                   cwd=dest, check=True)
    assert rpm2cpio.wait() == 0
    return dest


@pytest.fixture(scope='session')
def payloads(rpms, build_dir):
    return {variant: payload(rpms[variant]['binary'], os.path.join(build_dir, 'payload', variant))
            for variant in VARIANTS}


class Testbed:
    """The private dockerd of packaging/testbed/testbed."""

    def __init__(self):
        self.started_pid = None

    def __call__(self, *args, **kwargs):
        return run([TESTBED] + list(args), **kwargs)

    def docker(self, *args, **kwargs):
        return self('docker', *args, **kwargs)


@pytest.fixture(scope='session')
def testbed():
    """Builds the image (once per machine) and starts the private dockerd; stops the daemon
    at the end if this session started it."""
    require_root('debootstrap and dockerd')
    require_tool('debootstrap')
    require_tool('dockerd')
    require_tool('docker')
    bed = Testbed()
    bed('image')
    out = bed('daemon-start').stdout.strip().splitlines()[-1]
    if out != 'running':
        bed.started_pid = int(out)
    yield bed
    if bed.started_pid:
        bed('daemon-stop')


class Container:
    """A container booted from the testbed image, with systemd as PID 1."""

    def __init__(self, bed, name):
        self.bed, self.name = bed, name

    def sh(self, script, check=True, user=None):
        """Runs a shell script in the container (as root, or as user); returns its output."""
        args = ['exec'] + (['--user', user] if user else []) + [self.name, 'sh', '-c', script]
        return self.bed.docker(*args, check=check)

    def copy_in(self, path, dest):
        self.bed.docker('cp', path, '%s:%s' % (self.name, dest))

    def read(self, path):
        return self.sh('cat %s' % path).stdout


@pytest.fixture(scope='module')
def container(testbed):
    name = 'wca-pkg-test-%s' % uuid.uuid4().hex[:8]
    testbed('boot', name)
    try:
        yield Container(testbed, name)
    finally:
        testbed('rm', name, check=False)
