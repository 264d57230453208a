"""The one training loop. Methods plug in as hooks (engine.methods); they never fork the loop.

Read it top to bottom: `setup_run` builds the run (device, data, model, hooks, optimiser),
`train_one_epoch` is the training phase, `evaluate_epoch` the evaluation phase, and `train` ties
them together on one screen, then runs the end-of-run evaluation. Progress, metrics and the stop
request go through a `Reporter` (engine.contract), so the same loop serves the CLI, the
dashboard's engine thread, torchrun processes, benchmarks and tests.

Style after nanoGPT's train.py (phases marked, no config mutated mid-run) and torchvision's
`train_one_epoch` (per-epoch work in its own function, timing reported as images/s).
"""

from __future__ import annotations

import contextlib
import math
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine.augment import training_batch
from engine.backbones import LoadReport, build_model
from engine.config import RunConfig, few_batches, with_section
from engine.contract import EvalClock, MethodHook, Reporter, StopRequested, TrainContext, owns_loss
from engine.data import DataSplits, balanced_sample_indices, class_weights
from engine.devices import (EARLY_THREADS_CHECK_S, KEEP_DURING_RUN, THREAD_SAMPLE_S, auto_cpu_threads, autocast_ctx,
                            kept_threads, pick_amp, pick_device, start_load_sample, use_channels_last)
from engine.distributed import agree, all_sum, process_random_stream
from engine.errors import StudioError
from engine.evaluate import (epoch_sets, epoch_sets_note, eval_passes, evaluate, final_passes, final_sets,
                             ood_by_corruption)
from engine.metrics import selection_key
from engine.methods.registry import build_hooks, restructure_model
from engine.optim import (build_optimizer, cap_head_lr, caps_head, head_feature_curvature, head_lr_bound, head_lr_words,
                          set_frozen_bn_eval, set_trunk_trainable)
from engine.run_data import check_data_limits, load_user_ood, prepare_data
from engine.checkpoints import save_checkpoint
from engine.resume import ENDED_FILE, RESUME_FILE, load_resume, save_resume
from engine.schedules import schedule_fn


@dataclass
class TrainResult:
    """What `train` returns: the run's summary (the future summary.json) and its TrainContext (the trained model,
    data and device, for methods' post-processing and tests)."""

    summary: dict[str, Any]
    context: TrainContext  # the trained model, its data and device, for methods' post-processing and tests


@dataclass
class EpochStats:
    """The training phase of one epoch, summed over all processes: cross-entropy (nats, summed over images), right
    predictions, images and wall time (seconds)."""

    loss_sum: float  # cross-entropy summed over the epoch's images (nats), all processes
    correct: float  # training predictions that were right, all processes
    images: int  # images trained on, all processes
    seconds: float  # wall time of the training phase


# ---- setup --------------------------------------------------------------------------------------

@dataclass
class StartModel:
    """A run's network as built from its starting weights, with the random state right after the build
    (the new head drew from it): what `setup_run` would have built itself, from the same point."""

    model: nn.Module
    load_report: LoadReport
    seed: int  # the run's seed, which seeded every device before the build
    rng_state: torch.Tensor  # torch.get_rng_state() after the build: uint8, CPU

    def take(self) -> tuple[nn.Module, LoadReport]:
        """(model, load report), the global random state set to where the build left it: every device seeded
        with `seed` (the build draws on the CPU alone), the CPU's state as the build left it."""
        torch.manual_seed(self.seed)
        torch.set_rng_state(self.rng_state)
        return self.model, self.load_report


def build_start(cfg: RunConfig, data: DataSplits) -> StartModel:
    """Build `cfg`'s backbone with a head for `data`'s classes from its starting weights
    (engine.backbones.build_model), seeded by `cfg.seed`. Raises StudioError for unusable weights
    (a checkpoint of another network, ImageNet weights offline)."""
    torch.manual_seed(cfg.seed)
    model, report = build_model(cfg.backbone.name, len(data.classes), cfg.backbone.pretrained,
                                cfg.backbone.checkpoint, classes=list(data.classes))
    return StartModel(model, report, cfg.seed, torch.get_rng_state())


