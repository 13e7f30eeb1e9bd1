"""LogStorage: Prometheus text exposition to stderr or a file."""
import os
import sys
import time
from typing import List, Optional

from dataclasses import dataclass

from wca.config import Path
from wca.exposition import encode
from wca.metrics import Metric
from wca.storage.base import FailedDeliveryException, Storage


@dataclass
class LogStorage(Storage):
    """Prometheus text exposition to stderr (no output_filename) or to a file.

    overwrite: replace the file atomically on every store (node_exporter's textfile collector),
      instead of appending.
    include_timestamp: add a millisecond timestamp to samples; defaults to true, except with
      overwrite, because the textfile collector rejects timestamps.
    """
    output_filename: Optional[Path(absolute=False)] = None
    overwrite: bool = False
    include_timestamp: Optional[bool] = None

    def __post_init__(self):
        self._dropped = 0
        if self.overwrite and not self.output_filename:
            raise ValueError('overwrite needs output_filename')
        if self.include_timestamp is None:
            self.include_timestamp = not self.overwrite
        if self.output_filename:
            directory = os.path.dirname(os.path.abspath(self.output_filename))
            if not os.path.isdir(directory):
                raise ValueError('output_filename: directory %s does not exist' % directory)

    def store(self, metrics: List[Metric]) -> None:
        timestamp = int(time.time() * 1000) if self.include_timestamp else None
        text, dropped = encode(metrics, timestamp)
        self._dropped += dropped
        try:
            if not self.output_filename:
                sys.stderr.write(text)
                sys.stderr.flush()
            elif self.overwrite:
                _replace_file(self.output_filename, text.encode())
            else:
                _append_file(self.output_filename, text.encode())
        except OSError as e:
            self._dropped += len(metrics)
            raise FailedDeliveryException('cannot write %s: %s' % (
                self.output_filename or 'stderr', e.strerror or e))


def _append_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _replace_file(path, data):
    """Readers see the old file or the new one, never a half-written one."""
    tmp = '%s.%d.tmp' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
