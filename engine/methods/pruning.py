"""Fine-Pruning (Tung, Muralidharan & Mori, BMVC 2017): fine-tune and compress in one run.

Magnitude pruning during fine-tuning. The share of zero weights rises from 0 to the target
along a schedule (the cubic one of Zhu & Gupta 2017, "To prune, or not to prune", by default:
fast at first, while the network still has much to spare, then slowly), over a span of the
run, and the rest of the run recovers at full sparsity. `scope: layer` prunes every layer to
the same share; `scope: global` ranks all weights together, so layers with smaller weights
lose more. Auto mode searches one fraction per stage with Bayesian optimisation (Optuna), as
the paper does, before the main fine-tune (engine.pruning_search).

Masks, kept simple: a 0/1 mask per pruned weight, applied to the gradient after backward and
to the weight after every optimiser step, so neither momentum nor weight decay can bring a
pruned weight back. The model itself stays a plain module (no weight_orig / weight_mask of
torch.nn.utils.prune), so every state dict, checkpoint and export is an ordinary one whose
zeros are already permanent; WiSE-FT multiplies its interpolated weights by the published
`ctx.masks` to keep the sparsity. Pruned: the weights of every convolution and linear layer
except the classification head (the head is small and every class depends on it; set
`prune_head` to include it). Biases and normalisation layers are never pruned.

Unstructured zeros make a model compressible but not faster on ordinary kernels. `structured`
additionally removes whole channels at the end of the run (engine.structured, Torch-Pruning):
a physically smaller network, briefly fine-tuned, measured (parameters, file size, CPU
latency) and saved as `structured.safetensors`.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn

import engine.structured as st
from engine.backbones import BACKBONES
from engine.chance import (answers_words, chance_finding, smaller_model_finding, smaller_model_summary,
                           val_test_gap_words)
from engine.config import setting_name, with_section
from engine.contract import MethodHook, SubReporter
from engine.errors import StudioError
from engine.evaluate import colour_groups, confusion_matrix, predict
from engine.metrics import selection_key
from engine.methods.registry import MethodSpec, register_method
from engine.optim import build_optimizer
from engine.schedules import schedule_fn
from engine.train import train_one_epoch

SCHEDULES = ("cubic", "linear", "one_shot")
MAX_STAGES = 5  # auto mode searches one fraction per stage; more would need many more trials


@dataclass(frozen=True)
class PruningConfig:
    """Pruning's settings (Fine-Pruning, Tung et al. 2017; the cubic schedule of Zhu & Gupta 2017): target sparsity
    (share of prunable weights at zero), the schedule and the share of the run it spans, the scope (per layer,
    global, or per-stage fractions), optional structured channel pruning with its own fine-tune, and the Bayesian
    search of per-stage fractions (trials, objective, sampler)."""

    enabled: bool = False
    target_sparsity: float = field(default=0.7, metadata={
        "label": "target sparsity", "min": 0.0, "max": 0.99, "step": 0.05,
        "help": "Share of the prunable weights that are zero at the end (0.7 = 70 percent)."})
    schedule: str = field(default="cubic", metadata={
        "label": "pruning schedule", "choices": list(SCHEDULES),
        "labels": {"cubic": "cubic (fast, then slow)", "linear": "linear (evenly)", "one_shot": "one shot (all at once)"},
        "help": "cubic (Zhu & Gupta 2017): prune fast at first, then slowly. linear: evenly. "
                "one_shot: everything at the start of the span."})
    start_fraction: float = field(default=0.0, metadata={
        "label": "start pruning at (share of the run)", "min": 0.0, "max": 1.0, "step": 0.05,
        "help": "0 prunes from the first step; 0.2 fine-tunes the dense network for the first fifth of the run, "
                "then starts removing weights."})
    end_fraction: float = field(default=0.75, metadata={
        "label": "reach the target at (share of the run)", "min": 0.0, "max": 1.0, "step": 0.05,
        "help": "The rest of the run fine-tunes at full sparsity, which wins accuracy back."})
    update_every: int = field(default=0, metadata={
        "label": "steps between mask updates (0 = automatic)", "min": 0, "max": 10000,
        "help": "0 = automatic (about 20 updates across the span)."})
    scope: str = field(default="layer", metadata={
        "label": "scope", "choices": ["layer", "global"],
        "labels": {"layer": "each layer alike", "global": "the whole network"},
        "help": "layer: every layer loses the same share. global: the smallest weights of the whole "
                "network go, wherever they are."})
    prune_head: bool = field(default=False, metadata={
        "label": "also prune the classification head", "help": "Off by default: the head is small and new.",
        "card": ("the classification head pruned too", "the classification head not pruned")})
    stage_fractions: tuple[float, ...] = field(default=(), metadata={
        "label": "per-stage fractions (optional)", "card_empty": "the target in every stage",
        "help": "One share per stage (e.g. 0.3, 0.5, 0.7, 0.8, 0.9) instead of one target; auto mode "
                "finds them. Empty = the target everywhere."})
    structured: bool = field(default=False, metadata={
        "label": "structured: remove channels at the end",
        "card": ("whole channels removed at the end (structured pruning)", "no channels removed (unstructured only)"),
        "help": "Removes whole channels (Torch-Pruning), so the exported model is really smaller and "
                "faster. ResNet, MobileNet and EfficientNet backbones."})
    channel_fraction: float = field(default=0.3, metadata={"shown_when": "structured",
        "label": "structured: share of channels removed", "min": 0.05, "max": 0.9, "step": 0.05,
        "help": "0.3 removes 30 percent of each layer's channels: about half the FLOPs."})
    structured_epochs: int = field(default=1, metadata={"shown_when": "structured",
        "label": "structured: fine-tune epochs after shrinking", "min": 0, "max": 50,
        "help": "After the run's epochs the channels are removed and the smaller model is fine-tuned this many "
                "more epochs (not counted in Epochs above; the live page says 'fine-tuning the smaller model'). "
                "Its accuracy is reported apart from the run's: 'Smaller model's test accuracy' on Results."})
    auto: bool = field(default=False, metadata={
        "label": "auto: search per-stage fractions",
        "card": ("per-stage fractions searched first (Bayesian optimisation)", "no search"),
        "help": "Bayesian optimisation (Optuna): short trial fine-tunes first, then the main run with the best "
                "setting found."})
    trials: int = field(default=10, metadata={"shown_when": "auto", "label": "auto: trials", "min": 2, "max": 200,
                                               "help": "Short fine-tunes the search tries, the first without pruning."})
    trial_epochs: int = field(default=1, metadata={"shown_when": "auto", "label": "auto: epochs per trial", "min": 1, "max": 20,
                                                    "help": "Each trial's length: longer trials judge better and cost more."})
    objective: str = field(default="score", metadata={"shown_when": "auto",
        "label": "auto: objective", "choices": ["score", "floor"],
        "labels": {"score": "accuracy + lambda x sparsity", "floor": "most sparsity above an accuracy floor"},
        "help": "What the search looks for: the best mix of accuracy and sparsity, or the most sparsity that "
                "keeps accuracy within a chosen drop of the unpruned trial."})
    lam: float = field(default=0.2, metadata={"shown_when": "objective=score",
        "label": "auto: lambda (worth of sparsity)", "min": 0.0, "max": 5.0, "step": 0.05,
        "help": "0.2: 10 more percent sparsity is worth 2 points of accuracy."})
    max_acc_drop: float = field(default=0.01, metadata={"shown_when": "objective=floor",
        "label": "auto: largest accuracy drop (floor)", "min": 0.0, "max": 1.0, "step": 0.005, "scale": 100,
        "unit": "points", "help": "Floor = accuracy of the dense trial minus this."})
    max_fraction: float = field(default=0.95, metadata={"shown_when": "auto",
        "label": "auto: largest fraction per stage", "min": 0.05, "max": 0.99, "step": 0.05,
        "help": "The most of one stage's weights the search may remove."})
    sampler: str = field(default="tpe", metadata={"shown_when": "auto",
        "label": "auto: sampler", "choices": ["tpe", "gp"],
        "help": "TPE (tree-structured Parzen estimator) or a Gaussian process, both seeded."})


# ---- which weights, in which stages ------------------------------------------------------------

@dataclass
class PrunableLayer:
    """A convolution's or Linear's weight that pruning masks: its state-dict key, its shown name, the parameter
    itself and the backbone stage it belongs to (the search's unit)."""

    key: str  # state-dict key of the weight, e.g. net.layer1.0.conv1.weight
    name: str  # shown name, e.g. layer1.0.conv1
    weight: nn.Parameter
    stage: int


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    out = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        out.append(level[0])
    return ".".join(out) or names[0]


def prunable_layers(model: nn.Module, prune_head: bool = False) -> tuple[list[PrunableLayer], list[str]]:
    """Conv and linear weights in forward order, each assigned to a stage; and the stage names.

    Stages are the backbone's trunk blocks (stem, layer1 ... for a ResNet), merged into at most
    MAX_STAGES contiguous groups; the head, when pruned, is a stage of its own.
    """
    head_ids = {id(m) for m in model.head.modules()}
    state_keys = set(model.state_dict().keys())
    blocks = model.trunk_blocks()
    block_of: dict[int, int] = {}
    for b, block in enumerate(blocks):
        for m in block.modules():
            block_of.setdefault(id(m), b)
    raw: list[tuple[str, str, nn.Parameter, int]] = []
    for mname, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or not isinstance(getattr(m, "weight", None), nn.Parameter):
            continue
        key = f"{mname}.weight"
        if key not in state_keys:
            continue
        if id(m) in head_ids:
            if prune_head:
                raw.append((key, mname, m.weight, -1))
        elif id(m) in block_of:  # the backbone's trunk only: not a method's side network (AdaFilter's gates)
            raw.append((key, mname, m.weight, block_of[id(m)]))
    used_blocks = sorted({b for *_, b in raw if b >= 0})
    n_groups = min(MAX_STAGES, len(used_blocks))
    group_of = {b: (i * n_groups) // len(used_blocks) for i, b in enumerate(used_blocks)}
    shown = {key: (mname[4:] if mname.startswith("net.") else mname) for key, mname, *_ in raw}
    block_name = {b: _common_prefix([shown[k] for k, *_, bb in raw if bb == b]) for b in used_blocks}
    layers = [PrunableLayer(key, shown[key], w, group_of[b] if b >= 0 else n_groups) for key, _, w, b in raw]
    stage_names = []
    for g in range(n_groups):
        names = [block_name[b] for b in used_blocks if group_of[b] == g]
        stage_names.append(names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}")
    if any(b < 0 for *_, b in raw):
        stage_names.append("head")
    return layers, stage_names


# ---- the schedule ------------------------------------------------------------------------------

def schedule_level(progress: float, schedule: str, start: float, end: float) -> float:
    """Share of the target reached at `progress` (0..1 of the run's steps): 0 -> 1.

    cubic (Zhu & Gupta 2017): s_t = s_f * (1 - (1 - t)^3), t the position inside the span.
    """
    if progress < start:
        return 0.0
    if schedule == "one_shot" or end <= start:
        return 1.0
    t = min(1.0, (progress - start) / (end - start))
    if schedule == "linear":
        return t
    return 1.0 - (1.0 - t) ** 3


@torch.no_grad()
def _threshold_mask(magnitude: torch.Tensor, k: int) -> torch.Tensor:
    """True for the weights that stay: all but the `k` smallest magnitudes (ties at the threshold go)."""
    if k <= 0:
        return torch.ones_like(magnitude, dtype=torch.bool)
    flat = magnitude.flatten()
    if flat.device.type == "mps":  # kthvalue is not implemented there
        flat = flat.cpu()
    thr = torch.kthvalue(flat.float(), min(k, flat.numel())).values.to(magnitude.device)
    return magnitude > thr


@torch.no_grad()
def weight_sparsity(layers: list[PrunableLayer]) -> tuple[float, dict[str, float]]:
    """(share of zero weights over all prunable weights, per layer)."""
    zeros, total, by_layer = 0, 0, {}
    for layer in layers:
        z = int((layer.weight == 0).sum())
        n = layer.weight.numel()
        zeros, total = zeros + z, total + n
        by_layer[layer.name] = z / n
    return (zeros / total if total else 0.0), by_layer


# ---- the hook ----------------------------------------------------------------------------------

class PruningHook(MethodHook):
    """Magnitude pruning during fine-tuning: raises the masks' sparsity along the schedule every `every` steps,
    keeps pruned weights and their gradients at zero, reports sparsity per epoch, and at the end prunes what the
    schedule left (a run cut short) and, when structured, makes and fine-tunes the smaller, channel-pruned model."""

    name = "pruning"

    def __init__(self, cfg: PruningConfig):
        self.cfg = cfg
        self.end_work = "the smaller model's fine-tune" if cfg.structured else ""
        self.layers: list[PrunableLayer] = []
        self.stage_names: list[str] = []
        self.fractions: list[float] | None = None  # per stage; None = one target (layer or global scope)
        self.masks: dict[str, torch.Tensor] = {}
        self.level = 0.0  # share of the schedule applied so far (0..1)
        self.every = 0  # steps between mask updates, fixed at the first step
        self.history: list[tuple] = []  # (epoch, val_acc, sparsity, val_loss); older resume points lack the loss
        self._stage_target: float | None = None

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, ctx) -> None:
        c = self.cfg
        self.layers, self.stage_names = prunable_layers(ctx.model, c.prune_head)
        if c.auto:  # the job runs the search before training and writes its result into the config
            raise StudioError("pruning.auto is resolved before training (engine.jobs): call train() with the "
                              "config that search_into_config returns.")
        if c.stage_fractions:
            if len(c.stage_fractions) != len(self.stage_names):
                raise StudioError(
                    f"{setting_name('pruning', 'stage_fractions')} has {len(c.stage_fractions)} values but "
                    f"{ctx.cfg.backbone.name} has "
                    f"{len(self.stage_names)} stages ({', '.join(self.stage_names)}): give one fraction per stage."
                )
            self.fractions = [float(f) for f in c.stage_fractions]
        if c.structured:  # the smaller model's fine-tune after the run, in the time left from the start
            ctx.eval_clock.method_train_epochs += recovery_cost(c)
        ctx.summary["pruning"] = {
            "scope": "stage" if self.fractions is not None else c.scope, "schedule": c.schedule,
            "target_sparsity": self.target(), "stages": self.stage_names, "stage_fractions": self.fractions,
            "pruned_layers": len(self.layers), "prunable_weights": sum(l.weight.numel() for l in self.layers),
            "head_pruned": c.prune_head,
        }

    def target(self) -> float:
        """Overall share of zero weights the run ends with."""
        if self.fractions is None:
            return self.cfg.target_sparsity
        if self._stage_target is None:
            n = sum(l.weight.numel() for l in self.layers)
            self._stage_target = sum(self.fractions[l.stage] * l.weight.numel() for l in self.layers) / max(n, 1)
        return self._stage_target

    # -- masks ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update_masks(self, ctx, level: float) -> None:
        """Masks for `level` of the schedule, never reviving an already pruned weight."""
        if self.fractions is None and self.cfg.scope == "global":
            mags = torch.cat([l.weight.detach().abs().flatten().float() for l in self.layers])
            k = round(level * self.cfg.target_sparsity * mags.numel())
            thr = -1.0  # keeps everything
            if k > 0:
                flat = mags if mags.device.type != "mps" else mags.cpu()  # kthvalue is not implemented on MPS
                thr = float(torch.kthvalue(flat, min(k, flat.numel())).values)
            del mags
            new = {l.key: l.weight.detach().abs() > thr for l in self.layers}
        else:
            new = {}
            for l in self.layers:
                share = self.fractions[l.stage] if self.fractions is not None else self.cfg.target_sparsity
                k = round(level * share * l.weight.numel())
                new[l.key] = _threshold_mask(l.weight.detach().abs(), k)
        for key, m in new.items():
            old = self.masks.get(key)
            self.masks[key] = m if old is None else (m & old)
            ctx.masks[key] = self.masks[key]
        self.level = level
        self.apply(ctx)

    @torch.no_grad()
    def apply(self, ctx) -> None:
        """Zero the masked weights in place (after anything that may have loaded other weights)."""
        for l in self.layers:
            m = self.masks.get(l.key)
            if m is not None:
                l.weight.mul_(m)

    # -- the loop's hooks ----------------------------------------------------------------------
    @torch.no_grad()
    def after_backward(self, ctx) -> None:
        if not self.masks:
            return
        for l in self.layers:
            if l.weight.grad is not None:
                l.weight.grad.mul_(self.masks[l.key])

    def after_step(self, ctx) -> None:
        if not self.layers or self.target() <= 0:  # structured only: no unstructured masks
            return
        if self.every == 0:  # the run's length is known from the first step on
            span = max(1, round((self.cfg.end_fraction - self.cfg.start_fraction) * ctx.total_steps))
            self.every = self.cfg.update_every or max(1, span // 20)
            ctx.summary["pruning"]["update_every_steps"] = self.every
        done = ctx.step + 1  # ctx.step counts the steps before this one
        level = schedule_level(done / max(ctx.total_steps, 1), self.cfg.schedule, self.cfg.start_fraction,
                               self.cfg.end_fraction)
        if level > self.level and (done % self.every == 0 or level >= 1.0 or self.level == 0.0):
            self.update_masks(ctx, level)
        elif self.masks:
            self.apply(ctx)

    def on_epoch_end(self, ctx, metrics: dict[str, float]) -> None:
        self.apply(ctx)  # a method may have loaded other weights (the adversarial rollback)
        overall, by_layer = weight_sparsity(self.layers)
        metrics["sparsity"] = overall
        for name, s in by_layer.items():
            metrics[f"pruning/sparsity/{name}"] = s
        self.history.append((ctx.epoch + 1, metrics.get("val_acc", math.nan), overall, metrics.get("val_loss")))
        ctx.reporter.stream("pruning_sparsity", {"epoch": ctx.epoch + 1, "sparsity": overall,
                                                 "target": self.target() * self.level,
                                                 "val_acc": metrics.get("val_acc")})

    def state_dict(self) -> dict[str, Any]:
        """The masks, how far the schedule got (`level`), the mask update interval and the epochs' history."""
        return {"masks": dict(self.masks), "level": self.level, "every": self.every,
                "history": [list(h) for h in self.history]}

    def load_state_dict(self, ctx, state: dict[str, Any]) -> None:
        if not state:
            return
        self.masks = {k: m.to(ctx.device) for k, m in state["masks"].items()}
        ctx.masks.update(self.masks)
        self.level, self.every = float(state["level"]), int(state["every"])
        self.history = [tuple(h) for h in state["history"]]
        if self.every:
            ctx.summary["pruning"]["update_every_steps"] = self.every

    def on_train_end(self, ctx) -> None:
        c = self.cfg
        info = ctx.summary.setdefault("pruning", {})
        if self.level < 1.0 and self.target() > 0:
            # The run ended before the span did (a stop by a method, a short run): prune the rest now.
            info["pruned_rest_at_end"] = 1.0 - self.level
            self.update_masks(ctx, 1.0)
        self.apply(ctx)
        overall, by_layer = weight_sparsity(self.layers)
        ctx.summary["sparsity"] = overall
        ctx.summary["sparsity_by_layer"] = by_layer
        if self.history:
            best = max(self.history, key=lambda h: (  # the epoch the loop keeps (engine.metrics.selection_key)
                *selection_key({"val_acc": h[1], "val_loss": h[3] if len(h) > 3 else None}), -h[0]))
            if best[2] < overall - 0.005:
                info["best_checkpoint_sparsity"] = best[2]
                info["note"] = (f"The best-epoch checkpoint (epoch {best[0]}) is only {best[2]:.0%} sparse: it "
                                "was saved before the target was reached. Export the last checkpoint.")
        if c.structured:
            structured_pruning(ctx, self)


# ---- structured pruning at the end -------------------------------------------------------------

def held_out_views(small: nn.Module, ctx) -> dict[str, Any]:
    """The channel-pruned model on the run's validation and test images: {"{split}_confusion": counts
    [true class][answer], "{split}_per_class_acc": {class name: fraction}, "{split}_by_colour" where the split has
    greyscale and colour pictures (engine.evaluate.colour_groups)} for each split with images,
    and "test_acc" (a fraction) when there are test images, measured as the run's own model is
    (engine.evaluate.predict, the run's batch size and precision)."""
    classes, out = list(ctx.data.classes), {}
    for name, split in (("val", ctx.data.val), ("test", ctx.data.test)):
        if not len(split):
            continue
        res = predict(small, split.images, split.labels, ctx.device, ctx.cfg.eval.eval_batch_size, ctx.amp_dtype)
        out[f"{name}_confusion"] = confusion_matrix(split.labels, res.preds, len(classes))
        out[f"{name}_per_class_acc"] = dict(zip(classes, res.per_class_acc(split.labels, len(classes))))
        if (by_colour := colour_groups(split, res.preds)) is not None:
            out[f"{name}_by_colour"] = by_colour
        if name == "test":
            out["test_acc"] = res.acc
    return out


FINE_TUNE_STREAM = "structured_fine_tune"  # reporter stream: {"epoch", "val_acc", "before", "epochs"} per point


def structured_pruning(ctx, hook: PruningHook) -> None:
    """Remove channels from the fine-tuned model, fine-tune it briefly, measure it and save it.

    The run's own model (`last.safetensors`) stays the registry architecture; the smaller one
    is an extra artefact, `structured.safetensors`, reloaded by engine.runs.load_structured.
    """
    c, cfg, model = hook.cfg, ctx.cfg, ctx.model
    size = cfg.data.image_size
    ctx.reporter.progress(phase="structured pruning: removing channels", epoch=cfg.train.epochs,
                          epochs=cfg.train.epochs, step=ctx.step, total_steps=ctx.total_steps)
    small = st.shrink(model, c.channel_fraction, size, keep=[model.head]).to(ctx.device)
    unstructured = hook.target() > 0
    small_keys = {f"{n}.weight" for n, m in small.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    masks = {k: (v != 0) for k, v in small.state_dict().items() if unstructured and k in hook.masks and k in small_keys}

    def accuracy(m: nn.Module, split) -> float:
        return predict(m, split.images, split.labels, ctx.device, cfg.eval.eval_batch_size, ctx.amp_dtype).acc

    acc_shrunk, dense_val = accuracy(small, ctx.data.val), accuracy(model, ctx.data.val)
    ctx.eval_clock.method_train_epochs = max(0.0, ctx.eval_clock.method_train_epochs - recovery_cost(c))  # now
    # drawn live on the Train page as each epoch ends (its charts stayed at the run's epochs for 10 more)
    ctx.reporter.stream(FINE_TUNE_STREAM, {"epoch": 0, "val_acc": acc_shrunk, "before": dense_val,
                                           "epochs": c.structured_epochs})

    done: list[float] = []

    def measured(m: nn.Module) -> float:
        done.append(accuracy(m, ctx.data.val))
        ctx.reporter.stream(FINE_TUNE_STREAM, {"epoch": len(done), "val_acc": done[-1], "before": dense_val,
                                               "epochs": c.structured_epochs})
        return done[-1]

    curve = recover(ctx, small, masks, c.structured_epochs, measured)
    ctx.reporter.progress(phase="structured pruning: measuring CPU latency")
    val_acc = curve[-1] if curve else accuracy(small, ctx.data.val)
    test_before = accuracy(model, ctx.data.test) if len(ctx.data.test) else None
    inspect = held_out_views(small, ctx)  # its own confusion matrices: Results shows them beside the run's
    test_acc = inspect.pop("test_acc", None)
    lat = st.latency_pair(model, small, size, rounds=3)
    macs_before, macs_after = st.count_macs(model, size), st.count_macs(small, size)
    params_before, params_after = st.count_params(model), st.count_params(small)
    info = {
        "channel_fraction": c.channel_fraction, "fine_tune_epochs": c.structured_epochs,
        "params_before": params_before, "params_after": params_after,
        "nonzero_after": st.count_nonzero_params(small),  # it keeps the run's zeros where sparsity_kept
        "macs_before": macs_before, "macs_after": macs_after, "flops_ratio": macs_after / max(macs_before, 1),
        "file_bytes_before": st.state_dict_bytes(model), "file_bytes_after": st.state_dict_bytes(small),
        "latency_ms": lat, "latency_threads": torch.get_num_threads(), "image_size": size,
        "val_acc_before": dense_val, "val_acc_shrunk": acc_shrunk, "val_acc": val_acc, "test_acc": test_acc,
        "test_acc_before": test_before, "fine_tune_val_acc": [acc_shrunk, *curve],  # [i]: after i epochs
        "sparsity_kept": unstructured, "channels": st.describe(st.architecture(model), st.architecture(small)),
        **inspect,
    }
    if ctx.run_dir is not None and ctx.rank == 0:
        st.save_structured(ctx.run_dir / "structured.safetensors", small, cfg,
                           {"val_acc": val_acc, "num_classes": len(ctx.data.classes)})
        info["file"] = "structured.safetensors"
    ctx.summary["structured"] = info
    ctx.summary.update(params_before=params_before, params_after=params_after,
                       latency_speedup=lat["batch_1"]["speedup"],
                       latency_speedup_batch32=lat.get("batch_32", {}).get("speedup"))
    ctx.artifacts["structured_model"] = small  # for tests and the benchmark


def nonzero_params(summary: dict) -> int | None:
    """Parameters left non-zero by unstructured pruning: num_params less the zeros (summary["sparsity"], a fraction
    of summary["pruning"]["prunable_weights"]); None for a run without pruning's figures."""
    prunable = (summary.get("pruning") or {}).get("prunable_weights")
    sparsity, total = summary.get("sparsity"), summary.get("num_params")
    if not all(isinstance(v, (int, float)) for v in (prunable, sparsity, total)) or not sparsity:
        return None
    return int(round(total - sparsity * prunable))


def smaller_model_warning(summary: dict) -> str | None:
    """The warning for a channel-pruned model at or near guessing (engine.chance.smaller_model_finding on
    `summary`, a finished run's), then what it means: with its validation accuracy clearly above guessing
    where test is not, that the two splits disagree (engine.chance.val_test_gap_words where the gap is
    beyond chance) and more held-out images would tell; otherwise that its answers are no better than
    guesses and the two settings that change it, as messages name settings. None when there is no smaller
    model or it clearly learnt. A new user's smaller model answered at guessing beside a green "Finished."
    and was Try it's pick; another's read 41.7% on 12 test images and 91.7% on validation, and the warning
    spoke of test alone beside a claim line and a chart of validation."""
    found = smaller_model_finding(summary)
    if found is None:
        return None
    small = smaller_model_summary(summary)
    val = small.get("val_acc")
    if found.split == "test" and isinstance(val, float) and chance_finding({**small, "test_acc": None}) is None:
        gap = val_test_gap_words(small)
        return (f"{found.text} On the validation images it scores {100 * val:.1f}%, clearly above guessing"
                + (f". {gap}" if gap else ": the two held-out splits disagree.")
                + " Which holds for new images is open: more held-out images per class would tell; try it on "
                  "your own images before relying on it.")
    return (f"{found.text} {answers_words(found.maybe)} Use the full-size model, or remove fewer channels "
            f"('{setting_name('pruning', 'channel_fraction')}') or fine-tune the smaller model longer "
            f"('{setting_name('pruning', 'structured_epochs')}').")


class KeepMasks(MethodHook):
    """Keeps unstructured zeros at zero while the channel-pruned model recovers."""

    name = "pruning masks"

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor]):
        params = dict(model.named_parameters())
        self.masked = [(params[k], m.to(params[k].device)) for k, m in masks.items() if k in params]

    @torch.no_grad()
    def after_backward(self, ctx) -> None:
        for p, m in self.masked:
            if p.grad is not None:
                p.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, ctx) -> None:
        for p, m in self.masked:
            p.mul_(m)


