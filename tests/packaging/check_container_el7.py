"""The default (EL7, rh-python36) RPM, run for real with Python 3.6.

There is no EL7 image here, so the collection is stood in for: CPython 3.6 (pyenv's 3.6.15,
which the agent's own 3.6 tests use too) laid out at the collection's paths,
/opt/rh/rh-python36/root/usr, with an `enable` script that exports what the collection's does.
Like the collection's, its interpreter cannot start without that script: libpython lives in
the collection's lib64, which only LD_LIBRARY_PATH names. So this shows that /usr/bin/wca
works from a plain shell, and that the bundled cp36 wheels (PyYAML's extension and the
dataclasses backport) load and run the agent on 3.6.
"""
import glob
import os
import re
import shutil
import subprocess

import pytest

from pkg_fixtures import TESTBED, missing

RPM = '/tmp/wca-el7.rpm'
ROOT = '/opt/rh/rh-python36/root/usr'
ENABLE = '''# stand-in for rh-python36's enable script
export PATH=%(root)s/bin${PATH:+:${PATH}}
export LD_LIBRARY_PATH=%(root)s/lib64${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}
export MANPATH=%(root)s/share/man:${MANPATH}
export PKG_CONFIG_PATH=%(root)s/lib64/pkgconfig${PKG_CONFIG_PATH:+:${PKG_CONFIG_PATH}}
export XDG_DATA_DIRS="%(root)s/share:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}"
''' % {'root': ROOT}


def python36_prefix():
    candidates = [os.environ.get('PYTHON36', '')]
    pyenv = os.environ.get('PYENV_ROOT', os.path.expanduser('~/.pyenv'))
    candidates += sorted(glob.glob(os.path.join(pyenv, 'versions', '3.6*', 'bin', 'python3.6')))
    candidates.append(shutil.which('python3.6') or '')
    for python in candidates:
        if python and os.access(python, os.X_OK):
            out = subprocess.run([python, '-c', 'import sys; print(sys.version_info[:2] == (3, 6)'
                                  ' and sys.base_prefix)'], stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout.strip()
            if out not in ('', 'False'):
                return out
    missing('Python 3.6', 'pyenv install 3.6.15 (or set PYTHON36=/path/to/python3.6)')


@pytest.fixture(scope='module')
def box(container, rpms):
    prefix = python36_prefix()
    container.sh('mkdir -p %s' % ROOT)
    tar = subprocess.Popen(['tar', '-C', prefix, '--exclude=./lib/python3.6/test',
                            '--exclude=./lib/python3.6/site-packages', '-cf', '-', '.'],
                           stdout=subprocess.PIPE)
    subprocess.run([TESTBED, 'docker', 'exec', '-i', container.name, 'tar', '-C', ROOT, '-xf',
                    '-'], stdin=tar.stdout, check=True)
    assert tar.wait() == 0
    container.sh('ln -s lib %s/lib64 && cat > /opt/rh/rh-python36/enable <<\'EOF\'\n%sEOF'
                 % (ROOT, ENABLE))
    container.copy_in(rpms['el7']['binary'], RPM)
    return container


def test_the_stand_in_needs_its_enable_script_like_the_collection(box):
    plain = box.sh('env -i %s/bin/python3 -c "print(1)"' % ROOT, check=False)
    assert plain.returncode != 0 and 'libpython3.6m' in plain.stdout, plain.stdout
    enabled = box.sh('. /opt/rh/rh-python36/enable && python3 --version').stdout
    assert enabled.strip().startswith('Python 3.6')


def test_installs_and_runs_from_a_plain_shell(box):
    box.sh('rpm -i --nodeps %s' % RPM)
    version = box.sh("rpm -q --qf '%{VERSION}' wca").stdout
    assert box.sh('env -i /usr/bin/wca --version').stdout.strip() == 'wca ' + version
    out = box.sh('runuser -u wca -- /usr/bin/wca --check-config -c /etc/wca/wca_config.yml')
    assert 'config is valid' in out.stdout


def test_the_service_runs_the_agent_on_python_3_6(box):
    box.sh('systemctl start wca')
    assert box.sh('systemctl is-active wca').stdout.strip() == 'active'
    pid = int(box.sh('systemctl show -P MainPID wca').stdout)
    exe = box.sh('readlink /proc/%d/exe' % pid).stdout.strip()
    assert exe.startswith(ROOT + '/bin/python3.6'), exe
    maps = box.read('/proc/%d/maps' % pid)
    assert '/usr/lib64/wca/yaml/_yaml.cpython-36m-x86_64-linux-gnu.so' in maps  # cp36 wheel
    box.sh('for i in $(seq 1 40); do test -s /var/lib/wca/metrics.prom && exit 0; sleep 0.25; '
           'done; exit 1')
    text = box.read('/var/lib/wca/metrics.prom')
    assert re.search(r'^task_cpu_usage_seconds\{.*task_id="system\.slice/wca\.service"', text,
                     re.M)


def test_erase_stops_it(box):
    box.sh('rpm -e wca')
    assert box.sh('pgrep -u wca', check=False).stdout.split() == []