def setup_run(cfg: RunConfig, reporter: Reporter, run_dir: Path | None, work_dir: Path,
              data: DataSplits | None = None, limits=None, world: tuple[int, int] = (0, 1),
              start: StartModel | None = None) -> tuple[TrainContext, list[MethodHook]]:
    """Device, data, model, hooks, optimiser: everything a run needs before its first step.

    `world` is (rank, world size) of the torchrun job this process belongs to ((0, 1) alone); `start`
    the model `build_start` made of this `cfg` and `data` already (the command line checks the user's
    weights before a run is recorded), so that they are not read twice."""
    rank, world_size = world
    device = pick_device(cfg.train.device, distributed=world_size > 1)
    threads, load = None, None
    auto_threads = device.type == "cpu" and world_size == 1 and cfg.train.threads == 0
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    elif auto_threads and torch.get_num_threads() > 1:
        load = start_load_sample()  # measured over the setup below: what other programs keep busy
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.train.deterministic
        torch.backends.cudnn.deterministic = cfg.train.deterministic
    reporter.progress(phase="loading data", epochs=cfg.train.epochs)  # a continued run keeps its epoch count
    given = data is not None
    data = data if data is not None else prepare_data(cfg, work_dir, limits)
    if limits is not None:
        check_data_limits(cfg, data, limits)
    model, load_report = (start or build_start(cfg, data)).take()
    cfg = _continue_with_kept_head(cfg, load_report)
    model = model.to(device)  # the head's input features measured on the network as built (engine.optim)
    curvature = head_feature_curvature(model, data.train.images, device) if caps_head(cfg) else 0.0
    model = restructure_model(model, cfg).to(device)  # e.g. AdaFilter's gated convolutions
    if auto_threads:  # the thread count before the run, less the CPUs other programs keep busy
        threads = auto_cpu_threads(sample=load, min_s=0.1 if given else THREAD_SAMPLE_S)  # given data: no decoding
        torch.set_num_threads(threads.threads)
        if threads.note():
            reporter.progress(cpu_threads_note=threads.note())
    amp_dtype = pick_amp(cfg.train.amp, device, cfg.data.image_size)  # CPU: bf16 where measured faster at this size
    channels_last = use_channels_last(cfg.train.channels_last, device, amp_dtype, cfg.data.image_size)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    # `generator` orders the data and must stay in step on every process; augmentation and attack
    # starts draw per process (different shards, and shard sizes may differ by one)
    device_generator = (generator if device.type == "cpu" and world_size == 1
                        else torch.Generator(device=device).manual_seed(cfg.seed + 7919 * (rank + 1)))
    bs, n_train = cfg.train.batch_size, len(data.train)
    steps_per_epoch = cfg.steps_per_epoch(n_train)
    ctx = TrainContext(
        cfg=cfg, model=model, train_model=model, device=device, amp_dtype=amp_dtype, channels_last=channels_last,
        data=data, train_images=data.train.images.to(device), train_labels=data.train.labels.to(device),
        eval_sets=epoch_sets(cfg, data, load_user_ood(cfg, work_dir, data.classes, limits)),
        reporter=reporter, run_dir=run_dir, generator=generator, device_generator=device_generator,
        rank=rank, world_size=world_size, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * cfg.train.epochs,
        pretrained_state={k: v.detach().clone() for k, v in model.state_dict().items()},
        loss_weight=class_weights(data.train.labels, len(data.classes)).to(device)
        if cfg.data.class_balance == "weighted_loss" else None)
    ctx.summary.update(load_report=load_report.to_dict(), num_params=sum(p.numel() for p in model.parameters()),
                       classes=data.classes, data_report=data.report.to_dict(), device=str(device),
                       cpu_threads=torch.get_num_threads() if device.type == "cpu" else None,
                       cpu_threads_note=threads.note() if threads is not None else "",
                       cpu_busy_at_start=threads.busy if threads is not None else None,
                       precision=str(amp_dtype).removeprefix("torch.") if amp_dtype else "float32",
                       channels_last=channels_last, epoch_eval=epoch_sets_note(ctx.eval_sets),
                       effective_lr=cfg.effective_lr, methods=cfg.enabled_methods(), world_size=world_size,
                       head_curvature=curvature,
                       probe_epochs=cfg.optim.linear_probe_epochs,  # head-only epochs run (a kept head: none)
                       images_per_process_per_epoch=len(range(rank, bs, world_size)) * steps_per_epoch,
                       train_images=n_train, steps_per_epoch=steps_per_epoch)  # optimiser steps, all processes
    reporter.progress(epoch_eval=ctx.summary["epoch_eval"], probe_epochs=cfg.optim.linear_probe_epochs)  # charts' notes
    advice = few_batches(cfg, n_train)  # the dashboard says it on the Model page; the command line hears it here
    if advice and rank == 0:
        ctx.summary["advice"] = [advice]
        reporter.progress(advice=advice)
    if threads is not None and threads.limit > 1:  # re-checked early in the run and at every epoch's end
        ctx.cpu_load, ctx.cpu_threads_limit, ctx.early_threads_check = start_load_sample(), threads.limit, True
    ctx.eval_clock = EvalClock(eval_passes(ctx.eval_sets), final_passes(cfg, data, ctx.eval_sets.ood_user))
    hooks = build_hooks(cfg)
    for h in hooks:
        h.setup(ctx)  # may change the model (AdaFilter) or precompute anchors (L2-SP, WiSE-FT)
    owners = [h.name for h in hooks if owns_loss(h)]
    if len(owners) > 1:
        raise StudioError(f"These methods cannot be combined: each replaces the loss ({', '.join(owners)}).")
    wrap_for_training(ctx)
    return ctx, hooks


