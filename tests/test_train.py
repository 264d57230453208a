"""Short CPU runs of the training loop, one per loop feature."""

import time

import pytest
import torch

from engine.errors import StudioError
from engine.schedules import SCHEDULES, lr_curve
from engine.contract import Reporter, StopRequested
from engine.train import train

SUMMARY_KEYS = ("status", "epochs", "val_acc", "test_acc", "ood_acc", "ood_acc_by_corruption",
                "train_images_per_sec", "num_params", "data_report")


class Recorder(Reporter):
    def __init__(self, stop_after_s: float | None = None):
        self.epochs, self.steps, self.phases, self.progress_calls = [], [], [], []
        self.t0 = time.perf_counter()
        self.stop_after_s = stop_after_s
        self.stop_seen_at = None

    def progress(self, **f):
        self.phases.append(f.get("phase"))
        self.progress_calls.append(f)

    def step_metrics(self, epoch, step, values):
        self.steps.append(values)

    def epoch_metrics(self, epoch, step, values):
        self.epochs.append(values)

    def should_stop(self):
        if self.stop_after_s is not None and time.perf_counter() - self.t0 > self.stop_after_s:
            self.stop_seen_at = self.stop_seen_at or time.perf_counter()
            return True
        return False


def test_a_plain_run_learns_and_writes_a_full_summary(tiny_cfg, tmp_path):
    rec = Recorder()
    result = train(tiny_cfg("train.epochs=4", "eval.ood=true"), rec, run_dir=tmp_path, work_dir=tmp_path / "data")
    s = result.summary
    for key in SUMMARY_KEYS:
        assert key in s, key
    assert s["status"] == "finished" and s["epochs"] == 4
    assert s["val_acc"] > 0.5, "three easy classes must be learnt beyond chance (0.33)"
    assert set(s["ood_acc_by_corruption"]) >= {"gaussian_noise", "gaussian_blur", "contrast", "brightness", "jpeg", "pixelate"}
    assert 0 <= s["ood_acc"] <= 1 and s["train_images_per_sec"] > 0
    assert len(rec.epochs) == 4 and all("ood_acc" in e for e in rec.epochs)
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "last.safetensors").is_file()
    from engine.checkpoints import read_metadata
    from engine.predict import best_epoch

    # the epoch the loop kept is the one the pages name (engine.metrics.selection_key for both)
    assert int(read_metadata(tmp_path / "best.safetensors")["epoch"]) == best_epoch(s["history"])[0]
    assert len(s["val_confusion"]) == 3 and sum(map(sum, s["val_confusion"])) == sum(s["data_report"]["split_counts"]["val"].values())


def test_a_library_call_without_folders_writes_nothing_where_it_is_called(tiny_cfg, tmp_path, monkeypatch):
    """train(cfg) with neither run_dir nor work_dir decodes into a temporary folder deleted afterwards
    (it wrote ./runs/data wherever it was called); its result stays usable."""
    import tempfile

    here, scratch = tmp_path / "here", tmp_path / "tmp"
    here.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = train(tiny_cfg("train.epochs=1", "eval.ood=false"))
    assert result.summary["status"] == "finished" and len(result.context.data.val) > 0
    assert list(here.iterdir()) == [] and list(scratch.iterdir()) == [], "nothing left behind"


def test_runs_are_deterministic_on_cpu(resnet_cfg, tmp_path):
    """From random weights, so that the whole network's draw, not only the new head's, comes from the seed."""
    a = train(resnet_cfg("train.epochs=1"), work_dir=tmp_path).context.model.state_dict()
    b = train(resnet_cfg("train.epochs=1"), work_dir=tmp_path).context.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_freezing_keeps_the_first_blocks_unchanged(resnet_cfg, tmp_path):
    res = train(resnet_cfg("optim.freeze_blocks=2", "train.epochs=1"), work_dir=tmp_path)
    ctx = res.context
    start, end = ctx.pretrained_state, ctx.model.state_dict()
    assert torch.equal(start["net.conv1.weight"], end["net.conv1.weight"])
    assert torch.equal(start["net.layer1.0.conv1.weight"], end["net.layer1.0.conv1.weight"])
    assert torch.equal(start["net.bn1.running_mean"], end["net.bn1.running_mean"]), "frozen BN stats must not drift"
    assert not torch.equal(start["net.layer4.0.conv1.weight"], end["net.layer4.0.conv1.weight"])


