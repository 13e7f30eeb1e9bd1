"""Configuration: the schema components annotate their constructors with, and the YAML loader.

`wca.config.register`, `Numeric`, `Path` and `Str` are the plugin contract."""
from typing import Dict, List, Optional  # noqa: F401 (re-exported for plugins of the original)

from wca.config.loader import load_config, load_config_text
from wca.config.schema import (ConfigError, Numeric, Path, Str, describe, register,
                               register_from_spec, registered_components)

__all__ = ['ConfigError', 'register', 'register_from_spec', 'registered_components', 'load_config',
           'load_config_text', 'Numeric', 'Path', 'Str', 'describe', 'List', 'Dict', 'Optional']
