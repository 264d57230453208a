"""The method registry: fine-tuning methods are hook objects plugged into the one training loop.

Config fields may carry dataclass `metadata` that the dashboard uses to draw their widgets:
`label`, `help`, `choices` (a list), `min`, `max`, `step`, `scale` (shown value = stored value
times scale, e.g. 255 for eps in /255 units), `unit`.

A method registers a `MethodSpec`: its config dataclass (must have `enabled: bool`), a factory
that builds its hook for a run, and the metadata the dashboard shows (title, one-line summary,
a teaching paragraph, the paper's link). The dashboard and the CLI read this registry; a method
that is not registered has no switch anywhere.
"""

from __future__ import annotations

# Importing the method modules registers them (each calls register_method at import), in this
# order: it is the order of the config sections in YAML and of the switches in the dashboard.
from engine.methods import l2sp  # noqa: F401  isort:skip
from engine.methods import adversarial  # noqa: F401  isort:skip
from engine.methods import pruning  # noqa: F401  isort:skip
from engine.methods import adafilter  # noqa: F401  isort:skip
from engine.methods import wise_ft  # noqa: F401  isort:skip
from engine.methods.registry import METHODS, MethodSpec, build_hooks, register_method, restructure_model

__all__ = ["METHODS", "MethodSpec", "build_hooks", "register_method", "restructure_model"]
