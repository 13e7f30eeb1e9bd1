"""`python -m benchmarks` (`make bench`): what one agent iteration costs, against the floor.

See docs/benchmarks.md. The package is not part of the installed agent.
"""
