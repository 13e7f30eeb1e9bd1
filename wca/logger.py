"""Logging to stderr with per-module levels, and counts of warnings and errors for metrics."""
import logging
import sys
from typing import Dict

TRACE = 5
logging.addLevelName(TRACE, 'TRACE')
FORMAT = '%(asctime)s %(levelname)s {%(threadName)s} [%(name)s] %(message)s'
DEFAULT_LEVEL = 'INFO'


class CountingHandler(logging.Handler):
    """Counts WARNING and ERROR (and worse) records of every logger."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.warnings = 0
        self.errors = 0

    def emit(self, record):
        if record.levelno >= logging.ERROR:
            self.errors += 1
        else:
            self.warnings += 1


counter = CountingHandler()
logging.getLogger().addHandler(counter)  # counts from import on, with or without configure()


# C0 controls but tab, and DEL: what lets a value from outside (a pod name from a kubelet, a
# cgroup name) start a forged log line or rewrite the terminal.
_CONTROLS = {c: '\\x%02x' % c for c in list(range(0x20)) + [0x7f] if c != 0x09}


class OneLineFormatter(logging.Formatter):
    """Every record is one line: control characters in the message are escaped (\\x0a), so
    nothing an orchestrator or a tenant names can forge a second record. A traceback
    (exc_info) still follows on lines of its own."""

    def formatMessage(self, record):
        record.message = record.message.translate(_CONTROLS)
        return super().formatMessage(record)


def parse_level(level: str) -> int:
    """'info', 'DEBUG', 'trace' or a number; ValueError otherwise."""
    text = str(level).strip().upper()
    if text.isdigit():
        return int(text)
    if text == 'WARN':
        text = 'WARNING'
    value = logging.getLevelName(text)
    if not isinstance(value, int):
        raise ValueError('unknown log level %r (expected trace, debug, info, warning, error or '
                         'critical)' % level)
    return value


def parse_level_option(option: str):
    """'-l debug' sets the agent's level, '-l module:debug' one module's."""
    module, sep, level = option.rpartition(':')
    return (module if sep else 'wca'), parse_level(level)


def configure(levels: Dict[str, int], stream=None):
    """Sets up stderr logging once; `levels` maps module names ('' or 'wca' for the agent)."""
    root = logging.getLogger()
    if not any(getattr(h, 'wca_stream', False) for h in root.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(OneLineFormatter(FORMAT))
        handler.wca_stream = True
        root.addHandler(handler)
    root.setLevel(logging.WARNING)  # third-party libraries: warnings only, unless asked
    logging.getLogger('wca').setLevel(logging.getLevelName(DEFAULT_LEVEL))
    for module, level in levels.items():
        logging.getLogger(module or 'wca').setLevel(level)
