"""ansible/build-wheelhouse: the wheels it picks for each Python, its reproducible archives,
the one source of the unit and entry point the role installs on Debian and Ubuntu, and the
Pythons it is built for by default."""
import hashlib
import importlib.machinery
import importlib.util
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(REPO, 'ansible', 'build-wheelhouse')
LOADER = importlib.machinery.SourceFileLoader('build_wheelhouse', PATH)
SPEC = importlib.util.spec_from_loader('build_wheelhouse', LOADER)
wheelhouse = importlib.util.module_from_spec(SPEC)
LOADER.exec_module(wheelhouse)
VENDOR_LOADER = importlib.machinery.SourceFileLoader('vendor', wheelhouse.VENDOR)
vendor = importlib.util.module_from_spec(importlib.util.spec_from_loader('vendor', VENDOR_LOADER))
VENDOR_LOADER.exec_module(vendor)

# The python3 of each release the role's preflight accepts for the virtualenv install.
DISTRIBUTION_PYTHONS = {
    'Debian 11': '3.9', 'Debian 12': '3.11', 'Debian 13': '3.13',
    'Ubuntu 20.04': '3.8', 'Ubuntu 22.04': '3.10', 'Ubuntu 24.04': '3.12',
}
# The CPython versions that PyPI has a manylinux2014 x86_64 wheel of each PyYAML release for
# (the one pin with an extension module; from the release's file list on pypi.org).
PYYAML_WHEELS = {
    '6.0.1': {'3.6', '3.7', '3.8', '3.9', '3.10', '3.11', '3.12'},
    '6.0.3': {'3.8', '3.9', '3.10', '3.11', '3.12', '3.13', '3.14'},
}

WHEELS = [
    'PyYAML-6.0.1-cp36-cp36m-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    'PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
    'PyYAML-6.0.1-cp311-cp311-musllinux_1_1_x86_64.whl',
    'PyYAML-6.0.1-cp311-cp311-manylinux_2_28_x86_64.whl',
    'psutil-7.2.2-cp36-abi3-manylinux_2_12_x86_64.manylinux2010_x86_64.whl',
    'kafka_python-2.3.3-py2.py3-none-any.whl',
    'requests-2.34.2-py3-none-any.whl',
]


def test_picks_the_wheel_of_the_target_python_loadable_with_glibc_2_17():
    tags = wheelhouse.supported_tags('3.11')
    assert wheelhouse.pick_wheel(WHEELS, 'pyyaml', '6.0.1', tags) == WHEELS[1]
    assert wheelhouse.pick_wheel(WHEELS, 'PyYAML', '6.0.1', wheelhouse.supported_tags('3.6')) \
        == WHEELS[0]
    assert wheelhouse.pick_wheel(WHEELS, 'pyyaml', '6.0.1', wheelhouse.supported_tags('3.12')) \
        is None
    assert wheelhouse.pick_wheel(WHEELS, 'psutil', '7.2.2', tags) == WHEELS[4]  # abi3
    assert wheelhouse.pick_wheel(WHEELS, 'kafka-python', '2.3.3', tags) == WHEELS[5]
    assert wheelhouse.pick_wheel(WHEELS, 'requests', '2.34.1', tags) is None


def test_archives_depend_on_contents_only(tmp_path):
    files = {}
    for name, data in (('b.whl', b'second'), ('a.whl', b'first'), ('req.txt', b'x==1\n')):
        path = tmp_path / name
        path.write_bytes(data)
        files[name] = str(path)
    first, second = str(tmp_path / 'one.tar'), str(tmp_path / 'two.tar')
    wheelhouse.write_archive(first, files, 1700000000)
    for path in files.values():
        os.utime(path, (1, 1))
        os.chmod(path, 0o600)
    wheelhouse.write_archive(second, dict(reversed(list(files.items()))), 1700000000)
    digest = [hashlib.sha256(open(p, 'rb').read()).hexdigest() for p in (first, second)]
    assert digest[0] == digest[1]


def test_the_role_installs_the_packaging_unit_and_entry_point_from_the_wheelhouse():
    """One source: build-wheelhouse copies packaging/'s files, the role installs those copies
    (the Molecule verify compares the installed unit with packaging/systemd/wca.service byte
    for byte), and no other copy of them lives in ansible/ or molecule/."""
    assert wheelhouse.COPIED == {
        'wca.service': os.path.join(REPO, 'packaging', 'systemd', 'wca.service'),
        'wca-el7.service': os.path.join(REPO, 'packaging', 'systemd', 'wca-el7.service'),
        'wca-main.py': os.path.join(REPO, 'packaging', 'rpm', 'wca-main.py'),
        'wca-launcher.sh': os.path.join(REPO, 'packaging', 'rpm', 'wca-launcher.sh'),
    }
    tasks = os.path.join(REPO, 'ansible', 'roles', 'wca', 'tasks')
    service = open(os.path.join(tasks, 'service.yml')).read()
    assert 'src: "{{ wca_wheelhouse_dir }}/{{ __wca_unit_source }}"' in service
    variables = open(os.path.join(REPO, 'ansible', 'roles', 'wca', 'vars', 'main.yml')).read()
    assert '''__wca_unit_source: "{{ 'wca-el7.service' if __wca_el7 else 'wca.service' }}"''' in variables
    install = open(os.path.join(tasks, 'install_virtualenv.yml')).read()
    assert 'src: "{{ wca_wheelhouse_dir }}/wca-main.py"' in install
    assert "wca_wheelhouse_dir ~ '/wca-launcher.sh'" in install
    unit = open(wheelhouse.COPIED['wca.service']).read()
    for top in ('ansible', 'molecule'):
        for directory, _, names in os.walk(os.path.join(REPO, top)):
            for name in names:
                path = os.path.join(directory, name)
                assert name not in wheelhouse.COPIED, 'a copy of %s: %s' % (name, path)
                with open(path, errors='replace') as f:
                    assert '[Service]' not in f.read() or path.endswith('.md'), path
    assert '[Service]' in unit


def wheelhouse_pythons():
    text = open(os.path.join(REPO, 'ansible', 'ansible.mk')).read()
    return re.search(r'^WHEELHOUSE_PYTHONS \?= (.*)$', text, re.M).group(1).split()


def test_the_default_wheelhouse_serves_every_debian_and_ubuntu_release_the_role_accepts():
    pythons = wheelhouse_pythons()
    assert sorted(set(DISTRIBUTION_PYTHONS.values()) - set(pythons)) == []
    preflight = open(os.path.join(REPO, 'ansible', 'roles', 'wca', 'tasks', 'preflight.yml')).read()
    for name, oldest in (('Debian', 11), ('Ubuntu', 20)):
        assert ("ansible_facts['distribution'] == '%s' and ansible_facts['distribution_major_version']"
                " | int >= %d" % (name, oldest)) in preflight
        assert '%s %d' % (name, oldest) in ' '.join(DISTRIBUTION_PYTHONS)


def test_the_lock_pins_a_pyyaml_with_a_wheel_for_each_python_of_the_wheelhouse():
    """Debian 13's Python 3.13 was refused: the lock's PyYAML (6.0.1) has no wheel for it."""
    lock = list(vendor.read_lock(os.path.join(REPO, 'requirements.lock')))
    for python in wheelhouse_pythons() + ['3.6']:
        pins = vendor.pins_for(lock, python)
        assert {'pyyaml', 'requests', 'urllib3', 'kafka-python', 'certifi'} <= set(pins), python
        version = pins['pyyaml'][0]
        assert python in PYYAML_WHEELS[version], (python, version)
