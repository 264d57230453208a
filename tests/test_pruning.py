"""Pruning (Fine-Pruning): sparsity target, masks through optimiser steps, export, search, structure."""

import pytest
import torch

from engine.config import apply_overrides
from engine.errors import StudioError
from engine.evaluate import predict
from engine.methods.pruning import PruningHook, schedule_level
from engine.checkpoints import write_json
from engine.contract import Reporter
from engine.train import train


class Recorder(Reporter):
    def __init__(self):
        self.streams: dict[str, list] = {}

    def stream(self, key, point):
        self.streams.setdefault(key, []).append(point)


def prunable_weights(ctx):
    return {k: v for k, v in ctx.model.state_dict().items() if k in ctx.masks}


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_target_sparsity_is_reached_and_the_head_is_kept(resnet_cfg, tmp_path, scope):
    cfg = resnet_cfg("pruning.enabled=true", "pruning.target_sparsity=0.7", f"pruning.scope={scope}", "eval.ood=false")
    rec = Recorder()
    result = train(cfg, rec, work_dir=tmp_path)
    s = result.summary
    assert s["sparsity"] == pytest.approx(0.7, abs=0.002)
    by_layer = s["sparsity_by_layer"]
    assert "fc" not in by_layer and not (result.context.model.net.fc.weight == 0).any(), "the head is not pruned"
    if scope == "layer":
        assert all(v == pytest.approx(0.7, abs=0.01) for v in by_layer.values())
    else:
        assert max(by_layer.values()) - min(by_layer.values()) > 0.01, "global ranking prunes layers unequally"
    sparsities = [h["sparsity"] for h in s["history"]]
    assert sparsities == sorted(sparsities) and 0 < sparsities[0] <= sparsities[-1]
    assert all(f"pruning/sparsity/{name}" in s["history"][-1] for name in by_layer)
    assert [p["epoch"] for p in rec.streams["pruning_sparsity"]] == [1, 2]


def test_pruned_weights_stay_zero_across_optimiser_steps(tiny_cfg, tmp_path, monkeypatch):
    """SGD with momentum and weight decay: once pruned, a weight never comes back."""
    zero_sets: list[dict[str, torch.Tensor]] = []
    original = PruningHook.after_step

    def spy(self, ctx):
        original(self, ctx)
        zero_sets.append({l.key: (l.weight == 0).clone() for l in self.layers})

    monkeypatch.setattr(PruningHook, "after_step", spy)
    cfg = tiny_cfg("pruning.enabled=true", "pruning.target_sparsity=0.6", "pruning.schedule=linear",
                   "pruning.end_fraction=0.5", "optim.momentum=0.9", "optim.weight_decay=0.01", "eval.ood=false")
    result = train(cfg, work_dir=tmp_path)
    assert len(zero_sets) == result.context.total_steps
    for before, after in zip(zero_sets, zero_sets[1:]):
        for key in before:
            assert after[key][before[key]].all(), f"a pruned weight of {key} came back to life"
    # After the span the masks stop changing: the zeros are exactly the masks, step after step.
    ctx = result.context
    for key, w in prunable_weights(ctx).items():
        assert torch.equal(w == 0, ~ctx.masks[key]) or (w[~ctx.masks[key]] == 0).all()
    assert result.summary["sparsity"] == pytest.approx(0.6, abs=0.002)


