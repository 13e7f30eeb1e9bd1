"""The interference detector on recorded series, through the public detect(): CPI (this machine
has no PMU), CPU pressure, run-queue delay; baselines, the quiet-baseline floor, antagonist
ranking, the state file."""
import json
import logging
import os

from series import Series
from wca.algorithms.interference.components import InterferenceDetector
from wca.detectors import ContendedResource, ContentionAnomaly

BE = {'type': 'best_efforts'}


def detector(tmp_path, **options):
    options.setdefault('state_file', str(tmp_path / 'baselines.json'))
    options.setdefault('min_samples', 10)
    options.setdefault('window', 60)
    return InterferenceDetector(**options)


def values(metrics, name, **labels):
    return {m.labels.get('task_id'): m.value for m in metrics if m.name == name and
            all(m.labels.get(k) == v for k, v in labels.items())}


def run(d, series, steps, rates):
    """`steps` steps of the same rates; the last answer."""
    answer = None
    for _ in range(steps):
        answer = d.detect(*series.step(**rates))
    return answer


def test_cpi_victim_names_the_best_effort_task_that_ran_with_it_and_the_cache(tmp_path):
    s = Series()
    s.task('web', {'app': 'web'})
    s.task('db', {'app': 'db'})
    d = detector(tmp_path, window=100)
    jitter = [1.0, 1.02, 0.98, 1.01, 0.99]
    for i in range(12):  # learning: no verdict before min_samples
        anomalies, metrics = d.detect(*s.step(web={'usage': 1, 'cpi': jitter[i % 5]},
                                              db={'usage': 0.5, 'cpi': 2.0}))
        assert anomalies == []
    assert values(metrics, 'interference_baseline_samples')['web'] == 11
    assert values(metrics, 'interference_signal', signal='cpi')['web'] == jitter[11 % 5]
    s.task('batch', BE)
    d.detect(*s.step(web={'usage': 1, 'cpi': 1.0}, db={'usage': 0.5, 'cpi': 2.0},
                     batch={'usage': 0}))
    found = []
    for i in range(4):  # batch thrashes the cache, web's CPI rises; db carries on as before
        anomalies, metrics = d.detect(*s.step(
            web={'usage': 1, 'cpi': 1.6}, db={'usage': 0.5, 'cpi': 2.0},
            batch={'usage': 2, 'cpi': 3, 'llc': 30e6}))
        found.append(anomalies)
    assert found[0] == [] and found[1] == []  # one and two outliers: not yet a victim
    anomaly, = found[2]
    assert isinstance(anomaly, ContentionAnomaly)
    assert anomaly.contended_task_id == 'web'
    assert anomaly.contending_task_ids == ['batch']  # db ran all along: not correlated
    assert anomaly.resource == ContendedResource.LLC
    assert values(metrics, 'interference_victim') == {'web': 1, 'db': 0, 'batch': 0}
    encoded = {m.name: m for m in anomaly.generate_metrics()}
    assert encoded['anomaly'].labels['contending_task_id'] == 'batch'
    assert encoded['interference_antagonist_correlation'].value > 0.9


def test_antagonists_are_ranked_by_correlation_and_need_to_share_cpus(tmp_path):
    s = Series()
    s.task('web', {'app': 'web'}, allocations={'cpuset_cpus': '0-1'})
    s.task('steady', BE, allocations={'cpuset_cpus': '0-1'})
    s.task('hog', BE, allocations={'cpuset_cpus': '1'})
    s.task('elsewhere', BE, allocations={'cpuset_cpus': '2-3'})
    d = detector(tmp_path, signal='cpu_pressure', window=200)
    quiet = {'usage': 0.5, 'pressure': 0.01}
    run(d, s, 30, dict(web=quiet, steady={'usage': 0.3}, hog={'usage': 0},
                       elsewhere={'usage': 0}))
    anomalies, _ = run(d, s, 3, dict(web={'usage': 0.5, 'pressure': 0.5}, steady={'usage': 0.3},
                                     hog={'usage': 1}, elsewhere={'usage': 1}))
    anomaly, = anomalies
    assert anomaly.resource == ContendedResource.CPUS
    assert anomaly.contending_task_ids == ['hog']
    anomalies, _ = run(d, s, 1, dict(web={'usage': 0.5, 'pressure': 0.5}, steady={'usage': 1},
                                     hog={'usage': 1}, elsewhere={'usage': 1}))
    assert anomalies[0].contending_task_ids[0] == 'hog'  # steady's usage only rose now


def test_a_quiet_baseline_does_not_turn_noise_into_victims(tmp_path):
    s = Series()
    s.task('web')  # no app label: the task name is its workload
    d = detector(tmp_path, signal='cpu_pressure')
    _, metrics = run(d, s, 12, dict(web={'usage': 0.5, 'pressure': 0.0}))
    assert values(metrics, 'interference_baseline_stddev')['web'] == 0
    assert values(metrics, 'interference_threshold')['web'] == 0.05  # min_stall_margin
    for _ in range(10):  # noise of a quiet task: within the floor
        anomalies, metrics = run(d, s, 1, dict(web={'usage': 0.5, 'pressure': 0.03}))
        assert anomalies == []
        assert values(metrics, 'interference_outlier')['web'] == 0
        assert values(metrics, 'interference_victim')['web'] == 0
    _, metrics = run(d, s, 1, dict(web={'usage': 0.5, 'pressure': 0.2}))
    assert values(metrics, 'interference_outlier')['web'] == 1


