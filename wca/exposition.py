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


def render_labels(labels: Dict[str, str]) -> str:
    if not labels:
        return ''
    pairs = sorted((sanitize_label_name(str(k)), v) for k, v in labels.items())
    return '{' + ','.join('%s="%s"' % (k, _escape_value(str(v))) for k, v in pairs) + '}'


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
    families = {}  # type: Dict[str, list]
    label_text = {}  # id(labels dict) -> rendered text
    suffix = (' %d\n' % timestamp_ms) if timestamp_ms is not None else '\n'
    dropped = 0
    for metric in metrics:
        name = metric.name
        family = families.get(name)
        if family is None:
            family = families[name] = [metric, [], set()]
        labels = metric.labels
        text = label_text.get(id(labels))
        if text is None:
            text = label_text[id(labels)] = render_labels(labels)
        if text in family[2]:
            dropped += 1
            continue
        try:
            value = format_value(metric.value)
        except ValueError:
            dropped += 1
            continue
        family[2].add(text)
        family[1].append(text + ' ' + value + suffix)
    out = []
    for name in sorted(families):
        first, samples, _ = families[name]
        if not samples:
            continue
        clean = sanitize_name(str(name))
        if first.help:
            out.append('# HELP %s %s\n' % (
                clean, first.help.replace('\\', '\\\\').replace('\n', '\\n')))
        if first.type:
            out.append('# TYPE %s %s\n' % (clean, getattr(first.type, 'value', first.type)))
        out.append(''.join(clean + sample for sample in samples))
        out.append('\n')
    return ''.join(out), dropped
