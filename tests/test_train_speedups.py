"""The step-saving switches of the loop: progressive resizing (train.progressive_start) and the
exponential moving average of the weights (train.ema_decay)."""

from __future__ import annotations

import pytest
import torch

from engine.config import validate
from engine.errors import StudioError
from engine.contract import Reporter
from engine.optim import build_ema
from engine.schedules import epoch_image_size
from engine.train import setup_run, train, train_one_epoch


def test_progressive_sizes_grow_from_the_start_share_to_full_size_by_three_quarters_of_the_run():
    sizes = [epoch_image_size(64, 0.5, e, 9) for e in range(9)]
    assert sizes[0] == 32 and sizes[6:] == [64, 64, 64] and sizes == sorted(sizes)
    assert all(s % 8 == 0 for s in sizes)
    assert [epoch_image_size(64, 1.0, e, 9) for e in range(9)] == [64] * 9  # 1 = off
    assert epoch_image_size(32, 0.25, 0, 10) == 16  # never below 16 pixels
    assert epoch_image_size(64, 0.5, 0, 1) == 64  # a one-epoch run trains at full size


def test_training_steps_see_the_epochs_size_and_evaluation_the_full_size(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=5", "eval.ood=false", "train.progressive_start=0.5", "data.image_size=32")
    ctx, hooks = setup_run(cfg, Reporter(), None, tmp_path)
    seen: list[int] = []
    ctx.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for epoch in (0, 4):
        ctx.epoch, ctx.step = epoch, epoch * ctx.steps_per_epoch
        seen.clear()
        train_one_epoch(ctx, hooks, scaler, lambda t: 1.0)
        assert set(seen) == {epoch_image_size(32, 0.5, epoch, 5)}
    assert epoch_image_size(32, 0.5, 0, 5) == 16
    with torch.no_grad():
        seen.clear()
        ctx.model.eval()(torch.zeros(1, 3, 32, 32))
    assert seen == [32]


def test_ema_warms_up_then_keeps_its_decay_and_copies_integer_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.BatchNorm1d(1))
    ema = build_ema(model, decay=0.5)
    w = model[0].weight
    with torch.no_grad():
        w.fill_(1.0)
    ema.update_parameters(model)  # the first update copies
    assert torch.allclose(ema.module[0].weight, torch.ones_like(w))
    with torch.no_grad():
        w.fill_(3.0)
    model[1].num_batches_tracked += 7
    ema.update_parameters(model)  # n = 1: decay min(0.5, 2/11) = 0.1818...
    d = 2 / 11
    assert torch.allclose(ema.module[0].weight, torch.full_like(w, d * 1 + (1 - d) * 3))
    assert int(ema.module[1].num_batches_tracked) == 7
    for _ in range(50):
        ema.update_parameters(model)
    assert torch.allclose(ema.module[0].weight, torch.full_like(w, 3.0), atol=1e-6)
    assert build_ema(model, 0.0) is None


def test_a_run_with_ema_evaluates_and_keeps_the_average(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=2", "eval.ood=false", "train.ema_decay=0.9")
    result = train(cfg, run_dir=tmp_path, work_dir=tmp_path / "data")
    ctx = result.context
    kept, averaged = ctx.model.state_dict(), ctx.ema.module.state_dict()
    assert all(torch.equal(kept[k], averaged[k]) for k in kept), "the run's model is the average"
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "last.safetensors"))
    assert all(torch.equal(saved[k], kept[k]) for k in saved)


@pytest.mark.parametrize("method", ["pruning", "adafilter"])
def test_ema_is_refused_with_masked_or_gated_weights(tiny_cfg, method):
    with pytest.raises(StudioError, match=rf"train.ema_decay\) cannot be combined with {method}"):
        validate(tiny_cfg("train.ema_decay=0.99", f"{method}.enabled=true"))
