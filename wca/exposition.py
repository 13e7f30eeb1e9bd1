"""Prometheus text exposition format (version 0.0.4), written in one pass.

Label sets are usually shared by many metrics of one task (see export_metrics_from_measurements),
so their text is rendered once per set per call, keyed by identity.
"""
import math
from typing import Dict, List, Optional, Tuple

from wca.metrics import Metric

_NAME_OK = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:')
_LABEL_OK = _NAME_OK - {':'}


def sanitize_name(name: str, allowed=_NAME_OK) -> str:
    """Invalid characters become '_'; a leading digit gets a '_' prefix."""
    if name and all(c in allowed for c in name) and not name[0].isdigit():
        return name
    fixed = ''.join(c if c in allowed else '_' for c in name) or '_'
    return '_' + fixed if fixed[0].isdigit() else fixed


def sanitize_label_name(name: str) -> str:
    fixed = sanitize_name(name, _LABEL_OK)
    return 'label' + fixed if fixed.startswith('__') else fixed


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


def render_labels(labels: Dict[str, str]) -> str:
    """'{a="1",b="2"}', sorted by label name ('a="' sorts before 'a_b="': '"' < any name char)."""
    if not labels:
        return ''
    known = _LABEL_NAMES
    pairs = []
    for key, value in labels.items():
        name = known.get(key) if type(key) is str else None
        if name is None:
            name = _label_name(key)
        if type(value) is not str:
            value = str(value)
        pairs.append(f'{name}="{_escape_value(value)}"')
    pairs.sort()
    return '{' + ','.join(pairs) + '}'


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


def encode(metrics: List[Metric], timestamp_ms: Optional[int] = None) -> Tuple[str, int]:
    """Returns (text, number of metrics dropped because their value is not a number).

    Families are sorted by name; within a family samples keep their order. The first metric of
    a family gives its TYPE and HELP; a second sample with the same labels is dropped.
    """
    families = {}  # name -> (first metric, sanitized name, {label text: sample line})
    by_id = {}  # id(labels dict) -> text; the dicts live as long as `metrics` does
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
            text = by_id[id(labels)] = render_labels(labels)
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
    out = []
    for name in sorted(families):
        first, clean, samples = families[name]
        if not samples:
            continue
        if first.help:
            out.append('# HELP %s %s\n' % (
                clean, first.help.replace('\\', '\\\\').replace('\n', '\\n')))
        if first.type:
            out.append('# TYPE %s %s\n' % (clean, getattr(first.type, 'value', first.type)))
        out.extend(samples.values())
        out.append('\n')
    return ''.join(out), dropped
