"""The import path of NUMAAllocator that configs and plugins use: the allocator itself lives
with the other built-in algorithms, in wca.algorithms.numa_allocator."""
from wca.algorithms.numa_allocator import (  # noqa: F401 (re-exported)
    NUMAAlgorithm, NUMAAllocator, current_node, enough_free_memory, least_loaded_node,
    least_loaded_nodes, most_free_nodes, most_used_nodes, pages_elsewhere)
