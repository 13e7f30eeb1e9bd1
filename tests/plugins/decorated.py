"""Components registered by the `wca.config.register` decorator when the module is imported
(here by `-r decorated:Anchor`, which names another class of the module)."""
import json
import os

from wca.config import register
from wca.storage import Storage


class Anchor:
    """Only here to be named by -r; the decorated classes below register themselves."""


@register
class RecordingStorage(Storage):
    """Appends one JSON line per store() to `path`: its instance id and the metric names."""

    def __init__(self, path: str):
        self.path = path
        with open(self.path, 'a') as f:
            f.write(json.dumps({'created': id(self), 'pid': os.getpid()}) + '\n')

    def store(self, metrics):
        with open(self.path, 'a') as f:
            f.write(json.dumps({'instance': id(self),
                                'names': sorted({m.name for m in metrics})}) + '\n')
