"""Continue a run: a run stopped in its second epoch, continued from its resume point, ends exactly
where the uninterrupted run ends, with the same learning rate at every step."""

from __future__ import annotations

import pytest
import torch

from engine.contract import Reporter, StopRequested
from engine.errors import StudioError
from engine.resume import RESUME_FILE
from engine.train import train


class Recorder(Reporter):
    """Keeps each logged step's learning rate; asks to stop once step `stop_at` was logged."""

    def __init__(self, stop_at: int | None = None):
        self.lrs: dict[int, float] = {}
        self.stop_at = stop_at

    def step_metrics(self, epoch, step, values):
        self.lrs[step] = values["lr"]

    def should_stop(self) -> bool:
        return self.stop_at is not None and max(self.lrs, default=0) >= self.stop_at


def test_a_stopped_run_continues_from_its_last_epoch_with_the_same_schedule(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=3", "eval.ood=false", "train.augment=true")
    for name in ("whole", "cut"):
        (tmp_path / name).mkdir()
    whole = Recorder()
    full = train(cfg, whole, run_dir=tmp_path / "whole")
    assert not (tmp_path / "whole" / RESUME_FILE).exists()  # a finished run has nothing to continue
    steps = full.context.steps_per_epoch
    first = Recorder(stop_at=steps + 2)  # stopped inside the second epoch
    with pytest.raises(StopRequested):
        train(cfg, first, run_dir=tmp_path / "cut")
    assert (tmp_path / "cut" / RESUME_FILE).is_file()
    second = Recorder()
    resumed = train(cfg, second, run_dir=tmp_path / "cut", resume=True)
    assert min(second.lrs) == steps + 1  # from the first step of epoch 2, not from the start
    for step, lr in second.lrs.items():
        assert lr == pytest.approx(whole.lrs[step], rel=1e-12), step
    assert [h["epoch"] for h in resumed.summary["history"]] == [1, 2, 3]
    a, b = full.context.model.state_dict(), resumed.context.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same data order, augmentation and momentum: same weights
    assert resumed.summary["val_acc"] == full.summary["val_acc"]


def test_continuing_needs_a_resume_point_and_the_same_settings(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=2", "eval.ood=false")
    with pytest.raises(StudioError, match="no saved state to continue from"):
        train(cfg, run_dir=tmp_path / "never", resume=True)
    with pytest.raises(StopRequested):
        (tmp_path / "r").mkdir()
        train(cfg, Recorder(stop_at=1), run_dir=tmp_path / "r")
    with pytest.raises(StudioError, match="no saved state"):  # stopped before its first epoch ended
        train(cfg, run_dir=tmp_path / "r", resume=True)
