"""Calling an outside algorithm (a detector or an allocator) from a runner, safely."""
import logging
from typing import List, Optional

from wca.detectors import convert_anomalies_to_metrics
from wca.metrics import Metric

log = logging.getLogger(__name__)


def call_algorithm(runner, role: str, method: str, parts: int, platform,
                   tasks_data) -> Optional[list]:
    """Runs `runner.config.<role>.<method>(platform, tasks_data)`, which returns a tuple ending
    in (anomalies, metrics). Returns that answer as a list whose last item is the metrics plus
    the encoded anomalies, all with the runner's common labels; or None when the algorithm
    failed or answered nonsense: then it is counted (wca_algorithm_errors_total), logged when
    the failure starts or changes, and the runner goes on measuring."""
    algorithm = getattr(runner.config, role)
    try:
        answer = getattr(algorithm, method)(platform, tasks_data)
        if not isinstance(answer, (tuple, list)) or len(answer) != parts:
            raise ValueError('%s() must return a tuple of %d items, got %s' % (
                method, parts, type(answer).__name__))
        answer = list(answer)
        answer[-1] = stamp_metrics(list(answer[-1]) + convert_anomalies_to_metrics(answer[-2]),
                                   runner.common_labels)
    except Exception as e:  # an outside algorithm: anything may come out of it
        runner.count_error(role)
        runner.report_failure(role, '%s %s failed: %s: %s' % (
            role, type(algorithm).__name__, type(e).__name__, e))
        log.debug('%s failure', role, exc_info=True)
        return None
    runner.report_recovery(role)
    return answer


def stamp_metrics(metrics, common_labels) -> List[Metric]:
    """An algorithm's metrics with the agent's common labels added (their own labels win)."""
    if not all(isinstance(m, Metric) for m in metrics):
        raise ValueError('metrics must be a list of wca.metrics.Metric')
    for metric in metrics:
        metric.labels = dict(common_labels, **metric.labels)
    return metrics