def test_linear_probe_then_fine_tune(resnet_cfg, tmp_path):
    rec = Recorder()
    res = train(resnet_cfg("optim.linear_probe_epochs=1", "train.epochs=2"), rec, work_dir=tmp_path)
    ctx = res.context
    # after the probe epoch the whole trunk trains: it must have moved by the end
    assert not torch.equal(ctx.pretrained_state["net.conv1.weight"], ctx.model.state_dict()["net.conv1.weight"])
    assert not torch.equal(ctx.pretrained_state["net.fc.weight"], ctx.model.state_dict()["net.fc.weight"])
    # the head-only epochs it ran are recorded, live and in the summary (the accuracy chart's notes read them)
    assert res.summary["probe_epochs"] == 1 and any(p.get("probe_epochs") == 1 for p in rec.progress_calls)


def test_probe_phase_trains_only_the_head():
    from engine.backbones import build_model
    from engine.optim import set_trunk_trainable

    model, _ = build_model("resnet18", 3, "none")
    set_trunk_trainable(model, [], probe_only=True)
    head = model.head_parameter_ids()
    assert all(p.requires_grad == (id(p) in head) for p in model.parameters())
    set_trunk_trainable(model, model.trunk_blocks()[:1], probe_only=False)
    assert not model.net.conv1.weight.requires_grad and model.net.layer1[0].conv1.weight.requires_grad


def test_l2sp_reduces_drift_from_the_start(resnet_cfg, tmp_path):
    from safetensors.torch import save_file

    from engine.backbones import build_model

    start, _ = build_model("resnet18", 3, "none")
    ckpt = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in start.net.state_dict().items()}, str(ckpt))

    def drift(*extra):
        ctx = train(resnet_cfg("train.epochs=1", "backbone.pretrained=checkpoint", f"backbone.checkpoint={ckpt}",
                               "eval.ood=false", *extra), work_dir=tmp_path).context
        end = ctx.model.state_dict()
        return sum(float((end[k] - v).pow(2).sum()) for k, v in ctx.pretrained_state.items() if k.endswith("conv1.weight"))

    assert drift("l2sp.enabled=true", "l2sp.alpha=20.0") < 0.8 * drift()


def test_l2sp_needs_a_pretrained_start(resnet_cfg):
    with pytest.raises(StudioError, match="pretrained"):
        resnet_cfg("l2sp.enabled=true")


@pytest.mark.parametrize("optimizer, schedule", [("adamw", "step"), ("sgd", "warmup_cosine"), ("sgd", "constant")])
def test_optimisers_and_schedules_run(tiny_cfg, tmp_path, optimizer, schedule):
    lr = "0.001" if optimizer == "adamw" else "0.05"
    rec = Recorder()
    train(tiny_cfg(f"optim.optimizer={optimizer}", f"optim.schedule={schedule}", f"optim.lr={lr}",
                   "optim.warmup_fraction=0.3", "train.epochs=1", "eval.ood=false"), rec, work_dir=tmp_path)
    lrs = [s["lr"] for s in rec.steps]
    assert lrs and max(lrs) <= float(lr) + 1e-12


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_shapes(name):
    from engine.config import RunConfig, with_section

    cfg = with_section(RunConfig(), "optim", schedule=name, lr=0.1, warmup_fraction=0.2)
    curve = lr_curve(cfg.optim, 100)
    assert len(curve) == 100 and max(curve) <= 0.1 + 1e-12 and min(curve) >= 0
    if name == "warmup_cosine":
        assert curve[0] < curve[19] and curve[25] > curve[99]
    if name == "cosine":
        assert curve[0] == pytest.approx(0.1) and curve[99] < 0.001


