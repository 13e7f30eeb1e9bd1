"""`make repo`'s yum repository, used as an EL host uses it: dnf installs, upgrades and
removes wca from it over HTTPS on 127.0.0.1, and refuses an unsigned package, a package
changed after it was signed, and metadata changed after it was signed.

dnf runs on this Debian host (Debian's dnf package) on a private --installroot, and resolves
wca's dependencies from the repositories it is given, as on a host:
- "wca": the repository packaging/repo/make-repo made, its wca.repo as published (gpgcheck=1,
  repo_gpgcheck=1, gpgkey over HTTPS), plus the sslcacert= of the CA made for the test;
- "wca-test-stubs": a local repository with one TEST STUB package, wca-test-stub-el-base,
  built here, unsigned, with no files. It stands for the EL base system a real host has
  (glibc, /bin/sh, python3, shadow-utils, systemd), which no Debian package can install into
  an RPM root: it provides each of those requirements of the wca RPM, and only those (STUBBED
  below), so a new dependency of the RPM makes dnf fail here until it is looked at.
The RPM's scriptlets do not run (tsflags=noscripts): the installroot has no shell, useradd or
systemd to run them with. check_container.py runs them, under systemd, in the testbed.
"""
import os
import re
import shutil
import sys

import pytest

from pkg_fixtures import REPO, build_rpms, require_root, require_tool, run

sys.path.insert(0, os.path.join(REPO, 'tests'))
from tls_ca import Answer, JsonServer, make_pki  # noqa: E402 (tests/ is not a package)

# What the stub provides: the requirements of the wca RPM that an EL base system meets. A
# requirement the RPM gains outside these patterns is not stubbed, and dnf says so.
STUBBED = [r'/bin/sh', r'lib(c|pthread|dl|m|rt|util)\.so\.\d+\(.*', r'rtld\(GNU_HASH\)',
           r'python\(abi\) = 3\.\d+', r'shadow-utils', r'systemd']
KEY_UID = 'wca repository test key <wca-test@invalid>'


def make_repo(checkout, outdir, rpms, url, gnupghome=None, key=None):
    """packaging/repo/make-repo of the snapshot; returns its output (stderr merged)."""
    args = [os.path.join(checkout, 'packaging', 'repo', 'make-repo'), '--url', url]
    if key:
        args += ['--key', key]
    else:
        args += ['--test-keyring', os.path.join(os.path.dirname(outdir), 'throwaway-keyring')]
    env = dict(os.environ, GNUPGHOME=gnupghome) if gnupghome else None
    return run(args + [outdir] + list(rpms), env=env).stdout


def kill_agent(gnupghome):
    run(['gpgconf', '--kill', 'gpg-agent'], check=False, env=dict(os.environ, GNUPGHOME=gnupghome))


@pytest.fixture(scope='module')
def work(build_dir):
    for tool in ('dnf', 'createrepo_c', 'rpmsign', 'gpg'):
        require_tool(tool)
    path = os.path.join(build_dir, 'repo')
    os.makedirs(path)
    return path


@pytest.fixture(scope='module')
def operator_key(work):
    """A signing key made for the test in a keyring of its own: the operator's key, as
    make repo REPO_KEY=... GNUPGHOME=... uses it."""
    home = os.path.join(work, 'operator-gnupg')
    os.makedirs(home, mode=0o700)
    env = dict(os.environ, GNUPGHOME=home)
    run(['gpg', '--batch', '--quiet', '--passphrase', '', '--quick-generate-key', KEY_UID,
         'rsa3072', 'sign', '1d'], env=env)
    yield home
    kill_agent(home)
    kill_agent(os.path.join(work, 'throwaway-keyring'))


@pytest.fixture(scope='module')
def releases(rpms, checkout, work):
    """wca-VERSION-1 (the session's python3 build) and wca-VERSION-2, built from the same
    snapshot with --define 'wca_release 2'."""
    second = build_rpms(checkout, os.path.join(work, 'release-2'), 'python3',
                        rpmbuild_args=['--define', 'wca_release 2'])
    return [rpms['python3']['binary'], second['binary']]


