"""Task classes: best-effort (BE) tasks may be throttled to protect the others, latency-critical
(LC) ones never are."""
from typing import Dict

from wca.nodes.kubernetes import QOS_LABELNAME, QosClass

LC, BE = 'latency_critical', 'best_effort'


def task_class(labels: Dict[str, str], best_effort_label: str, best_effort_value: str) -> str:
    """BE when the label `best_effort_label` equals `best_effort_value` (the original's
    `type: best_efforts`), or when Kubernetes put the pod in its BestEffort QoS class; else LC:
    a task nobody labelled is protected, never throttled."""
    if labels.get(best_effort_label) == best_effort_value:
        return BE
    if str(labels.get(QOS_LABELNAME, '')).lower() == QosClass.BESTEFFORT.value:
        return BE
    return LC


def workload(labels: Dict[str, str], name: str, workload_label: str) -> str:
    """The workload a task belongs to (its baseline is pooled with the workload's other tasks):
    its label `workload_label`, else the task name."""
    value = labels.get(workload_label)
    return str(value) if value not in (None, '') else name
