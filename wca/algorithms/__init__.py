"""The built-in algorithms: detectors and allocators written on the public plugin contract only
(wca.detectors, wca.allocators, wca.metrics, wca.platforms), like an outside plugin would be.

- interference: InterferenceDetector and InterferenceAllocator (CPI2-style victims and
  antagonists; throttling of best-effort antagonists);
- static_allocator: StaticAllocator (rules);
- numa_allocator: NUMAAllocator (NUMA placement).

Their old import paths (wca.static_allocator, wca.numa_allocator) stay as faces."""
