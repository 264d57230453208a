"""The method registry: each method registers a `MethodSpec` (its config dataclass, its hook
factory, what the dashboard shows about it); the loop builds the enabled methods' hooks from here.

Registering a method also registers its config section with engine.config, so `RunConfig` knows
every method's settings without importing any method (config sits below the methods).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import yaml

from engine.config import register_method_section
from engine.paths import ASSETS_DIR
from engine.contract import MethodHook

METHODS: dict[str, "MethodSpec"] = {}


@dataclass(frozen=True)
class MethodSpec:
    """A fine-tuning method as the studio knows it: its words (title, summary, explanation, paper and its address;
    from assets/methods/<name>.md), its config dataclass, how its hook is built, which backbones it supports,
    extra checks, its order among the hooks, and, for a method that changes the model's structure (AdaFilter),
    how to rebuild that structure for training, inference and export."""

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
    short_title: str = ""  # where room is short (a table cell); the title when not given

    @property
    def short(self) -> str:
        """The method's name where room is short: `short_title`, else `title`."""
        return self.short_title or self.title

    @classmethod
    def from_notes(cls, name: str, **code: Any) -> "MethodSpec":
        """A spec whose words (title, summary, explanation, paper, paper_url; optional short_title) come from the front matter
        of the method's notes, assets/methods/<name>.md, where teachers can edit them next to the
        choices they explain; `code` gives the rest (config_cls, build, check, order, ...). Raises
        ValueError when the notes or a field are missing."""
        path = ASSETS_DIR / "methods" / f"{name}.md"
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if not text.startswith("---\n"):
            raise ValueError(f"{path} has no front matter (--- ... ---) with the method's title and summary")
        words = yaml.safe_load(text.split("---\n", 2)[1]) or {}
        missing = [k for k in ("title", "summary", "explanation", "paper", "paper_url") if not words.get(k)]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)} in its front matter")
        return cls(name=name, **{k: words[k] for k in ("title", "summary", "explanation", "paper", "paper_url")},
                   short_title=words.get("short_title") or "", **code)

    def validate(self, run_cfg: Any, method_cfg: Any) -> list[str]:
        """Problems (plain sentences) with `method_cfg` in `run_cfg`: an enabled method on a backbone it does not
        support, then the method's own checks; [] when none. Raises nothing."""
        problems: list[str] = []
        if getattr(method_cfg, "enabled", False) and not self.supports(run_cfg.backbone.name):
            problems.append(f"{self.title} does not support the backbone {run_cfg.backbone.name}.")
        if self.check is not None:
            problems.extend(self.check(run_cfg, method_cfg))
        return problems


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add `spec` to METHODS and its config section to the run config, and return it. Raises ValueError when the
    name is taken or the config class has no `enabled` field."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is already registered")
    if not hasattr(spec.config_cls(), "enabled"):
        raise ValueError(f"method {spec.name!r}: its config needs an `enabled` field")
    METHODS[spec.name] = spec
    register_method_section(spec.name, spec.config_cls, spec.validate)
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
