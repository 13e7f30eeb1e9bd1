"""Privileges: the config file others could write is refused; root is refused without --root;
an unprivileged user is told which privilege the configured features lack and how to grant it.

The unprivileged runs use setpriv (util-linux) to become uid/gid 65534 (nobody). The tests run
as root (they create real cgroups), so the configs live in a 0755 directory nobody can read.
When the interpreter itself is out of nobody's reach (pyenv under /root, 0700), the process
also gets CAP_DAC_READ_SEARCH, which lets it read files and nothing more: it is not one of
the privileges the agent checks (CAP_DAC_OVERRIDE, CAP_SETUID, SECBIT_NO_SETUID_FIXUP,
kernel.perf_event_paranoid), so the checks see what an unprivileged user's would.
"""
import os
import re
import subprocess

import pytest

from conftest import NOBODY, REPO, plugin_env, unprivileged, wca_command, write_config

from wca import security


def status_of(result):
    return result.returncode, result.stdout, result.stderr


MEASUREMENT = '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: []
  iterations: 1
  metrics_storage: !LogStorage
    output_filename: {out}/metrics.prom
'''

ALLOCATION = '''\
runner: !AllocationRunner
  config: !AllocationRunnerConfig
    node: !StaticNode
      tasks: []
    allocator: !NOPAllocator
    iterations: 1
    metrics_storage: !LogStorage
      output_filename: {out}/metrics.prom
'''

DETECTION = '''\
runner: !DetectionRunner
  node: !StaticNode
    tasks: []
  detector: !NOPAnomalyDetector
  iterations: 1
  metrics_storage: !LogStorage
    output_filename: {out}/metrics.prom
