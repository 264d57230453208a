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


# ---- one demo per method: the paper's claim, visible in about two minutes on a 2-core CPU ---------
# Each keeps the quick demo's recipe (ResNet-18, offline weights, 64 px, batch 64, SGD + cosine) so
# that a quick-demo run with the same epochs is the standard fine-tuning it is compared with.

def _demo(cfg: RunConfig, epochs: int) -> RunConfig:
    cfg = quick_demo(cfg)
    return with_section(cfg, "train", epochs=epochs)


def adafilter_demo(cfg: RunConfig) -> RunConfig:
    # The gate network steps by Adam (engine default) at 5x the base lr: its gradients are tiny while
    # both filter copies are still close (see the gate-gradient chart), and 5 epochs are 30 steps.
    return _enable(_demo(cfg, 5), "adafilter", gate_optimizer="adam", gate_lr_mult=5.0)


def pruning_demo(cfg: RunConfig) -> RunConfig:
    # Zhu & Gupta's cubic ramp ends at half the run, the other half recovers at the final 70% sparsity.
    # Global scope: seed 0 lost 3.9 test points against 14.8 with every layer at 70% (the stem and the
    # small early layers cannot lose as much). Structured pruning then removes 30% of the channels
    # (about half the FLOPs) and fine-tunes 4 epochs of the smaller model (1 left it near chance).
    return _enable(_demo(cfg, 5), "pruning", target_sparsity=0.7, schedule="cubic", start_fraction=0.0,
                   end_fraction=0.5, scope="global", structured=True, channel_fraction=0.3, structured_epochs=4)


def adversarial_demo(cfg: RunConfig) -> RunConfig:
    # A small budget (2/255) and one-step FGSM-RS training: robust accuracy rises clearly in 5 epochs.
    cfg = with_section(_demo(cfg, 5), "eval", robust=True, robust_steps=10, robust_subset=128)
    return _enable(cfg, "adversarial", attack="fgsm", eps=2 / 255)


def wise_ft_demo(cfg: RunConfig) -> RunConfig:
    cfg = with_section(_demo(cfg, 5), "eval", ood=True)
    return _enable(cfg, "wise_ft", ood_subset=64)


DEMO_TEXT = {  # preset -> (what to look at, what the paper claims)
    "adafilter_demo": ("AdaFilter, 5 epochs: watch the per-layer share of fine-tuned filters and the gate gradients.",
                       "Guo et al. 2020: choosing filters per image lowers the error of standard fine-tuning "
                       "(2.54 points on average, ResNet-50, ImageNet weights)."),
    "pruning_demo": ("Pruning to 70% sparsity by mid-run, then recovery, then channels removed: watch validation "
                     "accuracy dip and come back.",
                     "Tung et al. 2017, Zhu & Gupta 2017: pruning while fine-tuning keeps the dense accuracy."),
    "adversarial_demo": ("Adversarial fine-tuning (FGSM-RS, eps 2/255), 5 epochs: watch robust accuracy beside clean "
                         "accuracy.", "Jeddi et al. 2020: fine-tuning adversarially gives robustness at a fraction "
                                      "of the cost of adversarial training from scratch."),
    "wise_ft_demo": ("WiSE-FT, 5 epochs: watch the alpha curve of OOD against validation accuracy.",
                     "Wortsman et al. 2021: mixing the weights (an alpha inside 0..1) beats both ends on "
                     "OOD data at equal in-distribution accuracy."),
}


def _demo_text(key: str) -> Callable[[], str]:
    return lambda: " ".join(DEMO_TEXT[key]) + " Run the Quick demo (standard fine-tuning, the same 5 epochs) on the same data to compare."


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
for _key, _title, _icon, _apply, _method in (
        ("adafilter_demo", "AdaFilter demo", ":material/filter_alt:", adafilter_demo, "adafilter"),
        ("pruning_demo", "Pruning demo", ":material/content_cut:", pruning_demo, "pruning"),
        ("adversarial_demo", "Adversarial demo", ":material/security:", adversarial_demo, "adversarial"),
        ("wise_ft_demo", "WiSE-FT demo", ":material/tune:", wise_ft_demo, "wise_ft")):
    if _method in METHODS:  # never a preset for a method the engine does not register
        PRESETS[_key] = Preset(_title, _icon, _demo_text(_key), _apply)
DEFAULT_PRESET = "quick_demo"
