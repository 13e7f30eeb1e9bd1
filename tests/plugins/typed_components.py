"""Components whose constructor annotations cover what the config loader checks: scalars,
List, Dict, Optional, Union, enums, nested components, Numeric ranges and Paths."""
import json
from typing import Dict, List, Optional, Union

from wca.config import Numeric, Path
from wca.detectors import ContendedResource
from wca.nodes import Node
from wca.storage import Storage


class TypedStorage(Storage):
    """Writes its constructor arguments as JSON to `dump` (when given) and stores nothing."""

    def __init__(self, name: str, count: int = 1, ratio: float = 0.5, enabled: bool = True,
                 resource: ContendedResource = ContendedResource.LLC,
                 tags: Optional[List[str]] = None, weights: Optional[Dict[str, int]] = None,
                 limit: Optional[int] = None, either: Union[int, List[str]] = 0,
                 percent: Numeric(0, 100) = 50, dump: Optional[Path(absolute=True)] = None,
                 password: Optional[int] = None, node: Optional[Node] = None, anything=None):
        self.args = dict(name=name, count=count, ratio=ratio, enabled=enabled,
                         resource=resource.value, resource_type=type(resource).__name__,
                         tags=tags, weights=weights, limit=limit, either=either,
                         percent=percent, node=type(node).__name__ if node else None)
        if dump:
            with open(dump, 'w') as f:
                json.dump(self.args, f)

    def store(self, metrics):
        pass


class NeedsArgument(Storage):
    """A component with a required constructor argument."""

    def __init__(self, endpoint: str, timeout: float = 1.0):
        self.endpoint = endpoint

    def store(self, metrics):
        pass