def test_a_task_below_min_cpu_usage_is_no_outlier(tmp_path):
    s = Series()
    s.task('web')
    d = detector(tmp_path, signal='cpi')
    run(d, s, 12, dict(web={'usage': 0.5, 'cpi': 1}))
    _, metrics = run(d, s, 5, dict(web={'usage': 0.2, 'cpi': 3}))
    assert values(metrics, 'interference_outlier')['web'] == 0
    assert values(metrics, 'interference_victim')['web'] == 0
    _, metrics = run(d, s, 3, dict(web={'usage': 0.5, 'cpi': 3}))
    assert values(metrics, 'interference_victim')['web'] == 1


def test_for_a_stall_signal_the_gate_counts_what_the_task_waited_for(tmp_path):
    """Contention lowers what a victim uses: 0.1 CPU used and 0.3 s/s waited is a task that
    asked for 0.4 CPU, judged; 0.05 used and 0.1 waited is not."""
    s = Series()
    s.task('web')
    d = detector(tmp_path, signal='runqueue_delay')
    run(d, s, 12, dict(web={'usage': 0.4, 'runqueue': 0.01}))
    _, metrics = run(d, s, 5, dict(web={'usage': 0.05, 'runqueue': 0.1}))
    assert values(metrics, 'interference_outlier')['web'] == 0
    assert values(metrics, 'interference_victim')['web'] == 0
    _, metrics = run(d, s, 3, dict(web={'usage': 0.1, 'runqueue': 0.3}))
    assert values(metrics, 'interference_victim')['web'] == 1


def test_auto_takes_cpi_then_pressure_then_runqueue_delay(tmp_path):
    s = Series()
    s.task('a')
    s.task('b')
    s.task('c')
    d = detector(tmp_path)
    rates = dict(a={'usage': 1, 'cpi': 1, 'pressure': 0.1, 'runqueue': 0.1},
                 b={'usage': 1, 'pressure': 0.1, 'runqueue': 0.1}, c={'usage': 1, 'runqueue': 0.1})
    _, metrics = run(d, s, 2, rates)
    signals = {m.labels['task_id']: m.labels['signal'] for m in metrics
               if m.name == 'interference_signal'}
    assert signals == {'a': 'cpi', 'b': 'cpu_pressure', 'c': 'runqueue_delay'}


def test_a_task_without_the_signal_is_counted_and_logged_once(tmp_path, caplog):
    s = Series()
    s.task('web')
    d = detector(tmp_path, signal='cpi')
    with caplog.at_level(logging.WARNING):
        _, metrics = run(d, s, 5, dict(web={'usage': 1, 'pressure': 0.1}))
    assert values(metrics, 'interference_signal_missing_total') == {None: 4}
    assert len([r for r in caplog.records if 'no cpi signal' in r.getMessage()]) == 1


def test_the_baseline_survives_a_restart(tmp_path):
    s = Series()
    s.task('web', {'app': 'web'})
    d = detector(tmp_path, signal='cpu_pressure', state_save_period=3600)
    run(d, s, 11, dict(web={'usage': 0.5, 'pressure': 0.02}))  # 10 samples: saved at once
    with open(str(tmp_path / 'baselines.json')) as f:
        saved = json.load(f)
    assert saved['baselines'][0]['count'] == 10
    assert saved['baselines'][0]['workload'] == 'web'
    restarted = detector(tmp_path, signal='cpu_pressure')
    s2 = Series(start=s.now)
    s2.task('web-2', {'app': 'web'})  # another task of the same workload, after the restart
    _, metrics = run(restarted, s2, 2, {'web-2': {'usage': 0.5, 'pressure': 0.02}})
    assert values(metrics, 'interference_baseline_samples')['web-2'] == 11
    assert 'web-2' in values(metrics, 'interference_threshold')  # a verdict at once
    _, metrics = run(restarted, s2, 3, {'web-2': {'usage': 0.5, 'pressure': 0.5}})
    assert values(metrics, 'interference_victim')['web-2'] == 1


def test_a_corrupt_state_file_is_logged_counted_and_ignored(tmp_path, caplog):
    path = tmp_path / 'baselines.json'
    path.write_text('{"version": 1, "baselines": [{"signal": "cpi"')
    with caplog.at_level(logging.WARNING):
        d = detector(tmp_path)
    assert 'corrupt' in caplog.text and str(path) in caplog.text
    s = Series()
    s.task('web')
    _, metrics = run(d, s, 12, dict(web={'usage': 1, 'cpi': 1}))
    assert values(metrics, 'interference_state_errors_total') == {None: 1}
    assert json.loads(path.read_text())['baselines'][0]['count'] == 10  # written anew


def test_an_unwritable_state_directory_is_counted_not_a_crash(tmp_path, caplog):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    d = detector(tmp_path, state_file=str(blocker / 'sub' / 'baselines.json'))
    s = Series()
    s.task('web')
    with caplog.at_level(logging.WARNING):
        _, metrics = run(d, s, 14, dict(web={'usage': 1, 'cpi': 1}))
    assert values(metrics, 'interference_state_errors_total')[None] >= 1
    assert len([r for r in caplog.records if 'cannot write' in r.getMessage()]) == 1
    assert values(metrics, 'interference_baseline_samples')['web'] == 13


def test_a_missing_state_directory_is_made(tmp_path):
    path = tmp_path / 'var' / 'lib' / 'wca' / 'baselines.json'
    d = detector(tmp_path, state_file=str(path))
    s = Series()
    s.task('web')
    run(d, s, 11, dict(web={'usage': 1, 'cpi': 1}))
    assert os.path.exists(str(path))
