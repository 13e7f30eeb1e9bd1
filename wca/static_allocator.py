"""The import path of StaticAllocator that configs and plugins use: the allocator itself lives
with the other built-in algorithms, in wca.algorithms.static_allocator."""
from wca.algorithms.static_allocator import (  # noqa: F401 (re-exported)
    MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, RULE_KEYS, Rule, RulesError, StaticAllocator, load_yaml,
    parse_rules)
