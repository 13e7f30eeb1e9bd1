"""Prometheus text exposition format (version 0.0.4), written in one pass.

Label sets are usually shared by many metrics of one task (see export_metrics_from_measurements),
so their text is rendered once per set per call, keyed by identity. Whatever names and values
plugins and cgroups bring, the output parses: names are sanitised, and what collides after
sanitising is dropped (deterministically) and counted; text that is not valid UTF-8 (a cgroup
name with undecodable bytes) is escaped.
"""
import math
from typing import Dict, List, Optional, Tuple

from wca.metrics import Metric

_NAME_OK = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:')
_LABEL_OK = _NAME_OK - {':'}
_TYPES = frozenset(('counter', 'gauge', 'untyped'))  # what a single plain sample can be
_isascii = getattr(str, 'isascii', lambda text: False)  # Python 3.6 has no str.isascii


def sanitize_name(name: str, allowed=_NAME_OK) -> str:
    """Invalid characters become '_'; a leading digit gets a '_' prefix."""
    if name and all(c in allowed for c in name) and not name[0].isdigit():
        return name
    fixed = ''.join(c if c in allowed else '_' for c in name) or '_'
    return '_' + fixed if fixed[0].isdigit() else fixed


def sanitize_label_name(name: str) -> str:
    fixed = sanitize_name(name, _LABEL_OK)
    return 'label' + fixed if fixed.startswith('__') else fixed


def valid_text(text: str) -> str:
    """`text` as valid Unicode: bytes a file system name could not decode (surrogate escapes,
    as os.listdir gives them) are decoded again as UTF-8 where they form UTF-8 (a C-locale
    Python 3.6 decodes names as ASCII), and shown as \\xNN text where they do not; any other
    lone surrogate becomes \\uNNNN text."""
    try:
        return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return ''.join(c if not '\ud800' <= c <= '\udfff' else '\\u%04x' % ord(c) for c in text)


def _escape_value(value: str) -> str:
    if '\\' in value or '"' in value or '\n' in value:
        return value.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')
    return value


_LABEL_NAMES = {}  # type: Dict[str, str]  label name -> sanitized; a handful in practice


def _label_name(key) -> str:
    clean = _LABEL_NAMES.get(key) if type(key) is str else None
    if clean is None:
        clean = sanitize_label_name(str(key))
        if type(key) is str:
            if len(_LABEL_NAMES) >= 4096:  # bounded, whatever plugins put in labels
                _LABEL_NAMES.clear()
            _LABEL_NAMES[key] = clean
    return clean


def _wins(key, other, clean: str) -> bool:
    """Of two names that sanitise to `clean`, the one spelt `clean` wins, else the smaller."""
    key, other = str(key), str(other)
    if key == clean or other == clean:
        return key == clean
    return key < other


def _render(labels: Dict[str, str]) -> Tuple[str, List[str]]:
    """The label text, sorted by name ('a="' sorts before 'a_b="': '"' < any name char), and
    the labels dropped because another label of the set has the same sanitised name ('own.ip'
    beside 'own_ip': 'own_ip' stays), described for a log."""
    if not labels:
        return '', []
    known = _LABEL_NAMES
    pairs = []
    renamed = False  # only a name that sanitising changed can collide with another
    for key, value in labels.items():
        name = known.get(key) if type(key) is str else None
        if name is None:
            name = _label_name(key)
        if name != key:
            renamed = True
        if type(value) is not str:
            value = str(value)
        pairs.append(f'{name}="{_escape_value(value)}"')
    if renamed and len({_label_name(key) for key in labels}) < len(pairs):
        return _render_colliding(labels)
    pairs.sort()
    text = '{' + ','.join(pairs) + '}'
    if not _isascii(text):  # O(1) on Python 3.7+
        try:
            text.encode('utf-8')
        except UnicodeEncodeError:  # rare: only this set's values change
            return _render_colliding(labels)
    return text, []


def _render_colliding(labels: Dict[str, str]) -> Tuple[str, List[str]]:
    """_render's slow path: colliding names resolved, text that is not UTF-8 escaped."""
    chosen = {}  # sanitized name -> (key, value)
    lost = []
    for key, value in labels.items():
        name = _label_name(key)
        if name in chosen:
            other = chosen[name][0]
            keep, lose = (key, other) if _wins(key, other, name) else (other, key)
            lost.append('%r (beside %r)' % (str(lose), str(keep)))
            if keep is other:
                continue
        chosen[name] = (key, value)
    return '{' + ','.join('%s="%s"' % (name, _escape_value(valid_text(str(chosen[name][1]))))
                          for name in sorted(chosen)) + '}', lost