def retune_threads(ctx: TrainContext, early: bool = False) -> None:
    """Automatic CPU threads, again at an epoch's end (or, `early`, EARLY_THREADS_CHECK_S seconds into
    the run's first epoch): from the load other programs put on the CPUs since the last choice (this
    process's own time left out), the thread count from here on. A change is recorded in the summary
    (`cpu_threads_changes`: epochs finished, threads, busy CPUs, and `early` for the early check) and
    the live note."""
    if ctx.cpu_load is None:
        return
    ctx.early_threads_check = False  # done, or overtaken by an epoch's end (a first epoch under 2 s)
    when = (f"as epoch {ctx.epoch + 1} started" if early else f"during epoch {ctx.epoch + 1}")
    choice = auto_cpu_threads(ctx.cpu_threads_limit, sample=ctx.cpu_load, min_s=0.0, keep=KEEP_DURING_RUN,
                              when=when)
    ctx.cpu_load = start_load_sample()
    if choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)
        ctx.summary.setdefault("cpu_threads_changes", []).append(
            {"after_epoch": ctx.epoch + (0 if early else 1), "threads": choice.threads, "busy": choice.busy,
             **({"early": True} if early else {})})
        ctx.summary.update(cpu_threads=choice.threads, cpu_threads_note=choice.note())
        ctx.reporter.progress(cpu_threads_note=choice.note())


def wrap_for_training(ctx: TrainContext) -> None:
    """Freeze what stays frozen, wrap the model for DDP / torch.compile, build the optimiser."""
    cfg, model, device = ctx.cfg, ctx.model, ctx.device
    set_trunk_trainable(model, frozen_blocks(ctx), probe_only=False)  # fixed before DDP registers parameters
    if ctx.world_size > 1:
        if device.type == "cuda":  # one set of BN statistics across GPUs (SyncBatchNorm has no CPU kernel)
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ctx.train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            # LP-FT leaves the trunk without gradients for a while; structural methods may skip branches
            find_unused_parameters=cfg.optim.linear_probe_epochs > 0 or "adafilter" in cfg.enabled_methods())
        process_random_stream(cfg.seed, ctx.rank)
    if cfg.train.compile:
        ctx.train_model = torch.compile(ctx.train_model)
    ctx.optimizer = build_optimizer(model, cfg)
    bound = head_lr_bound(ctx.summary.get("head_curvature") or 0.0, cfg.optim.momentum, cfg.optim.nesterov)
    if (before := cap_head_lr(ctx.optimizer, bound)) is not None:  # said by `say_head_lr` once a resume is loaded
        ctx.summary["head_lr_capped"] = {"lr": before, "to": bound, "curvature": ctx.summary["head_curvature"],
                                         "trunk_lr": cfg.optim.lr * cfg.optim.trunk_lr_mult}