'''


def config_in(directory, text, name='wca.yaml', mode=0o644):
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(text.format(out=os.path.join(directory, 'out')))
    os.chmod(path, mode)
    return path


# --- the config file ----------------------------------------------------------------------

@pytest.mark.parametrize('mode', [0o664, 0o620, 0o646, 0o666, 0o777, 0o602])
@pytest.mark.parametrize('check_only', [True, False])
def test_config_writable_by_others_is_refused(tmp_path, mode, check_only):
    path = write_config(tmp_path / 'wca.yaml', MEASUREMENT.format(out=tmp_path), mode=mode)
    result = subprocess.run(wca_command('-c', path, '--check-config' if check_only else '--root'),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=plugin_env())
    assert result.returncode == 2
    assert result.stderr == (
        'wca: error: %s: config is writable by group or others (mode %04o): others could make '
        'the agent run their code; fix with: chmod go-w %s\n' % (path, mode, path))
    assert not (tmp_path / 'metrics.prom').exists()
    os.chmod(path, mode & ~0o022)  # the hint works
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('mode', [0o644, 0o640, 0o600, 0o400, 0o444])
def test_config_modes_that_are_accepted(tmp_path, mode):
    path = write_config(tmp_path / 'wca.yaml', MEASUREMENT.format(out=tmp_path), mode=mode)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 0, result.stderr


def test_config_in_a_directory_others_can_write_is_refused(tmp_path):
    directory = tmp_path / 'open'
    directory.mkdir()
    path = write_config(directory / 'wca.yaml', MEASUREMENT.format(out=tmp_path))
    os.chmod(str(directory), 0o777)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 2
    assert result.stderr == (
        'wca: error: %s: config directory %s is writable by group or others (mode 0777): others '
        'could replace the config; fix with: chmod go-w %s\n' % (path, directory, directory))
    os.chmod(str(directory), 0o1777)  # sticky, like /tmp: only the owner can replace the file
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 0, result.stderr


def test_config_in_a_directory_of_another_user_is_refused(tmp_path):
    directory = tmp_path / 'theirs'
    directory.mkdir()
    path = write_config(directory / 'wca.yaml', MEASUREMENT.format(out=tmp_path))
    os.chown(str(directory), NOBODY, NOBODY)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 2
    assert result.stderr == (
        'wca: error: %s: config directory %s is owned by uid %d, neither root nor this user '
        '(uid 0): its owner could replace the config; fix with: chown root %s\n' % (
            path, directory, NOBODY, directory))


def test_symlink_into_a_directory_others_can_write_is_refused(tmp_path):
    directory = tmp_path / 'open'
    directory.mkdir()
    target = write_config(directory / 'wca.yaml', MEASUREMENT.format(out=tmp_path))
    os.chmod(str(directory), 0o775)
    link = tmp_path / 'link.yaml'
    link.symlink_to(target)
    result = subprocess.run(wca_command('-c', str(link), '--check-config'),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=plugin_env())
    assert result.returncode == 2
    assert 'config directory %s is writable by group or others (mode 0775)' % directory \
        in result.stderr


def test_config_owned_by_another_user_is_refused(shared_dir):
    path = config_in(shared_dir, MEASUREMENT)
    os.chown(path, NOBODY, NOBODY)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 2
    assert result.stderr == ('wca: error: %s: config is owned by uid %d, neither root nor this '
                             'user (uid 0); fix with: chown root %s\n' % (path, NOBODY, path))
    # ...but its owner may use it, and so may anyone when root owns it.
    result = unprivileged(wca_command('-c', path, '--check-config'))
    assert result.returncode == 0, result.stderr
    os.chown(path, 0, 0)
    result = unprivileged(wca_command('-c', path, '--check-config'), uid=NOBODY - 1)
    assert result.returncode == 0, result.stderr


# --- root ---------------------------------------------------------------------------------

def test_root_without_root_option_is_refused_before_anything_runs(tmp_path):
    path = write_config(tmp_path / 'wca.yaml', MEASUREMENT.format(out=tmp_path))
    result = subprocess.run(wca_command('-c', path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 1
    assert result.stderr == (
        'wca: refusing to run as root: run as an unprivileged user with the capabilities the '
        'config needs (see README, "Privileges"), or pass --root (-0) to run as root anyway\n')
    assert not (tmp_path / 'metrics.prom').exists()


# --- as an unprivileged user --------------------------------------------------------------

def test_hello_world_as_the_readme_shows_it():
    # PYTHONPATH=examples python -m wca -c configs/extending/hello_world.yaml
    #     -r hello_world_runner:HelloWorldRunner
    # (as a user, from the checkout; the checkout is added for wca itself).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(['examples', REPO]))
    result = unprivileged(wca_command('-c', 'configs/extending/hello_world.yaml',
                                      '-r', 'hello_world_runner:HelloWorldRunner'),
                          cwd=REPO, env=env)
    assert status_of(result) == (0, 'Hello world!\n', '')


@pytest.mark.parametrize('text', [MEASUREMENT, DETECTION], ids=['measurement', 'detection'])
def test_measuring_needs_no_privilege(shared_dir, text):
    path = config_in(shared_dir, text)
    result = unprivileged(wca_command('-c', path))
    assert result.returncode == 0, result.stderr
    metrics = open(os.path.join(shared_dir, 'out', 'metrics.prom')).read()
    assert re.search(r'^wca_up\{', metrics, re.M)
    assert re.search(r'^platform_cpu_usage\{', metrics, re.M)


def test_allocation_without_cap_dac_override_is_refused(shared_dir):
    path = config_in(shared_dir, ALLOCATION)
    result = unprivileged(wca_command('-c', path))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == 'wca: missing privilege (or run as root with --root):'
    assert len(lines) == 2, result.stderr
    assert lines[1].startswith('  CAP_DAC_OVERRIDE, to write cgroup')
    for hint in ('AmbientCapabilities=', 'CapabilityBoundingSet=',
                 '--ambient-caps=+dac_override'):
        assert hint in lines[1]
    assert not os.path.exists(os.path.join(shared_dir, 'out', 'metrics.prom'))
    # --check-config checks the config, not the privileges.
    assert unprivileged(wca_command('-c', path, '--check-config')).returncode == 0


def test_allocation_with_cap_dac_override_runs(shared_dir):
    path = config_in(shared_dir, ALLOCATION)
    result = unprivileged(wca_command('-c', path), caps=['dac_override'])
    assert result.returncode == 0, result.stderr
    assert 'missing privilege' not in result.stderr
    metrics = open(os.path.join(shared_dir, 'out', 'metrics.prom')).read()
    assert re.search(r'^wca_up\{', metrics, re.M)


PRIVILEGED = '''\
runner: !PrivilegedRunner
  needs: [{needs}]
