"""What trains and how fast: parameter groups, the optimiser, frozen blocks and LP-FT's probe phase.

Li et al. (ICLR 2020): the head and the trunk may want different learning rates; what matters for
SGD is the effective learning rate lr / (1 - momentum). Biases and norm layers get no weight decay.
The new head's SGD rate is kept under the stability bound its input features set (`head_lr_bound`).
"""

from __future__ import annotations

import math

import torch

from engine.backbones import Classifier
from engine.config import RunConfig


def param_groups(model: Classifier, cfg: RunConfig) -> list[dict]:
    """Head vs trunk learning-rate multipliers (Li et al. 2020); no weight decay on biases/norms."""
    o = cfg.optim
    head_ids = model.head_parameter_ids()
    groups: dict[tuple[bool, bool], list] = {}
    for p in model.parameters():
        key = (id(p) in head_ids, p.ndim <= 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_head, no_decay), params in groups.items():
        mult = o.head_lr_mult if is_head else o.trunk_lr_mult
        out.append({"params": params, "lr": o.lr * mult, "base_lr": o.lr * mult,
                    "weight_decay": 0.0 if no_decay else o.weight_decay,
                    "name": ("head" if is_head else "trunk") + ("_no_decay" if no_decay else "")})
    return out


def build_optimizer(model: Classifier, cfg: RunConfig) -> torch.optim.Optimizer:
    """SGD (with momentum) or AdamW over `param_groups`. With `optim.fused` on a CUDA model, or a CPU
    model whose parameters are all contiguous, PyTorch's fused implementation: one kernel updates
    every tensor (the SGD step of a ResNet-18 took 53 ms instead of 116 ms on one CPU thread here;
    same update up to float rounding). A CPU model in channels_last (always with bf16 on the CPU, and
    in fp32 where measured faster, engine.devices.use_channels_last) keeps the per-tensor step: the CPU kernel copies each non-contiguous tensor, and took 7.6-8.3 ms against
    6.5-7.0 ms there (AMD EPYC, 2 threads; `benchmarks/optimizer_step.py`)."""
    groups = param_groups(model, cfg)
    device = next(model.parameters()).device.type
    contiguous = all(p.is_contiguous() for g in groups for p in g["params"])
    fused = {"fused": True} if cfg.optim.fused and (device == "cuda" or (device == "cpu" and contiguous)) else {}
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr, **fused)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                           nesterov=cfg.optim.nesterov and cfg.optim.momentum > 0, **fused)


# the head's rate is kept at this fraction of its stability bound: the bound is estimated on a few images
# (HEAD_FEATURE_IMAGES) and the features move once the trunk trains
HEAD_LR_MARGIN = 0.75
HEAD_FEATURE_IMAGES = 128


def head_feature_curvature(model: Classifier, images: torch.Tensor, device: torch.device,
                           batch_size: int = 64) -> float:
    """The largest eigenvalue of E[f f^T] (squared feature units; uncentred: for pooled ReLU features it is
    about the mean feature's squared length), f float [D] the head's input (engine.evaluate.head_features:
    float32, no gradients, batch norm in evaluation mode as during LP-FT's head-only epochs, the model's
    mode restored) for each of the first HEAD_FEATURE_IMAGES of `images` (uint8 [N, 3, S, S]). Raises
    nothing of its own; 0.0 for no images."""
    from engine.evaluate import head_features

    if len(images) == 0:
        return 0.0
    f = head_features(model, images[:HEAD_FEATURE_IMAGES], device, batch_size).flatten(1).double()
    return float(torch.linalg.matrix_norm(f, ord=2) ** 2 / len(f))


def caps_head(cfg: RunConfig) -> bool:
    """Whether a run keeps its head's rate under `head_lr_bound`: `optim.head_lr_cap` on, SGD (AdamW's steps do
    not grow with the features' size) and pretrained weights (a random network's batch-norm statistics are not
    its features' yet, so the bound measured before training would mean nothing)."""
    o = cfg.optim
    return o.head_lr_cap and o.optimizer == "sgd" and cfg.backbone.pretrained != "none"


def head_lr_bound(curvature: float, momentum: float, nesterov: bool = False) -> float:
    """The largest SGD rate at which the new head's steps do not overshoot, times HEAD_LR_MARGIN; inf for
    `curvature` <= 0. The softmax cross-entropy's Hessian in the head's weights is at most half E[f f^T]
    (the softmax Jacobian diag(p) - p p^T has eigenvalues <= 1/2), so its curvature L <= curvature / 2, and
    heavy-ball momentum beta on a quadratic is stable for lr * L < 2 (1 + beta) (Nesterov's form:
    2 (1 + beta) / (1 + 2 beta); Polyak 1964, Goh 2017, "Why momentum really works"). Measured on the
    sample with the bundled ResNet-18: curvature 252 at 64 px (bound 0.0226: the presets' 0.02 stands)
    and 947-960 at 32 px (0.006), where the Quick demo's 0.02 sent its head-only epochs' loss to 10-21."""
    if curvature <= 0:
        return math.inf
    limit = 2 * (1 + momentum) / ((1 + 2 * momentum) if nesterov else 1.0)
    return HEAD_LR_MARGIN * limit / (curvature / 2)


