"""The interference allocator's actions on recorded series, through the public allocate():
levels, hold, recovery, the flap limit, RDT first for cache contention, LC never throttled,
dry_run."""
import dataclasses
import logging

from series import INTERVAL, Series
from wca.algorithms.interference.components import InterferenceAllocator
from wca.allocators import AllocationType as A, RDTAllocation
from wca.platforms import RDTInformation

BE = {'type': 'best_efforts'}
QUIET = {'usage': 0.5, 'pressure': 0.01}
HURT = {'usage': 0.5, 'pressure': 0.5}


def allocator(**options):
    for key, value in dict(signal='cpu_pressure', state_file=None, min_samples=10, window=30,
                           hold=60, recovery_period=20, levels=4).items():
        options.setdefault(key, value)
    return InterferenceAllocator(**options)


def setup(**options):
    s = Series()
    s.task('web', {'app': 'web'}, allocations={'cpu_quota': 1.0, 'cpuset_cpus': '0-1'})
    s.task('hog', BE, allocations={'cpu_quota': 1.0, 'cpuset_cpus': '0-1'})
    s.task('lchog', {'app': 'lchog'}, allocations={'cpu_quota': 1.0, 'cpuset_cpus': '0-1'})
    a = allocator(**options)
    for _ in range(12):
        a.allocate(*s.step(web=QUIET, hog={'usage': 0}, lchog={'usage': 0}))
    return s, a


def level(metrics, task='hog'):
    found = [m.value for m in metrics if m.name == 'interference_throttle_level' and
             m.labels['task_id'] == task]
    return found[0] if found else None


def steps(s, a, n, web, hog, lchog=0.0):
    answers = []
    for _ in range(n):
        answers.append(a.allocate(*s.step(web=web, hog={'usage': hog}, lchog={'usage': lchog})))
    return answers


def test_levels_hold_and_recovery(caplog):
    s, a = setup()
    cpus = s.platform.cpus
    with caplog.at_level(logging.WARNING):
        answers = steps(s, a, 3, HURT, hog=1.0, lchog=1.0)
    assert [answer[0] for answer in answers[:2]] == [{}, {}]
    allocations, anomalies, metrics = answers[2]
    assert allocations == {'hog': {A.QUOTA: 0.1 / cpus}}  # the floor, at once; lchog is LC
    assert sorted(anomalies[0].contending_task_ids) == ['hog', 'lchog']
    assert level(metrics) == 0
    throttle, = [r.getMessage() for r in caplog.records if 'throttle' in r.getMessage()]
    assert 'victim web' in throttle and 'cpu_pressure 0.5 > threshold' in throttle and \
        'cpu quota 0.1 CPUs' in throttle
    cut = s.now
    levels = []
    for _ in range(16):
        (allocations, _, metrics), = steps(s, a, 1, QUIET, hog=0.1)
        levels.append((s.now - cut, level(metrics), allocations.get('hog')))
    # Named while web stays a victim (its outliers in the 30 s window); held 60 s from the cut;
    # then a level per 20 s nobody named it; released at 4 with the quota it had.
    steps_at = {lvl: t for t, lvl, _ in reversed(levels)}
    assert steps_at == {0: 10, 1: 60, 2: 80, 3: 100, 4: 120}
    released = [alloc for t, lvl, alloc in levels if lvl == 4]
    assert released[0] == {A.QUOTA: 1.0}
    assert all(alloc is None for alloc in released[1:])  # left alone afterwards
    middle = [alloc[A.QUOTA] for t, lvl, alloc in levels if lvl == 2][0]
    assert abs(middle * cpus - (0.1 + (2 - 0.1) * 2 / 4)) < 1e-9  # ceiling: its 2 CPUs


def test_named_again_while_recovering_goes_back_to_the_floor():
    s, a = setup(hold=20, recovery_period=10)
    steps(s, a, 3, HURT, hog=1.0)
    answers = steps(s, a, 8, QUIET, hog=0.1)
    assert level(answers[-1][2]) >= 1
    answers = steps(s, a, 3, HURT, hog=1.0)
    assert level(answers[-1][2]) == 0


def test_a_task_released_too_often_stays_at_the_floor_for_the_hour():
    s, a = setup(hold=10, recovery_period=10, window=30, max_releases_per_hour=2)
    for cycle in range(2):
        assert level(steps(s, a, 3, HURT, hog=1.0)[-1][2]) == 0, cycle
        answers = steps(s, a, 10, QUIET, hog=0.1)
        assert level(answers[-1][2]) == 4, cycle
    assert level(steps(s, a, 3, HURT, hog=1.0)[-1][2]) == 0
    locked = s.now
    answers = steps(s, a, 30, QUIET, hog=0.1)  # 300 s clean: still at the floor
    assert {level(m) for _, _, m in answers} == {0}
    while s.now - locked < 3600:
        answers = steps(s, a, 10, QUIET, hog=0.1)
    answers = steps(s, a, 10, QUIET, hog=0.1)
    assert level(answers[-1][2]) == 4