'''


def _paranoid():
    with open('/proc/sys/kernel/perf_event_paranoid') as f:
        return int(f.read())


def test_every_missing_privilege_is_named_with_its_grant(shared_dir):
    path = config_in(shared_dir, PRIVILEGED.format(
        needs='DAC_OVERRIDE, SETUID, NO_SETUID_FIXUP, PERF_EVENT_PARANOID'))
    result = unprivileged(wca_command('-c', path, '-r', 'plugin_runners:PrivilegedRunner'))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == 'wca: missing privileges (or run as root with --root):'
    named = [line.split(',')[0].strip() for line in lines[1:]]
    expected = ['CAP_DAC_OVERRIDE', 'CAP_SETUID', 'SECBIT_NO_SETUID_FIXUP']
    if _paranoid() > 0:
        expected.append('kernel.perf_event_paranoid <= 0')
    assert named == expected
    text = result.stderr
    assert 'SecureBits=no-setuid-fixup' in text
    if _paranoid() > 0:
        assert 'sysctl -w kernel.perf_event_paranoid=0' in text
    assert 'ran' not in result.stdout


def test_granted_privileges_are_not_named(shared_dir):
    path = config_in(shared_dir, PRIVILEGED.format(
        needs='DAC_OVERRIDE, SETUID, NO_SETUID_FIXUP, PERF_EVENT_PARANOID'))
    result = unprivileged(wca_command('-c', path, '-r', 'plugin_runners:PrivilegedRunner'),
                          caps=['dac_override', 'setuid'], securebits='+no_setuid_fixup')
    if _paranoid() > 0:
        assert result.returncode == 1
        assert result.stderr.splitlines()[1:] == [
            '  %s, %s: %s' % (p.name, p.why, p.grant) for p in [security.PERF_EVENT_PARANOID]]
    else:
        assert status_of(result) == (0, 'ran\n', '')
    path = config_in(shared_dir, PRIVILEGED.format(needs='DAC_OVERRIDE, SETUID, NO_SETUID_FIXUP'),
                     name='no-perf.yaml')
    result = unprivileged(wca_command('-c', path, '-r', 'plugin_runners:PrivilegedRunner'),
                          caps=['dac_override', 'setuid'], securebits='+no_setuid_fixup')
    assert status_of(result) == (0, 'ran\n', '')


# --- the checks themselves, on a fake /proc ------------------------------------------------

def fake_proc(tmp_path, cap_eff, paranoid):
    (tmp_path / 'self').mkdir()
    (tmp_path / 'self' / 'status').write_text(
        'Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t%016x\nCapBnd:\t000001ffffffffff\n'
        % cap_eff)
    if paranoid is not None:
        (tmp_path / 'sys' / 'kernel').mkdir(parents=True)
        (tmp_path / 'sys' / 'kernel' / 'perf_event_paranoid').write_text('%d\n' % paranoid)
    return str(tmp_path)


@pytest.mark.parametrize('paranoid, missing', [(-1, False), (0, False), (1, True), (2, True),
                                               (3, True), (None, True)])
def test_perf_event_paranoid(tmp_path, paranoid, missing):
    proc = fake_proc(tmp_path, 0, paranoid)
    assert security.perf_event_paranoid(proc) == paranoid
    assert security.missing_privileges([security.PERF_EVENT_PARANOID], proc) == (
        [security.PERF_EVENT_PARANOID] if missing else [])


@pytest.mark.parametrize('cap_eff, missing', [
    (0, [security.DAC_OVERRIDE, security.SETUID]),
    (1 << security.CAP_DAC_OVERRIDE, [security.SETUID]),
    (1 << security.CAP_SETUID, [security.DAC_OVERRIDE]),
    ((1 << security.CAP_SETUID) | (1 << security.CAP_DAC_OVERRIDE), []),
    ((1 << 41) - 1, []),
])
def test_capabilities(tmp_path, cap_eff, missing):
    proc = fake_proc(tmp_path, cap_eff, 0)
    assert security.effective_capabilities(proc) == cap_eff
    assert security.missing_privileges([security.DAC_OVERRIDE, security.SETUID], proc) == missing


def test_what_the_built_in_runners_need():
    from wca.allocators import NOPAllocator
    from wca.detectors import NOPAnomalyDetector
    from wca.runners import AllocationRunner, DetectionRunner, MeasurementRunner
    from wca.nodes.static import StaticNode
    assert security.required_privileges(MeasurementRunner(node=StaticNode())) == []
    assert security.required_privileges(DetectionRunner(
        node=StaticNode(), detector=NOPAnomalyDetector())) == []
    assert security.required_privileges(AllocationRunner(
        node=StaticNode(), allocator=NOPAllocator())) == [security.DAC_OVERRIDE]
