"""LogStorage: Prometheus text exposition to stderr or a file."""
import errno
import logging
import os
import stat
import sys
import time
from typing import List, Optional

from dataclasses import dataclass

from wca import fsutil
from wca.config import Path
from wca.exposition import encode
from wca.metrics import Metric
from wca.storage.base import FailedDeliveryException, Storage

log = logging.getLogger(__name__)

FILE_MODE = 0o644  # node_exporter's textfile collector reads the file as another user
_CLOEXEC = getattr(os, 'O_CLOEXEC', 0)


@dataclass
class LogStorage(Storage):
    """Prometheus text exposition to stderr (no output_filename) or to a file.

    overwrite: replace the file atomically on every store (node_exporter's textfile collector),
      instead of appending.
    include_timestamp: add a millisecond timestamp to samples; defaults to true, except with
      overwrite, because the textfile collector rejects timestamps.

    Files the agent creates are 0644 whatever its umask. The output directory is a runtime
    condition: it is checked when storing (a config can be checked before the package that
    creates the directory is installed).
    """
    output_filename: Optional[Path(absolute=False)] = None
    overwrite: bool = False
    include_timestamp: Optional[bool] = None

    def __post_init__(self):
        self._dropped = 0
        self._reported = set()  # collisions already logged
        if self.overwrite and not self.output_filename:
            raise ValueError('overwrite needs output_filename')
        if self.include_timestamp is None:
            self.include_timestamp = not self.overwrite

    def store(self, metrics: List[Metric]) -> None:
        timestamp = int(time.time() * 1000) if self.include_timestamp else None
        problems = []
        text, dropped = encode(metrics, timestamp, problems)
        self._dropped += dropped
        if problems:
            self._report(problems)
        data = text.encode('utf-8')
        try:
            if not self.output_filename:
                write_stderr(data)
            elif self.overwrite:
                replace_file(self.output_filename, data)
            else:
                append_file(self.output_filename, data)
        except OSError as e:
            self._dropped += len(metrics) - dropped
            raise FailedDeliveryException(self._explain(e)) from e

    def _explain(self, error: OSError) -> str:
        if not self.output_filename:
            return 'cannot write metrics to stderr: %s' % (error.strerror or error)
        directory = os.path.dirname(os.path.abspath(self.output_filename))
        if not os.path.isdir(directory):
            return 'cannot write %s: directory %s does not exist' % (self.output_filename, directory)
        return 'cannot write %s: %s' % (self.output_filename, error.strerror or error)

    def _report(self, problems: List[str]):
        """Each collision is logged once (they repeat every iteration), and counted always."""
        for problem in problems:
            if problem not in self._reported and len(self._reported) < 1000:
                self._reported.add(problem)
                log.warning('%s: %s', self.output_filename or 'stderr', problem)


def write_stderr(data: bytes) -> None:
    """All of `data` to stderr, after what logging has buffered, without a log record of another
    thread landing inside it (the stderr handlers' locks are held meanwhile)."""
    stream = sys.stderr
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):  # replaced by an object without a descriptor
        stream.write(data.decode('utf-8'))
        stream.flush()
        return
    locks = [h.lock for h in logging.getLogger().handlers
             if getattr(h, 'lock', None) is not None and _fd_of(getattr(h, 'stream', None)) == fd]
    for lock in locks:
        lock.acquire()
    try:
        stream.flush()
        fsutil.write_all(fd, data)
    finally:
        for lock in reversed(locks):
            lock.release()


def _fd_of(stream) -> Optional[int]:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None


def append_file(path: str, data: bytes) -> None:
    """Appends all of `data`; a file this call creates gets FILE_MODE. A symbolic link at the
    path is followed only when it is root's (or the agent's) in a directory others cannot
    change: in a shared directory, a link planted there would have the agent append to any
    file it names (/etc/..., with CAP_DAC_OVERRIDE)."""
    flags = os.O_WRONLY | os.O_APPEND | _CLOEXEC
    while True:
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW)
            break
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            _check_link(path)
            fd = os.open(path, flags)
            break
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:  # created meanwhile by someone else: append to theirs
            continue
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError:
            os.close(fd)
            raise
        break
    try:
        fsutil.write_all(fd, data)
    finally:
        os.close(fd)


def _check_link(path: str) -> None:
    """Raises unless the symbolic link at `path` could only have been made by root or this
    user: theirs, in a directory no one else can write (or a sticky one, like /tmp)."""
    link = os.lstat(path)
    directory = os.stat(os.path.dirname(os.path.abspath(path)))
    shared = directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
        directory.st_mode & stat.S_ISVTX)
    if link.st_uid not in (0, os.geteuid()) or shared:
        raise OSError(errno.ELOOP, 'it is a symbolic link %s: not followed (others could '
                      'have pointed it at any file)' % (
                          'of uid %d' % link.st_uid if link.st_uid not in (0, os.geteuid())
                          else 'in a directory others can write'))


def replace_file(path: str, data: bytes) -> None:
    """Readers see the old file or the new one, never a half-written one, and nothing planted
    in a shared textfile directory is followed (fsutil.write_atomically). No fsync: the file is
    rewritten every iteration, so waiting for the disk would only delay the loop."""
    fsutil.write_atomically(path, data, FILE_MODE, fsync=False)
