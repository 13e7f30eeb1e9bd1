"""packaging/testbed/testbed's choice of Debian mirror, from apt sources laid out as Debian 12's
and Ubuntu's are (WCA_APT_ETC points it at them): on a machine whose apt knows no Debian 12
mirror it uses Debian's own, says so, and still checks the download with Debian's keyring."""
import os

import pytest

from pkg_fixtures import TESTBED, run

DEBIAN = 'http://deb.debian.org/debian'
NOTE = ("packaging/testbed/testbed: note: no mirror for Debian's bookworm in the apt sources of "
        "this machine (not Debian 12?); using http://deb.debian.org/debian, checked against "
        "/usr/share/keyrings/debian-archive-keyring.gpg (set WCA_DEBIAN_MIRROR for another)\n")


def mirror(apt_etc, **env):
    result = run([TESTBED, 'mirror'], check=False, env=dict(
        {k: v for k, v in os.environ.items() if k != 'WCA_DEBIAN_MIRROR'},
        WCA_APT_ETC=str(apt_etc), **env))
    assert result.returncode == 0, result.stdout
    return result.stdout


def apt(tmp_path, files):
    etc = tmp_path / 'apt'
    (etc / 'sources.list.d').mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(text)
    return etc


UBUNTU_2404 = {'sources.list': '# Ubuntu sources have moved to ubuntu.sources\n',
               'sources.list.d/ubuntu.sources': '''\
Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
'''}
UBUNTU_2204 = {'sources.list': '''\
deb http://archive.ubuntu.com/ubuntu/ jammy main restricted
deb http://archive.ubuntu.com/ubuntu/ jammy-updates main restricted
deb http://security.ubuntu.com/ubuntu/ jammy-security main restricted
'''}


@pytest.mark.parametrize('files', [UBUNTU_2404, UBUNTU_2204, {}], ids=['24.04', '22.04', 'none'])
def test_without_a_debian_12_mirror_debian_own_is_used_and_said(tmp_path, files):
    assert mirror(apt(tmp_path, files)) == NOTE + DEBIAN + '\n'


def test_the_mirror_of_a_debian_12_machine(tmp_path):
    etc = apt(tmp_path, {'sources.list.d/debian.sources': '''\
Types: deb-src
URIs: http://source-only.example/debian
Suites: bookworm

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
Suites: bookworm bookworm-updates
Components: main
URIs: http://mirror.example/debian
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
'''})
    assert mirror(etc) == 'http://mirror.example/debian\n'  # and no note


def test_a_one_line_source_with_options(tmp_path):
    etc = apt(tmp_path, {'sources.list.d/local.list':
                         'deb-src http://src.example/debian bookworm main\n'
                         'deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] '
                         'http://mirror.example/debian bookworm main\n'})
    assert mirror(etc) == 'http://mirror.example/debian\n'


def test_an_explicit_mirror_wins(tmp_path):
    assert mirror(apt(tmp_path, UBUNTU_2404), WCA_DEBIAN_MIRROR='http://proxy.example/debian') \
        == 'http://proxy.example/debian\n'
