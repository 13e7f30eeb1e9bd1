"""Recording: a storage that keeps what it was given, for tests to look at."""
from typing import List

from wca.metrics import Metric
from wca.storage.base import FailedDeliveryException, Storage


class Recording(Storage):
    """Keeps each store() call's metrics in `batches`; raises while `fail` is set."""

    def __init__(self, fail: bool = False):
        self.batches = []  # type: List[List[Metric]]
        self.fail = fail

    def store(self, metrics):
        if self.fail:
            raise FailedDeliveryException('storage down')
        self.batches.append(list(metrics))

    def names(self, batch: int = -1) -> List[str]:
        return [m.name for m in self.batches[batch]]

    def last(self, name: str) -> List[Metric]:
        return [m for m in self.batches[-1] if m.name == name]

    def value(self, name: str, **labels):
        """The value of the one metric of the last batch with this name and these labels."""
        found = [m.value for m in self.last(name)
                 if all(m.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]
