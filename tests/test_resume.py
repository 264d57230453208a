"""Continue a run: a run stopped in its second epoch, continued from its resume point, ends exactly
where the uninterrupted run ends, with the same learning rate at every step."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch

from engine.checkpoints import load_checkpoint
from engine.contract import Reporter, StopRequested
from engine.errors import StudioError
from engine.resume import RESUME_FILE
from engine.train import train

from conftest import RANDOM_RESNET18


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
    t = time.perf_counter()
    resumed = train(cfg, second, run_dir=tmp_path / "cut", resume=True)
    this_part = time.perf_counter() - t
    assert min(second.lrs) == steps + 1  # from the first step of epoch 2, not from the start
    for step, lr in second.lrs.items():
        assert lr == pytest.approx(whole.lrs[step], rel=1e-12), step
    assert [h["epoch"] for h in resumed.summary["history"]] == [1, 2, 3]
    a, b = full.context.model.state_dict(), resumed.context.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same data order, augmentation and momentum: same weights
    assert resumed.summary["val_acc"] == full.summary["val_acc"]
    # the summary says where this part started, and its run time counts the part before the stop too
    before = resumed.summary["wall_time_before_s"]
    assert resumed.summary["continued_from_epoch"] == 1 and 0 < before < resumed.summary["wall_time_s"]
    assert resumed.summary["wall_time_s"] - before <= this_part  # the earlier part counted once
    assert "continued_from_epoch" not in full.summary
    # the first part's start-up (the CLI's imports, reading the data) counts in the time saved for the next part
    late = Recorder(stop_at=steps + 2)
    late.started_at = time.time() - 30.0  # the process started 30 s before training did
    (tmp_path / "late").mkdir()
    with pytest.raises(StopRequested):
        train(cfg, late, run_dir=tmp_path / "late")
    assert torch.load(tmp_path / "late" / RESUME_FILE, weights_only=False)["elapsed_s"] >= 30.0


def test_continuing_needs_a_resume_point_and_the_same_settings(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.epochs=2", "eval.ood=false")
    with pytest.raises(StudioError, match="no saved state to continue from"):
        train(cfg, run_dir=tmp_path / "never", resume=True)
    with pytest.raises(StopRequested):
        (tmp_path / "r").mkdir()
        train(cfg, Recorder(stop_at=1), run_dir=tmp_path / "r")
    with pytest.raises(StudioError, match="no saved state"):  # stopped before its first epoch ended
        train(cfg, run_dir=tmp_path / "r", resume=True)


def test_the_dashboard_continues_a_stopped_run(tmp_path, monkeypatch):
    """Train page: a run stopped after its first epoch shows Continue; it then finishes every epoch."""
    import time

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from conftest import write_tiny_zip

    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "studio"))
    from app import charts
    from app.state import get_engine
    from engine.config import RunConfig, apply_overrides

    try:
        engine = get_engine()
        data = engine.save_upload(write_tiny_zip(tmp_path / "tiny.zip", per_class=10).read_bytes(), ".zip")
        cfg = apply_overrides(RunConfig(), [f"data.source={data}", "data.image_size=32", "backbone.pretrained=none",
                                            "train.epochs=3", "train.batch_size=8", "eval.ood=false",
                                            "train.device=cpu"])
        run_id = engine.submit(cfg)
        while not engine.snapshot(run_id).epochs:  # stop once the first epoch is done
            assert engine.snapshot(run_id).status in ("queued", "running"), engine.snapshot(run_id).error
            time.sleep(0.05)
        engine.stop(run_id)
        assert engine.wait(run_id, 300) == "stopped"
        said = engine.snapshot(run_id).error or engine.store.get_run(run_id).error
        done = int(re.search(r"Stopped on request after epoch (\d) of 3\. Continue picks up at epoch (\d)", said)[1])
        assert f"at epoch {done + 1} " in said
        at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "main.py"), default_timeout=120)
        at.run()
        at.switch_page("app_pages/train.py").run()
        # the same settings in the draft: Start would train them from the first epoch, and the note beside it
        # says so and offers Continue (a new user saw plain "Start training" beside their stopped run)
        at.session_state["cfg"] = cfg
        at.run()
        assert any("was stopped with exactly these settings" in c.value for c in at.caption), [c.value for c in at.caption]
        (again,) = [b for b in at.button if b.key == "start_continue"]  # Continue beside Start
        # the page's main (red) button: a teacher under pressure pressed the red Start, which begins at epoch 1
        assert again.proto.type == "primary" and at.button(key="start").proto.type == "secondary"
        at.button(key=f"continue_{run_id}").click().run()
        assert engine.snapshot(run_id).progress.get("epoch", 0) >= done, "a continued run counts on, not from 0"
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert engine.wait(run_id, 300) == "finished"
        assert [e["epoch"] for e in engine.snapshot(run_id).epochs][-1] == 3
        steps = [r["step"] for r in engine.snapshot(run_id).steps]  # the step chart keeps the first part too
        assert steps[0] == 1 and steps == sorted(steps), steps[:5]
        assert charts.steps_frame(engine.snapshot(run_id).steps)["step"].is_unique, "a redone step counted once"
        summary = json.loads((Path(engine.store.get_run(run_id).run_dir) / "summary.json").read_text())
        assert summary["continued_from_epoch"] == done and summary["wall_time_s"] > summary["wall_time_before_s"] > 0
        at.switch_page("app_pages/results.py").run()
        assert any(f"from epoch {done + 1}" in c.value for c in at.caption), "the caption says it was continued"
        at.switch_page("app_pages/train.py")
        at.run()
        assert not any(b.key == f"continue_{run_id}" for b in at.button)  # finished: nothing to continue
    finally:
        get_engine().shutdown(5)
        st.cache_resource.clear()


def test_the_cli_continues_a_stopped_run_under_its_own_record_by_id_or_folder(tiny_cfg, tmp_path, capsys):
    import json

    from engine.cli import main
    from engine.jobs import execute_run
    from engine.store import RunStore

    data_dir, run_dir = tmp_path / "d", tmp_path / "elsewhere"  # where `train --out` put it
    store = RunStore(data_dir / "studio.db")
    cfg = tiny_cfg("train.epochs=3", "eval.ood=false")
    store.create_run("r1", "mine", cfg.to_dict(), str(run_dir), owner="cli")
    steps = 36 // 8  # 60 images, 60% for training, batch 8
    assert execute_run(store, "r1", cfg, run_dir, data_dir / "datasets", Recorder(stop_at=steps + 1))["status"] == "stopped"
    assert main(["train", "--resume", str(run_dir), "--epochs", "5", "--data-dir", str(data_dir)]) == 2
    assert "--resume continues a run with its own settings" in capsys.readouterr().err
    assert main(["train", "--resume", "r1", "--data-dir", str(data_dir), "--quiet"]) == 0, "by the id `runs` lists"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and [h["epoch"] for h in summary["history"]] == [1, 2, 3]
    assert [r.status for r in RunStore(data_dir / "studio.db").list_runs()] == ["finished"]  # the same record
    assert main(["train", "--resume", str(tmp_path), "--data-dir", str(data_dir)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["train", "--resume", "r2", "--data-dir", str(data_dir)]) == 2
    assert "No run 'r2'" in capsys.readouterr().err


def _start_checkpoint(path: Path) -> Path:
    """The bundled MobileNetV3-Small weights given as a checkpoint: a start a run takes from a file."""
    from safetensors.torch import save_file

    from engine.backbones import build_model

    start, _ = build_model("mobilenet_v3_small", 3, "bundled")
    save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(path))
    return path


def _whole_and_continued(cfg, root: Path, stop_in_epoch: int, between=lambda: None):
    """(the uninterrupted run, the run stopped inside epoch `stop_in_epoch` and continued); `between`
    runs after the stop, before the continuation."""
    for name in ("whole", "cut"):
        (root / name).mkdir()
    whole = train(cfg, Recorder(), run_dir=root / "whole")
    steps = whole.context.steps_per_epoch
    with pytest.raises(StopRequested):
        train(cfg, Recorder(stop_at=steps * (stop_in_epoch - 1) + 1), run_dir=root / "cut")
    between()
    return whole, train(cfg, Recorder(), run_dir=root / "cut", resume=True)


def _same_weights(a, b) -> list[str]:
    sa, sb = a.context.model.state_dict(), b.context.model.state_dict()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


SUMMARY_OF = {  # what each method's own state decides in the summary
    "adafilter": ("adafilter_gate_mean", "adafilter_gate_grad_history", "val_acc"),
    "pruning": ("pruning", "sparsity", "sparsity_by_layer", "val_acc"),
}


@pytest.mark.parametrize("method, settings", [
    # the gate network has its own optimiser groups and Adam; its Gumbel noise draws from the global stream
    ("adafilter", ("adafilter.enabled=true", *RANDOM_RESNET18)),
    # stopped mid-ramp: the masks and the schedule's position carry on, not start again
    ("pruning", ("pruning.enabled=true", "pruning.target_sparsity=0.7", "pruning.start_fraction=0.0",
                 "pruning.end_fraction=1.0")),
])
def test_a_method_run_continues_exactly_where_it_stopped(tiny_cfg, tmp_path, method, settings):
    cfg = tiny_cfg("train.epochs=2", "eval.ood=false", *settings)  # stopped in the last epoch, a step in
    whole, continued = _whole_and_continued(cfg, tmp_path, stop_in_epoch=2)
    assert continued.summary["continued_from_epoch"] == 1
    assert not _same_weights(whole, continued)
    for key in SUMMARY_OF[method]:
        assert continued.summary[key] == whole.summary[key], key


def test_the_adversarial_guard_remembers_its_best_epoch_across_a_stop(tiny_cfg, tmp_path, monkeypatch):
    """The overfitting guard rolls back to the best epoch before the stop, as the uninterrupted run does."""
    import engine.methods.adversarial as adv

    scores = iter([0.8, 0.5, 0.1,  # the uninterrupted run: epoch 3 collapses below half of epoch 1's
                   0.8, 0.5,  # the stopped run's first two epochs
                   0.1])  # the continued run's epoch 3
    monkeypatch.setattr(adv, "robust_accuracy", lambda *a, **k: next(scores))
    cfg = tiny_cfg("adversarial.enabled=true", "adversarial.attack=fgsm", "train.epochs=3", "eval.ood=false",
                   "eval.robust_steps=1", "eval.robust_subset=4")
    whole, continued = _whole_and_continued(cfg, tmp_path, stop_in_epoch=3)
    assert whole.summary["catastrophic_overfitting"]["rolled_back_to_epoch"] == 1
    assert continued.summary["catastrophic_overfitting"] == whole.summary["catastrophic_overfitting"]
    assert not _same_weights(whole, continued)  # epoch 1's weights in both


def test_a_continued_wise_ft_run_mixes_with_the_theta_0_it_started_from(tiny_cfg, tmp_path, monkeypatch):
    """theta_0 is saved with the resume point: a probe that would come out otherwise now (another CPU's
    kernels, other threads) does not change the curve of a continued run."""
    import engine.methods.wise_ft as wise

    ckpt = _start_checkpoint(tmp_path / "start.safetensors")
    cfg = tiny_cfg("wise_ft.enabled=true", "wise_ft.alphas=0,0.5,1", "train.epochs=3", "eval.ood=false",
                   "backbone.pretrained=checkpoint", f"backbone.checkpoint={ckpt}")
    fit = wise.calibrated_probe

    def elsewhere(*args, **kwargs):
        w, b, temperature = fit(*args, **kwargs)
        return w * 1.5, b, temperature

    def another_probe():  # from here on the probe lands elsewhere
        monkeypatch.setattr(wise, "calibrated_probe", elsewhere)

    whole, continued = _whole_and_continued(cfg, tmp_path, stop_in_epoch=2, between=another_probe)
    assert not _same_weights(whole, continued)
    for key in ("wise_curve", "wise_theta0_val_acc", "wise_theta0_temperature"):
        assert continued.summary[key] == whole.summary[key], key
    theta0 = [load_checkpoint(tmp_path / name / "theta0.safetensors")[0] for name in ("whole", "cut")]
    assert all(torch.equal(theta0[0][k], theta0[1][k]) for k in theta0[0])  # the file the run keeps, too


def test_a_resume_point_that_does_not_fit_its_methods_is_refused_with_a_message(resnet_cfg, tmp_path):
    """A resume point whose optimiser state does not fit the run (another version's grouping) gives a
    message, not a traceback."""
    cfg = resnet_cfg("train.epochs=2", "eval.ood=false", "adafilter.enabled=true")
    (tmp_path / "r").mkdir()
    with pytest.raises(StopRequested):
        train(cfg, Recorder(stop_at=7), run_dir=tmp_path / "r")  # inside epoch 2
    point = torch.load(tmp_path / "r" / RESUME_FILE, weights_only=True)
    point["optimizer"]["param_groups"] = point["optimizer"]["param_groups"][:1]
    torch.save(point, tmp_path / "r" / RESUME_FILE)
    with pytest.raises(StudioError, match="written by another version of the studio"):
        train(cfg, run_dir=tmp_path / "r", resume=True)


@pytest.mark.parametrize("phase, settings", [
    ("structured pruning: fine-tuning", ("pruning.enabled=true", "pruning.target_sparsity=0.5",
                                         "pruning.structured=true", "pruning.channel_fraction=0.5",
                                         "pruning.structured_epochs=2")),
    ("WiSE-FT curve", ("wise_ft.enabled=true", "wise_ft.alphas=0,0.5,1", "backbone.pretrained=checkpoint")),
    ("final evaluation", ()),
])
def test_a_stop_after_the_last_epoch_keeps_the_epochs_and_continue_finishes(tiny_cfg, tmp_path, phase, settings):
    """Stop pressed after the run's own epochs (while a Pruning run fine-tunes its smaller model, WiSE-FT
    computes its curve, or the final evaluation runs) stops there: the request once never reached the
    smaller model's fine-tune, which ran to its end, a stopped curve was cut short and the run called
    finished, and the final evaluation ran on to its end. The stopped run keeps its epochs, says that
    Continue does the remaining work, and Continue finishes it."""
    from engine.jobs import stopped_message

    class StopIn(Reporter):
        def __init__(self):
            self.phase = ""

        def progress(self, **fields):
            self.phase = fields.get("phase", self.phase)

        def should_stop(self) -> bool:
            return self.phase.startswith(phase)

    wise = "wise_ft.enabled=true" in settings  # WiSE-FT needs a "pretrained" start
    extra = [f"backbone.checkpoint={_start_checkpoint(tmp_path / 'start.safetensors')}"] if wise else []
    cfg = tiny_cfg("train.epochs=2", *settings, *extra)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(StopRequested) as stop:
        train(cfg, StopIn(), run_dir=run_dir)
    kept = stop.value.summary
    assert kept["epochs"] == 2 and [h["epoch"] for h in kept["history"]] == [1, 2]
    assert "test_acc" not in kept and "wise_curve" not in kept and not (run_dir / "structured.safetensors").exists()
    work = {"structured pruning: fine-tuning": "the smaller model's fine-tune", "WiSE-FT curve": "WiSE-FT's curve",
            "final evaluation": "the final evaluation"}[phase]
    assert kept["stopped_in"] == work, "named as the user knows it"
    said = stopped_message(kept["epochs"], 2, (run_dir / RESUME_FILE).is_file(), during=kept["stopped_in"])
    assert f"after its 2 epochs, in {work}. Continue does {work}" in said and "epoch 3" not in said
    assert stopped_message(1, 1, True, during=work).startswith("Stopped on request after its 1 epoch, in ")
    # Continue does all the work after the epochs again, not only the part it stopped in
    both = stopped_message(2, 2, True, during="the final evaluation",
                           end_work=["the smaller model's fine-tune", "WiSE-FT's curve"])
    assert "Continue does the smaller model's fine-tune, WiSE-FT's curve and the final evaluation again" in both
    seen = []
    watch = Reporter()
    watch.progress = lambda **fields: seen.append(fields)
    done = train(cfg, watch, run_dir=run_dir, resume=True)
    assert done.summary["status"] == "finished" and [h["epoch"] for h in done.summary["history"]] == [1, 2]
    assert "test_acc" in done.summary
    # the final evaluation's counters are the run's 2 of 2 (a continued run read "Epoch 1 / 20" there), and its
    # time left is unknown before a part is done, then counted from the parts done (it read 0 s throughout)
    final = [f for f in seen if f.get("phase") == "final evaluation"]
    assert final and all((f["epoch"], f["epochs"]) == (2, 2) for f in final)
    assert done.summary["train_images_per_sec"] > 0, "the earlier part's speed (no epoch trained in this one)"
    assert all(f["eta_s"] is None if f["part_done"] == 0 else f["eta_s"] > 0 or f["part_done"] == f["parts"]
               for f in final), final
    if "pruning.structured=true" in settings:
        assert done.summary["structured"]["params_after"] > 0
    if wise:
        assert [p["alpha"] for p in done.summary["wise_curve"]] == [0, 0.5, 1]


def test_a_run_whose_method_ended_training_and_was_stopped_after_finishes_without_more_epochs(tiny_cfg, tmp_path,
                                                                                             monkeypatch):
    """The overfitting guard rolled back and ended training after epoch 2 of 4; a stop in the final evaluation
    then kept the run, and Continue would have trained epochs 3 and 4 from the rolled-back weights. It now
    finishes the run as it ended, the rollback's figures kept, and the stop's words say no epoch is left."""
    import engine.methods.adversarial as adv
    from engine.jobs import stopped_message

    scores = iter([0.8, 0.1])  # epoch 2 collapses below half of epoch 1's: rolled back to epoch 1, ended
    monkeypatch.setattr(adv, "robust_accuracy", lambda *a, **k: next(scores))

    class StopInFinal(Reporter):
        phase = ""

        def progress(self, **fields):
            self.phase = fields.get("phase", self.phase)

        def should_stop(self) -> bool:
            return self.phase == "final evaluation"

    cfg = tiny_cfg("adversarial.enabled=true", "adversarial.attack=fgsm", "train.epochs=4", "eval.robust_steps=1",
                   "eval.robust_subset=4")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(StopRequested) as stop:
        train(cfg, StopInFinal(), run_dir=run_dir)
    kept = stop.value.summary
    assert kept["epochs"] == 2 and kept["ended_early"]["after_epoch"] == 2
    said = stopped_message(kept["epochs"], kept["ended_early"]["after_epoch"], True)
    assert "after its 2 epochs" in said and "epoch 3" not in said
    # read without the resume point by the words of a Ctrl+C, a kill or a restart too (they said "at epoch 3")
    from engine.resume import ENDED_FILE, planned_epochs

    assert planned_epochs(run_dir, 4) == 2 and planned_epochs(tmp_path / "elsewhere", 4) == 4
    done = train(cfg, Recorder(), run_dir=run_dir, resume=True)
    assert [h["epoch"] for h in done.summary["history"]] == [1, 2], "no epoch trained after the method ended it"
    assert done.summary["catastrophic_overfitting"]["rolled_back_to_epoch"] == 1
    assert done.summary["ended_early"]["weights_epoch"] == 1 and "catastrophic overfitting" in \
        done.summary["ended_early"]["reason"]
    assert not (run_dir / ENDED_FILE).exists(), "finished: gone with the resume point"


def test_results_says_where_a_continued_run_picked_up():
    """A run continued after its 20 epochs (to finish the smaller model's fine-tune) read "continued ... from
    epoch 21" on Results."""
    import types

    from app.app_pages.results import started_text

    rec = types.SimpleNamespace(created=1.7e9, started=1.7e9 + 1560.0, config={"train": {"epochs": 20}})
    assert started_text(rec, {"continued_from_epoch": 3, "epochs": 20}).endswith("from epoch 4")
    assert started_text(rec, {"continued_from_epoch": 20, "epochs": 20}).endswith("after its 20 epochs")
    # stopped again after its continuation's first epoch: 6 of 20 done, so it continued from epoch 6
    assert started_text(rec, {"continued_from_epoch": 5, "epochs": 6}).endswith("from epoch 6")
    ended = {"continued_from_epoch": 5, "epochs": 5, "ended_early": {"after_epoch": 5}}  # a method ended it at 5
    assert started_text(rec, ended).endswith("after its 5 epochs")
