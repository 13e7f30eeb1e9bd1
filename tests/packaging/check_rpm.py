"""The RPMs as built: reproducible, lint-clean, and holding what an operator expects."""
import hashlib
import os
import re
import subprocess
import tarfile
import time

import pytest

from pkg_fixtures import REPO, RPMLINT_ARGS, VARIANTS, build_rpms, copy_tree, require_tool, run

LIBDIR = 'usr/lib64/wca'


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def query(rpm, fmt):
    return run(['rpm', '-qp', '--qf', fmt, rpm]).stdout


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_two_builds_are_byte_identical(variant, rpms, build_dir, checkout):
    """The same commit in another directory, built later, in another time zone, locale and
    umask, with a cold wheel cache: the binary RPM (and the source RPM) come out the same, byte
    for byte."""
    first = rpms[variant]
    copy = copy_tree(checkout, os.path.join(build_dir, 'second-checkout-' + variant))
    time.sleep(1.1)  # a different second at least, whatever the build time
    env = dict(os.environ, TZ='Pacific/Kiritimati', LC_ALL='C', LANG='C',
               WCA_WHEEL_CACHE=os.path.join(copy, 'build', 'cold-wheel-cache'))
    os.umask(0o077)
    try:
        second = build_rpms(copy, os.path.join(build_dir, 'second', variant), variant, env=env)
    finally:
        os.umask(0o022)
    assert os.path.basename(second['binary']) == os.path.basename(first['binary'])
    assert sha256(second['binary']) == sha256(first['binary']), (
        'binary RPMs differ; compare: rpm -qlvp --dump on both, or diffoscope')
    assert sha256(second['source']) == sha256(first['source'])


def test_build_time_is_the_commit_time(rpms, checkout):
    commit_time = run(['git', '-C', checkout, 'log', '-1', '--format=%ct']).stdout.strip()
    for variant in VARIANTS:
        binary = rpms[variant]['binary']
        assert query(binary, '%{BUILDTIME} %{BUILDHOST}') == commit_time + ' reproducible'
        # every file's mtime is clamped to it
        mtimes = run(['rpm', '-qp', '--qf', '[%{FILEMTIMES}\n]', binary]).stdout.split()
        assert max(int(m) for m in mtimes) <= int(commit_time)


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_rpmlint_is_clean(variant, rpms):
    """No errors, no warnings: each accepted warning is filtered in wca.rpmlintrc, with why."""
    require_tool('rpmlint')
    files = [rpms[variant]['binary'], rpms[variant]['source']]
    result = run(['rpmlint'] + RPMLINT_ARGS + files, check=False)
    assert result.returncode == 0, result.stdout
    assert re.search(r'\b0 errors, 0 warnings\b', result.stdout), result.stdout


def test_rpmlintrc_explains_every_filter():
    with open(os.path.join(REPO, 'packaging', 'rpm', 'wca.rpmlintrc')) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith('addFilter('):
            above = [text for text in lines[:i] if text.strip()]
            assert above and (above[-1].startswith('#') or above[-1].startswith('addFilter(')), \
                'filter without a comment: ' + line


