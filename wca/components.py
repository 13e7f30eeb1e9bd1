"""The built-in components, registered for `!ClassName` use in the config."""
from wca import config


def register_components():
    from wca.allocators import AllocationConfiguration, NOPAllocator, RDTAllocation
    from wca.detectors import NOPAnomalyDetector
    from wca.runners import (AllocationRunner, AllocationRunnerConfig, DetectionRunner,
                             DetectionRunnerConfig, MeasurementRunner, MeasurementRunnerConfig)
    from wca.static_node import CgroupDirectoryNode, StaticNode
    from wca.storage import FilterStorage, LogStorage
    for component in (MeasurementRunner, MeasurementRunnerConfig, DetectionRunner,
                      DetectionRunnerConfig, AllocationRunner, AllocationRunnerConfig,
                      StaticNode, CgroupDirectoryNode, LogStorage, FilterStorage,
                      NOPAnomalyDetector, NOPAllocator, AllocationConfiguration, RDTAllocation):
        config.register(component)
