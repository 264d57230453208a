"""Rebuild a saved run's model for inference, export, WiSE-FT or attributions.

A checkpoint is a safetensors state dict with the run config in its metadata; the model is
rebuilt from the config (architecture, classes, structural methods) without any pretrained
download, then the state dict is loaded strictly.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from engine.backbones import Classifier, build_model
from engine.config import RunConfig
from engine.errors import StudioError
from engine.methods import restructure_model
from engine.runs import load_checkpoint


def run_classes(run_dir: Path) -> list[str]:
    summary = Path(run_dir) / "summary.json"
    if summary.is_file():
        classes = json.loads(summary.read_text()).get("classes")
        if classes:
            return list(classes)
    raise StudioError(f"The run in {run_dir} has no finished summary (no class list): it cannot be loaded.")


def model_from_state(cfg: RunConfig, num_classes: int, state: dict[str, torch.Tensor]) -> Classifier:
    """The run's architecture with `state` loaded strictly (every key must match)."""
    model, _ = build_model(cfg.backbone.name, num_classes, "none")
    model = restructure_model(model, cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise StudioError(
            "This checkpoint does not fit the run's model "
            f"(missing {len(missing)} tensors, e.g. {missing[:2]}; unexpected {len(unexpected)}, e.g. {unexpected[:2]})."
        )
    return model.eval()


def load_run_model(run_dir: Path, checkpoint: str = "last") -> tuple[Classifier, RunConfig, list[str]]:
    """(model in eval mode on the CPU, its config, class names) for a finished run."""
    run_dir = Path(run_dir)
    path = run_dir / f"{checkpoint}.safetensors"
    if not path.is_file():
        raise StudioError(f"The run has no {checkpoint} checkpoint ({path.name} is missing).")
    state, meta = load_checkpoint(path)
    cfg = RunConfig.from_dict(meta["config"])
    classes = run_classes(run_dir)
    return model_from_state(cfg, len(classes), state), cfg, classes


class RunBundle:
    """A finished run's model with the data it was evaluated on (for explanations, strips, export)."""

    def __init__(self, run_dir: Path, datasets_dir: Path, checkpoint: str = "last"):
        from engine.train import prepare_data

        self.run_dir = Path(run_dir)
        self.model, self.cfg, self.classes = load_run_model(self.run_dir, checkpoint)
        self.data = prepare_data(self.cfg, Path(datasets_dir))
        self.summary = json.loads((self.run_dir / "summary.json").read_text())
        self.lock = threading.Lock()  # the dashboard's sessions share one bundle

    def pretrained_model(self) -> Classifier:
        """The starting point with this run's head: theta_0 for WiSE-FT runs, else the pretrained
        backbone (its new head random, so only attributions of its features are meaningful)."""
        theta0 = self.run_dir / "theta0.safetensors"
        if theta0.is_file():
            state, _ = load_checkpoint(theta0)
            return model_from_state(self.cfg, len(self.classes), state)
        model, _ = build_model(self.cfg.backbone.name, len(self.classes), self.cfg.backbone.pretrained,
                               self.cfg.backbone.checkpoint)
        return model.eval()


_BUNDLES: "OrderedDict[tuple[str, str], RunBundle]" = OrderedDict()
_BUNDLES_LOCK = threading.Lock()


def run_bundle(run_dir: Path, datasets_dir: Path, checkpoint: str = "last", keep: int = 3) -> RunBundle:
    """A small LRU of loaded runs, so that moving between images does not reload anything."""
    key = (str(Path(run_dir).resolve()), checkpoint)
    with _BUNDLES_LOCK:
        if key in _BUNDLES:
            _BUNDLES.move_to_end(key)
            return _BUNDLES[key]
    bundle = RunBundle(Path(run_dir), Path(datasets_dir), checkpoint)
    with _BUNDLES_LOCK:
        _BUNDLES[key] = bundle
        while len(_BUNDLES) > keep:
            _BUNDLES.popitem(last=False)
    return bundle
