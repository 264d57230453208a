"""AdaFilter (Guo, Li, Wang & Rosing, AAAI 2020): per-example, per-filter choice between the
frozen pretrained filters and a fine-tuned copy.

Every convolution in a ResNet's residual blocks (conv1..conv3 and the downsample shortcut)
becomes a `GatedConvBN`: the pretrained filters (a frozen buffer) and a fine-tuned copy (a
parameter, starting equal), each followed by its own batch norm (gated BN). For every example a
binary gate per output channel picks which of the two produces that channel:

    out = g * BN_ft(conv_ft(x)) + (1 - g) * BN_pre(conv_pre(x)),   g in {0, 1} per (example, filter)

so g = 0 everywhere computes the pretrained network and g = 1 everywhere a plainly fine-tuned one
with the same weights (both exactly, bit for bit). The gates come from one `GateNetwork` shared
by all layers: global-average-pooled input of the layer (the previous layer's activations) ->
per-layer linear projection -> one LSTM cell whose state runs from layer to layer within a
forward pass -> per-layer linear map to one logit per filter. Forward: binary; backward: the
straight-through estimator on a (Gumbel-)sigmoid, Gumbel noise and temperature in training only.
At evaluation the gates are binary as in the paper, or (`eval_gates: expected`) the probabilities,
which mix the two copies as the sampled training gates do on average.

The gate gradient is (fine-tuned - pretrained output) x d loss / d output: zero at the start, when
both copies are equal, and 1e-5..1e-3 per step in CPU-sized runs (recorded per layer and epoch:
`adafilter/gate_grad/<layer>`). The gate network therefore steps by Adam by default
(`gate_optimizer`), which follows a small but consistent gradient; at the run's SGD lr it never moved.

Choices the paper leaves open, and what we chose, are listed in assets/methods/adafilter.md.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.augment import to_float
from engine.config import setting_name
from engine.errors import StudioError
from engine.devices import autocast_ctx
from engine.methods.registry import MethodSpec, register_method
from engine.contract import MethodHook

GATE_ATTR = "adafilter_gate"  # where the shared gate network hangs on the Classifier (state-dict prefix)


@dataclass(frozen=True)
class AdaFilterConfig:
    """AdaFilter's settings (Guo et al., AAAI 2020): the recurrent gate network's size, the gates' temperature and
    sampling in training (Gumbel noise, straight-through), how the gate network learns (its optimiser and
    learning-rate multiplier), where the gates start, the gated layers' learning rate, gated batch norm, the
    optional sparsity penalty and the test-time rule (binary gates or the expected mix)."""

    enabled: bool = False
    hidden_size: int = field(default=64, metadata={  # LSTM state size, also the per-layer projection's output
        "label": "gate network size (LSTM units)", "min": 4, "max": 512, "step": 4,
        "help": "Size of the recurrent gate network shared by all layers. Larger = more expressive gates, more parameters."})
    temperature: float = field(default=1.0, metadata={  # of the (Gumbel-)sigmoid, training only
        "label": "gate temperature", "min": 0.05, "max": 10.0, "step": 0.05,
        "help": "How sharply the gates learn in training: lower makes each gate's learning signal stronger but "
                "noisier (the choice itself stays 0 or 1; technically the temperature of the sigmoid whose "
                "gradient the straight-through estimator passes on)."})
    gumbel: bool = field(default=True, metadata={
        "label": "random gate choices in training",
        "help": "On: in training each gate's choice is drawn at random with its current probability (Gumbel noise), "
                "so both copies of a filter keep being tried. Off: always the likelier copy."})
    gate_lr_mult: float = field(default=1.0, metadata={  # gate-network lr = optim.lr x this (not x trunk_lr_mult)
        "label": "gate network learning-rate multiplier", "min": 0.0, "max": 100.0, "step": 0.05,
        "help": "The gate network is new (like the head): its learning rate is the base lr times this."})
    gated_lr_mult: float = field(default=1.0, metadata={  # not in the paper; 1 = the paper's single lr
        "label": "gated layers' learning-rate multiplier", "min": 0.1, "max": 10.0, "step": 0.1,
        "help": "Learning rate of the gated layers (fine-tuned filters and both batch norms) = their usual lr "
                "times this. A fine-tuned filter learns only from the images whose gate picks it (a share "
                "sigmoid(gate bias) of them at the start: half at bias 0), so its effective learning rate is "
                "that share of standard fine-tuning's; 1/share restores it (2 at bias 0). 1 = the paper."})
    gate_optimizer: str = field(default="adam", metadata={
        "label": "gate network optimiser", "choices": ["adam", "sgd"],
        "labels": {"adam": "Adam (its own)", "sgd": "the run's optimiser"},
        "help": "adam: the gate network steps by Adam (its gradients are tiny and differ 100x between layers "
                "while both filter copies are still close). sgd: the run's own optimiser, like the backbone."})
    sparsity_weight: float = field(default=0.0, metadata={  # not in the paper; 0 = the paper's method
        "label": "sparsity penalty (prefer pretrained filters)", "min": 0.0, "max": 1.0, "step": 0.01,
        "help": "Adds this times the mean gate probability to the loss: pushes examples to reuse pretrained "
                "filters. 0 = off (as in the paper)."})
    gate_bias: float = field(default=0.0, metadata={  # the logit maps' initial bias; weights stay seeded-random
        "label": "initial gate bias (prefer fine-tuned filters)", "min": -6.0, "max": 6.0, "step": 0.5,
        "help": "How often a filter uses its fine-tuned copy at the start: 0 = half the time, 1 = 73%, 2 = 88% "
                "(the probability is sigmoid(bias)). The fine-tuned filters learn only from the images that use "
                "them, so a positive value starts close to standard fine-tuning and lets the gates move toward "
                "the pretrained filters where those do better."})
    eval_gates: str = field(default="hard", metadata={  # not in the paper's test rule; "hard" = the paper
        "label": "gates when predicting", "choices": ["hard", "expected"],
        "labels": {"hard": "one copy per filter (the paper)", "expected": "a mix of both copies (the demo)"},
        "help": "How the trained model uses each filter's two copies when it predicts. One copy per filter: every "
                "image uses the fine-tuned or the pretrained copy, whichever its gate favours (the paper's rule). "
                "A mix of both copies: every image blends the two, weighted by how often its gate picked each in "
                "training. Over 11 trained models of the AdaFilter demo (two CPUs) the mix scored 1.2 validation "
                "points higher on average (on test from 7 points lower to 5.5 higher, mean 0.4 lower); over 60 "
                "more on a GPU, 0.9 validation and 0.7 test points higher. Needs random gate choices in training."})
    pretrained_bn: str = field(default="adapt", metadata={
        "label": "batch norm of the pretrained filters", "choices": ["adapt", "frozen"],
        "labels": {"adapt": "learnt on your data", "frozen": "kept from pretraining"},
        "help": "adapt: its own statistics and affine parameters learnt on your data (the paper's gated BN). "
                "frozen: keeps the pretraining statistics, so gate 0 stays exactly the pretrained layer."})


# ---- the gate network -------------------------------------------------------------------------

class _StraightThrough(torch.autograd.Function):
    """Forward: exactly 0/1 (soft > 0.5). Backward: identity (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, soft: torch.Tensor) -> torch.Tensor:
        return (soft > 0.5).to(soft.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class GateNetwork(nn.Module):
    """One recurrent gate network shared by all gated layers (called once per layer, in order).

    `force_gates`: None (learnt gates) or a value every gate is set to (0 = pretrained model,
    1 = fine-tuned model), for tests and analysis. `record`: when a dict, each layer's gates of
    the last forward are stored in it (index -> [B, C] tensor, detached). The recurrent state lives
    on the module during one forward pass, so one model object runs one forward at a time.
    """

    def __init__(self, layer_names: list[str], in_channels: list[int], out_channels: list[int], hidden_size: int,
                 temperature: float = 1.0, gumbel: bool = True, gate_bias: float = 0.0, eval_gates: str = "hard"):
        super().__init__()
        self.eval_gates = eval_gates  # "hard": 0/1 at evaluation (the paper); "expected": the probability
        self.layer_names = list(layer_names)  # e.g. layer1.0.conv1, ..., layer2.0.downsample (gate order)
        self.hidden_size = hidden_size
        self.temperature = temperature
        self.gumbel = gumbel
        self.proj = nn.ModuleList(nn.Linear(c, hidden_size) for c in in_channels)
        self.cell = nn.LSTMCell(hidden_size, hidden_size)
        self.logits = nn.ModuleList(nn.Linear(hidden_size, c) for c in out_channels)
        if gate_bias:  # a constant: draws nothing from the random stream, so the seeded weights stay the same
            for lin in self.logits:
                nn.init.constant_(lin.bias, gate_bias)
        self.force_gates: float | None = None
        self.record: dict[int, torch.Tensor] | None = None
        self.keep_inputs = False  # keep the pooled inputs of the last training forward (sparsity penalty)
        self.pooled_inputs: list[torch.Tensor] = []
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None
        self._next = 0

    @property
    def num_layers(self) -> int:
        """How many convolutions the network gates (one projection each)."""
        return len(self.proj)

    def step_logits(self, index: int, pooled: torch.Tensor,
                    state: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, tuple]:
        """One recurrent step: pooled activations [B, C_in] -> logits [B, C_out] and the new state."""
        if state is None:
            zeros = pooled.new_zeros(pooled.shape[0], self.hidden_size, dtype=torch.float32)
            state = (zeros, zeros)
        # float32 in, whatever autocast does inside: the cell's input and state dtypes always agree
        h, c = self.cell(self.proj[index](pooled).float(), (state[0].float(), state[1].float()))
        return self.logits[index](h).float(), (h, c)

    def forward(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Gates [B, C_out] float32 for gated layer `index`, whose input is `x` [B, C_in, H, W]: 0/1, except
        in evaluation with `eval_gates == "expected"`, where they are the probabilities in (0, 1)."""
        if index == 0:  # a new forward pass: the recurrent state starts afresh
            self._state, self.pooled_inputs = None, []
        elif index != self._next:
            raise RuntimeError(f"AdaFilter gate layers ran out of order (layer {index}, expected {self._next}): "
                               "the gated model must be called as a whole.")
        self._next = index + 1
        if self.force_gates is not None:
            gates = x.new_full((x.shape[0], self.logits[index].out_features), float(self.force_gates))
        else:
            pooled = x.float().mean((2, 3))
            if self.training and self.keep_inputs:
                self.pooled_inputs.append(pooled.detach())
            logits, self._state = self.step_logits(index, pooled, self._state)
            if self.training and self.gumbel:  # logistic noise = difference of two Gumbel samples
                u = torch.rand_like(logits).clamp_(1e-6, 1 - 1e-6)
                logits = logits + torch.log(u) - torch.log1p(-u)
            if self.training:
                gates = _StraightThrough.apply(torch.sigmoid(logits / self.temperature))
            else:
                # training picks the fine-tuned copy when logit + logistic noise > 0: with probability
                # sigmoid(logit), whatever the temperature (it only scales the straight-through gradient)
                prob = torch.sigmoid(logits)
                # hard: deterministic sigmoid(logit) > 0.5; expected: the mix training's sampled gates average to
                gates = prob if self.eval_gates == "expected" else (logits > 0).float()
                if self.record is not None:  # the probability moves long before a binary gate flips
                    self.record[-1 - index] = prob.detach()
        if self.record is not None:
            self.record[index] = gates.detach()
        return gates

    def expected_gates(self, pooled_inputs: list[torch.Tensor]) -> torch.Tensor:
        """Mean gate probability (no noise) over all filters of all layers, recomputed from pooled inputs."""
        state, probs = None, []
        for i, pooled in enumerate(pooled_inputs):
            logits, state = self.step_logits(i, pooled, state)
            probs.append(torch.sigmoid(logits / self.temperature).flatten())
        return torch.cat(probs).mean()


# ---- gated convolution + gated batch norm -----------------------------------------------------

class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters, all buffers (never trained or updated).

    Computes exactly what an `nn.BatchNorm2d` in eval mode computes (same `F.batch_norm` call).
    """

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.eps = bn.eps
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.register_buffer(name, getattr(bn, name).detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x` float [B, C, H, W] normalised by the stored running statistics and affine weights, always (training
        mode changes nothing): the pretrained copy's batch norm."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class GatedConvBN(nn.Module):
    """A pretrained conv + BN pair turned into pretrained/fine-tuned copies chosen per filter by gates.

    `conv` (the fine-tuned copy, a parameter) and `bn` (its batch norm) are the original modules;
    `weight_pretrained` is a frozen buffer (buffers are never touched by the loop's freezing code)
    and `bn_pretrained` the pretrained batch norm, adapted or frozen (config `pretrained_bn`).
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, index: int, gates: GateNetwork, pretrained_bn: str):
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.register_buffer("weight_pretrained", conv.weight.detach().clone())
        self.bn_pretrained = FrozenBatchNorm2d(bn) if pretrained_bn == "frozen" else copy.deepcopy(bn)
        self.index = index
        self.__dict__["gate_network"] = gates  # shared, registered once on the Classifier: not a submodule here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per example, the fine-tuned convolution + its batch norm where the gate is 1 and the pretrained copy
        (frozen weights) + its own batch norm where it is 0 (gated batch norm, Guo et al. 2020): `x` float [B,
        C_in, H, W] -> float [B, C_out, H', W']. Gates come from the gate network, [B, C_out] per filter; a
        fractional gate mixes the two outputs linearly, so the gradient reaching a gate is (fine-tuned output -
        pretrained output). With `force_gates` 0 or 1 only that copy's convolution is computed (the gate network
        still runs)."""
        g = self.gate_network(self.index, x)
        force = self.gate_network.force_gates
        if force == 0:  # exactly the pretrained layer, without computing the other copy
            return self.bn_pretrained(self.conv._conv_forward(x, self.weight_pretrained, None))
        if force == 1:
            return self.bn(self.conv(x))
        fine = self.bn(self.conv(x))
        pre = self.bn_pretrained(self.conv._conv_forward(x, self.weight_pretrained, None))
        g = g.to(fine.dtype)[:, :, None, None]
        return g * fine + (1 - g) * pre  # exact for binary g; d/dg = fine - pre


# ---- restructuring a ResNet -----------------------------------------------------------------

def supports(backbone: str) -> bool:
    """True for the backbones AdaFilter can gate: the ResNet family (its residual blocks' convolutions). Raises
    nothing."""
    from engine.backbones import BACKBONES

    return backbone in BACKBONES and BACKBONES[backbone].family == "resnet"


def _gated_slots(net: nn.Module) -> list[tuple[nn.Module, str, str, str]]:
    """(block, conv attr, bn attr, layer name) in execution order: conv1, conv2, (conv3), downsample."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    slots = []
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for bi, block in enumerate(getattr(net, stage, [])):
            if not isinstance(block, (BasicBlock, Bottleneck)):
                raise StudioError("AdaFilter supports torchvision ResNet blocks only.")
            for k in (1, 2, 3):
                if hasattr(block, f"conv{k}"):
                    slots.append((block, f"conv{k}", f"bn{k}", f"{stage}.{bi}.conv{k}"))
            if block.downsample is not None:
                slots.append((block.downsample, "0", "1", f"{stage}.{bi}.downsample"))
    return slots


def restructure(model, run_cfg, cfg: AdaFilterConfig):
    """Replace every residual-block conv+BN of `model.net` by a `GatedConvBN` and attach the gate
    network as `model.adafilter_gate`. Deterministic: the same config gives the same module tree and
    the same initial gate network (seeded), so a saved state dict reloads for inference."""
    if hasattr(model, GATE_ATTR):
        return model
    slots = _gated_slots(model.net)
    if not slots:
        raise StudioError(f"AdaFilter found no residual blocks in {model.backbone_name}: it supports ResNets only.")
    convs = [getattr(parent, c) for parent, c, _, _ in slots]
    with torch.random.fork_rng(devices=[]):  # seeded init that leaves the global random stream untouched
        torch.manual_seed(int(run_cfg.seed) + 20_200_207)
        gates = GateNetwork([name for *_, name in slots], [c.in_channels for c in convs],
                            [c.out_channels for c in convs], cfg.hidden_size, cfg.temperature, cfg.gumbel,
                            cfg.gate_bias, cfg.eval_gates)
    for i, (parent, conv_attr, bn_attr, _name) in enumerate(slots):
        gated = GatedConvBN(getattr(parent, conv_attr), getattr(parent, bn_attr), i, gates, cfg.pretrained_bn)
        setattr(parent, conv_attr, gated)
        setattr(parent, bn_attr, nn.Identity())  # the BN now lives inside the gated module
    setattr(model, GATE_ATTR, gates)
    return model


def gate_network(model) -> GateNetwork:
    """The GateNetwork `model` carries (built by `adapt_model`). Raises StudioError when the model was built without
    AdaFilter."""
    gates = getattr(model, GATE_ATTR, None)
    if gates is None:
        raise StudioError("This model has no AdaFilter gates (was it built with AdaFilter switched on?).")
    return gates


def gated_layers(model) -> dict[str, GatedConvBN]:
    """Layer name -> gated module, in gate order."""
    names = gate_network(model).layer_names
    mods = sorted((m for m in model.modules() if isinstance(m, GatedConvBN)), key=lambda m: m.index)
    return dict(zip(names, mods))


def plain_state(model, which: str = "finetuned") -> dict[str, torch.Tensor]:
    """The state dict of the plain (un-gated) architecture holding one of the two copies:
    `finetuned` (conv + bn) or `pretrained` (weight_pretrained + bn_pretrained). Load it into
    `build_model(...)`'s Classifier; the head is shared."""
    out: dict[str, torch.Tensor] = {}
    gated = {n: m for n, m in model.named_modules() if isinstance(m, GatedConvBN)}
    for key, value in model.state_dict().items():
        if key.startswith(GATE_ATTR + "."):
            continue
        prefix = next((p for p in gated if key.startswith(p + ".")), None)
        if prefix is None:
            out[key] = value
            continue
        rest = key[len(prefix) + 1:]
        name = gate_network(model).layer_names[gated[prefix].index]
        conv_key, bn_key = _plain_keys(name)
        src = {"finetuned": ("conv.weight", "bn."), "pretrained": ("weight_pretrained", "bn_pretrained.")}[which]
        if rest == src[0]:
            out[conv_key] = value
        elif rest.startswith(src[1]):
            out[bn_key + rest[len(src[1]):]] = value
    if which == "pretrained":  # a frozen BN has no step counter: give the plain model one
        for name in gate_network(model).layer_names:
            out.setdefault(_plain_keys(name)[1] + "num_batches_tracked", torch.tensor(0))
    return out


def _plain_keys(layer: str) -> tuple[str, str]:
    if layer.endswith(".downsample"):
        return f"net.{layer}.0.weight", f"net.{layer}.1."
    k = layer[-1]
    return f"net.{layer}.weight", f"net.{layer[:-len('conv1')]}bn{k}."


# ---- gate statistics ---------------------------------------------------------------------------

@torch.no_grad()
def gate_statistics(model, images: torch.Tensor, labels: torch.Tensor, num_classes: int, device,
                    batch_size: int = 256, amp_dtype=None) -> dict[str, Any]:
    """Share of filters that use the fine-tuned copy (eval-mode gates: a fraction of 0/1 gates, or with
    `eval_gates: expected` the mean gate probability) on `images` (uint8):
    per layer, overall (weighted by filter count), per class per layer, and per layer the mean
    noise-free gate probability sigmoid(logit) (`prob_per_layer`, which shows learning before
    any binary gate flips)."""
    gates = gate_network(model)
    names = gates.layer_names
    filters = torch.tensor([lin.out_features for lin in gates.logits], dtype=torch.float64)
    sums = torch.zeros(len(names), num_classes, dtype=torch.float64)
    prob_sums = torch.zeros(len(names), dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    was_training = model.training
    model.eval()
    gates.record = {}
    try:
        for i in range(0, len(images), batch_size):
            x = to_float(images[i:i + batch_size].to(device))
            y = labels[i:i + batch_size].cpu()
            with autocast_ctx(torch.device(device), amp_dtype):
                model(x)
            per_example = torch.stack([gates.record[j].float().mean(1).cpu() for j in range(len(names))])  # [L, B]
            sums.index_add_(1, y, per_example.double())
            if -1 in gates.record:  # learnt gates (not forced): their noise-free probabilities too
                prob_sums += torch.stack([gates.record[-1 - j].double().mean(1).sum().cpu() for j in range(len(names))])
            counts += torch.bincount(y, minlength=num_classes).double()
    finally:
        gates.record = None
        model.train(was_training)
    n = counts.sum().clamp_min(1)
    per_layer = sums.sum(1) / n
    by_class = sums / counts.clamp_min(1)
    return {
        "per_layer": {name: float(v) for name, v in zip(names, per_layer)},
        "overall": float((per_layer * filters).sum() / filters.sum()),
        "prob_per_layer": {name: float(v) for name, v in zip(names, prob_sums / n)},
        "by_class": [{name: float(by_class[j, c]) for j, name in enumerate(names)} if counts[c] > 0 else {}
                     for c in range(num_classes)],
    }


def cost_report(model) -> dict[str, Any]:
    """What the gating costs: extra stored filters, gate-network parameters, conv work per image."""
    layers = gated_layers(model)
    gates = gate_network(model)
    frozen = sum(m.weight_pretrained.numel() for m in layers.values())
    gate_params = sum(p.numel() for p in gates.parameters())
    return {
        "gated_layers": len(layers),
        "gated_filters": sum(m.conv.out_channels for m in layers.values()),
        "frozen_filter_values": frozen,  # buffers: stored, never trained
        "gate_network_params": gate_params,
        # Both copies run for every example (a per-example, per-filter choice cannot skip dense conv work):
        "block_conv_work_ratio": 2.0,
    }


# ---- the hook ------------------------------------------------------------------------------------

class AdaFilterHook(MethodHook):
    """AdaFilter in the training loop: steps the gate network (its own Adam when `gate_optimizer` is adam), records
    the gate-logit gradients per layer and epoch, adds the optional sparsity penalty's gradient, and reports the
    share of fine-tuned filters per layer and class each epoch and at the end."""

    name = "adafilter"

    def __init__(self, cfg: AdaFilterConfig):
        self.cfg = cfg
        self.gates: GateNetwork | None = None
        self.regrouped = False
        self.last_stats: dict[str, Any] | None = None
        self.adam: torch.optim.Adam | None = None  # the gate network's own optimiser (gate_optimizer=adam)
        self._stash: list[torch.Tensor | None] = []
        self._grad_sum: torch.Tensor | None = None  # per gated layer, summed over the epoch's steps
        self._grad_steps = 0
        self.grad_history: list[dict[str, float]] = []  # per epoch: layer -> mean gate-logit gradient norm

    def setup(self, ctx) -> None:
        self.gates = gate_network(ctx.model)
        self.gated = gated_layers(ctx.model)
        self.gates.keep_inputs = self.cfg.sparsity_weight > 0
        ctx.summary["adafilter"] = {**cost_report(ctx.model), "layers": self.gates.layer_names,
                                    "pretrained_bn": self.cfg.pretrained_bn,
                                    "pretrained_source": ctx.cfg.backbone.pretrained}

    def _regroup(self, ctx) -> None:
        """Move the gate network into its own optimiser groups (lr = base lr x gate_lr_mult).

        Done before the first optimiser step, when the optimiser holds no state yet: the loop's
        param groups know only head vs trunk, and the gate network is neither."""
        opt, o = ctx.optimizer, ctx.cfg.optim
        params = list(self.gates.parameters())
        ids = {id(p) for p in params}
        ref = opt.param_groups[0]
        factor = ref["lr"] / ref["base_lr"] if ref.get("base_lr") else 1.0  # where the schedule is now
        for g in opt.param_groups:
            g["params"] = [p for p in g["params"] if id(p) not in ids]
        opt.param_groups[:] = [g for g in opt.param_groups if g["params"]]
        if self.cfg.gated_lr_mult != 1.0:
            self._scale_gated_layers(opt, factor)
        base = o.lr * self.cfg.gate_lr_mult
        for suffix, group, wd in (("", [p for p in params if p.ndim > 1], o.weight_decay),
                                  ("_no_decay", [p for p in params if p.ndim <= 1], 0.0)):
            if group:
                opt.add_param_group({"params": group, "lr": base * factor, "base_lr": base, "weight_decay": wd,
                                     "name": "adafilter_gates" + suffix})
        if self.cfg.gate_optimizer == "adam":
            # The groups stay in the run's optimiser, so the gradient scaler unscales these gradients and
            # the schedule sets their lr; the hook takes the gradients away before that optimiser's step
            # and hands them to Adam after it (same lr, same schedule).
            self.adam = torch.optim.Adam([{"params": g["params"], "lr": g["lr"], "weight_decay": g["weight_decay"]}
                                          for g in opt.param_groups if g.get("name", "").startswith("adafilter_gates")])
        self.regrouped = True

    def _scale_gated_layers(self, opt: torch.optim.Optimizer, factor: float) -> None:
        """Split the gated layers' parameters (fine-tuned convs, both batch norms) out of each of
        the run's groups into a twin group ("<name>_gated") with lr and base_lr x gated_lr_mult;
        weight decay and the schedule stay the group's."""
        gated = {id(p) for layer in self.gated.values() for p in layer.parameters()}
        for g in list(opt.param_groups):
            mine = [p for p in g["params"] if id(p) in gated]
            if not mine:
                continue
            g["params"] = [p for p in g["params"] if id(p) not in gated]
            base = g.get("base_lr", g["lr"]) * self.cfg.gated_lr_mult
            opt.add_param_group({**{k: v for k, v in g.items() if k != "params"}, "params": mine,
                                 "lr": base * factor, "base_lr": base, "name": g.get("name", "trunk") + "_gated"})
        opt.param_groups[:] = [g for g in opt.param_groups if g["params"]]

    def _gate_groups(self, ctx) -> list[dict]:
        return [g for g in ctx.optimizer.param_groups if g.get("name", "").startswith("adafilter_gates")]

    def _record_gate_gradients(self) -> None:
        """Add this step's gradient norm of each layer's gate logits map (weight and bias) to the
        epoch's sums: the diagnostic for gates that get no signal (it is 0 while both filter copies
        are equal, since d loss / d gate = (fine-tuned - pretrained output) x d loss / d output)."""
        norms = []
        for lin in self.gates.logits:
            grads = [p.grad.detach().float().pow(2).sum() for p in lin.parameters() if p.grad is not None]
            norms.append(torch.stack(grads).sum().sqrt() if grads else torch.zeros(()))
        step = torch.stack(norms).cpu()
        self._grad_sum = step if self._grad_sum is None else self._grad_sum + step
        self._grad_steps += 1

    def after_backward(self, ctx) -> None:
        if not self.regrouped:
            self._regroup(ctx)
        if ctx.model.training:
            self._record_gate_gradients()
        if self.cfg.sparsity_weight > 0 and self.gates.pooled_inputs:
            # The penalty's gradient w.r.t. the gate network, from the pooled inputs of the training
            # forward (detached: the penalty steers the gates, not the backbone's features).
            n = self.gates.num_layers
            inputs = self.gates.pooled_inputs[-n:]
            if len(inputs) == n and ctx.model.training:
                with torch.enable_grad():
                    (self.cfg.sparsity_weight * self.gates.expected_gates(inputs)).backward()
            self.gates.pooled_inputs = []
        if self.adam is not None:  # the run's optimiser skips parameters without a gradient
            params = [p for g in self.adam.param_groups for p in g["params"]]
            self._stash = [p.grad for p in params]
            for p in params:
                p.grad = None

    def after_step(self, ctx) -> None:
        if self.adam is None or not self._stash:
            return
        params = [p for g in self.adam.param_groups for p in g["params"]]
        finite = all(g is None or bool(torch.isfinite(g).all()) for g in self._stash)  # as the scaler would skip
        for p, g in zip(params, self._stash):
            p.grad = g
        if finite:
            for mine, run_group in zip(self.adam.param_groups, self._gate_groups(ctx)):
                mine["lr"] = run_group["lr"]  # the schedule's value for this step
            self.adam.step()
        self.adam.zero_grad(set_to_none=True)
        self._stash = []

    def _stats(self, ctx) -> dict[str, Any]:
        d = ctx.data
        return gate_statistics(ctx.model, d.val.images, d.val.labels, len(d.classes), ctx.device,
                               ctx.cfg.eval.eval_batch_size, ctx.amp_dtype)

    def on_epoch_end(self, ctx, metrics) -> None:
        stats = self.last_stats = self._stats(ctx)
        metrics["adafilter_gate_mean"] = stats["overall"]
        metrics.update({f"adafilter/gate_mean/{k}": v for k, v in stats["per_layer"].items()})
        if self._grad_steps:
            mean = self._grad_sum / self._grad_steps
            grads = {name: float(v) for name, v in zip(self.gates.layer_names, mean)}
            self.grad_history.append(grads)
            metrics["adafilter_gate_grad"] = float(mean.mean())
            metrics.update({f"adafilter/gate_grad/{k}": v for k, v in grads.items()})
        self._grad_sum, self._grad_steps = None, 0

    def state_dict(self) -> dict[str, Any]:
        """Adam's state for the gate network (gate_optimizer=adam) and the epochs' gate-gradient history."""
        return {"adam": self.adam.state_dict() if self.adam is not None else None,
                "grad_history": [dict(h) for h in self.grad_history]}

    def load_state_dict(self, ctx, state: dict[str, Any]) -> None:
        """The run's optimiser regrouped as it was when saved (a resume point follows a finished epoch, so
        the gate network had its own groups by then), then Adam's state and the gradient history."""
        if not self.regrouped:
            self._regroup(ctx)
        if state.get("adam") is not None and self.adam is not None:
            self.adam.load_state_dict(state["adam"])
        self.grad_history = [dict(h) for h in state.get("grad_history", [])]

    def on_train_end(self, ctx) -> None:
        stats = self._stats(ctx)  # the final model (a method may have rolled weights back)
        ctx.summary["adafilter_gate_mean"] = stats["per_layer"]
        ctx.summary["adafilter_gate_mean_overall"] = stats["overall"]
        ctx.summary["adafilter_gate_by_class"] = {c: v for c, v in zip(ctx.data.classes, stats["by_class"]) if v}
        ctx.summary["adafilter_gate_prob_mean"] = stats["prob_per_layer"]
        ctx.summary["adafilter_gate_grad_history"] = self.grad_history


def _check(run_cfg, c: AdaFilterConfig) -> list[str]:
    problems = []  # bounds and choices are checked from the fields' metadata
    if c.eval_gates == "expected" and not c.gumbel:
        problems.append(f"'{setting_name('adafilter', 'eval_gates')}': a mix of both copies (expected) averages the "
                        f"random gate choices of training: turn on '{setting_name('adafilter', 'gumbel')}', or predict "
                        "with one copy per filter (hard).")
    return problems


register_method(MethodSpec.from_notes("adafilter", config_cls=AdaFilterConfig,
                                       build=lambda run_cfg, cfg: AdaFilterHook(cfg), supports=supports,
                                       check=_check, order=20, restructure=restructure))
