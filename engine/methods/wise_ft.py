"""WiSE-FT (Wortsman et al. 2021, "Robust fine-tuning of zero-shot models") for any classifier.

theta_0 is the starting model: the pretrained trunk with a head fitted by a linear probe on
the training split (the counterpart of CLIP's zero-shot head: a random head would make the
ensemble meaningless). Before probing, the trunk's batch-norm statistics are re-estimated on the
training images (no weight changes): the pretraining statistics belong to another domain, and
fine-tuning (batch statistics in train mode) then saw features far from the probed ones, with
first losses of 10-40 from the probe's head. The head's logits are divided by a temperature
fitted on held-out training features, so theta_0 is not over-confident either. The run then fine-tunes end to end from theta_0 to theta_1, and
theta_alpha = (1 - alpha) * theta_0 + alpha * theta_1 trades in-distribution accuracy
(alpha -> 1) against robustness to distribution shift (intermediate alpha).

The core is `interpolate_state`: a few lines over state dicts with a key check; integer
buffers (BN's num_batches_tracked) are copied, not averaged. Composition: pruning masks in
`ctx.masks` are re-applied after interpolation (sparsity kept); AdaFilter's fine-tuned filters
interpolate toward their pretrained copies because both live in the same state dict; a robust
theta_1 from adversarial fine-tuning gives a robust/clean trade-off curve.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import update_bn

from engine.augment import to_float
from engine.checkpoints import save_checkpoint
from engine.config import setting_name
from engine.contract import MethodHook, StopRequested
from engine.devices import eval_layout
from engine.errors import StudioError
from engine.evaluate import EvalSets, epoch_passes, epoch_sets, evaluate, head_features, predict  # noqa: F401
from engine.methods.registry import MethodSpec, register_method
from engine.metrics import same_figure

DEFAULT_ALPHAS = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass(frozen=True)
class WiseFTConfig:
    """WiSE-FT's settings (Wortsman et al. 2021): the alphas measured after training (0 = theta_0, the starting
    model; 1 = the fine-tuned theta_1), batch-norm recalibration per mix, theta_0's linear probe (L-BFGS
    iterations and its L2 penalty), and how many corrupted images the curve's OOD points use."""

    enabled: bool = False
    alphas: tuple[float, ...] = field(default=DEFAULT_ALPHAS, metadata={
        "label": "alphas evaluated after training", "help": "0 = starting model (linear probe), 1 = fine-tuned model. "
                                                            "Both ends are always measured: the mixes are judged "
                                                            "against them."})
    recalibrate_bn: bool = field(default=False, metadata={
        "label": "recalibrate batch-norm statistics per alpha",
        "help": "Re-estimate BN running statistics on the training images for each mixed model (slower). "
                "On the bundled sample it lowered the fine-tuned end by 5-13 validation points (README, WiSE-FT)."})
    probe_epochs: int = field(default=100, metadata={
        "label": "linear-probe iterations (L-BFGS)", "min": 10, "max": 1000,
        "help": "The starting model (alpha 0) is the pretrained backbone with a new final layer fitted on your "
                "training images (a linear probe): how many optimiser steps that fit takes."})
    probe_l2: float = field(default=1e-3, metadata={
        "label": "linear-probe weight penalty (L2)", "min": 0.0, "max": 1.0, "step": 1e-4,
        "help": "How strongly the linear probe's weights are kept small: larger makes the starting model simpler "
                "and less sure of itself."})
    ood_subset: int = field(default=0, metadata={
        # "at most": a teacher's card read "64" beside the curve's "120 corrupted images" (20 validation images x 6)
        "label": "validation images per corruption on the curve, at most (0 = all)", "min": 0, "max": 100000,
        "help": "The curve's OOD accuracy on N validation images of each corruption (a fixed subset with the "
                "classes in turn): fewer images, a faster curve. The final OOD accuracy always uses all of them."})


# ---- the core: a few lines over state dicts ---------------------------------------------------

def interpolate_state(theta_0: dict[str, torch.Tensor], theta_1: dict[str, torch.Tensor], alpha: float,
                      masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """(1 - alpha) * theta_0 + alpha * theta_1 over floating tensors; integer buffers from theta_1."""
    if theta_0.keys() != theta_1.keys():
        only0, only1 = sorted(set(theta_0) - set(theta_1)), sorted(set(theta_1) - set(theta_0))
        raise StudioError(
            "The two models cannot be mixed: their weights do not have the same names "
            f"(only in the start model: {only0[:3]}; only in the fine-tuned model: {only1[:3]})."
        )
    out = {}
    for k, w1 in theta_1.items():
        w0 = theta_0[k]
        if w0.shape != w1.shape:
            raise StudioError(f"The two models cannot be mixed: {k} has shape {tuple(w0.shape)} vs {tuple(w1.shape)}.")
        out[k] = torch.lerp(w0.to(w1.device, w1.dtype), w1, alpha) if w1.is_floating_point() else w1.clone()
        if masks and k in masks:
            out[k] = out[k] * masks[k].to(out[k].dtype)  # pruned weights stay exactly zero
    return out


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256) -> None:
    """Re-estimate BN running statistics as a cumulative average over uint8 `images` [N, 3, S, S]
    (torch.optim.swa_utils.update_bn, as for SWA models); weights are unchanged."""
    update_bn((to_float(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)), model)


