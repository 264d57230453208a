"""`optim.lr_auto`: the effective learning rate found by an LR range test before the run.

Li et al. (ICLR 2020) show that the best effective learning rate lr / (1 - momentum) for
fine-tuning depends on the data and on how far it is from the pretraining data, so no single
default fits. The range test (Smith 2017, "Cyclical learning rates", section 3.3; fastai's
`lr_find`) trains a copy of the run's model for a few steps while the learning rate grows
exponentially, and reads the loss against it: the loss falls while the rate helps and blows up
once it is too large. As fastai's classic suggestion, the pick is a tenth of the rate where the
smoothed loss was lowest (the minimum itself is already at the edge of divergence); a curve that
never fell by `MIN_DROP` keeps the config's own rate.

Budget: the test trains with the run's own batch size and takes at most `MAX_SHARE` of the run's
planned training steps (never fewer than `MIN_STEPS`, so very short runs may spend more), and
stops early once the loss has diverged. It runs at the job level before training, like the
pruning search (engine.pruning_search), and writes its pick into the config (`optim.lr`, with
`lr_auto` off), so the saved config reproduces the run; the summary records the curve and the pick.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from engine.augment import training_batch
from engine.config import RunConfig, with_section
from engine.contract import Reporter, StopRequested, SubReporter
from engine.data import DataSplits
from engine.devices import autocast_ctx, kept_threads
from engine.distributed import on_rank0
from engine.errors import StudioError
from engine.methods import METHODS
from engine.run_data import prepare_data
from engine.train import setup_run

MAX_SHARE = 0.15  # of the run's training steps
MIN_STEPS = 8  # fewer points cannot show where the loss turns
EFFECTIVE_RANGE = {"sgd": (1e-3, 3.0), "adamw": (1e-6, 1e-1)}  # swept effective rates, per optimiser
SMOOTHING = 0.7  # exponential moving average of the loss (fastai uses 0.98 over 100 steps; we have fewer)
DIVERGED = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum (fastai's rule)
MIN_DROP = 0.1  # a curve whose lowest smoothed loss is not this much below its start says nothing


@dataclass
class LRFindResult:
    """The range test's curve and pick. Rates are the run's optimiser learning rates (`lr`, before the
    head/trunk multipliers): the swept effective rate x (1 - momentum) for SGD, equal for AdamW."""

    lrs: list[float]
    losses: list[float]  # raw training loss of each step (nats)
    smoothed: list[float]  # bias-corrected exponential moving average of `losses`
    lr: float  # the pick
    effective_lr: float
    lr_at_min_loss: float
    sweep: tuple[float, float]  # the swept lr range (first, last planned step)
    steps: int  # steps taken (may be fewer than planned once the loss diverged)
    planned_steps: int
    run_steps: int  # the run's planned training steps, for the share
    seconds: float
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)
    kept: bool = False  # no rate lowered the loss enough: the config's own rate was kept

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (summary.json's "lr_find"), with the share of the run's steps the test
        took (`step_share`, 0-1)."""
        d = asdict(self)
        d["sweep"] = list(self.sweep)
        d["step_share"] = self.steps / max(self.run_steps, 1)
        return d


def momentum_factor(cfg: RunConfig) -> float:
    """lr = effective lr x this factor: 1 - momentum for SGD, 1 for AdamW (Li et al. 2020)."""
    return 1.0 - cfg.optim.momentum if cfg.optim.optimizer == "sgd" and cfg.optim.momentum < 1 else 1.0


def probe_config(cfg: RunConfig) -> RunConfig:
    """The config the range test trains: the run's model, data, optimiser and batch, without the
    methods (their losses and masks would measure something else), evaluations, LP-FT's probe and the
    head's rate cap (engine.optim.caps_head: the sweep must reach rates above it).
    SGD sweeps the effective rate with momentum 0: a momentum buffer needs about 1 / (1 - momentum)
    steps to reach its full step size, longer than a short test, and Li et al. (2020) show that in
    steady state lr / (1 - momentum) is what counts, so the rate found converts back exactly."""
    t = with_section(cfg, "optim", lr_auto=False, linear_probe_epochs=0, head_lr_cap=False)  # it sweeps the rate
    if cfg.optim.optimizer == "sgd":
        t = with_section(t, "optim", momentum=0.0, nesterov=False)
    t = with_section(t, "eval", ood=False, ood_severity_each_epoch=0, robust=False, autoattack=False)
    t = with_section(t, "data", ood_source="")
    for name in METHODS:
        if getattr(t.methods.get(name), "enabled", False):
            t = with_section(t, name, enabled=False)
    return t


def planned_steps(run_steps: int) -> int:
    """Range-test steps for a run of `run_steps` training steps: MAX_SHARE of them, at least MIN_STEPS."""
    return max(MIN_STEPS, int(MAX_SHARE * run_steps))


def lr_range_test(cfg: RunConfig, data: DataSplits, reporter: Reporter | None = None,
                  steps: int | None = None) -> LRFindResult:
    """Train a copy of `cfg`'s model on `data`'s training split for `steps` steps (default:
    `planned_steps` of the run) with the rate growing exponentially over `EFFECTIVE_RANGE`, and pick
    the rate. The run itself starts again from the pretrained weights. Raises StopRequested when the
    user stops, StudioError when no step gave a finite loss."""
    with kept_threads():  # the probe may set its own thread count (engine.devices.auto_cpu_threads)
        return _range_test(cfg, data, reporter, steps)


