"""Adversarial fine-tuning (Jeddi, Shafiee & Wong 2020, "A Simple Fine-tuning Is All You Need").

Each training batch is replaced by adversarial examples crafted against the current model
(PGD-k, or FGSM with random start as the cheap option), optionally mixed with the clean loss.
The paper's point is that starting from a pretrained model and using the "slow start, fast
decay" learning-rate schedule (`optim.schedule: slow_start_fast_decay`, see engine.schedules)
reaches the robustness of adversarial training from scratch at a fraction of its cost.

Catastrophic-overfitting guard for FGSM (Wong et al. 2020): single-step training can suddenly
lose all robustness to multi-step attacks while its FGSM accuracy climbs. After each epoch we
measure PGD accuracy on a fixed training subset; when it collapses (falls below `co_drop` times
its best value) the model rolls back to the best epoch's weights and training stops.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from engine.attacks import fgsm_rs, frozen_bn_statistics, pgd, robust_accuracy
from engine.methods.registry import MethodSpec, register_method
from engine.contract import MethodHook


@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial fine-tuning's settings (Jeddi et al. 2020; Wong et al. 2020 for FGSM-RS): the training attack
    (PGD or FGSM with a random start), eps and step size (fractions of the pixel range; shown as /255), PGD
    steps, the clean-loss weight, and the overfitting guard (FGSM-RS's catastrophic overfitting check on a
    training subset, which ends training at the best epoch's weights)."""

    enabled: bool = False
    attack: str = field(default="pgd", metadata={"label": "training attack", "choices": ["pgd", "fgsm"],
                                                 "labels": {"pgd": "PGD", "fgsm": "FGSM (FGSM-RS with a random start)"},
                                                 "help": "PGD: k steps, strong, k+1 times the cost. FGSM-RS: one step, about 2x the cost."})
    eps: float = field(default=4 / 255, metadata={"label": "eps (attack budget)", "scale": 255, "unit": "/255",
                                                  "min": 0.0, "max": 32 / 255, "step": 1 / 255,
                                                  "help": "Largest change of any pixel, in 1/255 steps."})
    step_size: float = field(default=1 / 255, metadata={"shown_when": "attack=pgd", "label": "step size", "scale": 255, "unit": "/255",
                                                        "min": 0.0, "max": 16 / 255, "step": 0.25 / 255,
                                                        "help": "Per PGD step; FGSM uses 1.25 x eps."})
    steps: int = field(default=3, metadata={"shown_when": "attack=pgd", "label": "PGD steps (k)", "min": 1, "max": 20,
                                               "help": "Attack steps per training image: more make a stronger "
                                                       "attack and cost one forward and backward pass each."})
    random_start: bool = field(default=True, metadata={"label": "random start", "help": (
        "Start each attack at a random point within eps of the image, as Madry et al. and FGSM-RS do, instead of "
        "at the image itself.")})
    clean_weight: float = field(default=0.0, metadata={"label": "clean loss weight", "min": 0.0, "max": 1.0,
                                                       "step": 0.05, "help": "0 = adversarial loss only; 0.5 = half clean, half adversarial."})
    co_guard: bool = field(default=True, metadata={"shown_when": "attack=fgsm", "label": "catastrophic-overfitting guard (FGSM)",
                                                  "help": "FGSM training can suddenly stop resisting stronger attacks: "
                                                          "after each epoch, check PGD accuracy on some training images, "
                                                          "and when it collapses go back to the best epoch and stop."})
    co_subset: int = field(default=128, metadata={"shown_when": "co_guard", "label": "guard: training images checked (at most)", "min": 16, "max": 2048,
                                                  "help": "How many training images the guard attacks after each epoch."})
    co_drop: float = field(default=0.5, metadata={"shown_when": "co_guard", "label": "guard: collapse below this fraction of the best", "min": 0.0, "max": 1.0, "step": 0.05,
                                                 "help": "0.5: a collapse is PGD accuracy below half its best so far."})