# ---- theta_0: a linear probe on the pretrained features ----------------------------------------

def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float = 1e-3,
                     iters: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression with L-BFGS; returns (W, b) for raw features.

    features: (N, D) float; labels: (N,) int64 in [0, num_classes). Returns W (num_classes, D) and b
    (num_classes,) in the features' dtype. The loss is the mean cross-entropy plus `l2` * |W|^2, solved
    in float64 to convergence (gradient below 1e-9 or no change above 1e-12) or `iters` iterations:
    a probe stopped early lands wherever the CPU's floating-point kernels (AVX-512 or AVX2, one
    thread or two) steered it, and then its accuracy moves with the machine, not with the features.
    Features are centred and divided by one global scale, not per feature: per-feature
    standardisation folds 1/std back into the head, and near-constant features (dead ReLUs) then
    get huge weights that blow up the first fine-tuning steps from theta_0.
    """
    f = features.double()
    mu = f.mean(0)
    sd = (f - mu).std().clamp_min(1e-6)  # a scalar
    z = (f - mu) / sd
    w = torch.zeros(num_classes, z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, labels) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        w_raw = w / sd  # fold the standardisation into the head
        b_raw = b - (w * (mu / sd)).sum(1)
    return w_raw.detach().to(features.dtype), b_raw.detach().to(features.dtype)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, iters: int = 50) -> float:
    """The scalar T minimising the cross-entropy of logits / T (temperature scaling, Guo et al. 2017)."""
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(1e-2, 1e4))


def calibrated_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float, iters: int,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """theta_0's head: a linear probe on all training features, its logits divided by a temperature
    fitted on a held-out fifth of the training split (probed on the other four fifths), never below 1.

    A few hundred images in 512 dimensions are linearly separable, so the probe's logits are huge:
    the first fine-tuning steps from such a head saw losses of 10-40 and wrecked the trunk. The
    temperature keeps the probe's predictions (and accuracy) and makes its confidence honest.
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    n_hold = len(labels) // 5
    temperature = 1.0
    if n_hold >= num_classes:
        hold, fit = order[:n_hold], order[n_hold:]
        w, b = fit_linear_probe(features[fit], labels[fit], num_classes, l2, iters)
        # only ever cooled: a held-out fifth classified without error would ask for ever sharper logits
        temperature = max(1.0, fit_temperature(features[hold] @ w.T + b, labels[hold]))
    w, b = fit_linear_probe(features, labels, num_classes, l2, iters)
    return w / temperature, b / temperature, temperature


# ---- the curve over alpha -----------------------------------------------------------------------

def curve_alphas(alphas) -> list[float]:
    """The alphas a run's curve measures (`wise_ft.alphas`, each in [0, 1]), sorted, each once, with both ends, 0
    (theta_0) and 1 (theta_1), added where missing: the claim and the curve's plain reading compare the mixes with
    the two models, and a grid of 0.2-0.8 had its outer mixes called "the starting model" and "the fine-tuned
    model"; a repeated alpha left the live count at "3 of 4 evaluated" for good."""
    return sorted(set(float(a) for a in alphas) | {0.0, 1.0})


def coarse_to_fine(alphas) -> list[float]:
    """The grid (`curve_alphas` of `alphas`) in the order it is computed: the ends, then the middle, then ever
    finer, so the streamed curve has its shape after a few points rather than filling in from the left."""
    todo = curve_alphas(alphas)  # at least the two ends
    order = [todo[0], todo[-1]]
    spans = [(0, len(todo) - 1)]
    while spans:
        nxt = []
        for lo, hi in spans:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            order.append(todo[mid])
            nxt += [(lo, mid), (mid, hi)]
        spans = nxt
    return order


CURVE_SEVERITY = 3  # the curve's corruptions when epochs measure none: the middle of ImageNet-C's 1-5


def curve_sets(cfg, data, ood_user) -> EvalSets:
    """What a point on the curve measures: the epoch's sets, with the corruption suite cut to
    `wise_ft.ood_subset` class-balanced images when set (a faster curve). The curve is about
    robustness to shift, so it measures the corruption suite whenever `eval.ood` is on, also when the
    epochs skip it (severity CURVE_SEVERITY then)."""
    return epoch_sets(cfg, data, ood_user, **_curve_parts(cfg))


