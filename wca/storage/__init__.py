"""Storage: where metrics, anomalies and allocations go (the contract, and the built-ins)."""
from wca.storage.base import FailedDeliveryException, Storage
from wca.storage.filter import FilterStorage
from wca.storage.log import LogStorage

__all__ = ['Storage', 'FailedDeliveryException', 'LogStorage', 'FilterStorage']
