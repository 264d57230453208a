"""The one training loop. Methods plug in as hooks (engine.methods); they never fork the loop.

Read `train()` top to bottom: setup, then per epoch the training phase and the evaluation
phase, then the end-of-run evaluation and summary. Progress, metrics and the stop request go
through a `Reporter`, so the same loop serves the CLI, the dashboard's engine thread and tests.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from engine.attacks import autoattack_accuracy, robust_accuracy
from engine.augment import augment_batch, to_float
from engine.backbones import Classifier, LoadReport, build_model
from engine.config import RunConfig, resolve_path
from engine.corruptions import build_ood_suite
from engine.data import (DataSplits, ImageSet, ZipLimits, balanced_sample_indices, class_weights, load_dataset,
                         load_ood_dataset)
from engine.errors import StudioError
from engine.evaluate import autocast_ctx, confusion_matrix, ood_accuracy, predict
from engine.methods import build_hooks, restructure_model
from engine.metrics import imbalance_scores
from engine.methods.base import MethodHook
from engine.runs import save_checkpoint
from engine.schedules import schedule_fn


class StopRequested(Exception):
    """Raised inside the loop when the user asked the run to stop."""


class Reporter:
    """Where the loop sends what it observes. The default prints nothing and never stops."""

    def progress(self, **fields: Any) -> None:  # epoch, epochs, step, total_steps, images_per_sec, eta_s, phase
        pass

    def metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        pass

    def stream(self, key: str, point: dict[str, Any]) -> None:  # points a method publishes (live curves)
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class TrainContext:
    """What hooks can see and use. Fields are filled in during setup."""

    cfg: RunConfig
    model: Classifier
    device: torch.device
    amp_dtype: torch.dtype | None
    data: DataSplits
    reporter: Reporter
    run_dir: Path | None
    generator: torch.Generator
    # randomness drawn in the hot path (augmentation, attack starts) comes from a generator on the
    # training device: a CPU draw copied to the GPU would synchronise the host with the GPU each step
    device_generator: torch.Generator | None = None
    pretrained_state: dict[str, torch.Tensor] = field(default_factory=dict)  # model weights at the start
    train_images: torch.Tensor | None = None  # uint8 on the device
    train_labels: torch.Tensor | None = None
    ood_suite: dict = field(default_factory=dict)  # corruption -> severity -> uint8 val images
    ood_user: ImageSet | None = None
    optimizer: torch.optim.Optimizer | None = None
    stop_training: bool = False  # a method may end training early (e.g. a rollback); not a user stop
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # pruning: state-dict key -> 0/1 mask
    # The module the training forward goes through: the model itself, or its DistributedDataParallel
    # wrapper under torchrun (gradients are then averaged across processes). Methods that replace
    # the loss must use it for the forward whose loss is backpropagated.
    train_model: torch.nn.Module | None = None
    rank: int = 0
    world_size: int = 1
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    total_steps: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    def should_stop(self) -> bool:
        return self.reporter.should_stop()

    def evaluate_val(self, model: torch.nn.Module | None = None) -> float:
        m = model or self.model
        return predict(m, self.data.val.images, self.data.val.labels, self.device,
                       self.cfg.eval.eval_batch_size, self.amp_dtype, self.should_stop).acc


# ---- setup helpers -------------------------------------------------------------------------

def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def on_rank0(fn: Callable[[], Any]) -> Any:
    """Run `fn` on rank 0 only and hand its (picklable) result to every process: one decision for
    all, e.g. a pruning search whose trials would otherwise differ between GPUs by rounding."""
    rank, size = world()
    if size == 1:
        return fn()
    box = [fn() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(flag: bool, world_size: int) -> bool:
    """True on every process if it is True on any (a method's early stop must end all of them)."""
    if world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def pick_device(name: str, distributed: bool | None = None) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # torchrun: one GPU per process
    if distributed is None:
        distributed = world()[1] > 1
    if name in ("auto", "cuda") and torch.cuda.is_available() and distributed:
        if local_rank >= torch.cuda.device_count():
            raise StudioError(
                f"This machine has {torch.cuda.device_count()} GPU(s) but torchrun started a process for GPU "
                f"{local_rank}: use --nproc_per_node {torch.cuda.device_count()} (one process per GPU), "
                "or --device cpu to train with CPU processes."
            )
        return torch.device(f"cuda:{local_rank}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StudioError("The config asks for a CUDA GPU but none is available here. Use device: auto or cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise StudioError("The config asks for Apple's MPS device but it is not available here. Use device: auto.")
    return torch.device(name)


def pick_amp(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "off":
        return None  # CPU autocast is slower than fp32 for these models
    if mode == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def zip_limits(limits=None) -> ZipLimits:
    """The data loader's caps, with a shared server's per-image pixel limit when there is one."""
    if limits is not None and limits.max_image_pixels:
        return ZipLimits(max_image_pixels=limits.max_image_pixels)
    return ZipLimits()


def prepare_data(cfg: RunConfig, work_dir: Path, limits=None) -> DataSplits:
    d = cfg.data
    splits = load_dataset(resolve_path(d.source), work_dir, image_size=d.image_size, val_fraction=d.val_fraction,
                          test_fraction=d.test_fraction, seed=cfg.seed, min_images_per_class=d.min_images_per_class,
                          limits=zip_limits(limits), drop_duplicates=d.drop_duplicates)
    if d.train_per_class > 0:
        splits = subsample_train(splits, d.train_per_class, cfg.seed)
    return splits


def check_data_limits(cfg: RunConfig, data: DataSplits, limits) -> None:
    """A shared server's fair-use limits on dataset size and compute budget (epochs x images)."""
    from engine.security import LimitExceeded

    n = len(data.train) + len(data.val) + len(data.test)
    if limits.max_dataset_images and n > limits.max_dataset_images:
        raise LimitExceeded(f"The dataset has {n:,} images; this server allows at most {limits.max_dataset_images:,}.")
    budget = cfg.train.epochs * len(data.train)
    if limits.max_epoch_images and budget > limits.max_epoch_images:
        most = max(1, limits.max_epoch_images // max(len(data.train), 1))
        raise LimitExceeded(f"{cfg.train.epochs} epochs x {len(data.train):,} training images is over this server's "
                            f"budget of {limits.max_epoch_images:,} image-epochs per run: use at most {most} epochs.")


def subsample_train(splits: DataSplits, per_class: int, seed: int) -> DataSplits:
    """Keep `per_class` training images of each class (seeded), for data-scarcity studies."""
    g = torch.Generator().manual_seed(seed + 1)
    keep = []
    for c in range(len(splits.classes)):
        idx = (splits.train.labels == c).nonzero().flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    idx = torch.cat(keep).sort().values
    from dataclasses import replace

    return replace(splits, train=splits.train.subset(idx))


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
    groups = param_groups(model, cfg)
    if cfg.optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                           nesterov=cfg.optim.nesterov and cfg.optim.momentum > 0)


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


def robust_on(cfg: RunConfig) -> bool:
    """Robust accuracy is measured when asked for, and always when training adversarially."""
    return cfg.eval.robust or "adversarial" in cfg.enabled_methods()


# ---- the loop ------------------------------------------------------------------------------

@dataclass
class TrainResult:
    summary: dict[str, Any]
    context: TrainContext  # the trained model, its data and device, for methods' post-processing and tests


def train(cfg: RunConfig, reporter: Reporter | None = None, run_dir: Path | None = None,
          work_dir: Path | None = None, data: DataSplits | None = None, limits=None,
          distributed: bool = True) -> TrainResult:
    """Train one run. Raises StudioError (bad input, divergence) or StopRequested.

    Under torchrun the run is shared by all processes; `distributed=False` trains in this process
    alone (a search trial run by one rank)."""
    reporter = reporter or Reporter()
    t_start = time.perf_counter()
    work_dir = Path(work_dir or (run_dir or Path("runs")) / "data")

    # --- setup: device, threads, seed, data, model ---------------------------------------
    device = pick_device(cfg.train.device)
    amp_dtype = pick_amp(cfg.train.amp, device)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.train.deterministic
        torch.backends.cudnn.deterministic = cfg.train.deterministic
    reporter.progress(phase="loading data", epoch=0, epochs=cfg.train.epochs)
    if data is None:
        data = prepare_data(cfg, work_dir, limits)
    if limits is not None:
        check_data_limits(cfg, data, limits)
    num_classes = len(data.classes)
    torch.manual_seed(cfg.seed)
    model, load_report = build_model(cfg.backbone.name, num_classes, cfg.backbone.pretrained, cfg.backbone.checkpoint)
    model = restructure_model(model, cfg)  # e.g. AdaFilter's gated convolutions
    model.to(device)
    if device.type == "cuda" and cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    ctx = TrainContext(cfg=cfg, model=model, device=device, amp_dtype=amp_dtype, data=data, reporter=reporter,
                       run_dir=run_dir, generator=torch.Generator(device="cpu").manual_seed(cfg.seed))
    rank, world_size = world() if distributed else (0, 1)
    # ctx.generator orders the data and must stay in step on every process; augmentation and attack
    # starts draw per process (different shards, and shard sizes may differ by one)
    ctx.device_generator = (ctx.generator if device.type == "cpu" and world_size == 1
                            else torch.Generator(device=device).manual_seed(cfg.seed + 7919 * (rank + 1)))
    ctx.pretrained_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ctx.train_images = data.train.images.to(device)  # small data lives decoded on the device
    ctx.train_labels = data.train.labels.to(device)
    if cfg.eval.ood and cfg.eval.ood_severity_each_epoch:
        ctx.ood_suite = build_ood_suite(data.val.images, severities=(cfg.eval.ood_severity_each_epoch,), seed=cfg.seed)
    if cfg.data.ood_source:
        ctx.ood_user = load_ood_dataset(resolve_path(cfg.data.ood_source), work_dir, cfg.data.image_size, data.classes,
                                        limits=zip_limits(limits))
    hooks: list[MethodHook] = build_hooks(cfg)
    for h in hooks:
        h.setup(ctx)  # may change the model (AdaFilter) or precompute anchors (L2-SP, WiSE-FT)
    loss_owners = [h for h in hooks if type(h).compute_loss is not MethodHook.compute_loss]
    if len(loss_owners) > 1:
        raise StudioError(f"These methods cannot be combined: each replaces the loss ({', '.join(h.name for h in loss_owners)}).")
    frozen_blocks = model.trunk_blocks()[: cfg.optim.freeze_blocks]
    set_trunk_trainable(model, frozen_blocks, probe_only=False)  # fixed before DDP registers parameters
    ctx.rank, ctx.world_size = rank, world_size
    ctx.train_model = model
    if ctx.world_size > 1:
        if device.type == "cuda":  # one set of BN statistics across GPUs (SyncBatchNorm has no CPU kernel)
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ctx.train_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            # LP-FT leaves the trunk without gradients for a while; structural methods may skip branches
            find_unused_parameters=cfg.optim.linear_probe_epochs > 0 or "adafilter" in cfg.enabled_methods())
    if cfg.train.compile:
        ctx.train_model = torch.compile(ctx.train_model)
    ctx.optimizer = opt = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    lr_at = schedule_fn(cfg.optim)
    bs = cfg.train.batch_size
    n_train = len(data.train)
    ctx.steps_per_epoch = max(1, n_train // bs) if n_train >= bs else 1  # drop the ragged last batch
    ctx.total_steps = ctx.steps_per_epoch * cfg.train.epochs
    ctx.summary.update(load_report=load_report.to_dict(), num_params=sum(p.numel() for p in model.parameters()),
                       classes=data.classes, data_report=data.report.to_dict(), device=str(device),
                       effective_lr=cfg.effective_lr, methods=cfg.enabled_methods())
    best_val, history = -1.0, []
    images_seen, timed_seconds, timed_images = 0, 0.0, 0
    balance = cfg.data.class_balance  # imbalanced classes: weight the loss, or sample classes evenly
    loss_weight = class_weights(data.train.labels, len(data.classes)).to(device) if balance == "weighted_loss" else None

    for epoch in range(cfg.train.epochs):
        ctx.epoch = epoch
        probe_only = epoch < cfg.optim.linear_probe_epochs
        set_trunk_trainable(model, frozen_blocks, probe_only)

        # --- training phase ---------------------------------------------------------------
        model.train()
        set_frozen_bn_eval(model, frozen_blocks, probe_only)
        order = (balanced_sample_indices(data.train.labels, len(data.classes), n_train, ctx.generator)
                 if balance == "balanced_sampling" else torch.randperm(n_train, generator=ctx.generator)).to(device)
        loss_sum = torch.zeros((), device=device)
        correct_sum = torch.zeros((), device=device)
        t_epoch, epoch_images = time.perf_counter(), 0
        for i in range(ctx.steps_per_epoch):
            if reporter.should_stop():
                raise StopRequested()
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * lr_at(ctx.step / ctx.total_steps)
            idx = order[i * bs:(i + 1) * bs][ctx.rank::ctx.world_size]  # each process its share of the batch
            x_u8, y = ctx.train_images[idx], ctx.train_labels[idx]
            x = augment_batch(x_u8, ctx.device_generator) if cfg.train.augment else to_float(x_u8)
            if device.type == "cuda" and cfg.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_ctx(device, amp_dtype):
                owned = loss_owners[0].compute_loss(ctx, x, y) if loss_owners else None
                if owned is None:
                    logits = ctx.train_model(x)
                    loss = F.cross_entropy(logits.float(), y, weight=loss_weight, label_smoothing=cfg.optim.label_smoothing)
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
            correct_sum += (logits.detach().argmax(1) == y).sum()
            ctx.step += 1
            epoch_images += len(idx)
            images_seen += len(idx)
            if device.type == "cpu" or i % 10 == 9 or i == ctx.steps_per_epoch - 1:  # syncs: rare on GPU
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise StudioError(
                        f"Training diverged: the loss became {loss_value} at epoch {epoch + 1}, step {i + 1}. "
                        "Lower the learning rate (or the attack strength) and start again."
                    )
                elapsed = time.perf_counter() - t_epoch
                ips = epoch_images / max(elapsed, 1e-9)
                remaining = ctx.total_steps - ctx.step
                reporter.progress(phase="training", epoch=epoch + 1, epochs=cfg.train.epochs, step=ctx.step,
                                  total_steps=ctx.total_steps, images_per_sec=ips,
                                  eta_s=remaining * bs / max(ips, 1e-9), loss=loss_value)
                reporter.metrics(epoch + 1, ctx.step, {"loss": loss_value, "lr": opt.param_groups[0]["lr"]})
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_time = time.perf_counter() - t_epoch
        if ctx.world_size > 1:  # training metrics over all processes
            totals = torch.stack([loss_sum, correct_sum.float(), torch.tensor(float(epoch_images), device=device)])
            dist.all_reduce(totals)
            loss_sum, correct_sum, epoch_images = totals[0], totals[1], int(totals[2])
        # warm-up excluded: the first epoch's first steps include allocation and autotuning
        if epoch > 0 or cfg.train.epochs == 1:
            timed_seconds += epoch_time
            timed_images += epoch_images

        # --- evaluation phase ---------------------------------------------------------------
        reporter.progress(phase="evaluating", epoch=epoch + 1, epochs=cfg.train.epochs, step=ctx.step,
                          total_steps=ctx.total_steps)
        val = predict(model, data.val.images, data.val.labels, device, cfg.eval.eval_batch_size, amp_dtype,
                      reporter.should_stop)
        metrics = {"train_loss": float(loss_sum) / max(epoch_images, 1),
                   "train_acc": float(correct_sum) / max(epoch_images, 1),
                   "val_acc": val.acc, "val_loss": val.loss,
                   "images_per_sec": epoch_images / max(epoch_time, 1e-9)}
        if data.report.imbalance.get("imbalanced"):  # accuracy alone flatters a model that favours the big class
            metrics.update({f"val_{k}": v for k, v in imbalance_scores(data.val.labels, val.preds, len(data.classes)).items()})
        if ctx.ood_suite:
            by_c = ood_accuracy(model, ctx.ood_suite, data.val.labels, device, cfg.eval.eval_batch_size, amp_dtype,
                                reporter.should_stop)
            metrics["ood_acc"] = sum(by_c.values()) / len(by_c)
            metrics.update({f"ood/{k}": v for k, v in by_c.items()})
        if ctx.ood_user is not None:
            metrics["ood_user_acc"] = predict(model, ctx.ood_user.images, ctx.ood_user.labels, device,
                                              cfg.eval.eval_batch_size, amp_dtype).acc
        if robust_on(cfg):
            n = cfg.eval.robust_subset  # a fixed subset: the val split is already in seeded random order
            metrics["robust_acc"] = robust_accuracy(
                model, data.val.images[:n], data.val.labels[:n], device, cfg.eval.robust_eps,
                cfg.eval.robust_steps, batch_size=cfg.eval.eval_batch_size, amp_dtype=amp_dtype, seed=cfg.seed,
                should_stop=reporter.should_stop)
        for h in hooks:
            h.on_epoch_end(ctx, metrics)
        if reporter.should_stop():
            raise StopRequested()
        reporter.metrics(epoch + 1, ctx.step, metrics)
        history.append({"epoch": epoch + 1, **metrics})
        if run_dir is not None and ctx.rank == 0 and metrics["val_acc"] > best_val:
            save_checkpoint(run_dir / "best.safetensors", model.state_dict(), cfg, {"epoch": epoch + 1})
        best_val = max(best_val, metrics["val_acc"])
        if agree(ctx.stop_training, ctx.world_size):
            break

    # --- end of run: methods finish, final evaluation, summary -----------------------------
    for h in hooks:
        h.on_train_end(ctx)  # e.g. pruning makes masks permanent, WiSE-FT computes its curve
    reporter.progress(phase="final evaluation", epoch=cfg.train.epochs, epochs=cfg.train.epochs,
                      step=ctx.step, total_steps=ctx.total_steps)
    summary = ctx.summary
    summary.update(final_evaluation(ctx))
    if robust_on(cfg):
        summary["robust_acc_by_epoch"] = [h.get("robust_acc") for h in history]
    summary.update(
        status="finished", epochs=len(history), best_val_acc=best_val, history=history,
        train_images_per_sec=(timed_images / timed_seconds) if timed_seconds else None,
        wall_time_s=time.perf_counter() - t_start, platform=platform.platform(), torch=torch.__version__,
    )
    summary.update(world_size=ctx.world_size, images_per_process_per_epoch=len(range(ctx.rank, bs, ctx.world_size))
                   * ctx.steps_per_epoch)
    if run_dir is not None and ctx.rank == 0:
        save_checkpoint(run_dir / "last.safetensors", model.state_dict(), cfg, {"epoch": cfg.train.epochs})
    return TrainResult(summary, ctx)


def final_evaluation(ctx: TrainContext) -> dict[str, Any]:
    """Validation and test accuracy, per class, confusion matrices, and the full OOD suite (1-5)."""
    cfg, data, model, dev = ctx.cfg, ctx.data, ctx.model, ctx.device
    bsz, amp = cfg.eval.eval_batch_size, ctx.amp_dtype
    val = predict(model, data.val.images, data.val.labels, dev, bsz, amp)
    out: dict[str, Any] = {
        "val_acc": val.acc,
        "val_per_class_acc": dict(zip(data.classes, val.per_class_acc(data.val.labels, len(data.classes)))),
        "val_confusion": confusion_matrix(data.val.labels, val.preds, len(data.classes)),
        **{f"val_{k}": v for k, v in imbalance_scores(data.val.labels, val.preds, len(data.classes)).items()},
    }
    if len(data.test):
        test = predict(model, data.test.images, data.test.labels, dev, bsz, amp)
        out.update(test_acc=test.acc,
                   test_per_class_acc=dict(zip(data.classes, test.per_class_acc(data.test.labels, len(data.classes)))),
                   test_confusion=confusion_matrix(data.test.labels, test.preds, len(data.classes)),
                   **{f"test_{k}": v for k, v in imbalance_scores(data.test.labels, test.preds, len(data.classes)).items()})
    else:
        out["test_acc"] = None
    if cfg.eval.ood:
        suite = build_ood_suite(data.val.images, severities=(1, 2, 3, 4, 5), seed=cfg.seed)
        by_c = ood_accuracy(model, suite, data.val.labels, dev, bsz, amp)
        out["ood_acc_by_corruption"] = by_c
        out["ood_acc"] = sum(by_c.values()) / len(by_c)
    else:
        out["ood_acc"], out["ood_acc_by_corruption"] = None, {}
    if ctx.ood_user is not None:
        out["ood_user_acc"] = predict(model, ctx.ood_user.images, ctx.ood_user.labels, dev, bsz, amp).acc
    if robust_on(cfg):
        split = data.test if len(data.test) else data.val
        out["robust_acc"] = robust_accuracy(model, split.images, split.labels, dev, cfg.eval.robust_eps,
                                            cfg.eval.robust_steps, batch_size=bsz, amp_dtype=amp, seed=cfg.seed)
        out["robust_eval"] = {"attack": f"PGD-{cfg.eval.robust_steps}", "eps": cfg.eval.robust_eps,
                              "split": "test" if len(data.test) else "val"}
        if cfg.eval.autoattack:
            aa = autoattack_accuracy(model, split.images, split.labels, dev, cfg.eval.robust_eps, len(data.classes))
            out["autoattack_acc"] = aa  # None when torchattacks is not installed
    return out
