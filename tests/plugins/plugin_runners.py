"""Plugin runners for the CLI tests."""
import logging
import os
import time
from typing import List

from wca.runners import Runner

log = logging.getLogger(__name__)


class SleepingRunner(Runner):
    """Writes `ready` (a file) and then sleeps until stopped; it has no stop() method, so the
    agent's signal handler must end it. Returns 3 if it ever wakes up on its own."""

    def __init__(self, ready: str, seconds: float = 120):
        self.ready = ready
        self.seconds = seconds

    def run(self):
        with open(self.ready, 'w') as f:
            f.write(str(os.getpid()))
        time.sleep(self.seconds)
        return 3


class LoggingRunner(Runner):
    """Logs one line at each level under its own module name and under wca.plugin_probe,
    then exits with `status`."""

    def __init__(self, status: int = 0):
        self.status = status

    def run(self):
        for logger in (log, logging.getLogger('wca.plugin_probe')):
            logger.debug('probe debug from %s', logger.name)
            logger.info('probe info from %s', logger.name)
            logger.warning('probe warning from %s', logger.name)
        return self.status


class PrivilegedRunner(Runner):
    """Declares the privileges named in `needs` (names of wca.security constants, such as
    DAC_OVERRIDE or PERF_EVENT_PARANOID) and prints 'ran'."""

    def __init__(self, needs: List[str]):
        from wca import security
        self.needs = [getattr(security, name) for name in needs]

    def required_privileges(self):
        return self.needs

    def run(self):
        print('ran')
