"""The metric model (Metric, MetricType, Measurements: the plugin contract) and the flattening
of Measurements into Metrics. The names and their metadata are in wca.metric_names."""
from typing import Dict, List, Optional, Union

from dataclasses import dataclass, field

from wca.metric_names import (LEGACY_COUNTERS, LEGACY_GAUGES, METRICS_METADATA,  # noqa: F401
                              MetricMetadata, MetricName, MetricType)

MetricValue = Union[float, int]
# A metric name -> a value, or -> {level value -> value} for per-CPU/per-NUMA-node metrics.
Measurements = Dict[str, Union[MetricValue, Dict[str, MetricValue]]]


@dataclass
class Metric:
    name: str
    value: MetricValue
    labels: Dict[str, str] = field(default_factory=dict)
    type: Optional[MetricType] = None
    help: Optional[str] = None

    @staticmethod
    def create_metric_with_metadata(name, value, labels=None) -> 'Metric':
        """A Metric with type and help taken from METRICS_METADATA (when the name is known)."""
        meta = METRICS_METADATA.get(name)
        return Metric(name=str(name), value=value, labels=dict(labels or {}),
                      type=meta.type if meta else None, help=meta.help if meta else None)


def export_metrics_from_measurements(measurements: Measurements,
                                     labels: Optional[Dict[str, str]] = None) -> List[Metric]:
    """Flattens Measurements into Metrics; nested levels become labels named by the metadata.

    `labels` is shared (not copied) by the metrics of flat values: treat Metric.labels as
    read-only in storages and algorithms.
    """
    labels = labels if labels is not None else {}
    metrics = []
    append = metrics.append
    for name, value in measurements.items():
        text, mtype, mhelp, levels = _EXPORT_INFO.get(name) or _export_info(name)
        if isinstance(value, dict):
            _flatten(metrics, text, value, labels, levels, 0, mtype, mhelp)
        else:
            append(Metric(text, value, labels, mtype, mhelp))
    return metrics


def _export_info(name):
    """(name as a plain str, type, help, levels): what a metric of that name is exported with."""
    meta = METRICS_METADATA.get(name)
    if meta is None:
        return str(name), None, None, ()
    return str(name), meta.type, meta.help, meta.levels


# The same for the names in the metadata table, worked out once (str() of a MetricName is a
# Python-level call, and this runs for every metric of every task).
_EXPORT_INFO = {name: _export_info(name) for name in METRICS_METADATA}


def _flatten(out, name, value, labels, levels, depth, mtype, mhelp):
    level = levels[depth] if depth < len(levels) else 'level_%d' % depth
    for key, sub in value.items():
        sub_labels = dict(labels)
        sub_labels[level] = str(key)
        if isinstance(sub, dict):
            _flatten(out, name, sub, sub_labels, levels, depth + 1, mtype, mhelp)
        else:
            out.append(Metric(name, sub, sub_labels, mtype, mhelp))