@pytest.mark.parametrize("name, share", [("warmup_cosine", "warmup_fraction"), ("slow_start_fast_decay",
                                                                               "slow_start_fraction")])
def test_a_linear_rise_trains_on_its_first_step_and_peaks_on_its_last(name, share):
    """A rise computed from t = step / total alone gave step 0 a learning rate of 0: a wasted step, 1 in 20 of a
    short classroom run. The rise counts the step it is on (torch's LinearLR): 1/k of the peak, ..., k/k."""
    from engine.config import RunConfig, with_section

    cfg = with_section(RunConfig(), "optim", schedule=name, lr=0.1, **{share: 0.2})
    curve = lr_curve(cfg.optim, 50)  # a rise of 10 steps
    assert curve[:10] == pytest.approx([0.1 * (i + 1) / 10 for i in range(10)])
    assert max(curve) == pytest.approx(0.1) and curve[11] < curve[9], "then the decay"


def test_divergence_fails_with_the_reason(tiny_cfg, tmp_path, monkeypatch):
    # lr is capped at 10 (its field metadata) and batch norm keeps even that finite on tiny data, so
    # the non-finite loss is made directly: augmented pixels of NaN
    monkeypatch.setattr("engine.train.training_batch", lambda x, g, train, fit: torch.full(x.shape, float("nan")))
    with pytest.raises(StudioError, match="diverged"):
        train(tiny_cfg("train.epochs=1"), work_dir=tmp_path)


def test_a_stop_request_is_honoured_within_two_seconds(tiny_cfg, tmp_path):
    rec = Recorder(stop_after_s=0.5)
    with pytest.raises(StopRequested):
        train(tiny_cfg("train.epochs=50"), rec, work_dir=tmp_path)
    assert time.perf_counter() - rec.stop_seen_at < 2.0


def test_user_ood_set_with_other_classes_is_refused(tiny_cfg, tmp_path):
    from conftest import write_tiny_zip

    other = write_tiny_zip(tmp_path / "other.zip", classes=("red", "green"))
    with pytest.raises(StudioError):
        train(tiny_cfg(f"data.ood_source={other}", "train.epochs=1"), work_dir=tmp_path)


def test_user_ood_set_is_evaluated(tiny_cfg, tiny_zip, tmp_path):
    s = train(tiny_cfg(f"data.ood_source={tiny_zip}", "train.epochs=1", "eval.ood=false"), work_dir=tmp_path).summary
    assert 0 <= s["ood_user_acc"] <= 1 and s["ood_acc"] is None


