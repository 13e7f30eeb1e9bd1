"""The allocator's answer checked value by value (issue 7, defect 6, and the rest of the rules):
each invalid allocation is rejected alone with a clear reason; the valid ones come out
normalised."""
import math

import pytest

from wca.allocations import (INVALID, NO_TYPE, UNKNOWN_TASK, UNKNOWN_TYPE, UNSUPPORTED,
                             allocations_to_metrics, parse_list, validate_allocations)
from wca.allocators import AllocationType as A, RDTAllocation
from wca.platforms import Platform


def platform(cpus=4, nodes=None):
    nodes = nodes or {0: set(range(cpus))}
    return Platform(sockets=1, cores=cpus, cpus=cpus, numa_nodes=len(nodes), cpu_model='test',
                    topology={0: {c: [c] for c in range(cpus)}}, node_cpus=nodes,
                    node_distances={}, timestamp=0.0, rdt_information=None, measurements={})


def check(kind, value, **kwargs):
    """(the valid value or None, the rejection message or None)."""
    valid, rejected, count = validate_allocations({'t': {kind: value}}, {'t'}, platform(**kwargs))
    assert count == 1
    if rejected:
        assert len(rejected) == 1 and not valid
        return None, rejected[0]
    return valid['t'][kind], None


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('kind', [A.QUOTA, A.SHARES])
def test_nan_and_infinite_numbers_are_rejected(kind, value):
    valid, rejection = check(kind, value)
    assert valid is None and rejection.reason == INVALID
    assert rejection.message == '%s must be a finite number, got %r' % (kind.value, value)


@pytest.mark.parametrize('value', [1.0000001, 1.5, 2, 100])
def test_quota_above_one_is_rejected(value):
    valid, rejection = check(A.QUOTA, value)
    assert valid is None
    assert rejection.message == ('cpu_quota must be in [0, 1.0] (a fraction of the whole '
                                 'platform; 1.0 is unlimited), got %r' % value)


@pytest.mark.parametrize('value', [0, 0.0, 0.25, 1, 1.0])
def test_quota_from_zero_to_one_is_accepted(value):
    assert check(A.QUOTA, value) == (value, None)


@pytest.mark.parametrize('value', [-0.1, -1, True, '0.5', None, [0.5]])
def test_quota_not_a_fraction_is_rejected(value):
    valid, rejection = check(A.QUOTA, value)
    assert valid is None and rejection.reason == INVALID and 'cpu_quota' in rejection.message


@pytest.mark.parametrize('value, message', [
    ('1-0', "reversed range '1-0' in cpu list '1-0'"),
    ('0,3-2', "reversed range '3-2' in cpu list '0,3-2'"),
    ('', 'empty cpu list: a task needs at least one'),
    ('  ', 'empty cpu list: a task needs at least one'),
    ([], 'empty cpu list: a task needs at least one'),
    ('0,,1', 'not a cpu list in the kernel list format (like "0-3,8"): \'0,,1\''),
    ('0-', 'not a cpu list in the kernel list format (like "0-3,8"): \'0-\''),
    ('-1', 'not a cpu list in the kernel list format (like "0-3,8"): \'-1\''),
    ('a', 'not a cpu list in the kernel list format (like "0-3,8"): \'a\''),
    ('²', 'not a cpu list in the kernel list format (like "0-3,8"): \'²\''),
    ('0-4', 'cpu 4 not on this platform (it has 0-3)'),
    ('0-99999999999', 'cpu 99999999999 not on this platform'),
    ([0, True], 'a cpu list must hold non-negative ints, got [0, True]'),
    ([0, -1], 'a cpu list must hold non-negative ints, got [0, -1]'),
    (3, 'expected a cpu list like "0-3,8" (or a list of ints), got 3'),
])
def test_bad_cpusets_are_rejected_with_a_reason(value, message):
    valid, rejection = check(A.CPUSET_CPUS, value)
    assert valid is None and rejection.reason == INVALID
    assert rejection.message == message
    assert rejection.log_text() == "task 't': cpuset_cpus: " + message


@pytest.mark.parametrize('value, normalised', [
    ('0-3', '0-3'), (' 3,1 ,2 ', '1-3'), ('0,0-1', '0-1'), ([3, 1, 2], '1-3'),
    ((0, 2), '0,2'), ({1}, '1')])
def test_cpusets_are_normalised_to_the_kernel_list_format(value, normalised):
    assert check(A.CPUSET_CPUS, value) == (normalised, None)


def test_cpuset_mems_are_the_platform_nodes():
    nodes = {0: {0, 1}, 1: {2, 3}}
    assert check(A.CPUSET_MEMS, [1, 0], nodes=nodes) == ('0-1', None)
    valid, rejection = check(A.CPUSET_MEMS, '2', nodes=nodes)
    assert rejection.message == 'NUMA node 2 not on this platform (it has 0-1)'
    valid, rejection = check(A.CPUSET_MEMS, '1-0', nodes=nodes)
    assert rejection.message == "reversed range '1-0' in NUMA node list '1-0'"


@pytest.mark.parametrize('value, expected', [(0, 0), (1, 1), (True, 1), (False, 0)])
def test_memory_migrate_is_a_flag(value, expected):
    assert check(A.CPUSET_MEMORY_MIGRATE, value) == (expected, None)


@pytest.mark.parametrize('value', [2, -1, 0.5, '1', None])
def test_memory_migrate_other_values_are_rejected(value):
    valid, rejection = check(A.CPUSET_MEMORY_MIGRATE, value)
    assert rejection.message == 'cpuset_memory_migrate must be 0 or 1, got %r' % (value,)


