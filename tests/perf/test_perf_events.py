"""perf event names and the checks made before the loop starts: names and aliases, raw
encodings, predefined events by CPU model, the counter budget, the perf_event hierarchy; as
config errors (exit 2, file:line, "did you mean") where the config says it."""
import subprocess

import pytest

from conftest import wca_command, write_config
from wca.cgroups import CgroupLayout
from wca.config import ConfigError, load_config_text
from wca.nodes.static import StaticNode
from wca.perf import events
from wca.perf.setup import check, perf_cgroup_root
from wca.perf.syscall import PERF_TYPE_HARDWARE, PERF_TYPE_RAW, PERF_TYPE_SOFTWARE
from wca.runners.base import Runner
from wca.runners.measurement import MeasurementRunner
from wca.security import PERF_EVENT_PARANOID

INTEL = 'processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {model}\n' \
        'model name\t: Intel(R) Xeon(R)\nstepping\t: {stepping}\n\nprocessor\t: 1\n' \
        'vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 1\nstepping\t: 0\n'


def proc_tree(tmp_path, cpuinfo, cgroups='#subsys_name\thierarchy\tnum_cgroups\tenabled\n'
                                         'perf_event\t0\t1\t1\n'):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / 'cpuinfo').write_text(cpuinfo)
    (tmp_path / 'cgroups').write_text(cgroups)
    (tmp_path / 'self').mkdir()
    (tmp_path / 'self' / 'mounts').write_text('cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n')
    return str(tmp_path)


def sys_tree(tmp_path, cores, threads):
    """A /sys with `cores` cores of `threads` logical CPUs each (one socket)."""
    base = tmp_path / 'sys' / 'devices' / 'system' / 'cpu'
    count = cores * threads
    base.mkdir(parents=True)
    (base / 'online').write_text('0-%d\n' % (count - 1))
    for cpu in range(count):
        topology = base / ('cpu%d' % cpu) / 'topology'
        topology.mkdir(parents=True)
        (topology / 'physical_package_id').write_text('0\n')
        (topology / 'core_id').write_text('%d\n' % (cpu % cores))
    return str(tmp_path / 'sys')


@pytest.mark.parametrize('name, config, config1', [
    ('x__rD081', 0x81d0, 0),
    ('y__r0302ff', 0xff000203, 0),
    ('z__r0302ff0123456789', 0xff000203, 0x0123456789),
    ('cycle_activity__rA314', 0x14A3, 0),
])
def test_raw_events_are_encoded_as_the_original_did(name, config, config1):
    event = events.parse_raw(name)
    assert (event.name, event.type, event.config, event.config1) == (name, PERF_TYPE_RAW, config,
                                                                     config1)
    assert event.programmable


@pytest.mark.parametrize('name, problem', [
    ('x__rD08', '4 (EEUU), 6 (EEUUCC) or 16'),
    ('x__rZZ81', 'not hexadecimal'),
    ('__rD081', 'written <name>__r'),
    ('1x__rD081', 'letters, digits and _'),
    ('x-y__rD081', 'letters, digits and _'),
])
def test_malformed_raw_events_say_what_is_wrong(name, problem):
    with pytest.raises(ValueError, match='event_names: .*' + problem.replace('(', r'\(').replace(
            ')', r'\)')):
        check([name], None, False, '/proc', '/sys', CgroupLayout(unified='/sys/fs/cgroup/unified'))


def test_aliases_resolve_to_the_reference_names():
    names = ['instructions', 'cycles', 'cache_misses', 'cache_references', 'task-clock', 'cs',
             'cpu_migrations', 'page-faults']
    resolved, dropped = events.resolve(names, events.CpuId())
    assert [e.name for e in resolved] == [
        'task_instructions', 'task_cycles', 'task_cache_misses', 'task_cache_references',
        'task_task_clock_seconds_total', 'task_context_switches_total', 'task_cpu_migrations_total',
        'task_page_faults_total']
    assert dropped == []
    assert [e.type for e in resolved[:4]] == [PERF_TYPE_HARDWARE] * 4
    assert [(e.type, e.config) for e in resolved[4:]] == [
        (PERF_TYPE_SOFTWARE, 1), (PERF_TYPE_SOFTWARE, 3), (PERF_TYPE_SOFTWARE, 4),
        (PERF_TYPE_SOFTWARE, 2)]
    assert resolved[4].scale == 1e-9  # nanoseconds to seconds
    assert not any(e.programmable for e in resolved[:2] + resolved[4:])
    assert all(e.programmable for e in resolved[2:4])


