"""Structured (channel) pruning that really shrinks a network, and its safe save format.

Channels are removed with Torch-Pruning's dependency graph (Fang et al., CVPR 2023, "DepGraph"):
removing output channel c of a convolution also removes input channel c of every layer that
reads it, its batch-norm entries, and, through residual additions, the same channel in every
coupled layer, so the smaller network is a plain dense network that runs faster everywhere.
Channels are ranked by the L1 norm of all their coupled weights (Li et al. 2017, "Pruning
Filters for Efficient ConvNets"); the head's outputs (the classes) are never touched.

A shrunken network no longer matches the registry architecture, and checkpoints are never
pickled modules. So a structured checkpoint is a safetensors state dict whose metadata holds,
besides the run config, the shape of every resized layer (`structured_arch`: module name ->
type, in/out channels, groups). `rebuild` builds the registry model and swaps in layers of those
shapes; engine.runs.load_structured does both and loads the weights strictly. The smaller model's
recovery fine-tune runs through the training loop (engine.methods.pruning).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import skip_init

from engine.checkpoints import save_checkpoint
from engine.errors import StudioError
from engine.evaluate import cpu_latency_ms

# Families whose layers Torch-Pruning can shrink and `rebuild` can restore (conv, linear, norm).
STRUCTURED_FAMILIES = ("resnet", "mobilenet", "efficientnet")


def _torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError:  # pragma: no cover - requirements.txt installs it
        raise StudioError("Structured pruning needs the torch-pruning package: pip install torch-pruning") from None
    return tp


def count_params(model: nn.Module) -> int:
    """Number of parameters (elements, trainable or not) of `model`."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_nonzero_params(model: nn.Module) -> int:
    """Number of parameter elements of `model` that are not exactly 0 (what unstructured pruning's zeros
    leave; equals count_params for a dense model)."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, image_size: int) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions and linear layers).

    Counted with forward hooks on the CPU, so it needs no extra package and counts exactly
    what the model runs: conv MACs = output elements x (in_channels / groups) x kernel area.
    """
    model = copy.deepcopy(model).eval().to("cpu")
    total = [0]

    def conv_hook(m: nn.Conv2d, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, inp, out):
        total[0] += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    model(torch.rand(1, 3, image_size, image_size))
    for h in handles:
        h.remove()
    return total[0]


def state_dict_bytes(model: nn.Module) -> int:
    """Size of the model's state dict as a safetensors file, in bytes."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    return len(save(tensors))


# ---- shrinking ----------------------------------------------------------------------------------

def shrink(model: nn.Module, channel_fraction: float, image_size: int, keep: list[nn.Module] | None = None,
           round_to: int | None = 8) -> nn.Module:
    """A smaller copy of `model` with `channel_fraction` of each layer's channels removed.

    Every prunable group (coupled channels) loses the same share, ranked by L1 magnitude;
    `keep` lists modules whose output channels stay (the classification head). `round_to`
    keeps channel counts at multiples of 8, which CPU and GPU kernels run faster.
    """
    tp = _torch_pruning()
    if not 0 < channel_fraction < 1:
        raise StudioError(f"The channel fraction must be between 0 and 1 (got {channel_fraction}).")
    small = copy.deepcopy(model).to("cpu").eval()
    small.to(memory_format=torch.contiguous_format)
    names = {id(m): n for n, m in model.named_modules()}  # `keep` names modules of the original
    ignored = [small.get_submodule(names[id(k)]) for k in (keep or []) if id(k) in names]
    example = torch.rand(1, 3, image_size, image_size)
    pruner = tp.pruner.MagnitudePruner(
        small, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=channel_fraction,
        ignored_layers=ignored, global_pruning=False, round_to=round_to,
    )
    pruner.step()
    for p in small.parameters():  # Torch-Pruning builds new Parameters: make them ordinary leaves again
        p.requires_grad_(True)
    return small


# ---- save and rebuild -------------------------------------------------------------------------

def architecture(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Module name -> the shape facts `rebuild` needs, for every conv, linear and norm layer."""
    arch: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            arch[name] = {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.Linear):
            arch[name] = {"type": "Linear", "in": m.in_features, "out": m.out_features}
        elif isinstance(m, nn.BatchNorm2d):
            arch[name] = {"type": "BatchNorm2d", "out": m.num_features}
        elif isinstance(m, nn.LayerNorm):
            arch[name] = {"type": "LayerNorm", "out": list(m.normalized_shape)}
    return arch


