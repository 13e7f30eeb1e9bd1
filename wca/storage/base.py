"""The storage contract: where the runners hand their metrics."""
from abc import ABC, abstractmethod
from typing import List

from wca.metrics import Metric


class FailedDeliveryException(Exception):
    """The metrics were not delivered; the runner logs and counts it and goes on."""


class Storage(ABC):
    @abstractmethod
    def store(self, metrics: List[Metric]) -> None:
        """Stores the metrics; may raise FailedDeliveryException."""

    def close(self) -> None:
        """Releases connections, threads or sockets; called once, when the agent stops."""

    def dropped_count(self) -> int:
        """Metrics this storage could not deliver since start (reported as wca_metrics_dropped_total)."""
        return getattr(self, '_dropped', 0)
