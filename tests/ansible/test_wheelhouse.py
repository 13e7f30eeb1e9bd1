"""ansible/build-wheelhouse: the wheels it picks for each Python, its reproducible archives,
and the one source of the unit and entry point the role installs on Debian and Ubuntu."""
import hashlib
import importlib.machinery
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(REPO, 'ansible', 'build-wheelhouse')
LOADER = importlib.machinery.SourceFileLoader('build_wheelhouse', PATH)
SPEC = importlib.util.spec_from_loader('build_wheelhouse', LOADER)
wheelhouse = importlib.util.module_from_spec(SPEC)
LOADER.exec_module(wheelhouse)

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
        'wca-main.py': os.path.join(REPO, 'packaging', 'rpm', 'wca-main.py'),
        'wca-launcher.sh': os.path.join(REPO, 'packaging', 'rpm', 'wca-launcher.sh'),
    }
    tasks = os.path.join(REPO, 'ansible', 'roles', 'wca', 'tasks')
    service = open(os.path.join(tasks, 'service.yml')).read()
    assert 'src: "{{ wca_wheelhouse_dir }}/wca.service"' in service
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
