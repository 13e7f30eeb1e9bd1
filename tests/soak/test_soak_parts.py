"""The soak's own instruments (they run in `make test`; the soak itself does not): the textfile
watch must count every store, however fast they come, and read the agent's self-metrics."""
import os
import time

from soak_world import TextfileWatch, parse_samples, value


def test_every_replacement_of_the_textfile_is_counted(tmp_path):
    path = str(tmp_path / 'wca.prom')
    watch = TextfileWatch(path)
    watch.start()
    try:
        for iteration in range(1, 201):  # faster than the watch reads: the kernel queues them
            tmp = path + '.tmp'
            with open(tmp, 'w') as f:
                f.write('# TYPE wca_iterations_total counter\nwca_iterations_total{host="h"} %d\n'
                        % iteration)
            os.replace(tmp, path)
        with open(str(tmp_path / 'other'), 'w') as f:  # another file in the directory: not a store
            f.write('x')
        deadline = time.monotonic() + 10
        while watch.stores < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watch.stop()
    assert watch.stores == 200
    assert 200 in watch.iterations_seen
    assert value(watch.latest, 'wca_iterations_total') == 200


def test_samples_are_summed_over_the_labels_asked_for():
    samples = parse_samples(
        '# HELP wca_storage_errors_total Number of failed store calls, by storage.\n'
        'wca_storage_errors_total{host="h",storage="metrics_storage"} 3\n'
        'wca_storage_errors_total{host="h",storage="anomalies_storage"} 1\n'
        'wca_node_errors_total{host="h",reason="a \\"quoted\\" one"} 2\n'
        'wca_up 1\n')
    assert value(samples, 'wca_storage_errors_total') == 4
    assert value(samples, 'wca_storage_errors_total', storage='metrics_storage') == 3
    assert value(samples, 'wca_node_errors_total') == 2
    assert value(samples, 'wca_up') == 1
    assert value(samples, 'wca_tasks') is None