class AdversarialHook(MethodHook):
    """Adversarial fine-tuning in the training loop: replaces each step's loss by the loss on attacked images
    (batch-norm statistics frozen during the attack), and with FGSM-RS checks the model each epoch under PGD-10
    on a fixed training subset, ending training and rolling back to the best epoch's weights when robust accuracy
    falls below `co_drop` of its best (catastrophic overfitting)."""

    name = "adversarial"

    def __init__(self, cfg: AdversarialConfig):
        self.cfg = cfg
        self.best_guard_acc = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.guard_idx: torch.Tensor | None = None

    def setup(self, ctx) -> None:
        g = torch.Generator().manual_seed(ctx.cfg.seed + 7)
        n = len(ctx.data.train)
        self.guard_idx = torch.randperm(n, generator=g)[: min(self.cfg.co_subset, n)]
        ctx.summary["adversarial"] = {"attack": self.cfg.attack, "eps": self.cfg.eps, "steps": self.cfg.steps,
                                      "random_start": self.cfg.random_start,
                                      "passes_per_step": self.passes_per_step()}

    def passes_per_step(self) -> int:
        """Forward-backward passes per training step (the compute unit of the benchmark)."""
        extra = self.cfg.steps if self.cfg.attack == "pgd" else 1
        return extra + 1 + (1 if self.cfg.clean_weight > 0 else 0)

    def compute_loss(self, ctx, x, y):
        """(loss, logits) of the attacked batch: `x` float [B, 3, S, S] in [0, 1], `y` int64 [B]; the attack
        (FGSM-RS or PGD at eps) runs with batch-norm statistics frozen; the loss is the run's cross-entropy
        (class weights, label smoothing) on the attacked images, mixed with the clean images' by `clean_weight`
        when that is above 0."""
        c, model = self.cfg, ctx.model
        with frozen_bn_statistics(model):
            if c.attack == "fgsm":
                x_adv = fgsm_rs(model, x, y, c.eps, generator=ctx.device_generator, amp_dtype=ctx.amp_dtype)
            else:
                x_adv = pgd(model, x, y, c.eps, c.step_size, c.steps, c.random_start, ctx.device_generator, ctx.amp_dtype)
        def ce(logits):  # the run's class weights (imbalanced data) and label smoothing, as in the plain step
            return F.cross_entropy(logits.float(), y, weight=ctx.loss_weight, label_smoothing=ctx.cfg.optim.label_smoothing)

        if c.clean_weight > 0:
            both = ctx.train_model(torch.cat([x, x_adv]))
            clean_logits, adv_logits = both[: len(x)], both[len(x):]
            return c.clean_weight * ce(clean_logits) + (1 - c.clean_weight) * ce(adv_logits), adv_logits
        logits = ctx.train_model(x_adv)  # through DDP when distributed: gradients averaged
        return ce(logits), logits

    def on_epoch_end(self, ctx, metrics) -> None:
        if self.cfg.attack != "fgsm" or not self.cfg.co_guard:
            return
        imgs = ctx.data.train.images[self.guard_idx]
        labels = ctx.data.train.labels[self.guard_idx]
        acc = robust_accuracy(ctx.model, imgs, labels, ctx.device, self.cfg.eps, steps=10,
                              amp_dtype=ctx.amp_dtype, seed=ctx.cfg.seed)
        metrics["train_pgd_acc"] = acc
        if acc > self.best_guard_acc:
            self.best_guard_acc, self.best_epoch = acc, ctx.epoch + 1
            self.best_state = copy.deepcopy(ctx.model.state_dict())
        elif self.best_guard_acc > 0.1 and acc < self.cfg.co_drop * self.best_guard_acc:
            ctx.model.load_state_dict(self.best_state)
            ctx.stop_training, ctx.weights_epoch = True, self.best_epoch
            ctx.stop_reason = (f"catastrophic overfitting: robust accuracy on {len(self.guard_idx)} training images fell from "
                               f"{100 * self.best_guard_acc:.0f}% to {100 * acc:.0f}%, so the weights of epoch "
                               f"{self.best_epoch} were kept")
            ctx.summary["catastrophic_overfitting"] = {
                "epoch": ctx.epoch + 1, "train_pgd_acc": acc, "best_train_pgd_acc": self.best_guard_acc,
                "rolled_back_to_epoch": self.best_epoch,
            }
            metrics["co_rollback"] = 1.0

    def state_dict(self) -> dict[str, Any]:
        """The overfitting guard's best score so far, its epoch and that epoch's weights (None before)."""
        return {"best_guard_acc": self.best_guard_acc, "best_epoch": self.best_epoch,
                "best_state": dict(self.best_state) if self.best_state is not None else None}

    def load_state_dict(self, ctx, state: dict[str, Any]) -> None:
        if state:
            self.best_guard_acc, self.best_epoch = float(state["best_guard_acc"]), int(state["best_epoch"])
            self.best_state = state["best_state"]


# its settings' bounds and choices live in AdversarialConfig's field metadata: no extra check
register_method(MethodSpec.from_notes("adversarial", config_cls=AdversarialConfig,
                                       build=lambda run_cfg, cfg: AdversarialHook(cfg), order=10))
