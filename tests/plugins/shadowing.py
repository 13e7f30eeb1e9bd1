"""A plugin class named like a built-in component: registering it must be refused."""
from wca.nodes import Node


class StaticNode(Node):
    def get_tasks(self):
        return []
