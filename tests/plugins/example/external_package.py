"""install.rst's `-r example.external_package:ExampleDetector`: a package.module:Class plugin."""
import logging

from wca.detectors import AnomalyDetector
from wca.metrics import Metric

log = logging.getLogger(__name__)


class ExampleDetector(AnomalyDetector):
    """Finds no anomaly; reports how many tasks it saw as a metric."""

    def detect(self, platform, tasks_data):
        log.debug('ExampleDetector saw %d tasks', len(tasks_data))
        return [], [Metric(name='example_detector_tasks', value=len(tasks_data))]