def render_labels(labels: Dict[str, str]) -> str:
    """'{a="1",b="2"}', sorted by label name; colliding names resolved as in encode()."""
    return _render(labels)[0]


def format_value(value) -> str:
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if math.isfinite(value):
            return repr(value)
        return 'NaN' if math.isnan(value) else ('+Inf' if value > 0 else '-Inf')
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, (int, float)):  # numpy scalars, IntEnum...
        return format_value(float(value))
    raise ValueError('not a number: %r' % (value,))


def encode(metrics: List[Metric], timestamp_ms: Optional[int] = None,
           problems: Optional[List[str]] = None) -> Tuple[str, int]:
    """Returns (text, number of metrics dropped or cut short).

    Families are sorted by name; within a family samples keep their order. The first metric of
    a family gives its TYPE and HELP. Counted as dropped: a value that is not a number, a
    second sample with the same labels, every sample of a family whose name collides with
    another's after sanitising ('a-b' and 'a_b': the one spelt like the result stays, else the
    smaller name), and a sample stored without a label whose name collided with another label
    of its set. `problems`, when given, gets one line per kind of collision found (for a log).
    """
    families = {}  # name -> (first metric, sanitized name, {label text: sample line})
    by_id = {}  # id(labels dict) -> text; the dicts live as long as `metrics` does
    cut = {}  # id(labels dict) -> (text, labels dropped from it by a collision); rare
    cut_stored = {}  # name -> samples stored without a colliding label (counted already)
    found = set()  # the collisions, for a log
    suffix = (' %d\n' % timestamp_ms) if timestamp_ms is not None else '\n'
    dropped = 0
    isfinite, get_family, get_text = math.isfinite, families.get, by_id.get
    for metric in metrics:
        name = metric.name
        family = get_family(name)
        if family is None:
            family = families[name] = (metric, sanitize_name(str(name)), {})
        labels = metric.labels
        text = get_text(id(labels))
        if text is None:
            text, lost = (cut and cut.get(id(labels))) or _render(labels)
            if lost:  # rare: the sample goes without the colliding labels, and is counted
                cut[id(labels)] = (text, lost)
                found.add('label %s of metric %s dropped: the names are the same after '
                          'sanitising' % (', '.join(sorted(lost)), family[1]))
                dropped += 1
                if _store(family, text, metric.value, suffix):
                    cut_stored[name] = cut_stored.get(name, 0) + 1
                continue
            by_id[id(labels)] = text
        _, prefix, samples = family
        if text in samples:
            dropped += 1
            continue
        value = metric.value
        if type(value) is float and isfinite(value):
            value = repr(value)
        elif type(value) is int:
            value = str(value)
        else:
            try:
                value = format_value(value)
            except ValueError:
                dropped += 1
                continue
        samples[text] = f'{prefix}{text} {value}{suffix}'
    chosen = {}  # sanitized name -> name
    for name, (_, clean, samples) in families.items():
        if not samples:
            continue
        other = chosen.get(clean)
        if other is None:
            chosen[clean] = name
            continue
        keep, lose = (name, other) if _wins(name, other, clean) else (other, name)
        chosen[clean] = keep
        dropped += len(families[lose][2]) - cut_stored.get(lose, 0)
        found.add('metric %r dropped: its name collides with %r (both are %s)' % (
            str(lose), str(keep), clean))
    if problems is not None:
        problems.extend(sorted(found))
    out = []
    for clean in sorted(chosen):
        first, _, samples = families[chosen[clean]]
        if first.help:
            help_text = _utf8(first.help).replace('\\', '\\\\').replace('\n', '\\n')
            out.append('# HELP %s %s\n' % (clean, help_text))
        kind = getattr(first.type, 'value', first.type)
        if kind in _TYPES:
            out.append('# TYPE %s %s\n' % (clean, kind))
        out.extend(samples.values())
        out.append('\n')
    return ''.join(out), dropped


def _store(family, text: str, value, suffix: str) -> bool:
    """Adds a sample to its family unless it is a duplicate or not a number (encode's slow path)."""
    _, prefix, samples = family
    if text in samples:
        return False
    try:
        samples[text] = f'{prefix}{text} {format_value(value)}{suffix}'
    except ValueError:
        return False
    return True


def _utf8(text: str) -> str:
    try:
        text.encode('utf-8')
        return text
    except UnicodeEncodeError:
        return valid_text(text)
