"""Runners: the agent's main loop. A Runner's run() returns the exit code (None counts as 0)."""
from abc import ABC, abstractmethod


class Runner(ABC):
    @abstractmethod
    def run(self) -> int:
        """Runs until done or stopped; returns the process exit code."""


# The built-in runners, importable from here as the contract says (defined after Runner,
# which they subclass).
from wca.runners.measurement import MeasurementRunner, MeasurementRunnerConfig  # noqa: E402
from wca.runners.detection import DetectionRunner, DetectionRunnerConfig  # noqa: E402
from wca.runners.allocation import AllocationRunner, AllocationRunnerConfig  # noqa: E402

__all__ = ['Runner', 'MeasurementRunner', 'MeasurementRunnerConfig', 'DetectionRunner',
           'DetectionRunnerConfig', 'AllocationRunner', 'AllocationRunnerConfig']