def test_unknown_and_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="unknown event 'task_instruction'.*did you mean "
                                         "task_instructions"):
        events.check_names(['task_instruction'])
    with pytest.raises(ValueError, match="given twice"):
        events.check_names(['cycles', 'task_cycles'])
    with pytest.raises(ValueError, match='list of event names'):
        events.check_names('task_cycles')


@pytest.mark.parametrize('model, stepping, codename', [
    (0x55, 4, events.SKYLAKE), (0x55, 7, events.CASCADE_LAKE), (0x5E, 3, events.SKYLAKE),
    (0x4F, 1, events.BROADWELL), (0x6A, 6, events.UNKNOWN)])
def test_cpu_model_from_cpuinfo(tmp_path, model, stepping, codename):
    proc = proc_tree(tmp_path, INTEL.format(model=model, stepping=stepping))
    cpu = events.read_cpuid(proc)
    assert (cpu.vendor, cpu.family, cpu.model, cpu.stepping) == ('GenuineIntel', 6, model, stepping)
    assert cpu.codename == codename


def test_predefined_events_by_cpu_model(tmp_path):
    names = ['task_stalled_mem_loads', 'task_mem_load_retired_local_pmm',
             'task_offcore_requests_demand_rfo']
    skylake = events.CpuId('GenuineIntel', 6, 0x55, 4)
    resolved, dropped = events.resolve(names, skylake)
    assert [(e.name, hex(e.config)) for e in resolved] == [
        ('task_stalled_mem_loads', hex(0xA3 | 0x14 << 8 | 20 << 24)),
        ('task_offcore_requests_demand_rfo', hex(0x04B0))]
    assert dropped == ['task_mem_load_retired_local_pmm']  # Cascade Lake only
    resolved, dropped = events.resolve(names, events.CpuId('GenuineIntel', 6, 0x55, 7))
    assert [e.name for e in resolved] == names and dropped == []
    assert resolved[1].config == 0x80D1
    resolved, dropped = events.resolve(names, events.CpuId('GenuineIntel', 6, 0x4F, 1))
    broadwell = 0xA3 | 0x06 << 8 | 6 << 24
    assert [(e.name, e.config) for e in resolved] == [('task_stalled_mem_loads', broadwell)]
    resolved, dropped = events.resolve(names, events.CpuId('AuthenticAMD', 25, 17, 1))
    assert resolved == [] and dropped == names
    # 'stalls_mem_load' is the 1.x name of task_stalled_mem_loads
    assert events.resolve(['stalls_mem_load'], skylake)[0][0].name == 'task_stalled_mem_loads'


PROGRAMMABLE = ['task_cache_misses', 'task_cache_references', 'a__r0101', 'b__r0201', 'c__r0301']


def test_counter_budget_with_and_without_hyperthreading(tmp_path):
    proc = proc_tree(tmp_path, INTEL.format(model=0x55, stepping=4))
    layout = CgroupLayout(unified='/sys/fs/cgroup/unified')
    ht = sys_tree(tmp_path / 'ht', cores=2, threads=2)
    no_ht = sys_tree(tmp_path / 'no-ht', cores=4, threads=1)
    # instructions, cycles and software events do not count: 4 programmable fit with HT
    fits = ['task_instructions', 'task_cycles', 'task_task_clock_seconds_total'] + PROGRAMMABLE[:4]
    check(fits, None, False, proc, ht, layout)
    with pytest.raises(ValueError, match=r'event_names: 5 programmable events .* at most 4 at '
                                         r'once with hyper-threading on'):
        check(fits + PROGRAMMABLE[4:], None, False, proc, ht, layout)
    check(fits + PROGRAMMABLE[4:] + ['d__r0401', 'e__r0501', 'f__r0601'], None, False, proc,
          no_ht, layout)
    with pytest.raises(ValueError, match=r'9 programmable events .* at most 8 .* leave out 1'):
        check(fits + PROGRAMMABLE[4:] + ['d__r0401', 'e__r0501', 'f__r0601', 'g__r0701'], None,
              False, proc, no_ht, layout)