def test_migrate_pages_must_be_a_node_of_the_platform():
    nodes = {0: {0, 1}, 1: {2, 3}}
    assert check(A.MIGRATE_PAGES, 1, nodes=nodes) == (1, None)
    for value in (2, -1, True, 1.0, '1'):
        valid, rejection = check(A.MIGRATE_PAGES, value, nodes=nodes)
        assert rejection.message == ('migrate_pages must be a NUMA node of this platform (0-1), '
                                     'got %r' % (value,))


def test_shares_zero_and_above_are_accepted():
    assert check(A.SHARES, 0) == (0, None)
    assert check(A.SHARES, 1e6) == (1e6, None)  # the kernel's maximum is applied when written
    assert check(A.SHARES, -1)[1].message == 'cpu_shares must be >= 0, got -1'


def test_each_invalid_allocation_is_rejected_alone():
    allocations = {
        'a': {A.QUOTA: 0.5, A.SHARES: math.nan, 'cpuset_cpus': '1-0', A.CPUSET_MEMS: '0'},
        'b': {A.QUOTA: 2.0, 'no_such_type': 1, A.CPUSET_CPUS: [2, 3]},
        'ghost': {A.QUOTA: 0.1, 'weird': 1},
        'c': 'not a dict',
    }
    valid, rejected, count = validate_allocations(allocations, {'a', 'b', 'c'}, platform())
    assert valid == {'a': {A.QUOTA: 0.5, A.CPUSET_MEMS: '0'}, 'b': {A.CPUSET_CPUS: '2-3'}}
    assert count == 10
    assert sorted((r.task_id, r.allocation_type, r.reason) for r in rejected) == [
        ('a', 'cpu_shares', INVALID), ('a', 'cpuset_cpus', INVALID),
        ('b', 'cpu_quota', INVALID), ('b', NO_TYPE, UNKNOWN_TYPE),
        ('c', NO_TYPE, INVALID),
        ('ghost', 'cpu_quota', UNKNOWN_TASK), ('ghost', NO_TYPE, UNKNOWN_TASK)]
    texts = {r.log_text() for r in rejected}
    assert "task 'b': unknown allocation type 'no_such_type'" in texts
    assert "task 'ghost': cpu_quota: not a task of this iteration" in texts
    assert "task 'c': expected a dict of allocation type to value, got str" in texts


def test_an_answer_that_is_not_a_dict_is_one_rejection():
    valid, rejected, count = validate_allocations(['junk'], {'a'}, platform())
    assert (valid, count) == ({}, 1)
    assert [(r.allocation_type, r.reason) for r in rejected] == [(NO_TYPE, INVALID)]
    assert rejected[0].log_text() == ('allocations must be a dict of task id to allocations, '
                                      'got list')


def test_rdt_without_an_rdt_checker_is_unsupported():
    valid, rejected, _ = validate_allocations(
        {'a': {A.RDT: RDTAllocation(l3='L3:0=f'), A.QUOTA: 1.0}}, {'a'}, platform(),
        rdt_unavailable='resctrl is not mounted')
    assert valid == {'a': {A.QUOTA: 1.0}}
    assert [(r.reason, r.message) for r in rejected] == [(UNSUPPORTED, 'resctrl is not mounted')]
    valid, rejected, _ = validate_allocations({'a': {A.RDT: 'L3:0=f'}}, {'a'}, platform(),
                                              rdt_check=lambda task_id, value: value)
    assert rejected[0].message == "expected an RDTAllocation, got 'L3:0=f'"


def test_parse_list_is_strict():
    assert parse_list('0-2,7') == {0, 1, 2, 7}
    assert parse_list('5') == {5}


def test_metrics_of_allocations_carry_the_task_and_type():
    metrics = allocations_to_metrics(
        {'a': {A.QUOTA: 0.5, A.CPUSET_CPUS: '0-2,5',
               A.RDT: RDTAllocation(name='be', l3='L3:0=f0;1=3', mb='MB:0=20')}},
        {'a': {'task_id': 'a', 'app': 'x'}}, {'a': 'kubepods-a'})
    by_name = {}
    for m in metrics:
        by_name.setdefault(m.name, []).append(m)
    quota = by_name['allocation_cpu_quota'][0]
    assert quota.value == 0.5 and quota.labels == {
        'task_id': 'a', 'app': 'x', 'task': 'a', 'container_name': 'kubepods-a',
        'allocation_type': 'cpu_quota'}
    assert by_name['allocation_cpuset_cpus_number_of_cpus'][0].value == 4
    ways = {m.labels['domain_id']: m.value for m in by_name['allocation_rdt_l3_cache_ways']}
    assert ways == {'0': 4, '1': 2}
    masks = {m.labels['domain_id']: m.value for m in by_name['allocation_rdt_l3_mask']}
    assert masks == {'0': 0xf0, '1': 3}
    mb = by_name['allocation_rdt_mb'][0]
    assert (mb.value, mb.labels['group_name'], mb.labels['allocation_type']) == (
        20, 'be', 'rdt_mb')


def test_default_rdt_lines_are_checked_when_the_config_loads():
    from wca.config import ConfigError, load_config_text
    with pytest.raises(ConfigError) as error:
        load_config_text('runner: !AllocationRunner\n  node: !StaticNode {tasks: []}\n'
                         '  allocator: !NOPAllocator\n  allocation_configuration: '
                         '!AllocationConfiguration\n    default_rdt_mb: "50"\n', 'wca.yaml')
    assert str(error.value) == ("wca.yaml:5: runner.allocation_configuration.default_rdt_mb: "
                                "!AllocationConfiguration: expected a schemata line like "
                                "'MB:0=100;1=100', got '50'")
