"""L2-SP (Li, Grandvalet and Davoine 2018): pull the trunk toward its pretrained weights.

The penalty alpha/2 * ||w - w0||^2 on trunk weights is applied exactly through its gradient,
alpha * (w - w0), added after backward: no extra forward work and the reported loss stays the
plain task loss. The new head is not pulled anywhere (it has no pretrained value); it gets
ordinary weight decay `beta` instead. Li et al. (ICLR 2020) found that staying near the
initial weights helps when source and target domains are similar and can hurt when they are
not, which is why this is an option and not a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.methods.registry import MethodSpec, register_method
from engine.contract import MethodHook


@dataclass(frozen=True)
class L2SPConfig:
    """L2-SP's settings (Li, Grandvalet & Davoine 2018): alpha, the pull of the trunk's weights toward the
    pretrained ones (theta_0), and beta, a plain L2 penalty on the new head."""

    enabled: bool = False
    alpha: float = field(default=0.01, metadata={  # strength of the pull toward the pretrained trunk weights
        "label": "alpha (pull toward pretrained)", "min": 0.0, "max": 100.0, "step": 0.001,
        "help": "How strongly the trunk's weights are pulled back toward the pretrained ones (L2-SP's alpha): 0 = "
                "no pull; Li et al. 2020 found the pull can hurt when your images differ from the pretraining ones."})
    beta: float = field(default=0.01, metadata={  # L2 on the new head (instead of the optimiser's weight decay)
        "label": "beta (L2 on the new head)", "min": 0.0, "max": 1.0, "step": 0.001,
        "help": "A plain weight penalty on the new classification head, which has no pretrained weights to be "
                "pulled toward (L2-SP's beta)."})


class L2SPHook(MethodHook):
    """L2-SP in the training loop: adds alpha (w - w_0) to the gradient of each trunk parameter trainable at
    setup and beta w to the head's, the gradients of alpha/2 ||w - w_0||^2 + beta/2 ||w_head||^2."""

    name = "l2sp"

    def __init__(self, cfg: L2SPConfig):
        self.cfg = cfg
        self.anchors: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
        self.head_params: list[torch.nn.Parameter] = []

    def setup(self, ctx) -> None:
        head_ids = {id(p) for p in ctx.model.head.parameters()}
        self.head_params = [p for p in ctx.model.parameters() if id(p) in head_ids]
        self.anchors = [
            (p, p.detach().clone()) for p in ctx.model.parameters() if id(p) not in head_ids and p.requires_grad
        ]
        ctx.summary["l2sp_anchored_tensors"] = len(self.anchors)

    @torch.no_grad()
    def after_backward(self, ctx) -> None:
        for p, p0 in self.anchors:
            if p.grad is not None:
                p.grad.add_(p - p0, alpha=self.cfg.alpha)
        for p in self.head_params:
            if p.grad is not None:
                p.grad.add_(p, alpha=self.cfg.beta)


def _check(run_cfg, cfg: L2SPConfig) -> list[str]:
    """What spans sections (the bounds of alpha and beta are in their field metadata)."""
    if cfg.enabled and run_cfg.backbone.pretrained == "none":
        return ["L2-SP pulls toward pretrained weights: it needs a pretrained backbone, not `none`."]
    return []


register_method(MethodSpec.from_notes("l2sp", config_cls=L2SPConfig, build=lambda run_cfg, cfg: L2SPHook(cfg),
                                       check=_check, order=50, core_knob=True))
