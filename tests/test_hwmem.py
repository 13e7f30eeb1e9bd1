"""gather_hw_mm_topology: DIMMs from dmidecode (real outputs of servers as fixtures, and the real
tool on this machine), the Memory Mode size from ipmctl, and what happens when they are
missing or fail: a warning when the option is unset, an error when it is true."""
import logging
import os
import subprocess

import pytest

from conftest import REPO, plugin_env, require_tool, wca_command, write_config
from procfs_fixtures import assert_located, config_error

from testing.recording import Recording
from wca import hwmem, security
from wca.metrics import MetricName
from wca.nodes.static import StaticNode
from wca.runners.measurement import MeasurementRunner

FIXTURES = os.path.join(REPO, 'tests', 'fixtures', 'dmidecode')
GIB = 1 << 30


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def dmidecode():
    return require_tool('dmidecode', 'tools/install-test-tools')


def dmidecode_works(path):
    """Whether dmidecode lists memory devices on this machine (a VM may have no SMBIOS)."""
    result = subprocess.run([path, '-t', 'memory'], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, universal_newlines=True)
    return result.returncode == 0 and 'Memory Device' in result.stdout


def test_dram_and_persistent_memory_of_a_cascade_lake_server():
    m = hwmem.parse_dmidecode(fixture('cascadelake-ddr4-pmem.txt'))
    assert m == {
        MetricName.PLATFORM_DIMM_COUNT: {'ram': 8, 'nvm': 4},
        MetricName.PLATFORM_DIMM_TOTAL_SIZE_BYTES: {'ram': 8 * 16 * GIB, 'nvm': 4 * 128 * GIB},
        # configured 2666 MT/s x 8 bytes (64 data bits) for each DDR4 DIMM
        MetricName.PLATFORM_DIMM_SPEED_BYTES_PER_SECOND: 8 * 2666 * 10 ** 6 * 8,
    }


def test_the_el7_dmidecode_format():
    m = hwmem.parse_dmidecode(fixture('el7-ddr4.txt'))
    assert m[MetricName.PLATFORM_DIMM_COUNT] == {'ram': 2, 'nvm': 0}
    assert m[MetricName.PLATFORM_DIMM_TOTAL_SIZE_BYTES] == {'ram': 32 * GIB, 'nvm': 0}
    assert m[MetricName.PLATFORM_DIMM_SPEED_BYTES_PER_SECOND] == 2 * 2133 * 10 ** 6 * 8


def test_memory_mode_size_from_both_ipmctl_formats():
    assert hwmem.parse_ipmctl(fixture('ipmctl1-memoryresources.txt')) == 1082331758592
    assert hwmem.parse_ipmctl(fixture('ipmctl2-memoryresources.txt')) == 1082331758592
    assert hwmem.parse_ipmctl('') is None


def test_real_dmidecode_on_this_machine(caplog):
    tool = dmidecode()
    if dmidecode_works(tool):  # a machine with SMBIOS memory devices
        m = hwmem.collect(None, dmidecode=tool, ipmctl=os.devnull + '/none')
        assert sum(m[MetricName.PLATFORM_DIMM_COUNT].values()) >= 1
        assert hwmem.collect(True, dmidecode=tool) == hwmem.collect(None, dmidecode=tool)
        return
    # No SMBIOS (a virtual machine like this one): unset, a warning and no metrics...
    with caplog.at_level(logging.WARNING, 'wca.hwmem'):
        assert hwmem.collect(None, dmidecode=tool) == {}
    assert len(caplog.records) == 1 and 'dmidecode' in caplog.messages[0]
    # ...true: the agent does not start.
    with pytest.raises(hwmem.HardwareTopologyUnavailable) as error:
        hwmem.collect(True, dmidecode=tool)
    assert str(error.value).startswith('gather_hw_mm_topology: ')
    assert hwmem.collect(False, dmidecode=tool) == {}


def test_a_missing_tool(caplog, tmp_path):
    missing = str(tmp_path / 'dmidecode')
    with caplog.at_level(logging.WARNING, 'wca.hwmem'):
        assert hwmem.collect(None, dmidecode=missing) == {}
    assert len(caplog.records) == 1 and 'cannot run ' + missing in caplog.messages[0]
    with pytest.raises(hwmem.HardwareTopologyUnavailable):
        hwmem.collect(True, dmidecode=missing)


def test_the_dimms_are_platform_metrics_of_every_iteration():
    measured = hwmem.parse_dmidecode(fixture('cascadelake-ddr4-pmem.txt'))
    measured[MetricName.PLATFORM_MEM_MODE_SIZE_BYTES] = hwmem.parse_ipmctl(
        fixture('ipmctl2-memoryresources.txt'))
    storage = Recording()
    runner = MeasurementRunner(node=StaticNode(tasks=[]), metrics_storage=storage, interval=0,
                               gather_hw_mm_topology=False)
    runner.setup()
    assert not any(isinstance(s, hwmem.HardwareTopologySource) for s in runner._platform_sources)
    runner._platform_sources.append(hwmem.HardwareTopologySource(measured))
    runner.iterate()
    runner.iterate()
    assert storage.value('platform_dimm_count', dimm_type='nvm') == 4
    assert storage.value('platform_dimm_total_size_bytes', dimm_type='ram') == 128 * GIB
    assert storage.value('platform_mem_mode_size_bytes') == 1082331758592
    assert storage.last('platform_dimm_speed_bytes_per_second')[0].labels == runner.common_labels


def test_true_needs_dmidecode_installed_and_the_privilege_to_run_it(tmp_path):
    text = '''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          gather_hw_mm_topology: true
        '''
    env = plugin_env(PATH=str(tmp_path))  # no dmidecode there; /usr/sbin and /sbin are searched
    if hwmem.find_tool('dmidecode') is None:
        path, line = config_error(tmp_path, text, env=env)
        assert_located(line, path, 3, 'runner.gather_hw_mm_topology', 'dmidecode is not installed',
                       'apt-get install dmidecode')
    hwmem.check(True, dmidecode())  # found: fine
    runner = MeasurementRunner(node=StaticNode(tasks=[]))
    assert runner.required_privileges() == []  # unset: tried without asking for privileges
    runner.config.gather_hw_mm_topology = True
    assert runner.required_privileges() == [security.DMI_TABLES]


def test_the_agent_started_with_true_reads_the_dimms_or_does_not_start(tmp_path):
    tool = dmidecode()
    path = write_config(tmp_path / 'wca.yaml', '''\
runner: !MeasurementRunner
  node: !StaticNode {tasks: []}
  gather_hw_mm_topology: true
  iterations: 1
  metrics_storage: !LogStorage {output_filename: %s}
''' % (tmp_path / 'metrics.prom'))
    env = plugin_env(PATH=os.path.dirname(tool) + os.pathsep + os.environ['PATH'])
    result = subprocess.run(wca_command('-c', path, '--root'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=60)
    assert 'Traceback' not in result.stderr
    if dmidecode_works(tool):  # a machine with SMBIOS memory devices
        assert result.returncode == 0, result.stderr
        assert 'platform_dimm_count{' in (tmp_path / 'metrics.prom').read_text()
    else:  # like this virtual machine: exit 1 before the loop, saying why
        assert result.returncode == 1, result.stderr
        assert 'gather_hw_mm_topology: ' in result.stderr
        assert not (tmp_path / 'metrics.prom').exists()