def curve_point(curve: list[dict], alpha: float) -> dict | None:
    """The point of a run's curve (summary["wise_curve"]) at `alpha` (to within 1e-6), or None."""
    hit = min(curve or [], key=lambda p: abs(float(p.get("alpha", -1)) - alpha), default=None)
    return hit if hit is not None and abs(float(hit.get("alpha", -1)) - alpha) < 1e-6 else None


def tied_alphas(curve: list[dict], point: dict) -> list[float]:
    """The alphas of the curve's other points (summary["wise_curve"]) with `point`'s OOD accuracy (to float rounding:
    engine.metrics.same_figure),
    in the curve's order: the Results panel and the claim line name them beside the one they pick."""
    return [float(p["alpha"]) for p in curve
            if p is not point and same_figure(p.get("ood_acc"), point.get("ood_acc"))]


def curve_severity(cfg) -> int:
    """The corruption severity (1-5) the curve measures: the epochs' own, else CURVE_SEVERITY."""
    return cfg.eval.ood_severity_each_epoch or CURVE_SEVERITY


def _curve_parts(cfg) -> dict[str, int]:
    """How the curve's sets differ from an epoch's: its corruption subset and severity."""
    return {"ood_subset": cfg.methods["wise_ft"].ood_subset, "severity": curve_severity(cfg)}


def curve_passes(cfg, data, ood_user) -> float:
    """What one point of the curve costs in image forward passes (`curve_sets`'s `eval_passes`, plus a
    pass over the training images when `recalibrate_bn` re-estimates batch-norm statistics per alpha),
    counted without building the corrupted images."""
    recalibrate = len(data.train) if cfg.methods["wise_ft"].recalibrate_bn else 0
    return recalibrate + epoch_passes(cfg, data, ood_user, **_curve_parts(cfg))


def evaluate_alpha(model, theta_0, theta_1, alpha: float, sets: EvalSets, device, masks=None,
                   bn_images: torch.Tensor | None = None, amp_dtype=None, batch_size: int = 256) -> dict[str, Any]:
    """Load theta_alpha into `model` (BN statistics re-estimated on `bn_images` when given) and
    `evaluate` it: {"alpha", "val_acc", "ood_acc", "robust_acc", ["ood_user_acc"]} (fractions; None
    for what the run does not measure)."""
    model.load_state_dict(interpolate_state(theta_0, theta_1, alpha, masks))
    if bn_images is not None:
        recalibrate_bn(model, bn_images, device, batch_size)
    m = evaluate(model, sets, device, batch_size, amp_dtype)
    point = {"alpha": alpha, "val_acc": m["val_acc"], "ood_acc": m.get("ood_acc"), "robust_acc": m.get("robust_acc")}
    if "ood_user_acc" in m:
        point["ood_user_acc"] = m["ood_user_acc"]
    return point


# ---- the hook -------------------------------------------------------------------------------------