def cap_head_lr(optimizer: torch.optim.Optimizer, bound: float) -> float | None:
    """Lower the learning rate of `optimizer`'s head groups (param_groups' "head...") to `bound` where it
    is above; the peak rate they had when lowered (their "base_lr", before the schedule), else None."""
    before = None
    for g in optimizer.param_groups:
        if g.get("name", "").startswith("head") and g["base_lr"] > bound:
            before = g["base_lr"]
            g["base_lr"], g["lr"] = bound, min(g["lr"], bound)
    return before


BROKEN_CURVATURE = 1e6  # head_feature_curvature: the bundled ResNet-18 gives 252-960; a diverged file gave 2e9


def lowered_rate(to: float, was: float) -> str:
    """The head's lowered rate `to` in as few significant digits (2 to 6) as tell it from the rate set, `was` (as
    `{was:g}` writes it): a run read "learns at a rate of 0.02, not the 0.02 set" for 0.0196."""
    return next((f"{to:.{d}g}" for d in range(2, 7) if f"{to:.{d}g}" != f"{was:g}"), f"{to:.10g}")


def head_lr_words(summary: dict, image_size: int | None = None) -> str:
    """What `summary["head_lr_capped"]` ({"lr": the head's peak rate as set, "to": the rate it trained at,
    "curvature": head_feature_curvature's value, "trunk_lr": the trunk's}) means, in plain words for the
    Results page and the command line ("" when the head kept its rate; the measure named in words, not as "the
    largest mean square along one direction", which two new users read as jargon), and for features of
    BROKEN_CURVATURE or more from the user's checkpoint, that its weights look broken. `image_size` in pixels, when
    known."""
    cap = summary.get("head_lr_capped") or {}
    if not cap.get("to"):
        return ""
    at = f" at {image_size} px" if image_size else ""
    said = (f"The new head learns at a rate of {lowered_rate(cap['to'], cap['lr'])}, not the {cap['lr']:g} set: the "
            f"features the network hands it from these images{at} are large ({cap['curvature']:.0f} by the studio's "
            f"measure of their size), and at {cap['lr']:g} its steps would overshoot, its loss growing instead of "
            f"falling. The layers below it learn at {cap['trunk_lr']:g}.")
    if cap["curvature"] >= BROKEN_CURVATURE and str((summary.get("load_report") or {}).get("source", "")).startswith(
            "checkpoint"):
        said += (" Features this large (pretrained networks give hundreds to a few thousand) usually mean the "
                 "starting weights are broken, such as a file saved after a training step that diverged: check your "
                 "checkpoint, or start from the bundled weights.")
    return said


def set_trunk_trainable(model: Classifier, frozen_blocks: list[torch.nn.Module], probe_only: bool) -> None:
    """Freeze the first blocks (always) or the whole trunk (linear-probe phase of LP-FT)."""
    head_ids = model.head_parameter_ids()
    for p in model.parameters():
        p.requires_grad_(id(p) in head_ids or not probe_only)
    for block in frozen_blocks:
        for p in block.parameters():
            p.requires_grad_(False)


def set_frozen_bn_eval(model: Classifier, frozen_blocks: list[torch.nn.Module], probe_only: bool) -> None:
    """Frozen parts keep their batch-norm statistics: running stats must not drift either."""
    blocks = model.trunk_blocks() if probe_only else frozen_blocks
    for block in blocks:
        for m in block.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def setup_parts(cfg: RunConfig) -> list[str]:
    """What a description of the next run says after its methods, in words: its frozen blocks (`frozen_words`), how
    imbalanced classes are treated and whether pictures are kept whole (engine.words.data_extras); [] when none
    applies."""
    from engine.words import data_extras

    return [w for w in (frozen_words(cfg.optim, cfg.backbone.pretrained), *data_extras(cfg.data)) if w]


def setup_extras(cfg: RunConfig) -> str:
    """What a description of the next run adds after its methods, each after ", ": its frozen blocks
    (`frozen_words`), how imbalanced classes are treated and whether pictures are kept whole
    (engine.words.data_extras); "" when none applies.
    The Data page's Train now line, the Model page's Ready line, the sidebar and `train`'s header say the same
    (a student's class-weighted runs were described as the others)."""
    return "".join(f", {w}" for w in setup_parts(cfg))


def frozen_words(optim, pretrained: str | None = None, kept: bool = False) -> str:
    """A run's frozen blocks in plain words, for the model card, the Results caption, the Train and Model
    pages and the command line: "first 2 blocks frozen" for `freeze_blocks` 2, "first block frozen" for 1,
    "" for 0; with `pretrained` "none" (backbone.pretrained: random starting weights) "... frozen at random
    weights", which they keep; with `kept` and pretrained weights "... frozen (kept as pretrained)", for a
    reader who may not know what frozen means (the model card). `optim` is an `OptimConfig` or a saved
    config's "optim" mapping (a missing key counts as 0). The blocks are `Classifier.trunk_blocks()`'s, the
    stem counting as one (ResNet: stem, then each stage)."""
    n = int(optim.get("freeze_blocks", 0) if isinstance(optim, dict) else optim.freeze_blocks)
    words = "" if n <= 0 else "first block frozen" if n == 1 else f"first {n} blocks frozen"
    if not words:
        return ""
    return words + (" at random weights" if pretrained == "none" else " (kept as pretrained)" if kept else "")