def test_the_exported_model_without_masks_predicts_the_same(tiny_cfg, tmp_path):
    from engine.runs import load_run_model

    cfg = tiny_cfg("pruning.enabled=true", "pruning.target_sparsity=0.8", "eval.ood=false")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train(cfg, run_dir=run_dir, work_dir=tmp_path)
    write_json(run_dir / "summary.json", result.summary)
    exported, _, classes = load_run_model(run_dir, "last")  # a fresh model: no hook, no masks
    assert not any("mask" in k or "orig" in k for k in exported.state_dict())
    ctx = result.context
    images = torch.cat([ctx.data.val.images, ctx.data.test.images])
    labels = torch.cat([ctx.data.val.labels, ctx.data.test.labels])
    x = images.float() / 255
    ctx.model.eval().cpu()  # the exported model is loaded on the CPU
    with torch.no_grad():
        assert torch.allclose(exported(x), ctx.model(x), atol=1e-5)
    assert torch.equal(predict(exported, images, labels, torch.device("cpu")).preds,
                       predict(ctx.model, images, labels, torch.device("cpu")).preds)
    zeros = sum(int((exported.state_dict()[k] == 0).sum()) for k in ctx.masks)
    total = sum(ctx.masks[k].numel() for k in ctx.masks)
    assert zeros / total == pytest.approx(0.8, abs=0.002), "the sparsity is permanent in the file"


def test_a_stop_during_the_pruning_search_stops_the_run_before_its_first_epoch(tiny_cfg, tmp_path):
    """A trial's own epochs are not the run's: a stop in the search read "Stopped on request after epoch 1 of 2.
    Continue picks up at epoch 2" for a run that had trained nothing and could not be continued."""
    from engine.contract import Reporter
    from engine.jobs import execute_run
    from engine.store import RunStore

    class StopInTrial(Reporter):
        phase = ""

        def progress(self, **fields):
            self.phase = fields.get("phase", self.phase)

        def should_stop(self) -> bool:
            return "(evaluating" in self.phase  # after the trial's first epoch trained

    cfg = tiny_cfg("pruning.enabled=true", "pruning.auto=true", "pruning.trials=2", "pruning.trial_epochs=1",
                   "train.epochs=2")
    store = RunStore(tmp_path / "studio.db")
    store.create_run("r1", "r1", cfg.to_dict(), str(tmp_path / "run"))
    summary = execute_run(store, "r1", cfg, tmp_path / "run", tmp_path / "datasets", StopInTrial())
    assert summary["status"] == "stopped" and "history" not in summary, summary
    assert summary["error"].startswith("Stopped on request before the first epoch ended"), summary["error"]


def test_a_tiny_bayesian_search_returns_a_valid_setting(resnet_cfg, tiny_zip, tmp_path):
    from engine.pruning_search import search_pruning
    from engine.run_data import prepare_data

    cfg = resnet_cfg("pruning.enabled=true", "pruning.auto=true", "pruning.trials=3", "pruning.trial_epochs=1",
                     "pruning.max_fraction=0.9", "eval.ood=false")
    data = prepare_data(cfg, tmp_path)
    rec = Recorder()
    result = search_pruning(cfg, data, reporter=rec)
    assert result.stages == ["conv1", "layer1", "layer2", "layer3", "layer4"]
    assert len(result.best_fractions) == len(result.stages)
    assert all(0.0 <= f <= 0.9 for f in result.best_fractions)
    assert [p["trial"] for p in rec.streams["pruning_trials"]] == [1, 2, 3]
    first = rec.streams["pruning_trials"][0]
    assert set(first["fractions"].values()) == {0.0} and first["sparsity"] < 0.01, "trial 1 is the dense reference"
    assert result.best["score"] == max(t["score"] for t in result.trials)
    assert all(t["score"] == pytest.approx(t["val_acc"] + 0.2 * t["sparsity"]) for t in result.trials)
    assert list(result.best["fractions"].values()) == result.best_fractions


