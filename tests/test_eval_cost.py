"""Evaluation that costs what it is worth: per epoch a fixed class-balanced subset of the corruption
suite and a cheaper attack, at the end the full suite in one batch stream per severity."""

from __future__ import annotations

import pytest
import torch

from app.charts import epoch_subset_caption
from engine import evaluate as ev
from engine.data import DataReport, DataSplits, ImageSet
from engine.evaluate import EvalSets, epoch_sets, epoch_sets_note, evaluate, final_sets, predict
from engine.train import train


@pytest.fixture
def tiny_cfg(tiny_zip):
    """conftest's tiny_cfg with OOD accuracy on: what this file tests."""
    from conftest import tiny_config

    return lambda *overrides: tiny_config(tiny_zip, "eval.ood=true", *overrides)


def splits(n_val: int = 40, classes: int = 4, size: int = 16) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    names = [f"class {i}" for i in range(classes)]

    def split(m):
        return ImageSet(torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8, generator=g),
                        torch.arange(m) % classes, names)

    report = DataReport("synthetic", names, {c: 10 for c in names}, [], {}, size)
    return DataSplits(split(40), split(n_val), split(n_val), names, report)


class TinyNet(torch.nn.Module):
    """Pixels in [0, 1] -> 4 logits from each channel's mean and spread: predictions that move with
    noise, blur, contrast and brightness, so corruptions score differently."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(50 * torch.cat([x.mean((2, 3)) - 0.5, x.std((2, 3)) - 0.29], 1))


def test_epoch_sets_use_a_class_balanced_subset_and_a_cheaper_attack(tiny_cfg):
    data = splits()
    cfg = tiny_cfg("eval.ood_subset_each_epoch=8", "eval.robust=true", "eval.robust_subset=12")
    sets = epoch_sets(cfg, data)
    assert sorted(sets.ood_labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]  # every class equally
    assert all(len(imgs) == 8 for by_sev in sets.ood_suite.values() for imgs in by_sev.values())
    assert sets.robust.attack == "PGD-5" and len(sets.robust.labels) == 12
    assert epoch_sets_note(sets) == {"ood_images": 8, "ood_severity": 3, "ood_corruptions": len(sets.ood_suite),
                                     "robust_attack": "PGD-5", "robust_images": 12}
    final = final_sets(cfg, data)
    assert final.robust.attack == "PGD-20" and len(final.robust.labels) == 40
    assert all(len(by_sev) == 5 and len(by_sev[1]) == 40 for by_sev in final.ood_suite.values())
    assert epoch_sets(tiny_cfg("eval.ood_subset_each_epoch=0"), data).ood_images == 40 * len(sets.ood_suite)
    # the per-epoch attack is never stronger than the final one
    assert epoch_sets(tiny_cfg("eval.robust=true", "eval.robust_steps=2"), data).robust.attack == "PGD-2"


def test_the_suite_runs_as_one_stream_per_severity_with_the_same_numbers(tiny_cfg, monkeypatch):
    data, model, cpu = splits(n_val=20), TinyNet(), torch.device("cpu")
    sets = final_sets(tiny_cfg(), data)
    one_by_one = {name: sum(predict(model, imgs, data.val.labels, cpu, 16).acc for imgs in by_sev.values()) / 5
                  for name, by_sev in sets.ood_suite.items()}
    calls = []
    real = ev.predict
    monkeypatch.setattr(ev, "predict", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    out = evaluate(model, EvalSets(val=data.val, ood_suite=sets.ood_suite, ood_labels=data.val.labels), cpu, 16)
    assert calls == [20] + [20 * len(sets.ood_suite)] * 5  # validation, then one stream per severity
    for name, acc in one_by_one.items():
        assert abs(out[f"ood/{name}"] - acc) < 1e-6, name
    assert len({round(a, 4) for a in one_by_one.values()}) > 1  # the split into corruptions matters


def test_the_live_charts_say_which_subset_they_show(tiny_cfg):
    text = epoch_subset_caption(tiny_cfg("eval.ood_subset_each_epoch=16", "eval.robust=true").to_dict())
    assert "class-balanced subset of 16 validation images" in text and "on 256 validation images" not in text
    assert "PGD-5 at eps 4.0/255 on 64 validation images" in text and "PGD-20 at eps 4.0/255 on the test split" in text
    assert "severities 1-5. Robust accuracy per epoch" in text, "each sentence starts with a capital"
    assert epoch_subset_caption(tiny_cfg("eval.ood=false").to_dict()) is None


def test_the_caption_counts_the_images_a_small_validation_split_has(tiny_cfg, tmp_path):
    """Asked for 16 corrupted images per corruption with 9 validation images, the curve shows all 9:
    the caption uses the run's own count (its summary's `epoch_eval`), not the setting."""
    cfg = tiny_cfg("eval.ood_subset_each_epoch=16", "eval.robust=true", "eval.robust_subset=64").to_dict()
    text = epoch_subset_caption(cfg, {"ood_images": 9, "robust_images": 9})
    assert "all 9 validation images" in text and "16" not in text and "PGD-5 at eps 4.0/255 on 9 validation images" in text
    assert "subset of 16" in epoch_subset_caption(cfg, {"ood_images": 16})
    s = train(tiny_cfg("eval.ood_subset_each_epoch=100", "train.epochs=1"), run_dir=None, work_dir=tmp_path).summary
    n_val = sum(s["data_report"]["split_counts"]["val"].values())
    assert s["epoch_eval"]["ood_images"] == n_val < 100
    assert f"all {n_val} validation images" in epoch_subset_caption(
        tiny_cfg("eval.ood_subset_each_epoch=100").to_dict(), s["epoch_eval"])
