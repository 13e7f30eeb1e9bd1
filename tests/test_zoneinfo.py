"""zoneinfo: platform_zoneinfo{numa_node,zone,key} from /proc/zoneinfo, on a two-node fixture
laid out as the kernel prints it and on this machine's own file, compared with the original
agent's way of reading it (its regular expression on every line)."""
import re

from procfs_fixtures import NUMA2_PROC, assert_located, config_error, load_error

from wca.metrics import MetricName
from wca.procfs import DEFAULT_ZONEINFO_REGEX, ZoneinfoSource


def original_way(path, regex=DEFAULT_ZONEINFO_REGEX):
    """The original agent's reading: the regex on every line, `pages` dropped, the per-node
    block as zone 'per-node-stats' until the zone's `pages free` line."""
    pattern = re.compile(regex)
    found, node, zone, saved = {}, None, None, None
    with open(path) as f:
        for line in f:
            if line.startswith('Node '):
                parts = line.split()
                node, zone = str(int(parts[1].rstrip(','))), parts[3]
                continue
            if line.startswith('  per-node stats'):
                saved, zone = zone, 'per-node-stats'
                continue
            if line.startswith('  pages'):
                line = ' ' + line[len('  pages'):].lstrip(' ')
                if zone == 'per-node-stats':
                    zone = saved
            match = pattern.match(line)
            if match:
                found.setdefault(node, {}).setdefault(zone, {})[match.group(1)] = int(match.group(2))
    return found


def zoneinfo(proc, pattern=None):
    m = {}
    ZoneinfoSource(pattern, proc).collect(m)
    return m[MetricName.PLATFORM_ZONEINFO]


def test_two_numa_nodes_every_zone():
    zones = zoneinfo(NUMA2_PROC)
    assert sorted(zones) == ['0', '1']
    assert sorted(zones['0']) == ['DMA', 'DMA32', 'Device', 'Movable', 'Normal', 'per-node-stats']
    # node 1 has no DMA memory: its per-node block comes under its first populated zone
    assert sorted(zones['1']) == ['DMA', 'DMA32', 'Device', 'Movable', 'Normal', 'per-node-stats']
    normal = zones['1']['Normal']
    assert normal['free'] == normal['nr_free_pages'] == 7800123
    assert (normal['min'], normal['high'], normal['managed'], normal['spanned']) == (
        32187, 51500, 8240000, 8388608)  # the watermark high, not the pageset's `high:`
    assert normal['numa_hit'] == 2002011
    for left_out in ('protection', 'count', 'batch', 'cpu', 'start_pfn', 'node_unreclaimable'):
        assert left_out not in normal
    assert zones['1']['per-node-stats']['nr_inactive_anon'] == 200000
    assert zones['0']['per-node-stats']['nr_kernel_file_pages'] == 100500
    assert 'nr_inactive_anon' not in zones['0']['DMA']  # the per-node block is not the zone's
    assert zones['1']['DMA'] == {'free': 0, 'boost': 0, 'min': 0, 'low': 0, 'high': 0,
                                 'promo': 0, 'spanned': 0, 'present': 0, 'managed': 0, 'cma': 0}
    assert zones == original_way(NUMA2_PROC + '/zoneinfo')


def test_a_two_group_regex_chooses_and_names_the_keys():
    zones = zoneinfo(NUMA2_PROC, re.compile(r'\s+nr_(free_pages|inactive_anon)\s+(\d+)'))
    assert zones['1']['Normal'] == {'free_pages': 7800123}
    assert zones['1']['per-node-stats'] == {'inactive_anon': 200000}
    assert zones == original_way(NUMA2_PROC + '/zoneinfo', r'\s+nr_(free_pages|inactive_anon)\s+(\d+)')


def test_this_machines_zoneinfo_has_the_keys_the_original_found():
    zones = zoneinfo('/proc')
    original = original_way('/proc/zoneinfo')
    assert {n: {z: sorted(keys) for z, keys in per.items()} for n, per in zones.items()} == \
        {n: {z: sorted(keys) for z, keys in per.items()} for n, per in original.items()}
    assert all(isinstance(v, int) for per in zones.values() for keys in per.values()
               for v in keys.values())


def test_the_regex_runs_once_per_key():
    source = ZoneinfoSource(None, NUMA2_PROC)
    source.collect({})
    decisions = dict(source.keys.decisions)
    assert decisions[b'nr_free_pages'] == 'nr_free_pages' and decisions[b'free'] == 'free'
    assert decisions[b'count:'] is None and decisions[b'cpu:'] is None
    source.keys.pattern = None  # were it asked again, this would fail
    m = {}
    source.collect(m)
    assert m[MetricName.PLATFORM_ZONEINFO] == original_way(NUMA2_PROC + '/zoneinfo')


def test_a_zoneinfo_regex_needs_two_groups(tmp_path):
    path, line = config_error(tmp_path, r'''
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          zoneinfo: '\s+(nr_\w+)\s+\d+'
        ''')
    assert_located(line, path, 4, 'runner.zoneinfo', 'must have exactly 2 groups',
                   'it has 1')
    error = load_error(r'''
        runner: !MeasurementRunner
          node: !StaticNode {tasks: []}
          zoneinfo: '\s+(nr_\w+\s+(\d+)'
        ''')
    assert error.startswith('<config>:4: runner.zoneinfo: ') and 'not a valid regular' in error
