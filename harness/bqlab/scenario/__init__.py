"""Scenario files: their schema, the built-in ones (builtin/*.yaml), loading with
`extends:` and overrides, and `expect:`. Parsing one imports nothing that boots a VM."""

from .loader import NIC_MODELS, Scenario, builtin_dir, builtin_names, load

__all__ = ["NIC_MODELS", "Scenario", "builtin_dir", "builtin_names", "load"]