def test_time_left_counts_evaluation_and_the_final_evaluation_reports_its_parts(tiny_cfg, tmp_path):
    """The ETA adds every remaining epoch's evaluation and the final one (timed on the last
    evaluation) to the training steps left; the final evaluation reports part by part."""
    from engine.contract import EvalClock
    from engine.train import time_left

    rec = Recorder()
    parts = []
    rec.progress = lambda **f: parts.append(f) if f.get("phase") == "final evaluation" else None
    result = train(tiny_cfg("train.epochs=3", "optim.linear_probe_epochs=2", "eval.ood=true"), rec, work_dir=tmp_path)
    ctx = result.context
    clock = ctx.eval_clock
    # the speed ahead is the whole-network epochs': not the warm-up epoch, not the cheaper head-only one
    assert clock.train_images_per_sec == pytest.approx(result.summary["history"][2]["images_per_sec"])
    assert clock.seconds_per_pass > 0 and clock.final_passes > clock.epoch_passes > 0
    assert [p["part_done"] for p in parts] == list(range(parts[-1]["parts"] + 1)), "one report per part, from 0"
    assert parts[-1]["eta_s"] == 0 and "corrupted images" in " ".join(p["part"] for p in parts)
    # measured: the finished epochs' speed, and an epoch's whole end (its evaluation, and what else runs then:
    # methods' checks such as the adversarial guard's attack, checkpoints; a new user's adversarial run read
    # 8 s left with 17 s to go while only the evaluation's passes were counted)
    assert clock.epoch_end_seconds >= clock.seconds_per_pass * clock.epoch_passes
    ctx.epoch, ctx.step = 0, 0
    measured = time_left(ctx, images_per_sec=100.0)
    from engine.train import PROBE_SPEEDUP

    bs, probe = ctx.cfg.train.batch_size, 2 * ctx.steps_per_epoch  # the head-only steps go at this epoch's speed
    assert measured == pytest.approx(probe * bs / 100.0 + (ctx.total_steps - probe) * bs / clock.train_images_per_sec
                                     + 3 * clock.epoch_end_seconds + clock.seconds_per_pass * clock.final_passes)
    clock = ctx.eval_clock = EvalClock(clock.epoch_passes, clock.final_passes, clock.seconds_per_pass)  # estimates
    with_eval = time_left(ctx, images_per_sec=100.0)
    # in a head-only epoch, before any whole-network one: its speed for the head-only steps left, slowed by
    # PROBE_SPEEDUP for the whole-network ones (shown 19 s with 43 s to go, then a jump to 53 s, before)
    train_only = probe * bs / 100.0 + (ctx.total_steps - probe) * bs / (100.0 / PROBE_SPEEDUP)
    ctx.epoch, ctx.step = 2, probe  # the whole-network epoch: its own speed
    assert time_left(ctx, 100.0) == pytest.approx((ctx.total_steps - probe) * bs / 100.0
                                                  + clock.seconds_per_pass * (clock.epoch_passes + clock.final_passes))
    ctx.epoch, ctx.step = 0, 0
    assert clock.method_passes == 0, "no method evaluates after training here"
    expected = clock.seconds_per_pass * (3 * clock.epoch_passes + clock.final_passes)
    assert with_eval == pytest.approx(train_only + expected)
    ctx.eval_clock = EvalClock(clock.epoch_passes, clock.final_passes, clock.seconds_per_pass, method_passes=500.0)
    assert time_left(ctx, 100.0) == pytest.approx(with_eval + 500.0 * clock.seconds_per_pass), "a method's end work"
    ctx.eval_clock = EvalClock(clock.epoch_passes, clock.final_passes, 0.0)  # before any evaluation: estimated
    assert time_left(ctx, 100.0) > train_only


def test_schedule_descriptions_name_settings_in_words_not_config_fields():
    # the Model page shows them under the schedule choice; they named slow_start_fraction and fast_decay_rate
    import re

    for name, (text, _) in SCHEDULES.items():
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", text), (name, text)


