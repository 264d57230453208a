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

from dataclasses import dataclass, field
from typing import Any, Callable

from engine.methods.base import MethodHook

METHODS: dict[str, "MethodSpec"] = {}


@dataclass(frozen=True)
class MethodSpec:
    name: str  # also the config section name
    title: str
    summary: str  # one line
    explanation: str  # two or three sentences: what it does, what to watch in the charts
    paper: str  # citation
    paper_url: str
    config_cls: type
    build: Callable[[Any, Any], MethodHook]  # (run_config, method_config) -> hook
    supports: Callable[[str], bool] = lambda backbone: True  # which backbones it works with
    check: Callable[[Any, Any], list[str]] | None = None  # extra validation -> problems
    order: int = 100  # hooks run in this order (lower first)
    core_knob: bool = False  # shown among the training knobs rather than as a method toggle
    # For methods that change the model's structure (AdaFilter): (model, run_cfg, method_cfg) -> model.
    # Called in training before any hook's setup, and when a saved run's model is rebuilt for
    # inference, export or WiSE-FT, so its state dict always finds the same module tree.
    restructure: Callable[[Any, Any, Any], Any] | None = None
    extra: dict = field(default_factory=dict)

    def validate(self, run_cfg: Any, method_cfg: Any) -> list[str]:
        problems: list[str] = []
        if getattr(method_cfg, "enabled", False) and not self.supports(run_cfg.backbone.name):
            problems.append(f"{self.title} does not support the backbone {run_cfg.backbone.name}.")
        if self.check is not None:
            problems.extend(self.check(run_cfg, method_cfg))
        return problems


def register_method(spec: MethodSpec) -> MethodSpec:
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is already registered")
    if not hasattr(spec.config_cls(), "enabled"):
        raise ValueError(f"method {spec.name!r}: its config needs an `enabled` field")
    METHODS[spec.name] = spec
    return spec


def restructure_model(model: Any, run_cfg: Any) -> Any:
    """Apply the structural changes of the enabled methods (in registry order)."""
    for spec in sorted((METHODS[n] for n in run_cfg.enabled_methods() if n in METHODS), key=lambda s: s.order):
        if spec.restructure is not None:
            model = spec.restructure(model, run_cfg, run_cfg.methods[spec.name])
    return model


def build_hooks(run_cfg: Any) -> list[MethodHook]:
    """The hooks of the enabled methods, in registry order."""
    specs = sorted((METHODS[n] for n in run_cfg.enabled_methods() if n in METHODS), key=lambda s: s.order)
    return [s.build(run_cfg, run_cfg.methods[s.name]) for s in specs]


# Importing the method modules registers them.
from engine.methods import l2sp  # noqa: E402,F401

for _mod in ("adversarial", "pruning", "adafilter", "wise_ft"):
    try:
        __import__(f"engine.methods.{_mod}")
    except ModuleNotFoundError as _exc:  # a method not written yet simply has no switch
        if _exc.name != f"engine.methods.{_mod}":
            raise
