"""Runners: the contract (Runner) and the built-in runners, importable from here."""
from wca.runners.allocation import AllocationRunner, AllocationRunnerConfig
from wca.runners.base import Runner
from wca.runners.detection import DetectionRunner, DetectionRunnerConfig
from wca.runners.measurement import MeasurementRunner, MeasurementRunnerConfig

__all__ = ['Runner', 'MeasurementRunner', 'MeasurementRunnerConfig', 'DetectionRunner',
           'DetectionRunnerConfig', 'AllocationRunner', 'AllocationRunnerConfig']
