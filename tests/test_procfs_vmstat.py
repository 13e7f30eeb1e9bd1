"""vmstat: the six platform_vmstat_* counters by exact key, and with a regular expression the
keys of /proc/vmstat and of each NUMA node's vmstat (this machine's, and a two-node fixture)."""
import logging
import re

from procfs_fixtures import NUMA2_PROC, NUMA2_SYS, assert_located, config_error, load_error

from wca import procfs
from wca.metrics import MetricName
from wca.procfs import VmstatSource


def plain_vmstat(path):
    """A vmstat file read the simplest way, to compare with."""
    with open(path) as f:
        return {k: int(v) for k, v in (line.split() for line in f if line.strip())}


def test_the_six_counters_come_from_their_exact_keys():
    # The original matched prefixes: numa_hint_faults took numa_hint_faults_local's value.
    m = {}
    VmstatSource(None, NUMA2_PROC, NUMA2_SYS).collect(m)
    assert m == {
        MetricName.PLATFORM_VMSTAT_NUMA_PAGES_MIGRATED: 3456,
        MetricName.PLATFORM_VMSTAT_PGMIGRATE_SUCCESS: 4567,
        MetricName.PLATFORM_VMSTAT_PGMIGRATE_FAIL: 7,
        MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS: 80123,
        MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS_LOCAL: 70456,
        MetricName.PLATFORM_VMSTAT_PGFAULTS: 51138987,
    }  # and nothing else without a regular expression: no per-node files are read
    assert VmstatSource(None, NUMA2_PROC, NUMA2_SYS).files == [NUMA2_PROC + '/vmstat']


def test_a_regex_adds_the_keys_it_matches_for_the_node_and_each_numa_node():
    source = VmstatSource(re.compile('nr_active.*|nr_free_pages'), NUMA2_PROC, NUMA2_SYS)
    assert source.files == [NUMA2_PROC + '/vmstat'] + [
        NUMA2_SYS + '/devices/system/node/node%d/vmstat' % n for n in (0, 1)]
    m = {}
    source.collect(m)
    whole = plain_vmstat(NUMA2_PROC + '/vmstat')
    # re.match: from the start of the key, as the original; nr_free_pages_blocks starts so too.
    keys = ['nr_active_anon', 'nr_active_file', 'nr_free_pages', 'nr_free_pages_blocks']
    assert m[MetricName.PLATFORM_VMSTAT] == {k: whole[k] for k in keys}
    per_node = m[MetricName.PLATFORM_NODE_VMSTAT]
    assert sorted(per_node) == ['0', '1']
    for node in ('0', '1'):
        own = plain_vmstat(NUMA2_SYS + '/devices/system/node/node%s/vmstat' % node)
        assert per_node[node] == {k: own[k] for k in keys}
    assert per_node['0']['nr_active_anon'] + per_node['1']['nr_active_anon'] == \
        whole['nr_active_anon']
    assert m[MetricName.PLATFORM_VMSTAT_PGFAULTS] == 51138987  # the six stay


def test_the_regex_runs_once_per_key_then_its_answer_is_looked_up():
    source = VmstatSource(re.compile('pgmigrate_.*'), NUMA2_PROC, NUMA2_SYS)
    source.collect({})
    decided = dict(source.filter.decisions)
    assert len(decided) == len(plain_vmstat(NUMA2_PROC + '/vmstat'))
    assert sorted(k for k, v in decided.items() if v) == [b'pgmigrate_fail', b'pgmigrate_success']
    source.filter.pattern = None  # were the regex still asked, every key would now pass
    m = {}
    source.collect(m)
    assert sorted(m[MetricName.PLATFORM_VMSTAT]) == ['pgmigrate_fail', 'pgmigrate_success']


def test_this_machines_vmstat_and_numa_nodes():
    m = {}
    source = VmstatSource(re.compile('.*'), '/proc', '/sys')
    source.collect(m)
    real = plain_vmstat('/proc/vmstat')
    assert set(m[MetricName.PLATFORM_VMSTAT]) == set(real)
    nodes = procfs.numa_nodes('/sys')
    assert sorted(m[MetricName.PLATFORM_NODE_VMSTAT]) == [str(n) for n in nodes]
    for node in nodes:
        own = plain_vmstat('/sys/devices/system/node/node%d/vmstat' % node)
        assert set(m[MetricName.PLATFORM_NODE_VMSTAT][str(node)]) == set(own)
    for name, key in [(MetricName.PLATFORM_VMSTAT_PGFAULTS, 'pgfault'),
                      (MetricName.PLATFORM_VMSTAT_NUMA_HINT_FAULTS, 'numa_hint_faults')]:
        if key in real:  # numa_* only with CONFIG_NUMA_BALANCING
            assert m[name] <= plain_vmstat('/proc/vmstat')[key]


def test_an_unreadable_vmstat_is_logged_once_and_counted(tmp_path, caplog):
    errors = {}
    source = VmstatSource(re.compile('nr_.*'), str(tmp_path), NUMA2_SYS, errors)
    with caplog.at_level(logging.INFO, 'wca.procfs'):
        for _ in range(3):
            m = {}
            source.collect(m)
            assert MetricName.PLATFORM_VMSTAT not in m and sorted(
                m[MetricName.PLATFORM_NODE_VMSTAT]) == ['0', '1']  # the rest goes on
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and str(tmp_path / 'vmstat') in warnings[0]
        assert errors == {'measurement': 3}
        (tmp_path / 'vmstat').write_text('pgfault 12\n')
        m = {}
        source.collect(m)
        assert m[MetricName.PLATFORM_VMSTAT_PGFAULTS] == 12
        assert 'can be read again' in caplog.records[-1].getMessage()


def test_vmstat_false_reads_nothing():
    assert procfs.platform_sources(False, False) == []
    kinds = [type(s).__name__ for s in procfs.platform_sources(True, True)]
    assert kinds == ['VmstatSource', 'ZoneinfoSource']


def test_a_bad_vmstat_regex_is_a_config_error(tmp_path):
    path, line = config_error(tmp_path, '''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          vmstat: 'nr_(active'
        ''')
    assert_located(line, path, 3, 'runner.vmstat', 'not a valid regular expression',
                   'missing ), unterminated subpattern')
    error = load_error('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          vmstat: ''
        ''')
    assert error.startswith('<config>:3: runner.vmstat: ') and 'empty regular expression' in error
    error = load_error('''\
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          vmstat: 3
        ''')
    assert error.startswith('<config>:3: runner.vmstat: ')
