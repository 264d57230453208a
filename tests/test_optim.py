"""The optimiser the engine builds: PyTorch's fused step where it is the faster one."""

import math

import pytest
import torch
import torch.nn.functional as F

from engine.backbones import build_model
from engine.config import RunConfig, apply_overrides
from engine.optim import build_optimizer, head_lr_words


def test_the_fused_step_is_used_on_the_cpu_only_for_contiguous_parameters():
    """The CPU's fused kernel copies every non-contiguous tensor: with channels_last weights (bf16 training
    on the CPU) the per-tensor step was the faster one, so the engine keeps it there."""
    torch.manual_seed(0)
    model, _ = build_model("resnet18", 3, "none")
    cfg = RunConfig()
    assert build_optimizer(model, cfg).defaults.get("fused") is True
    model.to(memory_format=torch.channels_last)
    assert not build_optimizer(model, cfg).defaults.get("fused")
    assert not build_optimizer(model.to(memory_format=torch.contiguous_format),
                               apply_overrides(cfg, ["optim.fused=false"])).defaults.get("fused"), "the switch off"
    # both give the same update (up to rounding): the choice is speed only
    steps = []
    for fused in (True, False):
        torch.manual_seed(1)
        m, _ = build_model("resnet18", 3, "none")
        opt = build_optimizer(m, apply_overrides(cfg, [f"optim.fused={str(fused).lower()}"]))
        for p in m.parameters():
            p.grad = torch.ones_like(p)
        opt.step()
        steps.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.allclose(steps[0], steps[1], atol=1e-6)


# ---- the new head's rate under its stability bound (engine.optim.head_lr_bound) ------------------

def _heavy_ball_final(lr: float, curvature: float, momentum: float, nesterov: bool, steps: int = 400) -> float:
    """|x| after `steps` of torch's SGD on the quadratic L/2 x^2 with L = curvature / 2 (the softmax head's
    largest curvature for features of that second moment), from x = 1."""
    x = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum, nesterov=nesterov)
    for _ in range(steps):
        opt.zero_grad()
        (curvature / 4 * x ** 2).sum().backward()
        opt.step()
    return float(x.detach().abs())


@pytest.mark.parametrize("momentum,nesterov", [(0.9, False), (0.0, False), (0.9, True)])
def test_the_head_bound_is_where_torchs_sgd_stops_converging(momentum, nesterov):
    """The bound without its margin is the edge of stability of torch's own SGD: 2% under it the steps shrink
    to nothing, 2% over it they grow without end; the rate used is HEAD_LR_MARGIN of it."""
    from engine.optim import HEAD_LR_MARGIN, head_lr_bound

    curvature = 969.0  # the sample at 32 px, bundled ResNet-18
    edge = head_lr_bound(curvature, momentum, nesterov) / HEAD_LR_MARGIN
    assert _heavy_ball_final(0.98 * edge, curvature, momentum, nesterov) < 1e-3
    assert not _heavy_ball_final(1.02 * edge, curvature, momentum, nesterov) < 1e3  # (or overflowed to nan)
    assert head_lr_bound(0.0, momentum) == math.inf, "no features measured: no cap"


def test_a_softmax_heads_curvature_is_at_most_half_its_features_second_moment():
    """The premise of the bound: the cross-entropy's Hessian in the head's weights, at any weights (uniform
    answers, confident ones), has no eigenvalue above half the largest of E[f f^T]."""
    from torch.autograd.functional import hessian

    g = torch.Generator().manual_seed(0)
    feats = torch.rand(40, 6, generator=g, dtype=torch.float64) * 3 + 2  # pooled ReLU features: a large mean
    labels = torch.randint(0, 4, (40,), generator=g)
    moment = float(torch.linalg.eigvalsh(feats.T @ feats / len(feats))[-1])
    for scale in (0.0, 0.3, 3.0):
        w = torch.randn(4 * 6, generator=g, dtype=torch.float64) * scale
        h = hessian(lambda v: F.cross_entropy(feats @ v.view(4, 6).T, labels), w)
        assert float(torch.linalg.eigvalsh(h)[-1]) <= moment / 2 + 1e-9


def test_the_head_features_curvature_is_measured_without_changing_the_model():
    """head_feature_curvature is the largest eigenvalue of the head's inputs' second moment, over at most
    HEAD_FEATURE_IMAGES images, in evaluation mode; the model's mode and batch-norm statistics stay."""
    from engine.optim import HEAD_FEATURE_IMAGES, head_feature_curvature

    torch.manual_seed(0)
    model, _ = build_model("resnet18", 3, "none")
    images = torch.randint(0, 256, (HEAD_FEATURE_IMAGES + 20, 3, 32, 32), dtype=torch.uint8)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    got = head_feature_curvature(model, images, torch.device("cpu"), batch_size=50)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())
    feats = []
    hook = model.head.register_forward_pre_hook(lambda _m, a: feats.append(a[0]))
    with torch.no_grad():
        model.eval()(images[:HEAD_FEATURE_IMAGES].float() / 255)
    hook.remove()
    f = feats[0].double()
    assert got == pytest.approx(float(torch.linalg.eigvalsh(f.T @ f / len(f))[-1]), rel=1e-6)


