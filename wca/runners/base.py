"""The runner contract: the agent's main loop. run() returns the exit code (None counts as 0)."""
import os
import select
from abc import ABC, abstractmethod


class Runner(ABC):
    @abstractmethod
    def run(self) -> int:
        """Runs until done or stopped; returns the process exit code."""


class StopRequest:
    """A request to stop that a signal handler can make at any moment: a flag and a byte
    written to a pipe, both without a lock. (threading.Event.set() from a handler deadlocks
    when the signal lands while the main thread holds the Event's own lock inside wait().)"""

    def __init__(self):
        self._read = self._write = None  # the pipe, made by wait(), closed by close()
        self.requested = False

    def set(self):
        self.requested = True
        fd = self._write  # a handler runs between two bytecodes of close(): None or still open
        if fd is not None:
            try:
                os.write(fd, b'\0')
            except OSError:  # the pipe is full: it already wakes the waiter
                pass

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds` or until set(); whether a stop was requested."""
        if self._read is None:
            self._read, write = os.pipe()
            os.set_blocking(write, False)
            self._write = write
        if not self.requested:
            select.select([self._read], [], [], max(0.0, seconds))
        return self.requested

    def close(self):
        """Closes the pipe (the runner's close()); set() still records a request after it."""
        write, self._write = self._write, None
        read, self._read = self._read, None
        for fd in (write, read):
            if fd is not None:
                os.close(fd)
