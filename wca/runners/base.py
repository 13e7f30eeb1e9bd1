"""The runner contract: the agent's main loop. run() returns the exit code (None counts as 0)."""
from abc import ABC, abstractmethod


class Runner(ABC):
    @abstractmethod
    def run(self) -> int:
        """Runs until done or stopped; returns the process exit code."""