def test_auto_mode_uses_the_best_setting_under_an_accuracy_floor(tiny_cfg, tmp_path):
    """The search runs at the job level, before training, and its result goes into the config:
    the config saved with the run reproduces it without searching again."""
    from engine.config import RunConfig
    from engine.jobs import execute_run
    from engine.store import RunStore

    cfg = tiny_cfg("pruning.enabled=true", "pruning.auto=true", "pruning.trials=2", "pruning.objective=floor",
                   "pruning.max_acc_drop=1.0", "pruning.target_sparsity=0.5", "train.epochs=1", "eval.ood=false")
    rec = Recorder()
    store = RunStore(tmp_path / "studio.db")
    store.create_run("r", "r", cfg.to_dict(), str(tmp_path / "r"))
    s = execute_run(store, "r", cfg, tmp_path / "r", tmp_path, rec)
    saved = RunConfig.load(tmp_path / "r" / "config.yaml").methods["pruning"]
    assert not saved.auto and list(saved.stage_fractions) == s["pruning_search"]["best_fractions"]
    search = s["pruning_search"]
    assert len(search["trials"]) == 2 and len(rec.streams["pruning_trials"]) == 2
    # With a floor of (dense accuracy - 100 points) every trial is feasible: the sparser one wins.
    assert search["best"]["trial"] == 2 and search["best_fractions"] == [0.5] * 5
    assert s["pruning"]["stage_fractions"] == search["best_fractions"]
    assert s["sparsity"] == pytest.approx(0.5, abs=0.002)


def test_structured_pruning_shrinks_speeds_up_and_reloads(resnet_cfg, tmp_path):
    from engine.runs import load_structured

    cfg = resnet_cfg("pruning.enabled=true", "pruning.target_sparsity=0.5", "pruning.structured=true",
                     "pruning.channel_fraction=0.5", "train.epochs=1", "eval.ood=false")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rec = Recorder()
    result = train(cfg, rec, run_dir=run_dir, work_dir=tmp_path)
    s = result.summary
    assert s["params_after"] < 0.4 * s["params_before"]
    # its fine-tune streamed as it went (the Train page draws it live): epoch 0 just after removing channels,
    # then one point per epoch, the same figures Results charts from the summary
    points = rec.streams["structured_fine_tune"]
    assert [p["epoch"] for p in points] == list(range(cfg.methods["pruning"].structured_epochs + 1))
    assert [p["val_acc"] for p in points] == s["structured"]["fine_tune_val_acc"]
    assert {p["before"] for p in points} == {s["structured"]["val_acc_before"]}
    assert s["structured"]["flops_ratio"] < 0.4
    assert s["structured"]["file_bytes_after"] < 0.4 * s["structured"]["file_bytes_before"]
    assert s["latency_speedup"] > 1.0 and s["structured"]["latency_ms"]["batch_32"]["speedup"] > 1.0
    small = result.context.artifacts["structured_model"].cpu().eval()
    rng = torch.random.get_rng_state()
    reloaded, rcfg, meta = load_structured(run_dir / "structured.safetensors")
    assert torch.equal(torch.random.get_rng_state(), rng), "no weights drawn: the resized layers are loaded whole"
    assert rcfg == cfg and sum(p.numel() for p in reloaded.parameters()) == s["params_after"]
    x = result.context.data.val.images.float() / 255
    with torch.no_grad():
        assert torch.allclose(reloaded(x), small(x), atol=1e-5)
    conv = reloaded.net.layer2[0].conv1.weight
    assert conv.shape[0] < 128 and (conv == 0).float().mean() > 0.3, "channels removed and zeros kept"
    # the smaller model's fine-tune was in the time left from the start (a run read "4 s" before its 10 extra
    # epochs), and is counted off once done
    from engine.contract import Reporter
    from engine.train import setup_run, time_left

    from engine.methods.pruning import recovery_cost

    assert setup_run(cfg, Reporter(), None, tmp_path)[0].eval_clock.method_train_epochs == \
        recovery_cost(cfg.methods["pruning"]) > 0, "counted from the start"
    ctx = result.context
    assert ctx.eval_clock.method_train_epochs == 0, "and off once done"
    ctx.epoch, ctx.step = 0, 0
    without = time_left(ctx, 100.0)
    ctx.eval_clock.method_train_epochs = 10
    speed = ctx.eval_clock.train_images_per_sec or 100.0
    assert time_left(ctx, 100.0) == pytest.approx(without + 10 * ctx.steps_per_epoch * cfg.train.batch_size / speed)