def bundled(rpm):
    provides = run(['rpm', '-qp', '--provides', rpm]).stdout.splitlines()
    found = {}
    for line in provides:
        m = re.match(r'bundled\(python3dist\((\S+)\)\) = (\S+)$', line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def dist_infos(tree):
    found = {}
    for entry in os.listdir(os.path.join(tree, LIBDIR)):
        m = re.match(r'(.+)-([^-]+)\.dist-info$', entry)
        if m:
            found[re.sub(r'[-_.]+', '-', m.group(1)).lower()] = m.group(2)
    return found


def lock_pins(checkout, python_version):
    """requirements.lock's pins for a Python version, evaluated independently of vendor.py."""
    from packaging.markers import Marker  # in the test virtualenv
    text = re.sub(r'\\\n', ' ', open(os.path.join(checkout, 'requirements.lock')).read())
    pins = {}
    env = {'python_version': python_version, 'python_full_version': python_version + '.0',
           'sys_platform': 'linux', 'platform_system': 'Linux', 'platform_machine': 'x86_64',
           'implementation_name': 'cpython', 'platform_python_implementation': 'CPython',
           'os_name': 'posix'}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        requirement = re.sub(r'\s*--hash=\S+', '', line)
        spec, _, marker = requirement.partition(';')
        if marker.strip() and not Marker(marker.strip()).evaluate(env):
            continue
        name, version = spec.strip().split('==')
        pins[re.sub(r'[-_.]+', '-', name).lower()] = version
    return pins


@pytest.mark.parametrize('variant,python_version', [('el7', '3.6'), ('python3', None)])
def test_bundled_dependencies_are_the_lock_pins_and_declared(variant, python_version, rpms,
                                                             payloads, checkout):
    if python_version is None:
        python_version = query(rpms[variant]['binary'], '[%{REQUIRES} %{REQUIREVERSION}\n]')
        python_version = re.search(r'^python\(abi\) (\S+)$', python_version, re.M).group(1)
    pins = lock_pins(checkout, python_version)
    assert dist_infos(payloads[variant]) == dict(pins, wca=query(rpms[variant]['binary'],
                                                                 '%{VERSION}'))
    assert bundled(rpms[variant]['binary']) == pins
    if python_version == '3.6':
        assert 'dataclasses' in pins


def test_nothing_is_provided_from_the_private_tree(rpms):
    for variant in VARIANTS:
        provides = run(['rpm', '-qp', '--provides', rpms[variant]['binary']]).stdout
        assert '.so' not in provides and 'python3dist(wca' not in provides, provides


def test_requires_the_interpreter(rpms):
    el7 = run(['rpm', '-qp', '--requires', rpms['el7']['binary']]).stdout.splitlines()
    python3 = run(['rpm', '-qp', '--requires', rpms['python3']['binary']]).stdout.splitlines()
    assert 'rh-python36' in el7
    assert not [r for r in el7 if r.startswith('python(abi)')]
    assert [r for r in python3 if re.match(r'python\(abi\) = 3\.\d+$', r)]
    assert 'shadow-utils' in python3 and 'systemd' in python3


def test_launcher_runs_the_private_tree_with_the_packaged_python(payloads):
    el7 = open(os.path.join(payloads['el7'], 'usr/bin/wca')).read()
    python3 = open(os.path.join(payloads['python3'], 'usr/bin/wca')).read()
    assert el7.startswith('#!/bin/sh\n') and python3.startswith('#!/bin/sh\n')
    # EL7: the collection's environment (its libpython), then its interpreter.
    assert '\n. /opt/rh/rh-python36/enable\n' in el7
    assert '\nexec /opt/rh/rh-python36/root/usr/bin/python3 -s -E -B /usr/lib64/wca "$@"\n' in el7
    assert 'enable' not in python3.replace('# ', '')
    assert '\nexec /usr/bin/python3 -s -E -B /usr/lib64/wca "$@"\n' in python3


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_files_modes_and_config(variant, rpms):
    binary = rpms[variant]['binary']
    files = {}
    for line in query(binary, '[%{FILENAMES}\t%{FILEMODES:perms}\t%{FILEUSERNAME}\t'
                              '%{FILEGROUPNAME}\t%{FILEFLAGS:fflags}\n]').splitlines():
        name, perms, user, group, flags = line.split('\t')
        files[name] = (perms, user, group, flags)
    # noreplace; readable by the agent's group only (it may hold SASL passwords)
    assert files['/etc/wca/wca_config.yml'] == ('-rw-r-----', 'root', 'wca', 'cn')
    assert files['/etc/sysconfig/wca'] == ('-rw-r--r--', 'root', 'root', 'cn')
    assert files['/usr/lib/systemd/system/wca.service'][:3] == ('-rw-r--r--', 'root', 'root')
    assert files['/usr/bin/wca'][:3] == ('-rwxr-xr-x', 'root', 'root')
    assert files['/var/lib/wca'][:3] == ('drwxr-xr-x', 'wca', 'wca')
    assert files['/etc/wca/plugins'][:3] == ('drwxr-xr-x', 'root', 'root')  # for -r, empty
    assert not [f for f in files if f.startswith('/etc/wca/plugins/')]
    assert [f for f in files if f.endswith('/LICENSE') and '/licenses/' in f]
    # unversioned, as the unit's Documentation= says, on EL7 too
    assert '/usr/share/doc/wca/README.md' in files
    assert 'Documentation=file:///usr/share/doc/wca/README.md' in open(
        os.path.join(REPO, 'packaging', 'systemd', 'wca.service')).read()
    # Nothing lands in a system site-packages directory.
    assert not [f for f in files if 'site-packages' in f or 'dist-packages' in f]
    writable = [f for f, (perms, *_) in files.items() if perms[5] == 'w' or perms[8] == 'w']
    assert not writable
    assert '%changelog' in open(os.path.join(REPO, 'packaging', 'rpm', 'wca.spec')).read()
    assert query(binary, '%{CHANGELOGTEXT}')


def test_scriptlets_create_the_user_and_use_systemd(rpms):
    scripts = run(['rpm', '-qp', '--scripts', rpms['python3']['binary']]).stdout
    assert 'useradd -r -g wca -d /var/lib/wca -s /sbin/nologin' in scripts
    assert 'systemctl --no-reload preset wca.service' in scripts      # %post, first install
    assert 'systemctl --no-reload disable wca.service' in scripts     # %preun, erase
    assert 'systemctl stop wca.service' in scripts                    # %preun, erase
    assert 'systemctl try-restart wca.service' in scripts             # %postun, upgrade


def test_no_build_paths_in_the_payload(payloads, checkout):
    """No trace of the build machine: the build directory, the checkout, the build host's
    interpreters (pip's direct_url.json and script shebangs are the usual culprits)."""
    needles = [b'/var/tmp/wca-rpmbuild', b'BUILDROOT', REPO.encode(), checkout.encode(), b'.pyenv',
               b'direct_url.json']
    for variant in VARIANTS:
        for dirpath, _, filenames in os.walk(payloads[variant]):
            for name in filenames:
                path = os.path.join(dirpath, name)
                assert name != 'direct_url.json', path
                if os.path.islink(path):
                    continue
                data = open(path, 'rb').read()
                for needle in needles:
                    assert needle not in data, '%s contains %r' % (path, needle)


def test_pyc_files_are_hash_based_or_absent(payloads):
    """EL7: none (Python 3.6 has no reproducible .pyc and the build host has no 3.6 of the
    collection). System python3: hash-checked .pyc of the build host's Python, when that is
    the target's version."""
    def pycs(tree):
        return [os.path.join(d, n) for d, _, ns in os.walk(os.path.join(tree, LIBDIR))
                for n in ns if n.endswith('.pyc')]
    assert pycs(payloads['el7']) == []
    compiled = pycs(payloads['python3'])
    assert compiled
    for path in compiled:
        with open(path, 'rb') as f:
            header = f.read(8)
        flags = int.from_bytes(header[4:8], 'little')
        assert flags == 0b11, path  # hash-based, checked against the source


def test_source_rpm_holds_the_sources_rpmbuild_needs(rpms):
    names = run(['rpm', '-qlp', rpms['el7']['source']]).stdout.split()
    version = query(rpms['el7']['source'], '%{VERSION}')
    for name in ['wca.spec', 'wca-%s.tar.gz' % version, 'wca-vendor-%s.tar.gz' % version,
                 'wca-vendor-%s.pins' % version, 'wca.service', 'wca_config.yml']:
        assert name in names


def test_vendor_tarball_has_wheels_for_every_target(rpms, build_dir):
    dest = os.path.join(build_dir, 'srpm-el7')
    os.makedirs(dest)
    rpm2cpio = subprocess.Popen(['rpm2cpio', rpms['el7']['source']], stdout=subprocess.PIPE)
    subprocess.run(['cpio', '-idm', '--quiet'], stdin=rpm2cpio.stdout, cwd=dest, check=True)
    assert rpm2cpio.wait() == 0
    version = query(rpms['el7']['source'], '%{VERSION}')
    with tarfile.open(os.path.join(dest, 'wca-vendor-%s.tar.gz' % version)) as tar:
        names = tar.getnames()
        assert {m.uid for m in tar.getmembers()} == {0}
    wheels = [n.rsplit('/', 1)[1] for n in names if n.endswith('.whl')]
    for tag in ('cp36-cp36m', 'cp38-cp38', 'cp39-cp39', 'cp311-cp311', 'cp312-cp312'):
        # (PyYAML 6.0.3, from Python 3.10 on, names its wheels pyyaml-...)
        assert [w for w in wheels if w.lower().startswith('pyyaml-') and tag in w], tag
    assert [w for w in wheels if w.startswith('dataclasses-')]
    # manylinux2014 (glibc 2.17, EL7) or older, never a newer-only wheel
    for w in wheels:
        tags = w[:-4].split('-')[-1].split('.')
        assert tags == ['any'] or any(
            t in ('manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64') or
            re.match(r'manylinux_2_(\d+)_x86_64$', t) and int(t.split('_')[2]) <= 17
            for t in tags), w


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_bundled_tree_matches_its_records(variant, payloads):
    """Every file a .dist-info/RECORD lists is there with that hash (tidy-tree.py rewrites the
    records of the modules whose "#!" line it drops), and no module keeps a "#!" line."""
    import base64
    import csv
    tree = os.path.join(payloads[variant], LIBDIR)
    checked = 0
    for entry in os.listdir(tree):
        if not entry.endswith('.dist-info'):
            continue
        with open(os.path.join(tree, entry, 'RECORD'), newline='') as f:
            for name, digest, size in csv.reader(f):
                if not digest:
                    continue  # RECORD itself, and the files pip adds
                data = open(os.path.join(tree, name), 'rb').read()
                algorithm, _, expected = digest.partition('=')
                actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest())
                assert actual.rstrip(b'=').decode() == expected, name
                assert int(size) == len(data), name
                if name.endswith('.py'):
                    assert not data.startswith(b'#!'), name
                checked += 1
    assert checked > 100