def say_head_lr(ctx: TrainContext) -> None:
    """The new head's lowered rate (`summary["head_lr_capped"]`, engine.optim.head_lr_words) among the run's advice,
    on the command line and the Train page; nothing when it kept its rate (a run continued from a state saved before
    the cap keeps its saved rate: engine.resume.keep_saved_head_rate)."""
    if ctx.rank == 0 and (note := head_lr_words(ctx.summary, ctx.cfg.data.image_size)):
        ctx.summary["advice"] = [*ctx.summary.get("advice", []), note]
        ctx.reporter.progress(advice=note, head_lr_note=note)  # the command line's note, the Train page's


def _continue_with_kept_head(cfg: RunConfig, report) -> RunConfig:
    """A checkpoint whose head was kept (the same classes) is a trained model: LP-FT's head-only
    epochs would freeze its network to retrain a head that needs none, so they are skipped (the
    load report says so). WiSE-FT fits theta_0's head itself, which the report says instead."""
    if not report.head_kept:
        return cfg
    if "wise_ft" in cfg.enabled_methods():
        report.note += "; WiSE-FT then fits its own head on your images (theta_0's linear probe)"
        return cfg
    if cfg.optim.linear_probe_epochs:
        report.note += (f"; the {cfg.optim.linear_probe_epochs} head-only (linear-probe) epochs are skipped: "
                        "the kept head is already trained")
        return with_section(cfg, "optim", linear_probe_epochs=0)
    return cfg


def frozen_blocks(ctx: TrainContext) -> list[torch.nn.Module]:
    """The first `optim.freeze_blocks` trunk blocks, frozen for the whole run."""
    return ctx.model.trunk_blocks()[: ctx.cfg.optim.freeze_blocks]


# ---- one epoch ----------------------------------------------------------------------------------

