"""WiSE-FT: interpolation maths, the linear-probe start, the curve, on-demand alphas and export."""

import json
import tempfile
from pathlib import Path

import pytest
import torch

from engine.errors import StudioError
from engine.evaluate import predict
from engine.runs import load_run, model_from_state
from engine.methods.wise_ft import DEFAULT_ALPHAS, coarse_to_fine, interpolate_state
from engine.checkpoints import load_checkpoint
from engine.contract import Reporter
from engine.train import train


class Recorder(Reporter):
    def __init__(self):
        self.streams: dict[str, list] = {}
        self.curve_progress: list[dict] = []

    def stream(self, key, point):
        self.streams.setdefault(key, []).append(point)

    def progress(self, **fields):
        if str(fields.get("phase", "")).startswith("WiSE-FT curve"):
            self.curve_progress.append(fields)


@pytest.fixture(scope="module")
def start_ckpt(tmp_path_factory):
    from safetensors.torch import save_file

    from engine.backbones import build_model

    m, _ = build_model("mobilenet_v3_small", 3, "bundled")  # the bundled weights, given as a checkpoint
    path = tmp_path_factory.mktemp("ck") / "start.safetensors"
    save_file({k: v.contiguous() for k, v in m.net.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def wise_run(tiny_zip, start_ckpt, tmp_path_factory):
    from conftest import tiny_config

    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tiny_zip, "wise_ft.enabled=true", "wise_ft.alphas=0,0.25,0.5,0.75,1", "train.epochs=2",
                      "backbone.pretrained=checkpoint", f"backbone.checkpoint={start_ckpt}", "wise_ft.ood_subset=4",
                      "eval.ood=true")
    res = train(cfg, Recorder_ := Recorder(), run_dir=run_dir, work_dir=run_dir / "data")
    res.streamed = Recorder_.streams.get("wise_ft", [])
    res.curve_progress = Recorder_.curve_progress
    (run_dir / "summary.json").write_text(json.dumps({"classes": res.summary["classes"]}))
    return res, run_dir


def test_interpolation_endpoints_and_integer_buffers():
    a = {"w": torch.zeros(3), "n": torch.tensor(5)}
    b = {"w": torch.ones(3), "n": torch.tensor(9)}
    assert torch.equal(interpolate_state(a, b, 0.0)["w"], a["w"])
    assert torch.equal(interpolate_state(a, b, 1.0)["w"], b["w"])
    assert torch.allclose(interpolate_state(a, b, 0.25)["w"], torch.full((3,), 0.25))
    mid = interpolate_state(a, b, 0.5)
    assert mid["n"].dtype == torch.int64 and int(mid["n"]) == 9, "integer buffers are copied, not averaged"
    assert int(a["n"]) == 5 and int(b["n"]) == 9, "inputs untouched"


def test_key_mismatch_gives_a_clear_error():
    with pytest.raises(StudioError, match="same names"):
        interpolate_state({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, 0.5)
    with pytest.raises(StudioError, match="shape"):
        interpolate_state({"a": torch.zeros(1)}, {"a": torch.zeros(2)}, 0.5)


def test_masks_keep_sparsity_through_interpolation():
    a, b = {"w": torch.randn(100)}, {"w": torch.randn(100)}
    mask = (torch.rand(100) > 0.7).float()
    out = interpolate_state(a, b, 0.3, {"w": mask})
    assert torch.all(out["w"][mask == 0] == 0)
    assert float((out["w"] == 0).float().mean()) >= float((mask == 0).float().mean())


def test_alpha_endpoints_reproduce_theta0_and_theta1(wise_run):
    res, run_dir = wise_run
    ctx = res.context
    theta0, _ = load_checkpoint(run_dir / "theta0.safetensors")
    theta1 = ctx.model.state_dict()
    imgs, labels = ctx.data.val.images, ctx.data.val.labels
    m0 = model_from_state(ctx.cfg, 3, theta0)
    m1 = model_from_state(ctx.cfg, 3, {k: v.clone() for k, v in theta1.items()})
    for alpha, ref in ((0.0, m0), (1.0, m1)):
        mixed = model_from_state(ctx.cfg, 3, interpolate_state(theta0, theta1, alpha))
        cpu = torch.device("cpu")  # the rebuilt models live on the CPU whatever the training device was
        assert torch.equal(predict(mixed, imgs, labels, cpu).preds, predict(ref, imgs, labels, cpu).preds)


def test_theta0_head_is_a_fitted_linear_probe(wise_run):
    res, _ = wise_run
    s = res.summary
    assert s["wise_theta0_val_acc"] > 0.5, "a linear probe separates three easy classes: not a random head"


def test_curve_is_computed_and_streamed(wise_run):
    res, _ = wise_run
    curve = res.summary["wise_curve"]
    assert [p["alpha"] for p in curve] == [0.0, 0.25, 0.5, 0.75, 1.0]  # the summary is in alpha order
    # streamed ends first, then the middle: the live curve has its shape after three points
    assert [p["alpha"] for p in res.streamed] == [0.0, 1.0, 0.5, 0.25, 0.75]
    # the curve's OOD accuracy on 4 images per corruption (the tiny val split has more)
    assert len(res.context.data.val) > 4
    assert res.summary["wise_curve_ood_images"] == 4 * len(res.context.eval_sets.ood_suite)
    for p in curve:
        assert 0 <= p["val_acc"] <= 1 and 0 <= p["ood_acc"] <= 1
    assert curve[-1]["val_acc"] == pytest.approx(res.summary["val_acc"], abs=1e-6)


def test_on_demand_alpha_and_export(wise_run, tmp_path):
    res, run_dir = wise_run
    point = load_run(run_dir, run_dir / "data").wise_point(0.5)
    grid = {p["alpha"]: p for p in res.summary["wise_curve"]}
    assert point["val_acc"] == pytest.approx(grid[0.5]["val_acc"], abs=1e-6)
    assert point["ood_acc"] == pytest.approx(grid[0.5]["ood_acc"], abs=1e-6)  # same corrupted subset
    out = load_run(run_dir, run_dir / "data").export_wise(0.25, tmp_path / "wise.safetensors")
    state, meta = load_checkpoint(out)
    assert meta["alpha"] == 0.25 and "config" in meta
    model = model_from_state(res.context.cfg, 3, state)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 3)


def test_coarse_to_fine_order_covers_the_grid_once():
    order = coarse_to_fine(DEFAULT_ALPHAS)
    assert sorted(order) == list(DEFAULT_ALPHAS) and order[:3] == [0.0, 1.0, 0.5]
    assert coarse_to_fine([1, 0, 1]) == [0.0, 1.0]


def test_the_curve_always_measures_both_ends_each_alpha_once_and_the_live_count_follows(monkeypatch):
    """A grid without the ends (0.2-0.8) had its outer mixes called "the starting model" and "the fine-tuned model",
    and a repeated alpha left the live heading at "3 of 4 mixing weights evaluated" after the run finished."""
    from app import components
    from engine.claims import wise_ft_reading
    from engine.methods.wise_ft import curve_alphas

    assert curve_alphas([0.2, 0.4, 0.4, 0.8]) == [0.0, 0.2, 0.4, 0.8, 1.0]
    assert coarse_to_fine([0.3]) == [0.0, 1.0, 0.3]
    said = []
    fake = type("St", (), {"markdown": lambda self, t, **k: said.append(t), "caption": lambda self, t, **k:
                           said.append(t)})()
    monkeypatch.setattr(components, "st", fake)
    monkeypatch.setattr(components.vega, "altair_chart", lambda *a, **k: None)
    run = components.RunView("r1", "x", "finished", None, {"wise_ft": {"enabled": True, "alphas": [0, 0.5, 0.5, 1]},
                                                           "data": {}}, "/nonexistent")
    points = [{"alpha": a, "val_acc": 0.6, "ood_acc": 0.5} for a in (0.0, 0.5, 1.0)]
    components.wise_live_view(run, points)
    assert said[0] == "**WiSE-FT curve: all 3 mixing weights evaluated**", said
    assert "Slide alpha and export a mixed model on the Results page." in said
    said.clear()  # a continued run streams the points again: counted once each
    components.wise_live_view(run, points + points[:2])
    assert said[0] == "**WiSE-FT curve: all 3 mixing weights evaluated**", said
    # a curve measured before the ends were always added: its outer mixes are not named as the two models
    assert wise_ft_reading([{"alpha": a, "val_acc": 0.8, "ood_acc": o} for a, o in ((0.2, 0.6), (0.8, 0.4))]) is None
    from engine.claims import wise_user_ood_reading

    assert wise_user_ood_reading([{"alpha": a, "val_acc": 0.8, "ood_acc": 0.5, "ood_user_acc": o}
                                  for a, o in ((0.2, 0.6), (0.5, 0.5), (0.8, 0.4))]) is None


def test_a_wise_ft_run_without_ood_accuracy_says_its_pick_and_claim_without_speaking_of_ood(capsys):
    """A WiSE-FT run with its OOD evaluation off was told "alpha 1 chosen (the fine-tuned model itself: no mix did
    better on OOD ...)" beside "OOD n/a", and "the alpha curve has no OOD accuracy at both ends"."""
    from engine.claims import wise_ft_claim
    from engine.cli import _say_wise
    from engine.predict import pick_rule_words

    curve = [{"alpha": a, "val_acc": 0.8, "ood_acc": None} for a in (0.0, 0.5, 1.0)]
    summary = {"wise_curve": curve, "classes": ["a", "b", "c"], "val_acc": 0.8, "test_acc": 0.8}
    _say_wise(summary)
    out = capsys.readouterr().out
    assert "no mix did better on OOD" not in out, out
    assert "alpha 1 chosen (the best validation accuracy among the mixes: the run measured no OOD accuracy" in out
    assert wise_ft_claim(summary).text.startswith("WiSE-FT: no OOD accuracy was measured in this run ('Measure OOD "
                                                  "accuracy (eval.ood)' was off)")
    from app.state import message_words

    assert "eval.ood" not in message_words(pick_rule_words(summary)), "the dashboard names it by its label only"
    from engine.config import RunConfig
    from engine.export import model_card

    card = model_card(RunConfig(), {**summary, "status": "finished"})
    assert "no mix did better on OOD" not in card and "the best validation accuracy among the mixes" in card
    measured = {"wise_curve": [dict(p, ood_acc=0.5) for p in curve]}
    assert pick_rule_words(measured).startswith("the best accuracy on corrupted images among the mixes")


def test_theta0_head_is_calibrated():
    """The probe's confidence is set by a temperature fitted on held-out training features: its
    predictions stay, and its loss on new data goes down (logits that are too sharp or too flat
    make the first fine-tuning steps from theta_0 needlessly large)."""
    import torch.nn.functional as F

    from engine.methods.wise_ft import calibrated_probe, fit_linear_probe

    g = torch.Generator().manual_seed(0)
    means = torch.randn(4, 64, generator=g) * 0.2  # 160 images in 64 dims: separable, yet hard to tell apart
    labels = torch.arange(4).repeat_interleave(40)
    feats = means[labels] + torch.randn(160, 64, generator=g)
    test_labels = torch.arange(4).repeat_interleave(200)
    test_feats = means[test_labels] + torch.randn(800, 64, generator=g)
    w, b = fit_linear_probe(feats, labels, 4, 1e-3, 100)
    wc, bc, t = calibrated_probe(feats, labels, 4, 1e-3, 100)
    raw, cal = test_feats @ w.T + b, test_feats @ wc.T + bc
    assert t > 2, "the over-confident probe is cooled"
    assert torch.equal(raw.argmax(1), cal.argmax(1))
    assert F.cross_entropy(cal, test_labels) < 0.6 * F.cross_entropy(raw, test_labels)
    confident = torch.randn(4, 64, generator=g) * 3  # far apart: nothing to cool, never sharpened
    _, _, t_sep = calibrated_probe(confident[labels] + torch.randn(160, 64, generator=g), labels, 4, 1e-3, 100)
    assert t_sep == 1.0


def test_the_curve_subset_takes_the_classes_in_turn():
    from engine.evaluate import balanced_subset

    labels = torch.tensor([0, 0, 0, 0, 1, 2, 0, 1, 2, 2])
    idx = balanced_subset(labels, 6)
    assert idx.tolist() == [0, 1, 4, 5, 7, 8]  # two of each class, each class's first images, in split order
    assert torch.bincount(labels[idx]).tolist() == [2, 2, 2]
    assert balanced_subset(labels, 10).tolist() == list(range(10))


def test_the_curve_subset_is_scored_against_its_own_labels(wise_run):
    """With a subset, every corrupted image is scored against its own label: the curve's point at
    alpha 1 equals the fine-tuned model's accuracy on those images, computed directly."""
    from engine.corruptions import build_ood_suite
    from engine.evaluate import balanced_subset

    res, _ = wise_run
    ctx = res.context
    idx = balanced_subset(ctx.data.val.labels, 4)
    labels = ctx.data.val.labels[idx]
    suite = build_ood_suite(ctx.data.val.images[idx], severities=(ctx.cfg.eval.ood_severity_each_epoch,),
                            seed=ctx.cfg.seed)
    accs = [float((predict(ctx.model, imgs, labels, ctx.device).preds == labels).float().mean())
            for by in suite.values() for imgs in by.values()]
    assert res.summary["wise_curve"][-1]["ood_acc"] == pytest.approx(sum(accs) / len(accs), abs=1e-6)


def test_the_curve_measures_corrupted_images_also_when_epochs_skip_them(tiny_cfg):
    from engine.methods.wise_ft import CURVE_SEVERITY, curve_sets
    from engine.run_data import prepare_data

    cfg = tiny_cfg("wise_ft.enabled=true", "backbone.pretrained=bundled", "eval.ood=true",
                   "eval.ood_severity_each_epoch=0", "wise_ft.ood_subset=4")
    sets = curve_sets(cfg, prepare_data(cfg, Path(tempfile.mkdtemp())), None)
    assert sets.ood_suite and {s for by in sets.ood_suite.values() for s in by} == {CURVE_SEVERITY}


def test_the_linear_probe_converges_so_rounding_cannot_move_it():
    """A probe stopped early lands where the CPU's kernels steer it (tests/test_bundled.py's
    MobileNetV3-Small probe passed with AVX-512 on one thread and failed on two, or with AVX2): the
    same features in another row order (other rounding in every sum) must give the same probe."""
    from engine.methods.wise_ft import fit_linear_probe

    g = torch.Generator().manual_seed(1)
    labels = torch.arange(8).repeat_interleave(48)  # 384 images in 1024 dims, as the bundled test: separable
    feats = torch.randn(8, 1024, generator=g)[labels] * 0.3 + torch.randn(384, 1024, generator=g).relu()
    perm = torch.randperm(384, generator=g)
    w1, b1 = fit_linear_probe(feats, labels, 8)
    w2, b2 = fit_linear_probe(feats[perm], labels[perm], 8)
    assert w1.dtype == feats.dtype and w1.shape == (8, 1024) and b1.shape == (8,)
    test = torch.randn(8, 1024, generator=g)[labels] * 0.3 + torch.randn(384, 1024, generator=g).relu()
    torch.testing.assert_close(test @ w1.T + b1, test @ w2.T + b2, atol=1e-4, rtol=1e-4)


def test_time_left_counts_the_curve_and_falls_while_it_is_computed(wise_run):
    """The curve runs after training: the estimate counts it from the start and counts it down point by
    point (a new user saw 0:02 left while 14 of 21 points were still to come)."""
    from engine.evaluate import eval_passes, final_passes
    from engine.methods.wise_ft import curve_passes, curve_sets

    res, _ = wise_run
    ctx = res.context
    per_point = curve_passes(ctx.cfg, ctx.data, ctx.eval_sets.ood_user)
    assert per_point == eval_passes(curve_sets(ctx.cfg, ctx.data, ctx.eval_sets.ood_user)) > 0
    from engine.config import apply_overrides

    recal = apply_overrides(ctx.cfg, ["wise_ft.recalibrate_bn=true"])  # a pass over the training images per alpha
    assert curve_passes(recal, ctx.data, ctx.eval_sets.ood_user) == per_point + len(ctx.data.train)
    assert ctx.eval_clock.method_passes == 5 * per_point, "5 alphas, before the final evaluation"
    assert ctx.eval_clock.final_passes == final_passes(ctx.cfg, ctx.data), "which keeps its own count"
    etas = [p["eta_s"] for p in res.curve_progress]
    assert len(etas) == 5 and all(e > 0 for e in etas), res.curve_progress
    assert etas == sorted(etas, reverse=True) and etas[0] > etas[-1]


@pytest.mark.parametrize("overrides", [(), ("eval.ood=false",), ("eval.ood_subset_each_epoch=0",),
                                       ("eval.tta_flip=true", "eval.ood_severity_each_epoch=2"),
                                       ("eval.robust=true", "eval.robust_subset=5"), ("eval.ood_severity_each_epoch=0",)])
def test_passes_counted_without_building_the_sets_match_the_sets(tiny_zip, tmp_path, overrides):
    from conftest import tiny_config

    from engine.evaluate import epoch_passes, epoch_sets, eval_passes
    from engine.run_data import prepare_data

    cfg = tiny_config(tiny_zip, *overrides)
    data = prepare_data(cfg, tmp_path)
    for subset, severity in ((None, None), (3, 3), (0, 1), (10_000, None)):
        assert epoch_passes(cfg, data, None, subset, severity) == eval_passes(epoch_sets(cfg, data, None, subset, severity))
