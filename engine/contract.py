"""The contract between the training loop and everything around it.

- `Reporter`: where the loop sends what it observes. Two metric channels: `step_metrics` (loss and
  learning rate of a logged step) and `epoch_metrics` (the evaluation of an epoch); `progress` for
  the live bar; `stream` for points a method publishes (WiSE-FT's curve, the pruning search).
- `TrainContext`: what a method hook can see and use during a run.
- `MethodHook`: the calls a method receives; every default does nothing.

The CLI, the dashboard's engine thread, a torchrun child, benchmarks and tests each implement a
`Reporter`; the loop (engine.train) and the methods (engine.methods) import only this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.config import RunConfig
from engine.data import DataSplits
from engine.evaluate import EvalSets


class StopRequested(Exception):
    """Raised inside the loop when the user asked the run to stop."""


class Reporter:
    """Where the loop sends what it observes. The default prints nothing and never stops."""

    # time.time() at which the work began, for summary.json's wall_time_s: the process's start for
    # the CLI (imports and decoding included), None = when the job starts (engine.jobs.execute_run)
    started_at: float | None = None

    def progress(self, **fields: Any) -> None:
        """Live state: phase, epoch, epochs, step, total_steps, images_per_sec, eta_s, loss."""

    def step_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        """A logged training step: `loss` (cross-entropy, nats) and `lr` (the head's learning rate)."""

    def epoch_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        """One epoch's evaluation: val_acc, ood_acc, robust_acc, train_loss, images_per_sec, and
        what methods add (per-layer sparsity, gate shares), all floats."""

    def stream(self, key: str, point: dict[str, Any]) -> None:
        """A point a method publishes (live curves), e.g. key "wise_ft" with {"alpha", "val_acc", ...}."""

    def should_stop(self) -> bool:
        """True when the user asked the run to stop; the loop checks it at each step and raises StopRequested. The
        default never stops."""
        return False


SUB_FIELDS = ("epoch", "epochs", "step", "total_steps", "images_per_sec", "loss")  # inner work's own (SubReporter)


class SubReporter(Reporter):
    """A reporter for work inside a run (a pruning-search trial, a recovery fine-tune, the learning-rate
    finder): progress goes to `parent` under `label` (e.g. "pruning search: trial 2/10 (training)"), the
    stop request passes through, and its metrics and streams stay out of the run's charts. Its own
    counters, speed and loss (SUB_FIELDS) go to the parent prefixed "sub_" beside `sub_label`, never over
    the run's: once the work is over the run's own are shown again (`shown_counters`); the time left passes
    through as it is."""

    def __init__(self, parent: Reporter | None, label: str):
        self.parent, self.label = parent, label
        self.started = False  # its first report clears what earlier inner work left (trial 1's counters in trial 2)

    def progress(self, **fields: Any) -> None:
        if self.parent is None:
            return
        inner = [fields["phase"]] if fields.get("phase") else []
        if fields.get("epoch") and fields.get("epochs"):  # its own epochs, not the run's: say which
            inner.append(f"epoch {fields['epoch']} of {fields['epochs']}")
        phase = self.label + (f" ({', '.join(inner)})" if inner else "")
        keep = {f"sub_{k}": fields.get(k) for k in SUB_FIELDS if k in fields or not self.started}
        self.started = True
        if "eta_s" in fields:  # the time left is the run's: the inner work's remaining steps, then the run's end
            keep["eta_s"] = fields["eta_s"]
        self.parent.progress(phase=phase, sub_label=self.label, **keep)

    def should_stop(self) -> bool:
        return self.parent is not None and self.parent.should_stop()


@dataclass(frozen=True)
class Counters:
    """The counters a progress display shows together: `whose` work they count (None: the run's own;
    else the inner work's name, "fine-tuning the smaller model"), its epoch of `epochs` (0 of 0 when that
    work counts no epochs, the learning-rate finder), its step of `total_steps` (0: not known yet), its
    speed (training images a second) and last step's loss (nats), None when not reported yet."""

    whose: str | None
    epoch: int
    epochs: int
    step: int
    total_steps: int
    images_per_sec: float | None = None
    loss: float | None = None


def shown_counters(progress: dict[str, Any], run_epochs: int = 0) -> Counters:
    """The epoch and step counters to show for `progress` (a run's merged progress fields): inside a
    SubReporter's phase the inner work's own (its step beside its epoch: a new user saw the run's "Epoch 20 / 20"
    beside the smaller model's "Step 39 / 70"), else the run's (`run_epochs` while the fields do not say yet).
    The inner work's leftover counters are ignored after it, so the run's "Step 700 / 700" comes back (and its
    speed and loss: the smaller model's stayed on the tiles through the final evaluation)."""
    label, phase = progress.get("sub_label"), str(progress.get("phase") or "")
    if label and phase.startswith(label):  # its epochs only once it counts one (the finder reports the run's total)
        counts = bool(progress.get("sub_epoch"))
        return Counters(label.split(": ")[-1], int(progress.get("sub_epoch") or 0),
                        int(progress.get("sub_epochs") or 0) if counts else 0,
                        int(progress.get("sub_step") or 0), int(progress.get("sub_total_steps") or 0),
                        progress.get("sub_images_per_sec"), progress.get("sub_loss"))
    return Counters(None, int(progress.get("epoch") or 0), int(progress.get("epochs") or run_epochs or 0),
                    int(progress.get("step") or 0), int(progress.get("total_steps") or 0),
                    progress.get("images_per_sec"), progress.get("loss"))


@dataclass
class EvalClock:
    """What the time-left estimate knows about evaluation: its cost in image forward passes per epoch
    and at the end (engine.evaluate.eval_passes), and the seconds per pass last measured (0 until
    the first epoch's evaluation has run). `method_passes`: what methods evaluate after training and
    before the final evaluation (WiSE-FT's curve), in the same passes; `method_train_epochs`: epochs of
    training they add after the run, counted at the run's own speed. Once an epoch has ended, its end's
    measured seconds and the finished epochs' training speed replace the estimates."""

    epoch_passes: float = 0.0
    final_passes: float = 0.0
    seconds_per_pass: float = 0.0
    method_passes: float = 0.0
    epoch_end_seconds: float = 0.0  # the last epoch's end as measured: evaluation, methods' checks, checkpoints
    train_images_per_sec: float = 0.0  # the finished whole-network epochs' speed (warm-up, head-only ones left out)
    method_train_epochs: float = 0.0  # epochs methods train after the run (structured pruning's smaller model)


@dataclass
class TrainContext:
    """What hooks can see and use. Built by `engine.train.setup_run`; the loop advances `epoch`
    and `step`. Methods write results into `summary` (saved as summary.json) and objects for tests
    and benchmarks into `artifacts` (e.g. "structured_model")."""

    cfg: RunConfig
    model: torch.nn.Module  # the Classifier, possibly restructured by a method (AdaFilter)
    # The module the training forward goes through: the model itself, or its DistributedDataParallel
    # wrapper under torchrun (gradients are then averaged across processes). Methods that replace
    # the loss must use it for the forward whose loss is backpropagated.
    train_model: torch.nn.Module
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype (engine.devices.pick_amp); None = fp32
    data: DataSplits  # uint8 images on the CPU; data.train is also on the device as train_images
    train_images: torch.Tensor  # uint8 [N, 3, S, S] on the device
    train_labels: torch.Tensor  # int64 [N] on the device
    eval_sets: EvalSets  # what each epoch is evaluated on (validation, corruption subset, user OOD, robust)
    reporter: Reporter
    run_dir: Path | None
    generator: torch.Generator  # CPU; orders the data, in step on every process
    # randomness drawn in the hot path (augmentation, attack starts) comes from a generator on the
    # training device: a CPU draw copied to the GPU would synchronise the host with the GPU each step
    device_generator: torch.Generator
    channels_last: bool = False  # model and training batches in channels_last (engine.devices.use_channels_last)
    rank: int = 0
    world_size: int = 1
    steps_per_epoch: int = 1
    total_steps: int = 1
    eval_clock: EvalClock = field(default_factory=EvalClock)
    loss_weight: torch.Tensor | None = None  # float [classes] on the device: data.class_balance = weighted_loss
    pretrained_state: dict[str, torch.Tensor] = field(default_factory=dict)  # theta_0: weights at the start
    optimizer: torch.optim.Optimizer | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # pruning: state-dict key -> 0/1 mask
    epoch: int = 0
    step: int = 0
    stop_training: bool = False  # a method may end training early (e.g. a rollback); not a user stop
    stop_reason: str = ""  # why, in plain words, when a method set stop_training ("" otherwise)
    weights_epoch: int | None = None  # the epoch whose weights the model holds, when a method rolled it back
    images_per_sec: float = 0.0  # the training speed last reported (an epoch's first step reports this one)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    # automatic CPU threads (engine.devices): the load since the last choice, and the most allowed
    cpu_load: Any = None
    cpu_threads_limit: int = 0
    early_threads_check: bool = False  # still to do: the check a few seconds into the first epoch

    def should_stop(self) -> bool:
        """True when the run's reporter says the user asked it to stop."""
        return self.reporter.should_stop()


class MethodHook:
    """Override what the method needs; every default does nothing.

    Order of calls in a run: `setup` once (after the model and data exist, before the
    optimiser is built, so a method may change the model), then per step `compute_loss`
    (at most one enabled method may own it), backward, `after_backward`, optimiser step,
    `after_step`; `on_epoch_end` after each evaluation; `on_train_end` once at the end.
    A method that keeps state across steps or epochs returns it from `state_dict` (saved with
    each epoch's resume point) and takes it back in `load_state_dict`, so that a stopped run
    continues exactly where it stopped (engine.resume).
    """

    name = "method"
    end_work = ""  # what `on_train_end` does, in the user's words, when it takes a while ("WiSE-FT's curve")

    def setup(self, ctx: TrainContext) -> None:
        """Once, after the model and data exist and before the optimiser is built: a method may change the model,
        prepare state and add its entries to `ctx.summary`. Raises StudioError for a setting the model cannot
        take."""
        pass

    def compute_loss(self, ctx: TrainContext, x: torch.Tensor, y: torch.Tensor) -> tuple[Any, Any] | None:
        """Return (loss, logits) to replace the plain cross-entropy step, or None.
        x: float [B, 3, S, S] in [0, 1] on the device; y: int64 [B]."""
        return None

    def after_backward(self, ctx: TrainContext) -> None:
        """After each step's backward pass, before the optimiser step: a method may change the gradients (L2-SP's
        pull, pruning's masks)."""
        pass

    def after_step(self, ctx: TrainContext) -> None:
        """After each optimiser step: a method may change the weights (pruning's masks) or step its own optimiser
        (AdaFilter's gate network)."""
        pass

    def on_epoch_end(self, ctx: TrainContext, metrics: dict[str, float]) -> None:
        """May add entries to `metrics` (they are stored and charted)."""

    def on_train_end(self, ctx: TrainContext) -> None:
        """Once, after the last epoch and before the final evaluation: a method's end work (WiSE-FT's curve, the
        smaller model's fine-tune) and its summary entries. May raise StopRequested when the user stops during
        that work."""
        pass

    def state_dict(self) -> dict[str, Any]:
        """What the method needs to continue a stopped run exactly, at an epoch's end: tensors,
        numbers, strings, None and lists or dicts of them only (engine.resume reads it back with
        torch.load(weights_only=True)). Default: nothing."""
        return {}

    def load_state_dict(self, ctx: TrainContext, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned, in a freshly set-up run (after `setup` and after the
        model's weights are restored, before the optimiser's state is; `state` is {} for a resume
        point written without it). Raises StudioError when `state` cannot be used."""


def owns_loss(hook: MethodHook) -> bool:
    """True when `hook` replaces the plain cross-entropy step."""
    return type(hook).compute_loss is not MethodHook.compute_loss