def train_one_epoch(ctx: TrainContext, hooks: list[MethodHook], scaler: torch.amp.GradScaler, lr_at) -> EpochStats:
    """The training phase of epoch `ctx.epoch`: one pass over the training split in random order,
    each process its share of every batch. Raises StopRequested, or StudioError on divergence."""
    cfg, device, opt, bs = ctx.cfg, ctx.device, ctx.optimizer, ctx.cfg.train.batch_size
    owner = next((h for h in hooks if owns_loss(h)), None)
    probe_only = ctx.epoch < cfg.optim.linear_probe_epochs  # LP-FT: the head alone first
    set_trunk_trainable(ctx.model, frozen_blocks(ctx), probe_only)
    ctx.model.train()
    set_frozen_bn_eval(ctx.model, frozen_blocks(ctx), probe_only)
    n = len(ctx.train_labels)
    order = (balanced_sample_indices(ctx.data.train.labels, len(ctx.data.classes), n, ctx.generator)
             if cfg.data.class_balance == "balanced_sampling" else torch.randperm(n, generator=ctx.generator)).to(device)
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    if ctx.epoch == cfg.optim.linear_probe_epochs:  # the first whole-network epoch: the head-only speed is no guide
        ctx.images_per_sec = 0.0
    t0, images = time.perf_counter(), 0
    first = (t0, 0)  # (time, images) after the epoch's first step
    for i in range(ctx.steps_per_epoch):
        if ctx.should_stop():
            raise StopRequested()
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_at(ctx.step / ctx.total_steps)
        idx = order[i * bs:(i + 1) * bs][ctx.rank::ctx.world_size]  # each process its share of the batch
        y = ctx.train_labels[idx]
        x = training_batch(ctx.train_images[idx], ctx.device_generator, cfg.train, cfg.data.fit)
        if ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_ctx(device, ctx.amp_dtype):
            owned = owner.compute_loss(ctx, x, y) if owner is not None else None
            if owned is None:
                logits = ctx.train_model(x)
                loss = F.cross_entropy(logits.float(), y, weight=ctx.loss_weight,
                                       label_smoothing=cfg.optim.label_smoothing)
            else:
                loss, logits = owned
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        for h in hooks:
            h.after_backward(ctx)
        scaler.step(opt)
        scaler.update()
        for h in hooks:
            h.after_step(ctx)
        loss_sum += loss.detach().float() * len(idx)
        correct += (logits.detach().argmax(1) == y).sum()
        ctx.step, images = ctx.step + 1, images + len(idx)
        if ctx.early_threads_check and time.perf_counter() - t0 >= EARLY_THREADS_CHECK_S:
            retune_threads(ctx, early=True)  # once: a burst at the start (a browser drawing) is over by now
        if device.type == "cpu" or i % 10 == 9 or i == ctx.steps_per_epoch - 1:  # syncs: rare on GPU
            # every process trains its shard at the same pace: the job's speed, in the unit the summary uses
            # an epoch's first step alone (its start's overhead, a busy moment) read 3 img/s beside a true 70: the
            # speed from the second step on, the last epoch's until then
            if i == 0:
                first = (time.perf_counter(), images)  # the later steps' speed is counted from here
                rate = ctx.images_per_sec or ctx.world_size * images / max(first[0] - t0, 1e-9)
            else:
                rate = ctx.world_size * (images - first[1]) / max(time.perf_counter() - first[0], 1e-9)
                ctx.images_per_sec = rate
            report_step(ctx, float(loss.detach()), rate, i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    loss_total, correct_total, images_total = all_sum([loss_sum, correct, images], device, ctx.world_size)
    return EpochStats(loss_total, correct_total, int(images_total), seconds)


def report_step(ctx: TrainContext, loss: float, images_per_sec: float, i: int) -> None:
    """Progress and step metrics of a logged step; a non-finite loss ends the run with advice."""
    if not math.isfinite(loss):
        raise StudioError(
            f"Training diverged: the loss became {loss} at epoch {ctx.epoch + 1}, step {i + 1}. "
            "Lower the learning rate (or the attack strength) and start again.")
    lr = ctx.optimizer.param_groups[0]["lr"]
    eta = time_left(ctx, images_per_sec)
    ctx.reporter.progress(phase="training", epoch=ctx.epoch + 1, epochs=ctx.cfg.train.epochs, step=ctx.step,
                          total_steps=ctx.total_steps, images_per_sec=images_per_sec, eta_s=eta, loss=loss)
    ctx.reporter.step_metrics(ctx.epoch + 1, ctx.step, {"loss": loss, "lr": lr})


PROBE_SPEEDUP = 3.5  # a head-only (linear-probe) step's speed over a whole-network one's: 3.4-4.0 measured on
# the sample (ResNet-18, 64 px, quick and WiSE-FT demos); a full step costs a forward and a backward pass through
# the whole network, a head-only one about a forward pass


def time_left(ctx: TrainContext, images_per_sec: float) -> float:
    """Seconds until the run ends: the remaining head-only (LP-FT) steps at this epoch's speed `images_per_sec`
    (images a second) and the whole-network steps at the finished whole-network epochs' speed (the first
    epoch, warm-up, and the cheaper head-only ones left out; until there is one: the current epoch's, divided
    by PROBE_SPEEDUP in a head-only epoch), every remaining epoch's end as the last one took (evaluation, methods' checks
    such as the adversarial overfitting guard's attack, checkpoints; before the first: its evaluation's
    passes), the epochs methods train after the run (`EvalClock.method_train_epochs`, structured
    pruning's smaller model) at the run's speed, what methods evaluate after training
    (`EvalClock.method_passes`, WiSE-FT's curve) and
    the final evaluation, at the seconds per image pass measured in the last evaluation (before the
    first: a whole-network training image costs about three forward passes, at the speed above)."""
    clock, bs = ctx.eval_clock, ctx.cfg.train.batch_size
    probe = ctx.epoch < ctx.cfg.optim.linear_probe_epochs  # this epoch trains the head alone
    probe_steps = max(0, ctx.cfg.optim.linear_probe_epochs * ctx.steps_per_epoch - ctx.step)  # head-only, still to do
    # the whole network's speed: the finished epochs' (steadier than this epoch's start); in a head-only epoch,
    # before any whole-network epoch has run, this epoch's slowed by what a whole-network step adds
    speed = clock.train_images_per_sec or images_per_sec / (PROBE_SPEEDUP if probe else 1.0)
    train_s = probe_steps * bs / max(images_per_sec, 1e-9) + (ctx.total_steps - ctx.step - probe_steps) * bs / max(
        speed, 1e-9)
    per_pass = clock.seconds_per_pass or 1.0 / (3.0 * max(speed, 1e-9))  # a whole-network step: about 3 passes
    epoch_end = clock.epoch_end_seconds or per_pass * clock.epoch_passes  # measured once an epoch has ended
    after = clock.method_train_epochs * ctx.steps_per_epoch * bs / max(speed, 1e-9)
    return train_s + (ctx.cfg.train.epochs - ctx.epoch) * epoch_end + after + per_pass * (clock.method_passes
                                                                                          + clock.final_passes)


def evaluate_epoch(ctx: TrainContext, hooks: list[MethodHook], stats: EpochStats) -> dict[str, float]:
    """The evaluation phase: training loss/accuracy of the epoch, then `evaluate` on the epoch's
    sets; methods add their own entries (sparsity, gate shares). Raises StopRequested."""
    ctx.reporter.progress(phase="evaluating", epoch=ctx.epoch + 1, epochs=ctx.cfg.train.epochs, step=ctx.step,
                          total_steps=ctx.total_steps)
    t0 = time.perf_counter()
    measured = evaluate(ctx.model, ctx.eval_sets, ctx.device, ctx.cfg.eval.eval_batch_size, ctx.amp_dtype,
                        ctx.should_stop)
    ctx.eval_clock.seconds_per_pass = (time.perf_counter() - t0) / max(ctx.eval_clock.epoch_passes, 1.0)
    metrics = {"train_loss": stats.loss_sum / max(stats.images, 1), "train_acc": stats.correct / max(stats.images, 1),
               "images_per_sec": stats.images / max(stats.seconds, 1e-9), **measured}
    for h in hooks:
        h.on_epoch_end(ctx, metrics)
    if ctx.should_stop():
        raise StopRequested()
    ctx.reporter.epoch_metrics(ctx.epoch + 1, ctx.step, metrics)
    return metrics


# ---- the run ------------------------------------------------------------------------------------

def train(cfg: RunConfig, reporter: Reporter | None = None, run_dir: Path | None = None,
          work_dir: Path | None = None, data: DataSplits | None = None, limits=None,
          world: tuple[int, int] = (0, 1), resume: bool = False, start: StartModel | None = None) -> TrainResult:
    """Train one run and evaluate it. Returns the summary (also what summary.json holds) and the
    context. Raises StudioError (bad input, divergence) or StopRequested. Under torchrun the job
    passes this process's `world` (rank, world size); rank 0 alone writes checkpoints. With
    `resume`, continues the stopped run in `run_dir` from its last finished epoch (engine.resume)."""
    # the run may set its own thread count (the caller's comes back afterwards) and decodes into data_folder
    with kept_threads(), data_folder(work_dir, run_dir) as work_dir:
        return _train(cfg, reporter, run_dir, work_dir, data, limits, world, resume, start)


@contextlib.contextmanager
def data_folder(work_dir: Path | None, run_dir: Path | None) -> Iterator[Path]:
    """Where a run extracts and decodes its dataset: `work_dir`, else the run folder's data/, else
    (a library call with neither) a temporary folder deleted when the run ends, so that nothing is
    written where the caller happens to be."""
    if work_dir is not None or run_dir is not None:
        yield Path(work_dir or Path(run_dir) / "data")
        return
    with tempfile.TemporaryDirectory(prefix="studio-data-") as tmp:
        yield Path(tmp)


def _train(cfg: RunConfig, reporter: Reporter | None, run_dir: Path | None, work_dir: Path | None,
           data: DataSplits | None, limits, world: tuple[int, int], resume: bool,
           start: StartModel | None = None) -> TrainResult:
    t_start, reporter = time.perf_counter(), reporter or Reporter()
    # the time saved for a continued run counts from the job's start (the CLI: the process's), as wall_time_s does:
    # the first part's imports and data reading are part of the run's time too
    t_origin = t_start - max(0.0, time.time() - reporter.started_at) if reporter.started_at else t_start
    ctx, hooks = setup_run(cfg, reporter, run_dir, work_dir, data, limits, world, start)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
    lr_at = schedule_fn(cfg.optim, ctx.total_steps)
    start, history = load_resume(Path(run_dir or "."), ctx, scaler, hooks) if resume else (0, [])
    say_head_lr(ctx)
    timed = [0.0, 0]  # seconds and images of the timed epochs (the first is warm-up: allocation, autotuning)
    steady = [0.0, 0]  # the same, of the whole-network epochs (LP-FT's head-only ones are cheap): time left
    doing = ""  # after the epochs: the work under way, in words, for a stop's message
    try:
        for epoch in range(start, start if ctx.stop_training else cfg.train.epochs):  # (a method ended it: no more)
            ctx.epoch = epoch
            stats = train_one_epoch(ctx, hooks, scaler, lr_at)
            ended = time.perf_counter()
            if epoch > start or cfg.train.epochs - start == 1:
                timed = [timed[0] + stats.seconds, timed[1] + stats.images]
            if epoch > start and epoch >= cfg.optim.linear_probe_epochs:
                steady = [steady[0] + stats.seconds, steady[1] + stats.images]
                ctx.eval_clock.train_images_per_sec = steady[1] / steady[0]
            metrics = evaluate_epoch(ctx, hooks, stats)
            retune_threads(ctx)
            if run_dir is not None and ctx.rank == 0 and all(selection_key(metrics) > selection_key(h) for h in history):
                save_checkpoint(run_dir / "best.safetensors", ctx.model.state_dict(), cfg,
                                {"epoch": epoch + 1, "classes": list(ctx.data.classes)})
            history.append({"epoch": epoch + 1, **metrics})
            if run_dir is not None and ctx.rank == 0:  # a stop or a crash later can continue from here
                save_resume(run_dir, ctx, scaler, history,
                            ctx.summary.get("wall_time_before_s", 0.0) + time.perf_counter() - t_origin, hooks)
            ctx.eval_clock.epoch_end_seconds = time.perf_counter() - ended
            if agree(ctx.stop_training, ctx.world_size):
                break
        if len(history) < cfg.train.epochs:  # a method ended training (e.g. a rollback): said wherever the run is
            ctx.summary["ended_early"] = {"after_epoch": len(history), "planned": cfg.train.epochs,
                                          "reason": ctx.stop_reason, "weights_epoch": ctx.weights_epoch or len(history)}
        for h in hooks:  # a stop here (the smaller model's fine-tune) keeps the epochs: Continue redoes this part
            doing = h.end_work  # "" for quick work: the message's words then
            h.on_train_end(ctx)  # e.g. pruning makes masks permanent, WiSE-FT computes its curve
        doing = "the final evaluation"
        ctx.summary.update(final_evaluation(ctx))
    except StopRequested as stop:  # a stopped run keeps what it finished: its epochs and best checkpoint
        stop.summary = {**ctx.summary, "epochs": len(history), "history": history, "stopped_in": doing,
                        "end_work": [h.end_work for h in hooks if h.end_work],  # what Continue does again
                        "best_val_acc": max((h["val_acc"] for h in history), default=None)}
        raise
    if ctx.eval_sets.robust is not None:
        ctx.summary["robust_acc_by_epoch"] = [h.get("robust_acc") for h in history]
    ctx.summary.update(
        status="finished", epochs=len(history), best_val_acc=max(h["val_acc"] for h in history), history=history,
        train_images_per_sec=run_speed(timed, history),
        wall_time_s=ctx.summary.get("wall_time_before_s", 0.0) + time.perf_counter() - t_start,  # all parts
        platform=platform.platform(), torch=torch.__version__)
    if run_dir is not None and ctx.rank == 0:
        save_checkpoint(run_dir / "last.safetensors", ctx.model.state_dict(), cfg,
                        {"epoch": ctx.weights_epoch or len(history), "classes": list(ctx.data.classes)})
        (run_dir / RESUME_FILE).unlink(missing_ok=True)  # finished: nothing to continue
        (run_dir / ENDED_FILE).unlink(missing_ok=True)
    return TrainResult(ctx.summary, ctx)


def run_speed(timed: list, history: list[dict[str, Any]]) -> float | None:
    """The run's training speed (images a second) for its summary: of this part's timed epochs (`timed`:
    seconds, images; the first epoch, warm-up, left out), else, when this part trained none (continued after
    its last epoch), the mean of the earlier epochs' own speeds in `history` (the first left out too when there
    are others); None without any."""
    if timed[0]:
        return timed[1] / timed[0]
    speeds = [h["images_per_sec"] for h in (history[1:] or history) if h.get("images_per_sec")]
    return sum(speeds) / len(speeds) if speeds else None


def final_evaluation(ctx: TrainContext) -> dict[str, Any]:
    """Validation and test accuracy, per class, confusion matrices, the full OOD suite (severities
    1-5), the user's OOD set and robust accuracy on the test split: `evaluate` on `final_sets`.
    Raises StopRequested when a stop is asked for meanwhile (Continue evaluates again)."""
    clock, epochs = ctx.eval_clock, ctx.cfg.train.epochs
    ran = min(ctx.epoch + 1, epochs)  # the epochs trained: fewer than planned when a method ended training

    began = time.perf_counter()

    def on_part(what: str, done: int, total: int) -> None:  # its own progress bar, with time left
        if clock.seconds_per_pass:  # at the last evaluation's speed
            eta = clock.seconds_per_pass * clock.final_passes * (1 - done / total)
        else:  # none measured in this process (a run continued after its last epoch): the parts done so far
            eta = (time.perf_counter() - began) / done * (total - done) if done else None
        ctx.reporter.progress(phase="final evaluation", epoch=ran, epochs=epochs, part=what, part_done=done,
                              parts=total, eta_s=eta)

    on_part("building the corruption suite", 0, 1)
    sets = final_sets(ctx.cfg, ctx.data, ctx.eval_sets.ood_user)
    out = evaluate(ctx.model, sets, ctx.device, ctx.cfg.eval.eval_batch_size, ctx.amp_dtype, ctx.should_stop,
                   classes=ctx.data.classes, on_part=on_part)
    if ctx.should_stop():  # its figures are cut short: none of them is kept
        raise StopRequested()
    out.setdefault("test_acc", None)
    by_c = ood_by_corruption(out)
    for k in by_c:
        del out[f"ood/{k}"]
    out.update(ood_acc_by_corruption=by_c, ood_acc=out.get("ood_acc"))
    if any(f"{split}_by_colour" in out for split in ("val", "test")):  # how many of each kind it learnt from
        out["train_greyscale"] = [int(ctx.data.train.greyscale().sum()), len(ctx.data.train)]
    if sets.robust is not None:
        out["robust_eval"] = {"attack": sets.robust.attack, "eps": sets.robust.eps, "split": sets.robust.split}
    return out