@pytest.fixture(scope='module')
def stub_repo(releases, work):
    """The local repository of the test stub package (see the module's docstring)."""
    requires = run(['rpm', '-qp', '--requires'] + releases).stdout.splitlines()
    provides = sorted({r.strip() for r in requires
                       if any(re.match(p + '$', r.strip()) for p in STUBBED)})
    topdir, repo = os.path.join(work, 'stub-build'), os.path.join(work, 'stub-repo')
    os.makedirs(os.path.join(topdir, 'SPECS'))
    spec = os.path.join(topdir, 'SPECS', 'stub.spec')
    with open(spec, 'w') as f:
        f.write('Name: wca-test-stub-el-base\nVersion: 1\nRelease: 1\nBuildArch: noarch\n'
                'License: Apache-2.0\nSummary: TEST STUB for wca/tests/packaging/check_repo.py\n'
                + ''.join('Provides: %s\n' % p for p in provides)
                + '%description\nStands for the EL base system in a dnf installroot; not a '
                  'package to install anywhere else.\n%files\n')
    run(['rpmbuild', '-bb', '--quiet', '--define', '_topdir ' + topdir, spec])
    os.makedirs(repo)
    for dirpath, _, files in os.walk(os.path.join(topdir, 'RPMS')):
        for name in files:
            shutil.copy(os.path.join(dirpath, name), repo)
    run(['createrepo_c', '--quiet', repo])
    return repo


@pytest.fixture(scope='module')
def pki(work):
    return make_pki(os.path.join(work, 'pki'))


@pytest.fixture(scope='module')
def web(work, pki):
    """An HTTPS server on 127.0.0.1 serving the files under web.root."""
    root = os.path.join(work, 'www')
    os.makedirs(root)

    def respond(request):
        path = os.path.normpath(os.path.join(root, request.path.split('?')[0].lstrip('/')))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            return Answer(404, b'not found\n', 'text/plain')
        with open(path, 'rb') as f:
            return Answer(200, f.read(), 'application/octet-stream')

    with JsonServer(respond, pki=pki) as server:
        server.root = root
        yield server


class Host:
    """A dnf installroot with /etc/yum.repos.d holding a published wca.repo and the stubs."""

    def __init__(self, path, wca_repo_file, stub_repo, ca_cert):
        require_root('dnf --installroot')
        self.root = os.path.join(path, 'root')
        self.reposdir = os.path.join(path, 'yum.repos.d')
        os.makedirs(self.root)
        os.makedirs(self.reposdir)
        with open(wca_repo_file) as f:
            published = f.read()
        with open(os.path.join(self.reposdir, 'wca.repo'), 'w') as f:
            # The host trusts the test's CA for the HTTPS server.
            f.write(published + 'sslcacert=%s\n' % ca_cert)
        with open(os.path.join(self.reposdir, 'wca-test-stubs.repo'), 'w') as f:
            f.write('[wca-test-stubs]\nname=TEST STUBS of the EL base system\nbaseurl=file://%s\n'
                    'gpgcheck=0\n' % stub_repo)
        self.config = os.path.join(path, 'dnf.conf')
        with open(self.config, 'w') as f:
            f.write('[main]\ngpgcheck=1\ninstall_weak_deps=False\n')

    def dnf(self, *args, check=True):
        return run(['dnf', '-y', '--installroot', self.root, '--config', self.config,
                    '--setopt=reposdir=' + self.reposdir, '--releasever', '9', '--noplugins',
                    '--setopt=tsflags=noscripts', '--refresh'] + list(args), check=check)

    def installed(self):
        """The NEVRA of the installed wca and the repository it came from, or None."""
        result = run(['rpm', '--root', self.root, '-q', '--qf', '%{NEVRA}', 'wca'], check=False)
        if result.returncode:
            return None
        origin = self.dnf('repoquery', '--installed', '--qf', '%{from_repo}', 'wca')
        return result.stdout, origin.stdout.strip().splitlines()[-1]


def publish(checkout, web, name, rpms, operator_key):
    """make-repo with the operator's key into the web root; returns the repository's path."""
    path = os.path.join(web.root, name)
    make_repo(checkout, path, rpms, '%s/%s' % (web.url, name), gnupghome=operator_key,
              key=KEY_UID)
    return path