def test_pruning_composes_with_adversarial_fine_tuning(tiny_cfg, tmp_path):
    cfg = tiny_cfg("pruning.enabled=true", "pruning.target_sparsity=0.5", "adversarial.enabled=true",
                   "adversarial.steps=1", "eval.robust_steps=2", "eval.robust_subset=8", "eval.ood=false")
    result = train(cfg, work_dir=tmp_path)
    s = result.summary
    assert s["sparsity"] == pytest.approx(0.5, abs=0.002)
    assert 0.0 <= s["robust_acc"] <= 1.0 and "adversarial" in s["methods"]
    ctx = result.context
    for key, w in prunable_weights(ctx).items():  # what WiSE-FT multiplies by: zeros exactly where masks are 0
        assert (w[~ctx.masks[key]] == 0).all()
        mixed = (0.5 * ctx.pretrained_state[key] + 0.5 * w) * ctx.masks[key]
        assert (mixed == 0).float().mean() >= (w == 0).float().mean() - 1e-6


def test_schedule_shapes():
    assert schedule_level(0.0, "cubic", 0.0, 0.75) == 0.0
    assert schedule_level(0.75, "cubic", 0.0, 0.75) == 1.0 and schedule_level(1.0, "cubic", 0.0, 0.75) == 1.0
    assert schedule_level(0.375, "cubic", 0.0, 0.75) == pytest.approx(1 - 0.5 ** 3)
    assert schedule_level(0.375, "linear", 0.0, 0.75) == pytest.approx(0.5)
    assert schedule_level(0.1, "cubic", 0.2, 0.6) == 0.0 and schedule_level(0.2, "one_shot", 0.2, 0.6) == 1.0
    levels = [schedule_level(i / 100, "cubic", 0.1, 0.8) for i in range(101)]
    assert levels == sorted(levels)


def test_bad_settings_are_refused_with_a_reason(tiny_cfg, tmp_path):
    with pytest.raises(StudioError, match="Structured pruning works with"):
        apply_overrides(tiny_cfg(), ["pruning.enabled=true", "pruning.structured=true", "backbone.name=convnext_tiny"])
    with pytest.raises(StudioError, match=r"Target sparsity \(pruning.target_sparsity\) must be between 0 and 0.99"):
        apply_overrides(tiny_cfg(), ["pruning.enabled=true", "pruning.target_sparsity=1.0"])
    cfg = tiny_cfg("pruning.enabled=true", "pruning.stage_fractions=0.5,0.5", "train.epochs=1", "eval.ood=false")
    with pytest.raises(StudioError, match="one fraction per stage"):
        train(cfg, work_dir=tmp_path)


def test_wise_ft_keeps_the_sparsity(resnet_cfg, tmp_path):
    from safetensors.torch import save_file

    from engine.backbones import build_model
    from engine.checkpoints import load_checkpoint
    from engine.claims import wise_pruned_start
    from engine.methods.wise_ft import interpolate_state
    from engine.predict import load_predictor

    start, _ = build_model("resnet18", 3, "none")
    ckpt = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(ckpt))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = resnet_cfg("pruning.enabled=true", "pruning.target_sparsity=0.6", "wise_ft.enabled=true",
                     "wise_ft.alphas=0,0.5,1", "backbone.pretrained=checkpoint", f"backbone.checkpoint={ckpt}",
                     "eval.ood=false")
    result = train(cfg, run_dir=run_dir, work_dir=tmp_path)
    assert len(result.summary["wise_curve"]) == 3
    theta0, _ = load_checkpoint(run_dir / "theta0.safetensors")
    theta1, _ = load_checkpoint(run_dir / "last.safetensors")
    masks, _ = load_checkpoint(run_dir / "masks.safetensors")
    mixed = interpolate_state(theta0, theta1, 0.5, masks)
    zeros = sum(int((mixed[k] == 0).sum()) for k in masks)
    assert zeros / sum(m.numel() for m in masks.values()) == pytest.approx(0.6, abs=0.002)
    # alpha 0 is the starting model with the pruned weights removed, not the full-size one the summary's
    # wise_theta0_val_acc measured: a new user saw a curve at guessing up to 0.55 beside "88.9%" and no word why
    start = result.summary["wise_curve"][0]
    line = wise_pruned_start(result.summary)
    assert f"{100 * start['val_acc']:.1f}% on validation, against " \
           f"{100 * result.summary['wise_theta0_val_acc']:.1f}% with all its weights" in line and "60% of weights" in line
    assert wise_pruned_start({**result.summary, "sparsity": None}) is None
    write_json(run_dir / "summary.json", {**result.summary, "status": "finished"})  # as engine.jobs does
    assert load_predictor(run_dir, "wise", alpha=0.0).label == "WiSE-FT mix at alpha 0.00 (the starting model, pruned)"
    zero = interpolate_state(theta0, theta1, 0.0, masks)
    assert all(torch.equal(zero[k], theta0[k] * masks[k]) for k in masks)