def test_a_run_caps_its_heads_rate_only_where_the_bound_asks(resnet_cfg, tmp_path):
    """setup_run measures the features and lowers the head's groups (never the trunk's) for SGD from
    pretrained weights, records it in the summary and says so; not with the switch off, AdamW or random
    weights, nor when the rate is under the bound."""
    from engine.contract import Reporter
    from engine.optim import head_lr_bound
    from engine.train import say_head_lr, setup_run

    said = []

    class Ears(Reporter):
        def progress(self, **f):
            said.append(f.get("advice"))
            assert f.get("head_lr_note") in (None, f.get("advice")), "the Train page's live note is the same"

    def groups(*overrides):
        ctx, _ = setup_run(resnet_cfg("backbone.pretrained=bundled", *overrides), Ears(), None, tmp_path / "w")
        say_head_lr(ctx)  # as the run does once a resume point is loaded
        return ctx, {g["name"]: g["base_lr"] for g in ctx.optimizer.param_groups}

    ctx, lrs = groups("optim.lr=1.0")
    cap = ctx.summary["head_lr_capped"]
    assert cap["to"] == pytest.approx(head_lr_bound(ctx.summary["head_curvature"], 0.9)) and cap["lr"] == 1.0
    assert lrs["head"] == lrs["head_no_decay"] == cap["to"] < 1.0 and lrs["trunk"] == lrs["trunk_no_decay"] == 1.0
    assert any(a and a.startswith(f"The new head learns at a rate of {cap['to']:.2g}, not the 1 set") for a in said)
    assert ctx.summary["advice"][-1] == head_lr_words(ctx.summary, 32)
    for overrides in (["optim.head_lr_cap=false"], ["optim.optimizer=adamw"], [f"optim.lr={0.5 * cap['to']}"]):
        ctx, lrs = groups("optim.lr=1.0", *overrides) if "lr" not in overrides[0] else groups(*overrides)
        assert "head_lr_capped" not in ctx.summary and lrs["head"] == lrs["trunk"], overrides
    ctx, lrs = setup_run(resnet_cfg("optim.lr=1.0"), Reporter(), None, tmp_path / "w")[0], None
    assert "head_lr_capped" not in ctx.summary and not ctx.summary["head_curvature"], "random weights: not measured"


def test_the_head_cap_in_words():
    from engine.optim import head_lr_words

    summary = {"head_lr_capped": {"lr": 0.02, "to": 0.00587, "curvature": 969.2, "trunk_lr": 0.02}}
    assert head_lr_words(summary, 32) == (
        "The new head learns at a rate of 0.0059, not the 0.02 set: the features the network hands it from "
        "these images at 32 px are large (969 by the studio's measure of their size), and at 0.02 its steps would "
        "overshoot, its loss growing instead of falling. The layers below it learn at 0.02.")
    assert head_lr_words({}) == ""
    # a rate just under the one set keeps the digits that tell them apart ("a rate of 0.02, not the 0.02 set")
    near = {"head_lr_capped": {**summary["head_lr_capped"], "to": 0.0196}}
    assert head_lr_words(near).startswith("The new head learns at a rate of 0.0196, not the 0.02 set")
    # an engineer's checkpoint saved after a diverged step gave 2e9: the words say the file looks broken
    broken = {"head_lr_capped": {**summary["head_lr_capped"], "curvature": 1966718411.0},
              "load_report": {"source": "checkpoint b.pth.tar"}}
    assert head_lr_words(broken).endswith("usually mean the starting weights are broken, such as a file saved after "
                                          "a training step that diverged: check your checkpoint, or start from the "
                                          "bundled weights.")
    assert "broken" not in head_lr_words({**broken, "load_report": {"source": "bundled"}}), "said of the user's file"
    assert "broken" not in head_lr_words({**summary, "load_report": broken["load_report"]}), "969 is a network's own"
    from engine.export import training_lines

    card = training_lines(apply_overrides(RunConfig(), ["data.image_size=32"]), summary)
    assert "- " + head_lr_words(summary, 32) in card, "the model card says it too"
    assert not any("new head" in line for line in training_lines(RunConfig(), {}))
    from engine.export import best_epoch_summary

    best = best_epoch_summary({**summary, "val_acc": 0.5}, ["a", "b"], None, (1, 2))
    assert best["head_lr_capped"] == summary["head_lr_capped"], "a best epoch's card says it too: a fact of the run"


def test_a_run_saved_before_the_cap_continues_at_its_saved_head_rate():
    """Continued from a state saved with a higher head rate (before the cap), the run trains at that rate, so the
    summary drops the cap's record (and nothing says it); a state saved capped keeps it."""
    from engine.resume import keep_saved_head_rate

    w = torch.nn.Parameter(torch.zeros(2))
    cap = {"lr": 0.02, "to": 0.006, "curvature": 950.0, "trunk_lr": 0.02}
    for saved, kept in ((0.02, False), (0.006, True)):
        opt = torch.optim.SGD([{"params": [w], "lr": saved, "base_lr": saved, "name": "head"}], lr=saved)
        summary = {"head_lr_capped": dict(cap)}
        keep_saved_head_rate(opt, summary)
        assert ("head_lr_capped" in summary) is kept and head_lr_words(summary).startswith("The new head") is kept
