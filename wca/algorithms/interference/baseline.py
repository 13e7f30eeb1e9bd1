"""Baselines: the mean and standard deviation of a victim signal per workload and CPU model,
learned online (Welford's algorithm) from healthy samples, pooled over the workload's tasks as
CPI2 pools a job's tasks, and kept in a state file so that a restart does not learn again.

The state file is JSON, written whole and atomically (a temporary file renamed over it). A file
that cannot be parsed is logged and ignored (learning starts again); one that cannot be written
(a missing directory that cannot be made, a read-only file system) is logged once per reason
and counted; the agent goes on with the baselines in memory.
"""
import json
import logging
import math
import os
from typing import Dict, Optional, Tuple  # noqa: F401 (type comments)

from wca import fsutil

log = logging.getLogger(__name__)

VERSION = 1
Key = Tuple[str, str, str]  # (signal, workload, cpu model)


class Baseline:
    __slots__ = ('count', 'mean', 'm2')

    def __init__(self, count: int = 0, mean: float = 0.0, m2: float = 0.0):
        self.count, self.mean, self.m2 = count, mean, m2

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    @property
    def stddev(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


class Baselines:
    """The baselines by key, and their state file (None: kept in memory only)."""

    def __init__(self, state_file: Optional[str], save_period: float = 10.0):
        self.state_file = state_file
        self.save_period = save_period
        self.by_key = {}  # type: Dict[Key, Baseline]
        self.errors = 0  # state file reads or writes that failed
        self._dirty = False
        self._saved_at = None  # type: Optional[float]
        self._problem = None  # type: Optional[str]  the last write failure logged
        self._load()

    def get(self, key: Key) -> Baseline:
        baseline = self.by_key.get(key)
        if baseline is None:
            baseline = self.by_key[key] = Baseline()
        return baseline

    def add(self, key: Key, value: float) -> Baseline:
        baseline = self.get(key)
        baseline.add(value)
        self._dirty = True
        return baseline

    def _load(self) -> None:
        if not self.state_file:
            return
        try:
            text = fsutil.read_text(self.state_file)
        except FileNotFoundError:
            log.info('interference: no baselines in %s yet: learning them', self.state_file)
            return
        except OSError as e:
            self._failed('cannot read it: %s' % (e.strerror or e), 'learning them again')
            return
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get('version') != VERSION:
                raise ValueError('not a version %d baselines file' % VERSION)
            loaded = {}
            for item in data['baselines']:
                key = (str(item['signal']), str(item['workload']), str(item['cpu_model']))
                count, mean, m2 = int(item['count']), float(item['mean']), float(item['m2'])
                if count < 0 or m2 < 0 or not math.isfinite(mean) or not math.isfinite(m2):
                    raise ValueError('a baseline with count %r, mean %r, m2 %r' % (
                        count, mean, m2))
                loaded[key] = Baseline(count, mean, m2)
        except (ValueError, KeyError, TypeError) as e:
            self._failed('it is corrupt (%s)' % e, 'ignored, learning them again')
            return
        self.by_key = loaded
        log.info('interference: %d baselines loaded from %s', len(loaded), self.state_file)

    def save(self, now: float, force: bool = False) -> None:
        """Writes the baselines when they changed, at most once per save_period (at once with
        force: a baseline just became usable)."""
        if not self.state_file or not self._dirty:
            return
        if not force and self._saved_at is not None and now - self._saved_at < self.save_period:
            return
        data = {'version': VERSION, 'baselines': [
            dict(signal=key[0], workload=key[1], cpu_model=key[2], count=b.count, mean=b.mean,
                 m2=b.m2) for key, b in sorted(self.by_key.items())]}
        self._saved_at = now
        try:
            directory = os.path.dirname(self.state_file)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
                log.info('interference: made %s for the baselines file', directory)
            fsutil.write_atomically(self.state_file, json.dumps(data, indent=1).encode('utf-8'))
        except OSError as e:
            self._failed('cannot write it: %s' % (e.strerror or e),
                         'the baselines are kept in memory only, a restart learns them again')
            return
        self._dirty = False
        if self._problem is not None:
            log.info('interference: baselines file %s written again', self.state_file)
            self._problem = None

    def _failed(self, reason: str, consequence: str) -> None:
        self.errors += 1
        if reason != self._problem:
            self._problem = reason
            log.warning('interference: baselines file %s: %s; %s (state_file sets where it is)',
                        self.state_file, reason, consequence)
