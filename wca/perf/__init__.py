"""perf counters: per task on its perf_event cgroup (counters), on uncore PMUs for the
platform (uncore); event names (events), the system call (syscall), and what the runner calls
(setup)."""
