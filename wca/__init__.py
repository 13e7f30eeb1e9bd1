"""wca: the Workload Collocation Agent."""
__version__ = '0.1.0'
