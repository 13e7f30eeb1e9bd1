"""FilterStorage: passes chosen metrics on to other storages."""
from typing import List, Optional

from dataclasses import dataclass, field

from wca.metrics import Metric
from wca.storage.base import FailedDeliveryException, Storage


@dataclass
class FilterStorage(Storage):
    """Passes on only the metrics named in `filter` (all when it is not given) to every storage."""
    storages: List[Storage] = field(default_factory=list)
    filter: Optional[List[str]] = None

    def __post_init__(self):
        self._names = frozenset(self.filter) if self.filter is not None else None

    def store(self, metrics: List[Metric]) -> None:
        if self._names is not None:
            metrics = [m for m in metrics if m.name in self._names]
        failures = []
        for storage in self.storages:
            try:
                storage.store(metrics)
            except Exception as e:  # one broken storage must not starve the others
                failures.append('%s: %s' % (type(storage).__name__, e))
        if failures:
            raise FailedDeliveryException('; '.join(failures))

    def dropped_count(self) -> int:
        return sum(s.dropped_count() for s in self.storages if isinstance(s, Storage))

    def start(self) -> None:
        for storage in self.storages:
            start = getattr(storage, 'start', None)
            if callable(start):
                start()

    def close(self) -> None:
        for storage in self.storages:
            close = getattr(storage, 'close', None)
            if callable(close):
                close()

    def metrics(self, labels=None) -> List[Metric]:
        """What the storages behind the filter report of themselves (queues, connections)."""
        reported = []
        for storage in self.storages:
            own = getattr(storage, 'metrics', None)
            if callable(own):
                reported.extend(own(labels))
        return reported
