"""The built-in interference controller (issue 16): CPI2's victims and antagonists, generalised
to CPU pressure and run-queue delay, with PRM's throttling levels. docs/interference.md tells
how to use it; the modules, in the order the data flows:

- classes: latency-critical (LC) or best-effort (BE), from the task's labels;
- signals: each task's victim signal and CPU usage per second, from counter deltas;
- baseline: mean and standard deviation per workload and CPU model, kept in a state file;
- detection: outliers, victims, antagonists (CPI2 correlation), the contended resource;
- throttle: the levels of each BE antagonist, hold, recovery, the flap limit;
- components: InterferenceDetector and InterferenceAllocator, the configurable faces."""
