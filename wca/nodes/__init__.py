"""Task discovery: a Node answers which tasks run here now (the contract, and the built-ins)."""
from wca.nodes.base import Node, Task, TaskId, TaskSynchronizationException

__all__ = ['Node', 'Task', 'TaskId', 'TaskSynchronizationException']
