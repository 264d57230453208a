"""`optim.lr_auto`: the LR range test before the run (engine.lr_find)."""

import json
import math

import pytest

from engine import lr_find
from engine.config import RunConfig
from engine.run_data import prepare_data


def test_the_budget_is_a_share_of_the_run():
    assert lr_find.planned_steps(1000) == 150
    assert lr_find.planned_steps(3) == lr_find.MIN_STEPS


def test_the_range_test_picks_a_finite_rate_inside_the_sweep(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=3", "optim.momentum=0.9", "adversarial.enabled=true")
    data = prepare_data(cfg, tmp_path)
    r = lr_find.lr_range_test(cfg, data, steps=10)
    lo, hi = (e * 0.1 for e in lr_find.EFFECTIVE_RANGE["sgd"])  # lr = effective lr x (1 - momentum)
    assert r.sweep == pytest.approx((lo, hi))
    assert math.isfinite(r.lr) and lo * (1 - 1e-9) <= r.lr <= hi * (1 + 1e-9)
    assert r.effective_lr == pytest.approx(r.lr / 0.1)
    assert len(r.lrs) == len(r.losses) == len(r.smoothed) == r.steps <= 10
    assert r.lrs == sorted(r.lrs) and all(math.isfinite(x) for x in r.losses)
    assert r.lr == pytest.approx(max(r.lr_at_min_loss / 10, lo)) or r.notes, "a tenth of the minimum, or the own rate"
    if not r.kept:
        assert lr_find.lr_find_sentence(r.to_dict()).startswith(f"The learning rate {r.lr:.3g} (effective ")
    found = {"steps": 10, "lr": 0.002, "effective_lr": 0.02, "lr_at_min_loss": 0.02, "kept": False}
    assert lr_find.lr_find_sentence(found).endswith("a tenth of the rate where the loss was lowest.")
    found |= {"lr_at_min_loss": 0.005}  # a tenth of it would lie below the sweep: the pick is the sweep's bottom
    assert "the lowest rate tried" in lr_find.lr_find_sentence(found)


def test_a_flat_curve_keeps_the_configs_own_rate(resnet_cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(lr_find.EFFECTIVE_RANGE, "sgd", (1e-9, 2e-9))  # far too small to move the loss
    cfg = resnet_cfg("train.epochs=3", "optim.lr=0.004", "optim.momentum=0.9")
    r = lr_find.lr_range_test(cfg, prepare_data(cfg, tmp_path), steps=8)
    assert r.lr == pytest.approx(0.004) and r.effective_lr == pytest.approx(0.04)
    assert "kept" in r.notes[0] and r.kept
    said = lr_find.lr_find_sentence(r.to_dict())
    assert said.startswith("The learning-rate range test at the start (8 steps) found no rate") and "0.004, was kept" in said
    assert "set by hand (or by the preset)" in said


def test_a_diverging_sweep_stops_early_and_still_picks(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setitem(lr_find.EFFECTIVE_RANGE, "sgd", (1e-2, 1e6))
    cfg = tiny_cfg("train.epochs=3")
    r = lr_find.lr_range_test(cfg, prepare_data(cfg, tmp_path), steps=20)
    assert r.stopped_early and r.steps < 20
    assert math.isfinite(r.lr) and r.sweep[0] * (1 - 1e-9) <= r.lr <= r.sweep[1] * (1 + 1e-9)


def test_lr_auto_writes_its_pick_into_the_saved_config_and_the_summary(tiny_zip, tmp_path, monkeypatch):
    from engine import cli, paths

    monkeypatch.setattr(paths, "_UPLOAD_DIRS", list(paths._UPLOAD_DIRS))  # the command registers its folder
    out = tmp_path / "run"  # the command in this process: a new one spent seconds on its imports
    assert cli.main(["train", "--data", str(tiny_zip), "--epochs", "2", "--image-size", "32", "--batch-size", "8",
                     "--pretrained", "none", "--device", "cpu", "--set", "optim.lr_auto=true", "--set", "eval.ood=false",
                     "--out", str(out), "--data-dir", str(tmp_path / "d"), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    found = summary["lr_find"]
    saved = RunConfig.load(out / "config.yaml")
    assert not saved.optim.lr_auto and saved.optim.lr == found["lr"], "the saved config reproduces the run"
    assert summary["effective_lr"] == pytest.approx(found["effective_lr"])
    assert found["sweep"][0] * (1 - 1e-9) <= found["lr"] <= found["sweep"][1] * (1 + 1e-9) and math.isfinite(found["lr"])
    assert len(found["lrs"]) == len(found["smoothed"]) == found["steps"] >= 2
    from engine.export import model_card

    assert "- " + lr_find.lr_find_sentence(found) in model_card(saved, summary), "the model card says it too"
