"""The composition root: the built-in components, registered for `!ClassName` use in the
config. Only this module (and the command line) knows every part of the agent."""
from wca import config
from wca.algorithms.interference.components import InterferenceAllocator, InterferenceDetector
from wca.algorithms.numa_allocator import NUMAAllocator
from wca.algorithms.static_allocator import StaticAllocator
from wca.allocators import AllocationConfiguration, NOPAllocator, RDTAllocation
from wca.detectors import NOPAnomalyDetector
from wca.labels import TaskLabelRegexGenerator
from wca.nodes.kubernetes import KubernetesNode
from wca.nodes.mesos import MesosNode
from wca.nodes.static import CgroupDirectoryNode, StaticNode
from wca.runners import (AllocationRunner, AllocationRunnerConfig, DetectionRunner,
                         DetectionRunnerConfig, MeasurementRunner, MeasurementRunnerConfig)
from wca.storage import FilterStorage, LogStorage
from wca.storage.http import PrometheusEndpointStorage
from wca.storage.kafka import KafkaStorage
from wca.tls import SSL

BUILT_IN = (
    MeasurementRunner, MeasurementRunnerConfig, DetectionRunner, DetectionRunnerConfig,
    AllocationRunner, AllocationRunnerConfig,
    StaticNode, CgroupDirectoryNode, KubernetesNode, MesosNode, SSL,
    LogStorage, FilterStorage, KafkaStorage, PrometheusEndpointStorage,
    NOPAnomalyDetector, NOPAllocator, AllocationConfiguration, RDTAllocation,
    TaskLabelRegexGenerator,
    StaticAllocator, NUMAAllocator, InterferenceDetector, InterferenceAllocator,
)


def register_components():
    for component in BUILT_IN:
        config.register(component)