def recovery_cost(c: PruningConfig) -> float:
    """The smaller model's fine-tune (`structured_epochs`) in epochs of the run's own model, for the time
    left: a convolution keeps about (1 - channel_fraction)^2 of its multiply-adds when a share of its
    input and output channels goes."""
    return c.structured_epochs * (1.0 - c.channel_fraction) ** 2


def recover(ctx, small: nn.Module, masks: dict[str, torch.Tensor], epochs: int,
            measure: Callable[[nn.Module], float] | None = None) -> list[float]:
    """Fine-tune the channel-pruned model for `epochs` through the training loop's own epoch
    (engine.train.train_one_epoch): SGD at the run's learning rate, cosine to zero, plain
    cross-entropy, the run's augmentation; `masks` keep unstructured zeros at zero. Removing
    channels at once costs accuracy that a short fine-tune wins back (Li et al. 2017). Returns
    `measure(small)` (an accuracy, a fraction) after each epoch, in eval mode; [] without `measure`."""
    curve: list[float] = []
    if epochs <= 0:
        return curve
    rcfg = with_section(with_section(ctx.cfg, "train", epochs=epochs, compile=False), "optim", schedule="cosine",
                        linear_probe_epochs=0, freeze_blocks=0, label_smoothing=0.0, optimizer="sgd",
                        head_lr_mult=1.0, trunk_lr_mult=1.0)
    steps = max(1, len(ctx.train_labels) // rcfg.train.batch_size)
    # its own steps at its own speed, no evaluation between its epochs, then the rest of the run's end
    clock = replace(ctx.eval_clock, epoch_passes=0.0, epoch_end_seconds=0.0, train_images_per_sec=0.0)
    rctx = replace(ctx, cfg=rcfg, model=small, train_model=small, optimizer=build_optimizer(small, rcfg),
                   eval_clock=clock,
                   reporter=SubReporter(ctx.reporter, "structured pruning: fine-tuning the smaller model"),
                   rank=0, world_size=1, steps_per_epoch=steps, total_steps=steps * epochs, epoch=0, step=0,
                   masks={}, summary={}, artifacts={})
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
    for epoch in range(epochs):
        rctx.epoch = epoch
        train_one_epoch(rctx, [KeepMasks(small, masks)], scaler, schedule_fn(rcfg.optim, rctx.total_steps))
        if measure is not None:
            small.eval()
            curve.append(measure(small))
    small.eval()
    return curve


# ---- registration --------------------------------------------------------------------------------

def _check(run_cfg, c: PruningConfig) -> list[str]:
    """What the fields' metadata cannot say (their bounds and choices are checked from it)."""
    problems = []
    if c.start_fraction > c.end_fraction:
        problems.append(f"'{setting_name('pruning', 'start_fraction')}' ({c.start_fraction:g}) is after "
                        f"'{setting_name('pruning', 'end_fraction')}' ({c.end_fraction:g}): pruning must start "
                        "before it reaches its target.")
    if any(not 0 <= f < 1 for f in c.stage_fractions):
        problems.append(f"{setting_name('pruning', 'stage_fractions')}: each share must be at least 0 and below 1 "
                        "(e.g. 0.3, 0.5, 0.7).")
    if c.structured and c.enabled:
        spec = BACKBONES.get(run_cfg.backbone.name)
        if spec is not None and spec.family not in st.STRUCTURED_FAMILIES:
            problems.append(f"Structured pruning works with ResNet, MobileNet and EfficientNet backbones, not "
                            f"{run_cfg.backbone.name}: switch '{setting_name('pruning', 'structured')}' off or pick one of those.")
        if importlib.util.find_spec("torch_pruning") is None:
            problems.append("Structured pruning needs the torch-pruning package: pip install torch-pruning.")
        if "adafilter" in run_cfg.enabled_methods():
            problems.append("Structured pruning cannot be combined with AdaFilter (its gates are sized to the "
                            "channels): switch one of them off.")
    return problems


register_method(MethodSpec.from_notes("pruning", config_cls=PruningConfig, build=lambda run_cfg, cfg: PruningHook(cfg),
                                       check=_check, order=60))