def _range_test(cfg: RunConfig, data: DataSplits, reporter: Reporter | None, steps: int | None) -> LRFindResult:
    t0 = time.perf_counter()
    sub = SubReporter(reporter, "finding the learning rate")
    ctx, _hooks = setup_run(probe_config(cfg), sub, None, None, data=data)
    run_steps = ctx.total_steps
    n = steps or planned_steps(run_steps)
    factor = momentum_factor(cfg)
    lo, hi = EFFECTIVE_RANGE[cfg.optim.optimizer]
    effs, losses, smoothed = _sweep(ctx, n, lo, hi, sub)
    if not smoothed:
        raise StudioError("Finding the learning rate failed: the loss was not a number from the first step. "
                          "Check the data, or set a learning rate by hand.")
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    pick_eff, notes, kept = max(effs[best] / 10.0, lo), [], False
    start = sum(losses[:max(2, n // 4)]) / len(losses[:max(2, n // 4)])  # a few batches: one is too noisy
    if smoothed[best] > (1 - MIN_DROP) * start:
        pick_eff, kept = cfg.effective_lr, True  # no rate helped measurably in so few steps: keep the config's own
        notes.append(f"The loss did not fall by {100 * MIN_DROP:.0f}% at any rate tried; the rate set by hand "
                     "(or by the preset) is kept.")
    elif best == len(smoothed) - 1 and len(smoothed) == n:
        notes.append("The loss still fell at the largest rate tried: the pick may be on the small side.")
    return LRFindResult(lrs=[e * factor for e in effs], losses=losses, smoothed=smoothed, lr=pick_eff * factor,
                        effective_lr=pick_eff, lr_at_min_loss=effs[best] * factor, sweep=(lo * factor, hi * factor),
                        steps=len(effs), planned_steps=n, run_steps=run_steps, seconds=time.perf_counter() - t0,
                        stopped_early=len(effs) < n, notes=notes, kept=kept)


def _sweep(ctx, n: int, lo: float, hi: float, reporter: Reporter) -> tuple[list[float], list[float], list[float]]:
    """The range test's steps: (rates, raw losses, smoothed losses) up to divergence. The rates are
    effective ones: the probe's optimiser runs without momentum (`probe_config`)."""
    cfg, opt, bs = ctx.cfg, ctx.optimizer, ctx.cfg.train.batch_size
    mults = [g["base_lr"] / cfg.optim.lr if cfg.optim.lr else 1.0 for g in opt.param_groups]
    ctx.model.train()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, n_train = 0.0, len(ctx.train_labels)
    order = torch.cat([torch.randperm(n_train, generator=ctx.generator) for _ in range(1 + n * bs // n_train)])
    for i in range(n):
        if ctx.should_stop():
            raise StopRequested()
        lr = lo * (hi / lo) ** (i / max(n - 1, 1))
        for g, m in zip(opt.param_groups, mults):
            g["lr"] = lr * m
        idx = order[i * bs:(i + 1) * bs].to(ctx.device)
        x = training_batch(ctx.train_images[idx], ctx.device_generator, cfg.train, cfg.data.fit)
        with autocast_ctx(ctx.device, ctx.amp_dtype):
            loss = F.cross_entropy(ctx.train_model(x).float(), ctx.train_labels[idx], weight=ctx.loss_weight,
                                   label_smoothing=cfg.optim.label_smoothing)
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        lrs.append(lr)
        losses.append(value)
        smoothed.append(avg / (1 - SMOOTHING ** (i + 1)))
        reporter.progress(phase="training", step=i + 1, total_steps=n, loss=value)
        if smoothed[-1] > DIVERGED * min(smoothed):
            break
    return lrs, losses, smoothed


def lr_find_sentence(found: dict[str, Any]) -> str:
    """A run's range test (`LRFindResult.to_dict()`, the summary's `lr_find`) in one plain sentence:
    the rate it found, or that it kept the rate set by hand."""
    if found.get("kept", any("is kept" in n for n in found.get("notes", []))):
        return (f"The learning-rate range test at the start ({found['steps']} steps) found no rate that lowered "
                f"the loss by {100 * MIN_DROP:.0f}%, so the rate set by hand (or by the preset), {found['lr']:.3g}, "
                "was kept.")
    floor = found["lr"] > found["lr_at_min_loss"] / 10 * (1 + 1e-6)  # a tenth of it lay below the sweep
    how = ("the lowest rate tried (a tenth of the rate where the loss was lowest lay below the range)" if floor
           else "a tenth of the rate where the loss was lowest")
    return (f"The learning rate {found['lr']:.3g} (effective {found['effective_lr']:.3g}) was found by a range "
            f"test at the start ({found['steps']} steps): {how}.")


def lr_into_config(cfg: RunConfig, datasets_dir, reporter: Reporter | None = None, limits=None,
                   data: DataSplits | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """With `optim.lr_auto`, run the range test and write its pick into `optim.lr` (auto switched
    off), so the saved config reproduces the run. Returns (config, summary entries: `lr_find`).
    Under torchrun every process calls it; rank 0 searches and the others receive its pick."""
    if not cfg.optim.lr_auto:
        return cfg, {}
    result = on_rank0(lambda: lr_range_test(
        cfg, data if data is not None else prepare_data(cfg, datasets_dir, limits), reporter).to_dict())
    return with_section(cfg, "optim", lr=result["lr"], lr_auto=False), {"lr_find": result}


__all__ = ["LRFindResult", "lr_range_test", "lr_into_config", "lr_find_sentence", "probe_config", "planned_steps", "momentum_factor"]
