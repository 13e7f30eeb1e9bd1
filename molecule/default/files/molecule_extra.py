"""A second plugin module for the Molecule test: the broken rollout adds it, and it must not
arrive in /etc/wca/plugins."""
from wca.detectors import NOPAnomalyDetector


class MoleculeExtra(NOPAnomalyDetector):
    pass