def resign_metadata(path, operator_key):
    """New metadata for what Packages/ holds now, signed with the key as make-repo does: the
    repository's owner publishing a package that was altered or never signed."""
    run(['createrepo_c', '--quiet', '--database', path])
    run(['gpg', '--batch', '--yes', '-u', '=' + KEY_UID, '--armor', '--detach-sign', '-o',
         os.path.join(path, 'repodata', 'repomd.xml.asc'), os.path.join(path, 'repodata', 'repomd.xml')],
        env=dict(os.environ, GNUPGHOME=operator_key))


@pytest.fixture(scope='module')
def host(checkout, web, releases, operator_key, stub_repo, pki, work):
    path = publish(checkout, web, 'wca', releases[:1], operator_key)
    return Host(os.path.join(work, 'host'), os.path.join(path, 'wca.repo'), stub_repo, pki.ca_cert)


def nevra(rpm):
    return run(['rpm', '-qp', '--qf', '%{NEVRA}', rpm]).stdout


def test_dnf_installs_wca_from_the_signed_repository(host, releases, operator_key):
    out = host.dnf('install', 'wca').stdout
    # The key came from gpgkey= over HTTPS, and dnf imported it to check the package.
    assert 'Importing GPG key' in out and KEY_UID in out, out
    assert host.installed() == (nevra(releases[0]), 'wca')
    assert os.path.isfile(os.path.join(host.root, 'usr', 'bin', 'wca'))
    assert os.path.isfile(os.path.join(host.root, 'usr', 'lib64', 'wca', '__main__.py'))
    # The installed header carries the signatures of the operator's key: of the header, and of
    # header and payload (the one EL7's rpm checks the payload with).
    sigs = run(['rpm', '--root', host.root, '-q', '--qf', '%{RSAHEADER:pgpsig}\n%{SIGPGP:pgpsig}',
                'wca']).stdout.splitlines()
    key_id = run(['gpg', '--batch', '--with-colons', '--list-keys', '=' + KEY_UID],
                 env=dict(os.environ, GNUPGHOME=operator_key)).stdout
    key_id = re.search(r'^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):', key_id, re.M).group(1).lower()
    assert len(sigs) == 2, sigs
    for sig in sigs:
        assert sig.startswith('RSA/SHA256') and sig.endswith('Key ID ' + key_id), sigs


def test_dnf_upgrades_wca_when_a_new_release_is_published(checkout, web, host, releases,
                                                          operator_key):
    publish(checkout, web, 'wca', releases, operator_key)
    host.dnf('upgrade', 'wca')
    assert host.installed() == (nevra(releases[1]), 'wca')


def test_dnf_removes_wca(host):
    host.dnf('remove', 'wca')
    assert host.installed() is None
    assert not os.path.exists(os.path.join(host.root, 'usr', 'bin', 'wca'))
    assert not os.path.exists(os.path.join(host.root, 'usr', 'lib64', 'wca'))


def tamper(rpm):
    """Changes one byte of the payload (the compressed files, at the end of the RPM)."""
    with open(rpm, 'r+b') as f:
        f.seek(-100, os.SEEK_END)
        byte = f.read(1)
        f.seek(-100, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xff]))


def refused(checkout, web, name, rpms, operator_key, stub_repo, pki, work, change):
    """Publishes rpms as repository `name`, applies change(path) to it, and returns the output
    of a dnf install of wca on a fresh host, which must fail and leave wca uninstalled."""
    path = publish(checkout, web, name, rpms, operator_key)
    change(path)
    host = Host(os.path.join(work, 'host-' + name), os.path.join(path, 'wca.repo'), stub_repo,
                pki.ca_cert)
    result = host.dnf('install', 'wca', check=False)
    assert result.returncode != 0, result.stdout
    assert host.installed() is None
    return result.stdout