def test_dry_run_allocates_nothing_and_says_what_it_would_do(caplog):
    s, a = setup(dry_run=True)
    with caplog.at_level(logging.WARNING):
        allocations, anomalies, metrics = steps(s, a, 3, HURT, hog=1.0)[-1]
    assert allocations == {} and anomalies and level(metrics) == 0
    assert 'dry_run, not applied: throttle hog' in caplog.text


def test_cache_contention_shrinks_the_best_effort_group_first():
    s = Series()
    s.platform = dataclasses.replace(s.platform, sockets=1, rdt_information=RDTInformation(
        cbm_mask='fffff', min_cbm_bits='1', num_closids=16, mb_bandwidth_gran=10,
        mb_min_bandwidth=10, rdt_cache_control_enabled=True, rdt_mb_control_enabled=True))
    held = RDTAllocation(name='', l3='L3:0=fffff', mb='MB:0=100')
    s.task('web', {'app': 'web'}, allocations={'cpu_quota': 1.0, 'rdt': held})
    s.task('batch', BE, allocations={'cpu_quota': 1.0, 'rdt': held})
    a = allocator(signal='cpi', hold=30)
    for i in range(12):
        a.allocate(*s.step(web={'usage': 1, 'cpi': 1 + 0.01 * (i % 3)}, batch={'usage': 0}))
    answers = [a.allocate(*s.step(web={'usage': 1, 'cpi': 1.5},
                                  batch={'usage': 1, 'cpi': 3, 'llc': 30e6})) for _ in range(3)]
    allocations, anomalies, _ = answers[-1]
    assert anomalies[0].resource == 'cache'
    assert allocations == {'batch': {A.RDT: RDTAllocation(name='best_efforts', l3='L3:0=80000',
                                                          mb='MB:0=10')}}
    for _ in range(3):  # still named after hold: the CPU quota is cut too
        allocations, _, _ = a.allocate(*s.step(web={'usage': 1, 'cpi': 1.5},
                                               batch={'usage': 1, 'cpi': 3, 'llc': 30e6}))
    assert set(allocations['batch']) == {A.RDT, A.QUOTA}
    released = None
    for _ in range(30):  # contention over: released, back to its own group and quota
        allocations, _, metrics = a.allocate(*s.step(web={'usage': 1, 'cpi': 1.0},
                                                     batch={'usage': 0.1, 'cpi': 3}))
        if allocations:
            released = allocations
    assert released == {'batch': {A.RDT: held, A.QUOTA: 1.0}}


def test_a_task_that_leaves_is_forgotten():
    s, a = setup()
    steps(s, a, 3, HURT, hog=1.0)
    s.remove('hog')
    allocations, _, metrics = a.allocate(*s.step(web=HURT, lchog={'usage': 0}))
    assert allocations == {} and level(metrics) is None
    assert a.throttles.states == {}


assert INTERVAL == 10.0  # the expectations above count in steps of 10 s


def test_the_shared_best_effort_group_takes_the_lowest_level():
    """Two BE tasks in one resctrl group at different levels: one schemata for the group (the
    AllocationRunner would reject two as a conflict)."""
    from wca.algorithms.interference.throttle import Throttles
    from wca.detectors import ContendedResource
    s = Series()
    s.platform = dataclasses.replace(s.platform, sockets=1, rdt_information=RDTInformation(
        cbm_mask='fffff', min_cbm_bits='1', rdt_cache_control_enabled=True))
    held = RDTAllocation(name='', l3='L3:0=fffff')
    s.task('a', BE, allocations={'cpu_quota': 1.0, 'rdt': held})
    s.task('b', BE, allocations={'cpu_quota': 1.0, 'rdt': held})
    t = Throttles(levels=4, hold=10, recovery_period=10, cpu_quota_floor=0.1,
                  max_releases_per_hour=4, rdt_group='best_efforts')
    platform, tasks = s.data()
    cache = ('web', 'evidence', ContendedResource.LLC)
    t.update(platform.timestamp, {'a': cache}, tasks, platform)
    for _ in range(2):  # a recovers to level 2 ...
        platform, tasks = s.step(a={}, b={})
        t.update(platform.timestamp, {}, tasks, platform)
    assert t.level('a') == 2
    platform, tasks = s.step(a={}, b={})
    allocations = t.update(platform.timestamp, {'b': cache}, tasks, platform)  # ... b is cut
    assert allocations['a'][A.RDT] == allocations['b'][A.RDT] == RDTAllocation(
        name='best_efforts', l3='L3:0=80000')
