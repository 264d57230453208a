"""Rebuild a saved run's model for inference, export, WiSE-FT or attributions.

A checkpoint is a safetensors state dict with the run config in its metadata; the model is
rebuilt from the config (architecture, classes, structural methods) without any pretrained
download, then the state dict is loaded strictly.
"""

from __future__ import annotations

import json
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