def _resized(m: nn.Module, facts: dict[str, Any]) -> nn.Module:
    """A fresh layer like `m` (same kernel, stride, padding, bias ...) with the recorded shape. Its weights are left
    unset (torch.nn.utils.skip_init: no random draw, the global RNG untouched) for `rebuild`'s caller, which loads
    every tensor next."""
    kind = facts["type"]
    if kind == "Conv2d" and isinstance(m, nn.Conv2d):
        if (m.in_channels, m.out_channels, m.groups) == (facts["in"], facts["out"], facts["groups"]):
            return m
        return skip_init(nn.Conv2d, facts["in"], facts["out"], m.kernel_size, m.stride, m.padding, m.dilation,
                         facts["groups"], m.bias is not None, m.padding_mode)
    if kind == "Linear" and isinstance(m, nn.Linear):
        if (m.in_features, m.out_features) == (facts["in"], facts["out"]):
            return m
        return skip_init(nn.Linear, facts["in"], facts["out"], m.bias is not None)
    if kind == "BatchNorm2d" and isinstance(m, nn.BatchNorm2d):
        if m.num_features == facts["out"]:
            return m
        return nn.BatchNorm2d(facts["out"], m.eps, m.momentum, m.affine, m.track_running_stats)
    if kind == "LayerNorm" and isinstance(m, nn.LayerNorm):
        if list(m.normalized_shape) == list(facts["out"]):
            return m
        return type(m)(facts["out"], m.eps, m.elementwise_affine)
    raise StudioError(f"The structured checkpoint does not fit this architecture ({kind} expected, found "
                      f"{type(m).__name__}). Was it made with another backbone?")


def rebuild(model: nn.Module, arch: dict[str, dict[str, Any]]) -> nn.Module:
    """Resize the layers of a registry-built `model` in place to the recorded `arch`. The resized convolutions and
    linear layers hold unset weights (whatever memory held) until the caller loads the checkpoint's tensors.
    Raises StudioError for a layer name or kind that the backbone does not have."""
    for name, facts in arch.items():
        try:
            m = model.get_submodule(name)
        except AttributeError:
            raise StudioError(f"The structured checkpoint names a layer `{name}` that this backbone does not "
                              "have.") from None
        new = _resized(m, facts)
        if new is not m:
            parent_name, _, last = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, last, new)
    return model


def save_structured(path: Path, model: nn.Module, cfg: Any, extra: dict | None = None) -> None:
    """safetensors state dict + run config + per-layer shapes (no pickled modules)."""
    save_checkpoint(path, model.state_dict(), cfg, {"structured_arch": architecture(model), **(extra or {})})


# ---- measuring ----------------------------------------------------------------------------------

def latency_pair(dense: nn.Module, small: nn.Module, image_size: int, batches: tuple[int, ...] = (1, 32),
                 rounds: int = 5, repeats: int = 5) -> dict[str, dict[str, float]]:
    """CPU latency (ms) of both models at each batch size, measured interleaved in this process.

    Each round times both models back to back (alternating which goes first), so a busy
    neighbour process slows both alike; the speedup is the median of the per-round ratios, and
    each model's time its best round (other processes can only add time, never remove it).
    Copies are measured: the models stay where they are. Each model is warmed up once per batch size (3 untimed
    passes), not before every round: a round after the first finds it warm. Times in milliseconds; a speedup of
    1.5 means the small model takes two thirds of the dense one's time.
    """
    a = copy.deepcopy(dense).to("cpu").eval()
    b = copy.deepcopy(small).to("cpu").eval()
    out: dict[str, dict[str, float]] = {}
    for batch in batches:
        ta, tb = [], []
        for r in range(rounds):
            first, second = ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta))
            for model, times in (first, second):
                times.append(cpu_latency_ms(model, image_size, batch=batch, repeats=repeats,
                                            warmup=3 if r == 0 else 0))
        ratios = sorted(x / y for x, y in zip(ta, tb) if y > 0)
        speedup = ratios[len(ratios) // 2] if ratios else math.nan
        out[f"batch_{batch}"] = {"before_ms": min(ta), "after_ms": min(tb), "speedup": speedup}
    return out


def describe(arch_before: dict, arch_after: dict) -> dict[str, list[int]]:
    """Layer -> [channels before, after] for the layers whose output channels changed."""
    out = {}
    for name, facts in arch_after.items():
        before = arch_before.get(name, {})
        if facts.get("type") in ("Conv2d", "Linear") and before.get("out") != facts.get("out"):
            out[name] = [before.get("out"), facts.get("out")]
    return out
