"""A detector plugin for the Molecule test of the wca role: it finds no anomalies and reports
how many tasks it was shown, so the test can see that the agent loaded and ran it."""
from wca.detectors import AnomalyDetector
from wca.metrics import Metric, MetricType


class MoleculeDetector(AnomalyDetector):
    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def detect(self, platform, tasks_data):
        seen = Metric(name='molecule_detector_tasks', value=len(tasks_data),
                      labels={'threshold': str(self.threshold)}, type=MetricType.GAUGE,
                      help='Tasks the Molecule test detector was shown.')
        return [], [seen]