def test_a_fine_tune_inside_a_run_names_its_own_epochs_in_the_phase():
    """The smaller model's recovery epochs (and a search trial's) report their own step counter: the
    phase says whose epochs they are, and the run's epoch counter is left alone (a new user saw
    "Epoch 5 / 5" beside "Step 30 / 30" of a 15-step run)."""
    from engine.contract import Reporter, SubReporter

    got = []
    parent = Reporter()
    parent.progress = lambda **f: got.append(f)
    sub = SubReporter(parent, "structured pruning: fine-tuning the smaller model")
    sub.progress(phase="training", epoch=3, epochs=10, step=25, total_steps=30, loss=0.5)
    label = "structured pruning: fine-tuning the smaller model"
    assert got == [{"phase": f"{label} (training, epoch 3 of 10)", "sub_loss": 0.5, "sub_label": label,
                    "sub_epoch": 3, "sub_epochs": 10, "sub_step": 25, "sub_total_steps": 30,
                    "sub_images_per_sec": None}]  # (its first report clears what earlier inner work left)
    # the counters shown go together: the smaller model's epoch beside its step (a new user saw "Epoch 20 / 20"
    # beside "Step 39 / 70"), the run's own again once the phase is over (it read "Epoch 20 / 20" beside the
    # fine-tune's last "Step 30 / 30" while the latency was measured and the final evaluation ran)
    from engine.cli import progress_words
    from engine.contract import Counters, shown_counters

    merged = {"epoch": 20, "epochs": 20, "step": 700, "total_steps": 700, "loss": 0.9, "images_per_sec": 80.0,
              **got[0]}
    assert shown_counters(merged) == Counters("fine-tuning the smaller model", 3, 10, 25, 30, None, 0.5)
    assert progress_words(merged).startswith("fine-tuning the smaller model: epoch 3/10, step 25/30 in all, loss 0.500")
    after = {**merged, "phase": "structured pruning: measuring CPU latency"}
    assert shown_counters(after) == Counters(None, 20, 20, 700, 700, 80.0, 0.9), "the run's own speed and loss"
    assert progress_words({**merged, "phase": "final evaluation"}).startswith("epoch 20/20, step 700/700 in all")
    # work without epochs (the learning-rate finder) shows its own steps, never the run's
    # (the finder's set-up reports the run's epoch total through it: no "epoch 0 of 20" of its own)
    merged = {"epoch": 0, "epochs": 20}
    parent.progress = merged.update
    finder = SubReporter(parent, "finding the learning rate")
    finder.progress(phase="loading data", epochs=20)
    finder.progress(phase="training", step=4, total_steps=40, loss=1.2)
    assert shown_counters(merged) == Counters("finding the learning rate", 0, 0, 4, 40, None, 1.2)
    assert progress_words(merged).startswith("finding the learning rate, step 4/40")
    # a second piece of inner work starts from nothing: trial 1's counters are not trial 2's
    trial = SubReporter(parent, "pruning search: trial 1/2")
    trial.progress(phase="training", epoch=2, epochs=2, step=30, total_steps=30, images_per_sec=90.0, loss=0.4)
    SubReporter(parent, "pruning search: trial 2/2").progress(phase="loading data", epochs=2)
    assert shown_counters(merged) == Counters("trial 2/2", 0, 0, 0, 0, None, None)


