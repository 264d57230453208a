"""Presets: one click sets the whole run configuration for a common goal.

A preset keeps the chosen dataset (source, OOD set, split) and replaces everything else. Presets
switch on methods only when the engine registers them, so they never refer to a missing method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from engine.backbones import BACKBONES, available_sources
from engine.config import RunConfig, with_section
from engine.methods import METHODS


def offline_pretrained(backbone: str) -> str:
    """The best weights usable without internet: bundled, else cached ImageNet, else none."""
    avail = available_sources(backbone)
    if avail.get("bundled"):
        return "bundled"
    return "imagenet" if avail.get("imagenet") else "none"


def _base(cfg: RunConfig, backbone: str, image_size: int) -> RunConfig:
    """Defaults everywhere, except the dataset the user already chose."""
    data = dataclasses.replace(cfg.data, image_size=image_size)
    fresh = RunConfig(name="", seed=cfg.seed, data=data)
    return with_section(fresh, "backbone", name=backbone, pretrained=offline_pretrained(backbone), checkpoint="")


def _enable(cfg: RunConfig, method: str, **changes) -> RunConfig:
    if method not in METHODS or not METHODS[method].supports(cfg.backbone.name):
        return cfg
    return with_section(cfg, method, enabled=True, **changes)


def quick_demo(cfg: RunConfig) -> RunConfig:
    cfg = _base(cfg, "resnet18", 64)
    cfg = with_section(cfg, "train", epochs=5, batch_size=64)
    if "wise_ft" in METHODS:  # when switched on, its curve uses 64 corrupted images per corruption: quick
        cfg = with_section(cfg, "wise_ft", ood_subset=64)
    return with_section(cfg, "optim", optimizer="sgd", lr=0.01, momentum=0.9, schedule="cosine")


def robust(cfg: RunConfig) -> RunConfig:
    cfg = _base(cfg, "resnet18", 64)
    cfg = with_section(cfg, "train", epochs=8, batch_size=64)
    # LP-FT (Kumar et al. 2022): probing the head first distorts pretrained features less -> better OOD.
    cfg = with_section(cfg, "optim", lr=0.01, momentum=0.9, schedule="cosine", label_smoothing=0.1,
                       linear_probe_epochs=2 if cfg.backbone.pretrained != "none" else 0)
    cfg = with_section(cfg, "eval", ood=True)
    cfg = with_section(cfg, "eval", robust=True)  # robust accuracy under a PGD attack, each epoch and at the end
    if cfg.backbone.pretrained != "none":
        cfg = _enable(cfg, "l2sp")
    return _enable(cfg, "adversarial")


def small_model(cfg: RunConfig) -> RunConfig:
    name = "mobilenet_v3_small" if "mobilenet_v3_small" in BACKBONES else "resnet18"
    cfg = _base(cfg, name, 64)
    cfg = with_section(cfg, "train", epochs=8, batch_size=64)
    cfg = with_section(cfg, "optim", optimizer="sgd", lr=0.02, momentum=0.9, schedule="cosine")
    return _enable(cfg, "pruning")


@dataclass(frozen=True)
class Preset:
    title: str
    icon: str
    describe: Callable[[], str]
    apply: Callable[[RunConfig], RunConfig]


def _robust_text() -> str:
    parts = ["ResNet-18, 8 epochs: linear probe first, then fine-tune (LP-FT), label smoothing"]
    if "l2sp" in METHODS:
        parts.append("L2-SP")
    if "adversarial" in METHODS:
        parts.append("adversarial fine-tuning")
    return ", ".join(parts) + ". Watch OOD accuracy" + (" and robust accuracy." if "adversarial" in METHODS else ".")


def _small_text() -> str:
    text = "MobileNetV3-Small (2.5M parameters), 8 epochs at 64 px: fast on a laptop, small to deploy."
    if "pruning" in METHODS:
        text += " Pruning is on: watch sparsity rise while accuracy holds."
    return text


PRESETS: dict[str, Preset] = {
    "quick_demo": Preset("Quick demo", ":material/bolt:",
                         lambda: "ResNet-18 with offline weights, 64 px, 5 epochs, batch 64: about a minute on a laptop CPU.",
                         quick_demo),
    "robust": Preset("Robust", ":material/shield:", _robust_text, robust),
    "small_model": Preset("Small model", ":material/compress:", _small_text, small_model),
}
DEFAULT_PRESET = "quick_demo"