def test_an_epochs_first_step_reports_the_speed_so_far_not_its_own(tiny_cfg, tmp_path, monkeypatch):
    """The Train page read "Speed 3 img/s" beside the terminal's 70-82: an epoch's first step alone, over its
    start's overhead. From the second step on the speed counts from the first step's end; the first step of
    an epoch reports the last speed measured (not across the switch from head-only to whole-network epochs)."""
    import engine.train as tr

    now, slow = [0.0], [False]

    def clock() -> float:  # every reading one second later, and an epoch's first batch 100 s late
        now[0] += 1.0
        return now[0]

    def set_trainable(*args, **kwargs):  # an epoch starts
        slow[0] = True
        return real_set(*args, **kwargs)

    def batch(*args, **kwargs):
        if slow[0]:
            now[0], slow[0] = now[0] + 100.0, False
        return real_batch(*args, **kwargs)

    real_set, real_batch = tr.set_trunk_trainable, tr.training_batch
    monkeypatch.setattr(tr, "set_trunk_trainable", set_trainable)
    monkeypatch.setattr(tr, "training_batch", batch)
    monkeypatch.setattr(tr.time, "perf_counter", clock)
    rec = Recorder()
    train(tiny_cfg("train.epochs=3", "optim.linear_probe_epochs=1", "eval.ood=false"), rec, work_dir=tmp_path)
    monkeypatch.undo()
    steps = [f for f in rec.progress_calls if f.get("phase") == "training"]
    by_epoch = {e: [f["images_per_sec"] for f in steps if f["epoch"] == e] for e in (1, 2, 3)}
    assert all(len(v) >= 2 for v in by_epoch.values()), by_epoch
    assert all(v[-1] > 1.0 for v in by_epoch.values()), "the later steps: counted from the first one's end"
    assert by_epoch[3][0] == by_epoch[2][-1], "epoch 3's first step: epoch 2's speed"
    assert by_epoch[2][0] < 1.0, "the first whole-network epoch borrows nothing from the head-only one"


def test_greyscale_and_colour_pictures_are_counted_apart_at_the_end(tmp_path):
    """A camera trap's night shots are greyscale beside colour day shots: one accuracy hid that the model failed at
    night. The final evaluation counts each kind apart on every held-out split that has both, and the training
    split's greyscale share, for engine.chance.colour_words."""
    import io
    import zipfile

    from PIL import Image

    from conftest import TINY_CLASSES, tiny_config, tiny_image

    with zipfile.ZipFile(tmp_path / "day and night.zip", "w") as zf:
        for cls in TINY_CLASSES:
            for i in range(12):
                image, buf = tiny_image(cls, i), io.BytesIO()
                (image.convert("L").convert("RGB") if i % 3 == 0 else image).save(buf, format="JPEG", quality=90)
                zf.writestr(f"{cls}/{i}.jpg", buf.getvalue())
    result = train(tiny_config(tmp_path / "day and night.zip", "train.epochs=1", "train.threads=1"), Recorder(),
                   run_dir=tmp_path, work_dir=tmp_path / "data")
    s = result.summary
    counts = s["data_report"]["split_counts"]
    for split in ("val", "test"):
        grey, colour = s[f"{split}_by_colour"]["greyscale"], s[f"{split}_by_colour"]["colour"]
        assert grey[1] + colour[1] == sum(counts[split].values()) and grey[1] > 0 and colour[1] > 0
        assert 0 <= grey[0] <= grey[1] and 0 <= colour[0] <= colour[1]
        right = round(s[f"{split}_acc"] * (grey[1] + colour[1]))
        assert grey[0] + colour[0] == right, "every answer counted once"
        by_class = s[f"{split}_by_colour"]["greyscale_by_class"]  # the classes the greyscale pictures hold
        assert len(by_class) == len(TINY_CLASSES) and [sum(c) for c in zip(*by_class)] == grey
        sure = s[f"{split}_confidence"]  # every answer counted once, by how sure it was
        assert sum(sure["images"]) == sum(counts[split].values()) and sum(sure["right"]) == right
    grey_train, n_train = s["train_greyscale"]
    assert n_train == sum(counts["train"].values()) and 0 < grey_train < n_train
    assert grey_train + sum(s[f"{k}_by_colour"]["greyscale"][1] for k in ("val", "test")) == 12, "a third of 36"
    from engine.words import greyscale_words  # said on the Data page and by `inspect` before any run

    assert s["data_report"]["greyscale"] == 12 and greyscale_words(12, 36) == (
        "12 of 36 pictures are greyscale, the rest colour: Results gives the model's accuracy on each kind where the "
        "validation or test images have both. Greyscale here means next to no colour in the pixels, so a colour "
        "photo of something grey counts as greyscale too.")
    assert greyscale_words(0, 36) == greyscale_words(36, 36) == "", "one kind only: nothing to tell apart"