def test_a_stop_asked_for_during_work_inside_a_run_reaches_that_work():
    """Stop during the smaller model's fine-tune (or a search trial, the learning-rate finder) stops it: the
    inner work's reporter asks the run's. Its check once sat, unreachable, inside another function, so a
    stopped Pruning demo went on fine-tuning its smaller model to the end."""
    from engine.contract import Reporter, SubReporter

    asked = []
    parent = Reporter()
    parent.should_stop = lambda: bool(asked)
    sub = SubReporter(SubReporter(parent, "pruning search: trial 1/4"), "inner")
    assert not sub.should_stop()
    asked.append(True)
    assert sub.should_stop()
    assert not SubReporter(None, "alone").should_stop()


def test_the_train_page_shows_the_counters_of_the_work_under_way():
    """The Train page's Epoch and Step tiles during a run, inside the smaller model's fine-tune, after it, and
    beside the learning-rate finder (no epochs of its own): each pair is one piece of work's."""
    from streamlit.testing.v1 import AppTest

    def page():
        import streamlit as st

        from app.components import RunView, progress_view

        progress_view(RunView(id="r", name="r", status="running", error=None, config={"train": {"epochs": 20}},
                              run_dir="/nonexistent", progress=st.session_state["p"]))

    run = {"phase": "training", "epoch": 20, "epochs": 20, "step": 700, "total_steps": 700, "images_per_sec": 80.0}
    inner = {"phase": "structured pruning: fine-tuning the smaller model (training, epoch 3 of 10)",
             "sub_label": "structured pruning: fine-tuning the smaller model", "sub_epoch": 3, "sub_epochs": 10,
             "sub_step": 25, "sub_total_steps": 70, "sub_images_per_sec": 200.0}
    at = AppTest.from_function(page, default_timeout=60)
    seen = {}
    for name, p in (("run", run), ("inner", {**run, **inner}),
                    ("after", {**run, **inner, "phase": "structured pruning: measuring CPU latency"}),
                    ("finder", {"phase": "finding the learning rate (training)", "epochs": 20,
                                "sub_label": "finding the learning rate", "sub_step": 4, "sub_total_steps": 40})):
        at.session_state["p"] = p
        at.run()
        assert not at.exception, at.exception
        seen[name] = {m.label: m.value for m in at.metric}
    assert seen["run"]["Epoch"] == "20 / 20" and seen["run"]["Step"] == "700 / 700"
    assert seen["inner"]["Epoch (fine-tuning the smaller model)"] == "3 / 10" and seen["inner"]["Step"] == "25 / 70"
    assert seen["after"]["Epoch"] == "20 / 20" and seen["after"]["Step"] == "700 / 700"
    assert seen["inner"]["Speed"] == "200 img/s" and seen["after"]["Speed"] == "80 img/s", "each with its own speed"
    assert seen["finder"]["Epoch"] == "0 / 20" and seen["finder"]["Step"] == "4 / 40"


def test_latency_is_measured_after_one_warm_up_per_model_and_batch_size():
    """latency_pair warms each model up once per batch size (3 untimed passes), then times `rounds` x `repeats`
    passes of each: warming up again before every round cost a structured run's end 3 passes in 8 for nothing."""
    from engine.structured import latency_pair

    calls = {"dense": 0, "small": 0}

    def counted(name: str, width: int) -> torch.nn.Module:
        model = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.AdaptiveAvgPool2d(1))
        model.register_forward_hook(lambda *_: calls.__setitem__(name, calls[name] + 1))
        return model

    out = latency_pair(counted("dense", 16), counted("small", 4), 8, batches=(1, 2), rounds=3, repeats=2)
    assert calls == {"dense": 2 * (3 + 3 * 2), "small": 2 * (3 + 3 * 2)}, calls
    assert set(out) == {"batch_1", "batch_2"} and all(v["before_ms"] > 0 and v["after_ms"] > 0 for v in out.values())
