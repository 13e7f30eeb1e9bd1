"""Scaling, sums and derived metrics on group reads laid out as the kernel writes them
(nr, time_enabled, time_running, then value and id per event), including multiplexed groups,
which software events never are: fed through the agent's own read path on pipes."""
import os
import struct

import pytest

from wca.nodes.base import Task
from wca.perf.counters import PerfSourceFactory, PerfStatus, PerfTaskSource, derive, scaled, sum_groups
from wca.perf.events import Event
from wca.perf.syscall import PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, group_reader

INSTRUCTIONS, CYCLES, MISSES, REFERENCES = ('task_instructions', 'task_cycles', 'task_cache_misses',
                                            'task_cache_references')


def group_read(enabled, running, *values):
    """The bytes of one PERF_FORMAT_GROUP read, ids included."""
    data = struct.pack('=3Q', len(values), enabled, running)
    for n, value in enumerate(values):
        data += struct.pack('=QQ', value, 1000 + n)
    return data


def rows(*reads):
    """Each read unpacked as the agent does (ids skipped)."""
    return [group_reader(struct.unpack_from('=Q', r)[0]).unpack(r) for r in reads]


def test_unpacking_skips_the_ids():
    data = group_read(300, 200, 11, 22, 33)
    assert group_reader(3).unpack(data) == (3, 300, 200, 11, 22, 33)


def test_a_group_that_ran_all_the_time_is_not_scaled():
    assert scaled((2, 500, 500, 7, 9)) == ([7, 9], 1.0)


def test_a_multiplexed_group_is_scaled_to_its_enabled_time():
    values, factor = scaled((2, 300, 200, 1001, 10))
    assert factor == 1.5 and values == [round(1001 * 1.5), 15]  # rounded as the original did


def test_a_group_that_never_ran_gives_nothing():
    assert scaled((2, 0, 0, 0, 0)) is None
    assert scaled((2, 400, 0, 0, 0)) is None  # enabled, never scheduled: no division by zero
    assert sum_groups(rows(group_read(0, 0, 0, 0), group_read(100, 0, 0, 0))) == (None, [])
    assert sum_groups([]) == (None, [])


def test_sums_over_groups_leave_out_those_that_never_ran():
    read = rows(group_read(300, 200, 100, 10), group_read(0, 0, 0, 0), group_read(50, 50, 5, 1))
    assert sum_groups(read) == ([150 + 5, 15 + 1], [1.5, 1.0])
    plain = rows(group_read(70, 70, 1, 2), group_read(0, 0, 0, 0), group_read(30, 30, 3, 4))
    assert sum_groups(plain) == ([4, 6], [1.0, 1.0])


def test_derived_metrics_from_deltas():
    index = {INSTRUCTIONS: 0, CYCLES: 1, MISSES: 2, REFERENCES: 3}
    out = derive([3000, 2000, 30, 120], [1000, 1000, 10, 20], 2.0, index)
    assert out == {'task_ips': 1000.0, 'task_ipc': 2.0,
                   'task_cache_misses_per_kilo_instructions': 10.0,
                   'task_cache_hit_ratio': 0.8}


def test_an_idle_task_gives_no_derived_sample():
    index = {INSTRUCTIONS: 0, CYCLES: 1, MISSES: 2, REFERENCES: 3}
    assert derive([5, 5, 5, 5], [5, 5, 5, 5], 1.0, index) == {}  # the original divided by zero
    assert derive([5, 5, 5, 5], [5, 5, 5, 5], 0.0, index) == {}
    # scaled estimates may go backwards: no sample rather than a negative rate
    assert derive([4, 9, 5, 9], [5, 5, 5, 5], 1.0, index) == {'task_cache_hit_ratio': 1.0}
    # cycles without instructions: an IPC of 0 is a fact, not an idle task
    assert derive([5, 9, 5, 5], [5, 5, 5, 5], 1.0, index) == {'task_ipc': 0.0}
    # only what the counted events allow
    assert derive([9, 9], [5, 5], 1.0, {INSTRUCTIONS: 0, MISSES: 1}) == {
        'task_ips': 4.0, 'task_cache_misses_per_kilo_instructions': 1000.0}
    assert derive([9], [5], 1.0, {CYCLES: 0}) == {}


class PipeGroups:
    """A task source whose group leaders are pipes: each measure() reads what the test wrote,
    through the same os.read and unpack as real counters."""

    def __init__(self, events, cpus, aggregate=True, derived=False):
        self.status = PerfStatus()
        self.factory = PerfSourceFactory(events, '/nonexistent-perf-root', cpus, aggregate, derived,
                                         self.status)
        self.source = PerfTaskSource(self.factory, Task('t', 't', '/t'))  # no cgroup: pending
        self.source.pending = []
        self.pipes = [os.pipe() for _ in cpus]
        self.source.leaders = [r for r, _ in self.pipes]
        self.source.leader_cpus = list(cpus)

    def measure(self, *reads):
        for (_, w), data in zip(self.pipes, reads):
            os.write(w, data)
        m = {}
        self.source.measure(m)
        return m

    def close(self):
        for r, w in self.pipes:
            os.close(r)
            os.close(w)