def test_an_unsigned_package_is_refused(checkout, web, releases, operator_key, stub_repo, pki,
                                        work):
    def unsigned(path):
        shutil.copy(releases[0], os.path.join(path, 'Packages'))
        resign_metadata(path, operator_key)
    out = refused(checkout, web, 'unsigned', releases[:1], operator_key, stub_repo, pki, work,
                  unsigned)
    assert re.search(r'wca-\S+ is not signed', out), out
    assert 'GPG check FAILED' in out, out


def test_a_package_changed_after_signing_is_refused(checkout, web, releases, operator_key,
                                                    stub_repo, pki, work):
    def changed(path):
        tamper(os.path.join(path, 'Packages', os.path.basename(releases[0])))
        resign_metadata(path, operator_key)
    out = refused(checkout, web, 'changed', releases[:1], operator_key, stub_repo, pki, work,
                  changed)
    # rpm finds the payload digest of the signed header wrong and will not open the package.
    assert re.search(r'Problem opening package wca-\S+\.rpm', out), out
    assert 'GPG check FAILED' in out, out


def test_a_package_changed_on_the_server_fails_its_checksum(checkout, web, releases,
                                                            operator_key, stub_repo, pki, work):
    def changed(path):
        tamper(os.path.join(path, 'Packages', os.path.basename(releases[0])))
    out = refused(checkout, web, 'changed-on-server', releases[:1], operator_key, stub_repo, pki,
                  work, changed)
    assert re.search(r"wca-\S+\.rpm: Downloading successful, but checksum doesn't match", out), out
    assert 'Cannot download' in out, out


def test_metadata_changed_after_signing_is_refused(checkout, web, releases, operator_key,
                                                   stub_repo, pki, work):
    def changed(path):
        repomd = os.path.join(path, 'repodata', 'repomd.xml')
        with open(repomd) as f:
            text = f.read()
        with open(repomd, 'w') as f:
            f.write(re.sub(r'<revision>\d+</revision>', '<revision>1</revision>', text))
    out = refused(checkout, web, 'metadata', releases[:1], operator_key, stub_repo, pki, work,
                  changed)
    assert 'repomd.xml GPG signature verification error: Bad GPG signature' in out, out


def test_without_a_key_a_throwaway_key_signs_and_it_is_said(checkout, releases, work):
    out = make_repo(checkout, os.path.join(work, 'throwaway'), releases[:1],
                    'https://repo.invalid/el')
    assert 'throwaway' in out and 'REPO_KEY=' in out, out
    path = os.path.join(work, 'throwaway')
    with open(os.path.join(path, 'wca.repo')) as f:
        repo = f.read()
    assert re.search(r'^baseurl=https://repo\.invalid/el$', repo, re.M), repo
    assert re.search(r'^gpgcheck=1$', repo, re.M) and re.search(r'^repo_gpgcheck=1$', repo, re.M)
    assert re.search(r'^gpgkey=https://repo\.invalid/el/RPM-GPG-KEY-wca$', repo, re.M), repo
    rpmdb = os.path.join(work, 'throwaway-rpmdb')
    run(['rpmkeys', '--dbpath', rpmdb, '--import', os.path.join(path, 'RPM-GPG-KEY-wca')])
    signed = os.path.join(path, 'Packages', os.path.basename(releases[0]))
    assert run(['rpmkeys', '--dbpath', rpmdb, '--checksig', signed]).stdout.strip().endswith(
        'digests signatures OK')


def test_make_repo_refuses_a_key_el7_cannot_verify(checkout, releases, work):
    home = os.path.join(work, 'ed25519-gnupg')
    os.makedirs(home, mode=0o700)
    env = dict(os.environ, GNUPGHOME=home)
    try:
        run(['gpg', '--batch', '--quiet', '--passphrase', '', '--quick-generate-key',
             'ed25519 <ed@invalid>', 'ed25519', 'sign', '1d'], env=env)
        result = run([os.path.join(checkout, 'packaging', 'repo', 'make-repo'), '--key',
                      'ed@invalid', os.path.join(work, 'ed25519'), releases[0]], env=env,
                     check=False)
    finally:
        kill_agent(home)
    assert result.returncode == 1
    assert 'not RSA' in result.stdout and 'Traceback' not in result.stdout, result.stdout
    assert not os.path.exists(os.path.join(work, 'ed25519', 'Packages'))
