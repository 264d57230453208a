"""Flip test-time augmentation (eval.tta_flip): one definition (engine.evaluate.flip_average) used by
every accuracy a run reports, by Try it / predict, and inside the exported files."""

from __future__ import annotations

import json
import math

import pytest
import torch

from engine.contract import Reporter, StopRequested
from engine.evaluate import FlipAverage, flip_average, predict
from engine.export import export_all
from engine.predict import load_predictor
from engine.resume import RESUME_FILE
from engine.train import train


def test_flip_average_is_the_log_of_the_mean_probability():
    torch.manual_seed(0)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    out = flip_average(a, b)
    assert torch.allclose(out.exp(), (a.softmax(1) + b.softmax(1)) / 2, atol=1e-6)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-6)
    assert torch.allclose(flip_average(a, a), a.log_softmax(1), atol=1e-6)


def test_a_run_with_flip_tta_reports_uses_and_exports_the_same_predictions(tiny_cfg, tmp_path):
    cfg = tiny_cfg("eval.ood=false", "eval.tta_flip=true", "train.epochs=1")
    (tmp_path / "run").mkdir()
    result = train(cfg, run_dir=tmp_path / "run", work_dir=tmp_path / "data")
    model, data = result.context.model.eval(), result.context.data
    with_tta = predict(model, data.val.images, data.val.labels, torch.device("cpu"), tta_flip=True)
    plain = predict(model, data.val.images, data.val.labels, torch.device("cpu"))
    assert result.summary["val_acc"] == pytest.approx(with_tta.acc)
    assert not torch.allclose(with_tta.losses, plain.losses), "the mirror changes the losses"

    (tmp_path / "run" / "summary.json").write_text(json.dumps(result.summary))  # what the job writes at the end
    predictor = load_predictor(tmp_path / "run")
    probs, _ = predictor.forward(data.val.images)
    with torch.no_grad():
        x = data.val.images.float() / 255
        expected = flip_average(model(x), model(x.flip(-1))).softmax(1)
    assert torch.allclose(probs, expected, atol=1e-4), "Try it and predict average with the mirror too"

    checks = export_all(model, cfg, result.summary, data.val.images, tmp_path / "export", formats=("torchscript",))
    assert all(c.ok for c in checks), [c.message for c in checks]
    loaded = torch.jit.load(str(tmp_path / "export" / "model.ts")).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x).softmax(1), expected, atol=1e-4), "the export holds the averaging"
        assert torch.allclose(FlipAverage(model)(x), flip_average(model(x), model(x.flip(-1))))
    assert "left-right mirror" in (tmp_path / "export" / "MODEL_CARD.md").read_text()


class StopAfter(Reporter):
    def __init__(self, steps: int):
        self.steps, self.seen = steps, 0

    def step_metrics(self, epoch, step, values):
        self.seen = step

    def should_stop(self) -> bool:
        return self.seen >= self.steps


def test_a_run_saved_before_a_setting_existed_still_continues(tiny_cfg, tmp_path):
    """A resume point written by an older studio lacks fields added since: they read as their defaults."""
    cfg = tiny_cfg("train.epochs=2", "eval.ood=false")
    (tmp_path / "r").mkdir()
    probe = train(cfg, work_dir=tmp_path / "data")
    with pytest.raises(StopRequested):
        train(cfg, StopAfter(probe.context.steps_per_epoch + 1), run_dir=tmp_path / "r", work_dir=tmp_path / "data")
    path = tmp_path / "r" / RESUME_FILE
    state = torch.load(path, weights_only=True)
    saved = json.loads(state["config"])
    del saved["eval"]["tta_flip"]  # as written before eval.tta_flip existed
    state["config"] = json.dumps(saved)
    torch.save(state, path)
    resumed = train(cfg, run_dir=tmp_path / "r", work_dir=tmp_path / "data", resume=True)
    assert [h["epoch"] for h in resumed.summary["history"]] == [1, 2]
    assert math.isfinite(resumed.summary["val_acc"])
