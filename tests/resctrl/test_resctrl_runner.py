"""rdt_enabled in the runners: unset means RDT where resctrl is mounted, true means required (a
clear error at start without it), false means off; the privileges RDT needs when not root; and
Platform.rdt_information handed to detectors."""
import logging
import subprocess

import pytest

from conftest import plugin_env, wca_command, write_config
from resctrl_tree import resctrl_tree
from testing.recording import Recording
from wca import security
from wca.allocators import NOPAllocator
from wca.detectors import AnomalyDetector
from wca.nodes.static import StaticNode
from wca.resctrl.info import find_mount
from wca.runners import AllocationRunner, DetectionRunner, MeasurementRunner

RDT_PRIVILEGES = [security.DAC_OVERRIDE, security.SETUID, security.NO_SETUID_FIXUP]


@pytest.fixture
def tree(tmp_path):
    with resctrl_tree(str(tmp_path / 'resctrl')) as made:
        yield made


@pytest.fixture
def no_resctrl():
    if find_mount() is not None:
        pytest.skip('this machine has resctrl mounted; the test is about one without it')


def test_unset_on_a_machine_without_resctrl_runs_without_rdt(no_resctrl, caplog):
    caplog.set_level(logging.INFO)
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(), metrics_storage=storage, interval=0)
    runner.iterate()
    assert not [n for n in storage.names() if 'rdt' in n or 'llc' in n]
    assert 'RDT: resctrl is not mounted: no RDT metrics' in caplog.text
    assert runner.required_privileges() == []
    runner.close()


def test_required_without_resctrl_is_a_clear_error_at_start(no_resctrl, caplog):
    runner = MeasurementRunner(node=StaticNode(), metrics_storage=Recording(), rdt_enabled=True,
                               iterations=1)
    assert runner.run() == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == 'ERROR' and r.name.startswith('wca.runners')]
    assert len(errors) == 1
    assert errors[0].startswith('rdt_enabled is true, but resctrl is not mounted (no resctrl line'
                                ' in /proc/self/mounts): mount it with: mount -t resctrl resctrl '
                                '/sys/fs/resctrl')


def test_required_without_resctrl_from_the_command_line(no_resctrl, tmp_path):
    path = write_config(tmp_path / 'wca.yaml', 'runner: !MeasurementRunner\n'
                        '  node: !StaticNode {tasks: []}\n  rdt_enabled: true\n  iterations: 1\n')
    checked = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert checked.returncode == 0, checked.stderr  # a valid config: another host may have RDT
    result = subprocess.run(wca_command('-c', path, '--root'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=plugin_env())
    assert result.returncode == 1
    assert 'rdt_enabled is true, but resctrl is not mounted' in result.stderr
    assert 'Traceback' not in result.stderr


def test_off_leaves_resctrl_alone(tree, tmp_path, cgroups):
    storage = Recording()
    node = StaticNode(tasks=[cgroups.create('t')])
    runner = MeasurementRunner(node=node, metrics_storage=storage, interval=0,
                               resctrl=tree, rdt_enabled=False,
                               rdt_groups_file=str(tmp_path / 'record'))
    runner.iterate()
    assert tree.groups() == []
    assert not [n for n in storage.names() if 'rdt' in n or 'llc' in n]
    assert storage.value('task_up') == 1
    assert runner.required_privileges() == []
    runner.close()


def test_privileges_rdt_needs(tree, tmp_path):
    def needs(runner_class=MeasurementRunner, **options):
        runner = runner_class(node=StaticNode(), resctrl=options.pop('resctrl', tree), **options)
        return security.required_privileges(runner)
    assert needs() == RDT_PRIVILEGES  # unset, and resctrl can monitor
    assert needs(rdt_enabled=True) == RDT_PRIVILEGES
    assert needs(rdt_enabled=False) == []
    assert needs(DetectionRunner, detector=Recorder()) == RDT_PRIVILEGES
    assert needs(AllocationRunner, allocator=NOPAllocator()) == RDT_PRIVILEGES  # each once
    assert needs(AllocationRunner, allocator=NOPAllocator(), rdt_enabled=False) == [
        security.DAC_OVERRIDE]
    with resctrl_tree(str(tmp_path / 'no-mon'), monitoring=False) as allocation_only:
        assert needs(resctrl=allocation_only) == []


class Recorder(AnomalyDetector):
    def __init__(self):
        self.platforms = []

    def detect(self, platform, tasks_data):
        self.platforms.append(platform)
        return [], []


def test_detectors_get_the_rdt_information(tree, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    detector = Recorder()
    runner = DetectionRunner(node=StaticNode(), detector=detector, metrics_storage=Recording(),
                             anomalies_storage=Recording(), interval=0, resctrl=tree,
                             rdt_groups_file=str(tmp_path / 'record'))
    runner.iterate()
    assert detector.platforms[0].rdt_information == tree.information()
    assert detector.platforms[0].rdt_information.num_closids == 8
    assert ('RDT: resctrl at %s; monitoring: llc_occupancy, mbm_total_bytes, mbm_local_bytes (176 '
            'RMIDs, 2 L3 domains); control: L3 (cbm_mask 7ff, min_cbm_bits 1), MB (bandwidth_gran'
            ' 10, min_bandwidth 10), 8 CLOSIDs' % tree.root) in caplog.text
    runner.close()
