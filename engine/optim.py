"""What trains and how fast: parameter groups, the optimiser, frozen blocks and LP-FT's probe phase.

Li et al. (ICLR 2020): the head and the trunk may want different learning rates; what matters for
SGD is the effective learning rate lr / (1 - momentum). Biases and norm layers get no weight decay.
"""

from __future__ import annotations

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