@pytest.fixture
def pipes():
    made = []

    def make(*args, **kwargs):
        made.append(PipeGroups(*args, **kwargs))
        return made[-1]
    yield make
    for groups in made:
        groups.close()


EVENTS = [Event(INSTRUCTIONS, PERF_TYPE_HARDWARE, 1), Event(CYCLES, PERF_TYPE_HARDWARE, 0),
          Event('task_task_clock_seconds_total', PERF_TYPE_SOFTWARE, 1, scale=1e-9)]


def test_measure_sums_scales_and_derives(pipes):
    groups = pipes(EVENTS, [0, 1], derived=True)
    first = groups.measure(group_read(0, 0, 0, 0, 0), group_read(0, 0, 0, 0, 0))
    assert first == {}  # nothing ran yet: no sample at all
    second = groups.measure(group_read(400, 200, 1000, 500, 10 ** 9),
                            group_read(100, 100, 10, 5, 10 ** 8))
    assert second == {INSTRUCTIONS: 2010, CYCLES: 1005,
                      'task_task_clock_seconds_total': pytest.approx(2.1),
                      'task_scaling_factor_avg': 1.5, 'task_scaling_factor_max': 2.0}
    third = groups.measure(group_read(800, 400, 2000, 1000, 2 * 10 ** 9),
                           group_read(200, 200, 10, 5, 10 ** 8))  # CPU 1 idle meanwhile
    assert third[INSTRUCTIONS] == 4010 and third[CYCLES] == 2005
    assert third['task_ipc'] == 2.0 and third['task_ips'] > 0
    fourth = groups.measure(group_read(900, 450, 2000, 1000, 2 * 10 ** 9),
                            group_read(300, 300, 10, 5, 10 ** 8))  # idle: no derived sample
    assert 'task_ipc' not in fourth and 'task_ips' not in fourth
    assert fourth[INSTRUCTIONS] == 4010


def test_measure_per_cpu(pipes):
    groups = pipes(EVENTS, [0, 3], aggregate=False, derived=True)
    first = groups.measure(group_read(400, 200, 1000, 500, 10 ** 9), group_read(0, 0, 0, 0, 0))
    assert first == {INSTRUCTIONS: {0: 2000}, CYCLES: {0: 1000},
                     'task_task_clock_seconds_total': {0: 2.0},
                     'task_scaling_factor_avg': {0: 2.0}, 'task_scaling_factor_max': {0: 2.0}}
    second = groups.measure(group_read(600, 400, 3000, 1000, 10 ** 9),
                            group_read(100, 100, 50, 25, 10 ** 8))
    assert second[INSTRUCTIONS] == {0: 4500, 3: 50}
    assert second['task_scaling_factor_avg'] == {0: 1.5, 3: 1.0}
    # derived per CPU, only where the CPU had a previous sample
    assert second['task_ipc'] == {0: 2500 / 500}


def test_a_read_that_fails_is_logged_once_and_counted(pipes, caplog):
    groups = pipes(EVENTS, [0])
    os.close(groups.pipes[0][1])
    groups.pipes[0] = (groups.pipes[0][0], os.open('/dev/null', os.O_RDONLY))
    assert groups.measure() == {}  # end of file: a short read
    assert groups.measure() == {}
    assert groups.status.failures['error'] == 1
    assert len([r for r in caplog.records if 'cannot read perf counters' in r.getMessage()]) == 1


CACHE = [Event(REFERENCES, PERF_TYPE_HARDWARE, 4), Event(MISSES, PERF_TYPE_HARDWARE, 5)]


def test_the_cache_hit_ratio_stays_within_0_and_1_when_the_scaling_factor_changes(pipes):
    """References and misses of one group share its scaling factor, but the factor of the
    running totals changes between reads (the group got more PMU time): the deltas of the scaled
    totals then show more misses than references (here 209 - 200 = 9 references against
    19 - 0 = 19 misses), which made the ratio -1.1."""
    groups = pipes(CACHE, [0], derived=True)
    groups.measure(group_read(200, 100, 100, 0))  # scaled x2: 200 references, 0 misses
    second = groups.measure(group_read(209, 110, 110, 10))  # x1.9: 209 references, 19 misses
    assert second[REFERENCES] == 209 and second[MISSES] == 19
    assert second['task_cache_hit_ratio'] == 0.0
    third = groups.measure(group_read(409, 210, 210, 30))  # both grow alike again
    assert 0.0 <= third['task_cache_hit_ratio'] <= 1.0