class WiseFTHook(MethodHook):
    """WiSE-FT in the run: at setup fits theta_0 (the pretrained trunk with a calibrated linear-probe head), which
    the run then fine-tunes from; at the end measures validation and OOD accuracy of theta_alpha = (1 - alpha)
    theta_0 + alpha theta_1 for every alpha and publishes each point (stream "wise_ft")."""

    name = "wise_ft"
    end_work = "WiSE-FT's curve"

    def __init__(self, cfg: WiseFTConfig):
        self.cfg = cfg
        self.theta_0: dict[str, torch.Tensor] = {}
        self.about: dict[str, float] = {}  # theta_0's temperature and validation accuracy (summary entries)
        self.alpha_passes = 0.0  # image passes per point (engine.evaluate.eval_passes)

    def setup(self, ctx) -> None:
        """theta_0: BN statistics of the training images, then a calibrated linear probe on the
        (frozen) pretrained features."""
        model, data = ctx.model, ctx.data
        recalibrate_bn(model, data.train.images, ctx.device, ctx.cfg.eval.eval_batch_size)
        feats = head_features(model, data.train.images, ctx.device, ctx.cfg.eval.eval_batch_size)
        w, b, temperature = calibrated_probe(feats, data.train.labels, len(data.classes), self.cfg.probe_l2,
                                             self.cfg.probe_epochs, ctx.cfg.seed)
        with torch.no_grad():
            model.head.weight.copy_(w.to(model.head.weight.device))
            model.head.bias.copy_(b.to(model.head.bias.device))
        val_acc = predict(model, data.val.images, data.val.labels, ctx.device, ctx.cfg.eval.eval_batch_size,
                          ctx.amp_dtype, tta_flip=ctx.cfg.eval.tta_flip).acc
        self._keep_theta_0(ctx, {k: v.detach().clone() for k, v in model.state_dict().items()},
                           {"wise_theta0_temperature": temperature, "wise_theta0_val_acc": val_acc})
        if ctx.rank == 0:  # the curve is part of the run's end: the time-left estimate counts it from the start
            self.alpha_passes = curve_passes(ctx.cfg, data, ctx.eval_sets.ood_user)
            ctx.eval_clock.method_passes += len(curve_alphas(self.cfg.alphas)) * self.alpha_passes

    def _keep_theta_0(self, ctx, theta_0: dict[str, torch.Tensor], about: dict[str, float]) -> None:
        """theta_0 becomes where fine-tuning starts; `about` (its temperature and validation accuracy)
        goes into the summary; theta0.safetensors is written in the run folder."""
        self.theta_0, self.about = theta_0, dict(about)
        ctx.pretrained_state = {k: v.clone() for k, v in theta_0.items()}  # fine-tuning starts here
        ctx.summary.update(self.about)
        if ctx.run_dir is not None:
            save_checkpoint(ctx.run_dir / "theta0.safetensors", self.theta_0, ctx.cfg, {"alpha": 0.0})

    def state_dict(self) -> dict[str, Any]:
        """theta_0 as this run computed it (a continued run mixes with the same one, whatever threads
        its probe would run on now), with its temperature and validation accuracy."""
        return {"theta_0": self.theta_0, "about": self.about}

    def load_state_dict(self, ctx, state: dict[str, Any]) -> None:
        """Take back theta_0 and its figures from a resume point, on the run's device (theta_0 is fitted once,
        before the first epoch, and must be the same after a Continue)."""
        if state:
            self._keep_theta_0(ctx, {k: v.to(ctx.device) for k, v in state["theta_0"].items()}, state["about"])

    def curve_eta(self, ctx, left: int) -> dict[str, float]:
        """{"eta_s": seconds} with `left` alphas of the curve still to evaluate, then the end-of-run
        evaluation, at the seconds per image pass the epochs' evaluations measured; {} before any."""
        clock = ctx.eval_clock
        return {"eta_s": clock.seconds_per_pass * (left * self.alpha_passes + clock.final_passes)} \
            if clock.seconds_per_pass else {}

    def on_train_end(self, ctx) -> None:
        """The curve over alpha, streamed point by point as it is computed."""
        if ctx.rank != 0:  # under torchrun the curve is computed once, by the process that writes it
            return
        cfg = ctx.cfg
        theta_1 = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
        if ctx.run_dir is not None and ctx.masks:
            save_checkpoint(ctx.run_dir / "masks.safetensors", ctx.masks, cfg)
        sets = curve_sets(cfg, ctx.data, ctx.eval_sets.ood_user)
        bn_images = ctx.data.train.images if self.cfg.recalibrate_bn else None
        probe = copy.deepcopy(ctx.model)
        curve = []
        t0 = time.perf_counter()
        order = coarse_to_fine(self.cfg.alphas)
        with eval_layout(probe, ctx.device, ctx.amp_dtype, cfg.data.image_size):  # once for the whole curve
            for i, alpha in enumerate(order):
                if ctx.should_stop():  # the run keeps its epochs; Continue computes the curve again
                    raise StopRequested()
                ctx.reporter.progress(phase=f"WiSE-FT curve: {i} of {len(order)} mixing weights evaluated",
                                      **self.curve_eta(ctx, len(order) - i))  # as the chart counts
                point = evaluate_alpha(probe, self.theta_0, theta_1, alpha, sets, ctx.device, ctx.masks, bn_images,
                                       ctx.amp_dtype, cfg.eval.eval_batch_size)
                curve.append(point)
                ctx.reporter.stream("wise_ft", point)
        ctx.summary["wise_curve"] = sorted(curve, key=lambda p: p["alpha"])
        ctx.summary["wise_curve_ood_images"] = sets.ood_images
        ctx.summary["wise_curve_seconds"] = time.perf_counter() - t0


def _check(run_cfg, c: WiseFTConfig) -> list[str]:
    problems = []
    if not c.alphas or any(not (0.0 <= a <= 1.0) for a in c.alphas):
        problems.append(f"{setting_name('wise_ft', 'alphas')}: give at least one, each between 0 and 1.")
    if c.enabled and run_cfg.backbone.pretrained == "none":
        problems.append("WiSE-FT mixes the fine-tuned model with the pretrained one: choose a pretrained backbone.")
    return problems


register_method(MethodSpec.from_notes("wise_ft", config_cls=WiseFTConfig, build=lambda run_cfg, cfg: WiseFTHook(cfg),
                                       check=_check, order=90))  # last: after pruning made its masks permanent