def test_missing_perf_event_hierarchy_is_named_with_the_fix(tmp_path):
    proc = proc_tree(tmp_path, '')
    with pytest.raises(ValueError, match='neither the v1 perf_event controller nor cgroup2 is '
                                         'mounted; mount it: .*mount -t cgroup -o perf_event'):
        perf_cgroup_root(CgroupLayout(v1={'cpu': '/sys/fs/cgroup/cpu'}), proc)
    assert perf_cgroup_root(CgroupLayout(v1={'perf_event': '/x/perf'}, unified='/u'), proc) == '/x/perf'
    assert perf_cgroup_root(CgroupLayout(unified='/u'), proc) == '/u'
    bound = proc_tree(tmp_path / 'bound', '', '#subsys_name\thierarchy\tnum_cgroups\tenabled\n'
                                              'perf_event\t7\t3\t1\n')
    with pytest.raises(ValueError, match='bound to a cgroup v1 hierarchy that is not mounted'):
        perf_cgroup_root(CgroupLayout(unified='/u'), bound)
    absent = proc_tree(tmp_path / 'absent', '', '#subsys_name\thierarchy\tnum_cgroups\tenabled\n'
                                                'cpu\t1\t3\t1\n')
    with pytest.raises(ValueError, match='no perf_event cgroup controller'):
        perf_cgroup_root(CgroupLayout(unified='/u'), absent)


def test_runner_options_are_checked_when_the_config_is_built(tmp_path):
    node = StaticNode(tasks=['t'])
    with pytest.raises(ValueError, match='enable_derived_metrics: derived metrics come from perf'):
        MeasurementRunner(node=node, enable_derived_metrics=True)
    with pytest.raises(ValueError, match="uncore_event_names: unknown uncore event 'platform_cas"
                                         "_count_read'.*did you mean platform_cas_count_reads"):
        MeasurementRunner(node=node, uncore_event_names=['platform_cas_count_read'])
    runner = MeasurementRunner(node=node, event_names=['task_task_clock_seconds_total'],
                               proc_root=proc_tree(tmp_path, ''),
                               cgroup_layout=CgroupLayout(unified='/sys/fs/cgroup/unified'))
    assert PERF_EVENT_PARANOID in runner.required_privileges()
    assert PERF_EVENT_PARANOID not in MeasurementRunner(node=node).required_privileges()


CONFIG = '''\
runner: !MeasurementRunner
  node: !StaticNode
    tasks: [t1]
  event_names:
    - task_task_clock_seconds_total
    - task_cyclse
'''


def test_unknown_event_in_a_config_file_exits_2_naming_file_line_and_key(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config_text(CONFIG, 'wca.yaml', Runner)
    text = str(raised.value)
    assert text.startswith('wca.yaml:5: runner.event_names: ') and 'Traceback' not in text, text
    assert "unknown event 'task_cyclse' (did you mean task_cycles?)" in text, text
    path = write_config(tmp_path / 'wca.yaml', CONFIG)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    assert result.returncode == 2, result.stderr
    assert 'did you mean task_cycles?' in result.stderr and 'Traceback' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_too_many_events_in_a_config_file_names_the_budget(tmp_path):
    names = ['x%d__r%02X01' % (n, n) for n in range(9)]
    text = CONFIG.replace('    - task_cyclse\n', ''.join('    - %s\n' % n for n in names))
    path = write_config(tmp_path / 'wca.yaml', text)
    result = subprocess.run(wca_command('-c', path, '--check-config'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    assert result.returncode == 2, result.stderr
    assert '9 programmable events' in result.stderr and 'at most' in result.stderr


COMPOSED = '''\
runner: !DetectionRunner
  measurement_runner: !MeasurementRunner
    node: !StaticNode {{tasks: [t1]}}
    proc_root: {proc}
    event_names: [instructions, cycles, task-clock]
    perf_aggregate_cpus: false
    enable_derived_metrics: true
    uncore_event_names: [[platform_cas_count_reads, platform_cas_count_writes],
                         [platform_upi_rxl_flits]]
  detector: !NOPAnomalyDetector
'''


def test_the_options_in_the_composition_shape(tmp_path):
    proc = proc_tree(tmp_path, INTEL.format(model=0x55, stepping=4))
    loaded = load_config_text(COMPOSED.format(proc=proc), 'wca.yaml', Runner)
    config = loaded['runner'].config
    assert config.event_names == ['instructions', 'cycles', 'task-clock']
    assert config.perf_aggregate_cpus is False and config.enable_derived_metrics is True
    assert config.uncore_event_names[1] == ['platform_upi_rxl_flits']
    assert PERF_EVENT_PARANOID in loaded['runner'].required_privileges()
