"""Presets: one registry (engine.presets) for the dashboard and the command line."""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cli
from engine.config import RunConfig, apply_overrides
from engine.presets import PRESETS, config_changes, get_preset
from engine.errors import StudioError


def test_every_preset_keeps_the_dataset_and_validates(tiny_zip):
    chosen = apply_overrides(RunConfig(), [f"data.source={tiny_zip}", "data.val_fraction=0.3"])
    for name, preset in PRESETS.items():
        cfg = preset.apply(chosen)
        assert cfg.data.source == str(tiny_zip) and cfg.data.val_fraction == 0.3, name
        RunConfig.from_dict(cfg.to_dict())  # validates
        assert preset.sets() or "the studio's defaults" in preset.describe(), f"{name} sets nothing"
        assert preset.describe().strip() and "\n" not in preset.describe()
        assert preset.tagline.strip() and "\n" not in preset.tagline and len(preset.tagline) <= 120, name
        # mirroring stopped for digits or letters stays stopped (a fact about the data, as the dataset is)
        assert preset.apply(apply_overrides(chosen, ["train.flip=false"])).train.flip is False, name
        # the run name the user typed stays (a new user's name vanished when they then chose a preset)
        assert preset.apply(apply_overrides(chosen, ["name=field trial"])).name == "field trial", name


def test_a_preset_keeps_the_users_own_checkpoint_for_its_backbone_only():
    mine = apply_overrides(RunConfig(), ["backbone.name=resnet18", "backbone.pretrained=checkpoint",
                                         "backbone.checkpoint=upload:abc.safetensors"])
    for name, preset in PRESETS.items():
        cfg = preset.apply(mine)
        if cfg.backbone.name == "resnet18":
            assert (cfg.backbone.pretrained, cfg.backbone.checkpoint) == ("checkpoint", "upload:abc.safetensors"), name
        else:  # a checkpoint for another network cannot start this preset's: its offline weights instead
            assert cfg.backbone.pretrained != "checkpoint" and cfg.backbone.checkpoint == "", name
    other = apply_overrides(mine, ["backbone.name=mobilenet_v3_small"])
    cfg = PRESETS["adversarial_demo"].apply(other)
    assert cfg.backbone.name == "resnet18" and cfg.backbone.pretrained == "bundled" and not cfg.backbone.checkpoint


def test_config_changes_lists_exactly_the_changed_fields():
    after = apply_overrides(RunConfig(), ["optim.lr=0.5", "train.epochs=9", "seed=3"])
    assert config_changes(RunConfig(), after) == {"optim.lr": 0.5, "train.epochs": 9, "seed": 3}


def test_cli_lists_the_presets_with_what_they_set(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    width = max(len(n) for n in PRESETS)
    for name, preset in PRESETS.items():
        assert f"\n{name:{width}s} {preset.title}\n" in "\n" + out, "the names in one column"
        for key, value in preset.sets().items():
            shown = "2/255" if key == "adversarial.eps" else value  # as the dashboard shows it, not 0.00784...
            assert f"    {key} = {shown}\n" in out
    # the cards' markdown as text: a new user saw "**In short:**" and whole bullet lists in one line
    assert "**" not in out and "\n    In short: on the bundled sample" in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "\n    - against a hand-written PyTorch loop" in out, "bullets one to a line"


def test_an_unknown_preset_names_the_known_ones(tiny_zip, capsys):
    with pytest.raises(StudioError, match="quick_demo"):
        get_preset("quick")
    assert cli.main(["train", "--preset", "quick", "--data", str(tiny_zip)]) == 2
    assert "Unknown preset `quick`" in capsys.readouterr().err


def test_cli_train_applies_the_preset_and_flags_override_it(tiny_zip, tmp_path, capsys):
    out = tmp_path / "run"  # the command's main() in this process: a new one spent seconds on its imports
    assert cli.main(["train", "--preset", "small_model", "--data", str(tiny_zip), "--epochs", "1", "--image-size",
                     "32", "--batch-size", "8", "--pretrained", "none", "--device", "cpu", "--set",
                     "pruning.target_sparsity=0.3", "--set", "eval.ood=false", "--out", str(out),
                     "--data-dir", str(tmp_path / "d"), "--quiet"]) == 0, capsys.readouterr().err
    saved = RunConfig.load(out / "config.yaml")
    preset = PRESETS["small_model"].apply(RunConfig())
    assert saved.backbone.name == preset.backbone.name and saved.optim.lr == preset.optim.lr  # from the preset
    assert saved.methods["pruning"].enabled
    assert (saved.train.epochs, saved.data.image_size, saved.train.batch_size) == (1, 32, 8)  # the flags win
    assert saved.backbone.pretrained == "none" and saved.methods["pruning"].target_sparsity == 0.3
    assert saved.data.source == str(tiny_zip)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["sparsity"] == pytest.approx(0.3, abs=0.02)


def test_cli_train_fits_a_presets_batch_to_a_small_dataset_as_the_dashboard_does(tmp_path, capsys):
    """The Quick demo's batch of 32 on 18 training images is one optimiser step an epoch: `train --preset`
    fits it (the rate lowered in step) and says so, unless the user gave a batch size or rate."""
    from conftest import write_tiny_zip
    from engine.config import smaller_batch

    data = write_tiny_zip(tmp_path / "small.zip", per_class=10)  # 30 images: 18 to train on
    base = ["train", "--preset", "quick_demo", "--data", str(data), "--epochs", "3", "--image-size", "32",
            "--pretrained", "none", "--set", "eval.ood=false", "--data-dir", str(tmp_path / "d"), "--quiet"]
    assert cli.main([*base, "--out", str(tmp_path / "fitted")]) == 0
    batch, lr = smaller_batch(PRESETS["quick_demo"].apply(RunConfig()), 18)
    assert (f"preset quick_demo: its batch size of 32 would make 1 optimiser step an epoch from your 18 training "
            f"images, so it uses {batch}") in capsys.readouterr().out
    saved = RunConfig.load(tmp_path / "fitted" / "config.yaml")
    assert (saved.train.batch_size, saved.optim.lr) == (batch, lr)
    # without a preset the default settings are fitted too (a new user's first run, batch 64 on 36 images, took
    # 3 optimiser steps and learnt nothing), and said so
    plain = ["train", "--data", str(data), "--epochs", "1", "--image-size", "32", "--pretrained", "none", "--set",
             "eval.ood=false", "--data-dir", str(tmp_path / "d"), "--quiet"]
    assert cli.main([*plain, "--out", str(tmp_path / "default")]) == 0
    batch, lr = smaller_batch(RunConfig(), 18)
    assert (f"note: The default batch size of {RunConfig().train.batch_size} would make 1 optimiser step an epoch from "
            f"your 18 training images, so it uses {batch}") in capsys.readouterr().err
    fitted = RunConfig.load(tmp_path / "default" / "config.yaml")
    assert (fitted.train.batch_size, fitted.optim.lr) == (batch, lr)
    assert cli.main([*plain, "--set", "train.batch_size=64", "--out", str(tmp_path / "kept")]) == 0
    assert RunConfig.load(tmp_path / "kept" / "config.yaml").train.batch_size == 64, "a batch given is kept"
    assert "The default batch size" not in capsys.readouterr().err
    # named as the dashboard names runs ("cli resnet18" said nothing about the data): flags changed the preset
    assert saved.name == "ResNet-18 plain from scratch on small.zip"
    from engine.cli import _preset_title
    from engine.config import apply_overrides
    from engine.presets import fit_to_data, run_name

    quick = PRESETS["quick_demo"].apply(apply_overrides(RunConfig(), [f"data.source={data}"]))
    assert _preset_title("quick_demo", quick, 18) == "Quick demo", "the preset as given"
    assert _preset_title("quick_demo", fit_to_data(quick, 18)[0], 18) == "Quick demo", "and fitted to the data"
    assert _preset_title("quick_demo", apply_overrides(quick, ["train.epochs=3"]), 18) is None
    assert _preset_title(None, quick, 18) is None
    assert run_name(quick, preset="Quick demo") == "Quick demo (ResNet-18) on small.zip"
    # a switch turned on is named by what it does (an inspector's "..., structured: remove channels at the end on
    # (MobileNetV3-Small) on parts.zip" read as two places), one turned off with "off"
    small = PRESETS["small_model"].apply(RunConfig())
    assert run_name(apply_overrides(small, ["data.image_size=128", "pruning.structured=true"]), "parts.zip") == \
        "Small model, image size 128, remove channels at the end (MobileNetV3-Small) on parts.zip"
    assert run_name(apply_overrides(small, ["train.augment=false"]), "parts.zip") == \
        "Small model, augment images off (MobileNetV3-Small) on parts.zip"
    # a run's config.yaml reused (the stop message suggests it) is named afresh, a name the user gave kept
    from engine.cli import _auto_named

    assert _auto_named(saved) and _auto_named(dataclasses.replace(quick, name="Quick demo (ResNet-18) on small.zip"))
    assert not _auto_named(dataclasses.replace(quick, name="my pets, second try")) and not _auto_named(quick)
    assert _auto_named(dataclasses.replace(quick, seed=1, name=run_name(quick))), "named before names gave the seed"
    # from a checkpoint: named with its file, before that without, and a dashboard upload's with the user's name
    own = apply_overrides(quick, ["backbone.pretrained=checkpoint", "backbone.checkpoint=/w/a_bare.pt"])
    upload = apply_overrides(own, ["backbone.checkpoint=upload:" + "0" * 64])
    for cfg, name in ((own, "Quick demo (ResNet-18) from your checkpoint a_bare.pt on small.zip"),
                      (own, "Quick demo (ResNet-18) from your checkpoint on small.zip"),
                      (upload, "Quick demo (ResNet-18) from your checkpoint mine.pt on small.zip"),
                      (upload, "Quick demo (ResNet-18) from your checkpoint trained on cats.pt on small.zip")):
        assert _auto_named(dataclasses.replace(cfg, name=name)), name
    assert not _auto_named(dataclasses.replace(upload, name="trial from your checkpoint mine.pt on small.zip"))
    again = ["train", "--config", str(tmp_path / "fitted" / "config.yaml"), "--data-dir", str(tmp_path / "d"), "--quiet",
             "--epochs", "3"]
    other = write_tiny_zip(tmp_path / "other.zip", per_class=10)
    assert cli.main([*again, "--data", str(other), "--out", str(tmp_path / "reused")]) == 0
    assert RunConfig.load(tmp_path / "reused" / "config.yaml").name == "ResNet-18 plain from scratch on other.zip"
    assert run_name(apply_overrides(quick, ["data.source_name=my pets.zip"])).endswith(" on my pets.zip")
    assert run_name(apply_overrides(quick, ["data.source=assets/sample_textures.zip"])).endswith(" on sample textures")
    assert cli.main([*base, "--batch-size", "32", "--out", str(tmp_path / "asked")]) == 0
    assert "preset quick_demo:" not in capsys.readouterr().out
    assert RunConfig.load(tmp_path / "asked" / "config.yaml").train.batch_size == 32, "the user's own batch size"
    # a preset cut to fewer epochs than its head-only ones: shortened as the Model page does, not refused
    assert cli.main([*base, "--epochs", "1", "--out", str(tmp_path / "short")]) == 0
    assert ("preset quick_demo: its 2 head-only (linear-probe) epochs lowered to 0, so that at least one of the 1 "
            "epochs fine-tunes the whole network") in capsys.readouterr().out
    assert RunConfig.load(tmp_path / "short" / "config.yaml").optim.linear_probe_epochs == 0


def test_a_presets_rate_on_a_much_shorter_run_is_flagged():
    """The Model page warns when a preset's learning rate is kept for far fewer optimiser steps than
    the preset was tuned for (a new user's Quick demo at 3 epochs stayed near guessing)."""
    from app.presets import recipe_drift
    from engine.config import RunConfig, apply_overrides

    quick = PRESETS["quick_demo"].apply(RunConfig())  # 2 head-only epochs, then 18 of batch 32: 216 steps
    assert recipe_drift(quick) is None
    short = apply_overrides(quick, ["train.epochs=3"])  # 2 head-only epochs and one of the whole network
    text = recipe_drift(short)
    assert "Quick demo" in text and "216 optimiser steps" in text and "trains it for 12 (1 epoch" in text
    assert "after 2 epochs of the head alone" in text
    assert recipe_drift(short, train_images=4000) is None  # 1 whole epoch of a large dataset: 125 steps, > half of 48
    assert recipe_drift(apply_overrides(short, ["optim.lr_auto=true"])) is None  # the studio picks the rate
    assert recipe_drift(apply_overrides(short, ["optim.lr=0.0037"])) is None  # the user's own rate
    pruning = PRESETS["pruning_demo"].apply(RunConfig())  # the Quick demo's recipe, with pruning on: named as itself
    assert "Pruning demo" in recipe_drift(pruning, train_images=48) and "Quick demo" not in recipe_drift(pruning, 48)
    small = PRESETS["small_model"].apply(RunConfig())  # the same rate on another backbone: its own recipe counts
    assert recipe_drift(small) is None and "Small model" in recipe_drift(apply_overrides(small, ["train.epochs=3"]))
    fastest = PRESETS["fastest"].apply(RunConfig())  # the Quick demo's rate, 4 epochs end to end
    assert recipe_drift(fastest) is None and recipe_drift(apply_overrides(fastest, ["train.epochs=2"])) is None
    cut = recipe_drift(apply_overrides(fastest, ["train.epochs=1"]))
    assert "Fastest model" in cut and "past its first 2 blocks (kept at their pretrained weights)" in cut, cut
    assert "whole network" not in cut, "the Fastest preset freezes the stem and first stage: said as it is"
    assert "trains the whole network for 216" in text, "the Quick demo freezes nothing"
    # 4 epochs at this rate, every one end to end and nothing frozen, measured well (59.6% test): no warning,
    # whatever the frozen blocks; the head-only epochs are what leave a Quick demo cut short near guessing
    for frozen in (0, 1, 2):
        assert recipe_drift(apply_overrides(quick, ["train.epochs=4", "optim.linear_probe_epochs=0",
                                                    f"optim.freeze_blocks={frozen}"])) is None
    assert recipe_drift(apply_overrides(quick, ["train.epochs=4"])) is None  # 2 whole epochs: half the Fastest's
    text = recipe_drift(apply_overrides(quick, ["train.epochs=1", "optim.linear_probe_epochs=0"]))
    assert "Fastest model" in text and "48 optimiser steps" in text, "no preset matches: the closest recipe is named"
    assert recipe_drift(apply_overrides(quick, ["train.epochs=3", "train.batch_size=128"]))


def test_a_batch_that_leaves_few_steps_per_epoch_is_flagged():
    """A batch about as large as the training set is one optimiser step an epoch: the Small model
    preset (then batch 64, 8 epochs) on a new user's 33 training images trained 8 steps and stayed at
    guessing."""
    from app.presets import few_batches
    from engine.config import RunConfig, apply_overrides

    small = PRESETS["small_model"].apply(RunConfig())
    text = few_batches(small, 33)
    assert "Batches of 32 from your 33 training images make 1 optimiser step per epoch (20 in 20 epochs)" in text
    lr = small.optim.lr * 4 / 32  # the linear scaling rule: a smaller batch at the same rate collapsed to guessing
    assert f"A batch size of 4 gives 8 steps per epoch, with the learning rate lowered in step to {lr:.3g}" in text
    from engine.config import smaller_batch

    tiny_rate = apply_overrides(small, ["optim.optimizer=adamw", "optim.lr=0.00001"])
    assert smaller_batch(tiny_rate, 33)[1] >= 1e-6, "never below the learning rate's lowest allowed value"
    auto = few_batches(apply_overrides(small, ["optim.lr_auto=true"]), 33)
    assert "A batch size of 4 gives 8 steps per epoch (the learning rate is found for it automatically)" in auto
    assert few_batches(small, 384) is None  # the sample: 6 steps an epoch
    assert "make 2 optimiser steps" in few_batches(apply_overrides(small, ["train.batch_size=16"]), 40)
    assert few_batches(small, 5) is None  # too few images to say anything useful
    assert "more images help most" in few_batches(small, 10)  # no batch size of 4 or more gives 3 steps


def test_a_listing_piped_into_a_reader_that_leaves_ends_without_a_traceback():
    # `python -m engine presets | head` printed a BrokenPipeError traceback; `true` leaves before any output
    out = subprocess.run(f"{sys.executable} -m engine presets | true", shell=True, cwd=Path(__file__).parent.parent,
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_a_runs_default_name_gives_its_seed_when_it_is_not_0():
    """A new user's seed-0 and seed-1 runs were both "ResNet-18 plain on letters.zip" in every list."""
    from engine.config import apply_overrides
    from engine.presets import run_name

    cfg = apply_overrides(RunConfig(), ["data.source=/tmp/letters.zip"])
    assert run_name(cfg) == "ResNet-18 plain on letters.zip", "seed 0, the default, goes unsaid"
    other = dataclasses.replace(cfg, seed=1)
    assert run_name(other) == "ResNet-18 plain (seed 1) on letters.zip"
    assert run_name(other, preset="Quick demo") == "Quick demo (ResNet-18, seed 1) on letters.zip"
    scratch = apply_overrides(other, ["backbone.pretrained=none", "pruning.enabled=true"])
    assert run_name(scratch) == "ResNet-18 Pruning (seed 1) from scratch on letters.zip"


def test_the_fastest_preset_freezes_pretrained_blocks_only(monkeypatch):
    """Fastest model: 4 epochs without augmentation, the stem and first stage kept as pretrained (no backward
    pass through them), OOD off; with no pretrained weights to keep nothing is frozen."""
    from engine import presets

    cfg = PRESETS["fastest"].apply(RunConfig())
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.augment, cfg.eval.ood) == (4, 32, False, False)
    assert cfg.backbone.pretrained == "bundled" and cfg.optim.freeze_blocks == 2 and cfg.optim.lr == 0.02
    monkeypatch.setattr(presets, "offline_pretrained", lambda backbone: "none")
    assert PRESETS["fastest"].apply(RunConfig()).optim.freeze_blocks == 0, "random blocks would stay random"
    assert "0.45-0.46x" in PRESETS["fastest"].details(), "the card's measured result"


JARGON = ("FGSM", "bf16", "OOD", "sparsity", "linear probe", "LP-FT", "L2-SP", "FLOPs", "theta_0", "alpha", "eps",
          "label smoothing", "in-distribution", "augmentation")


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_a_preset_card_gives_the_plain_words_before_the_fields_terms(key):
    """A teacher found the demo cards using the field's terms (FGSM-RS, FLOPs, theta_0's linear probe, bf16)
    with their plain words on hover only: on a card each term first appears in brackets, after its plain words."""
    for text in (PRESETS[key].describe(), PRESETS[key].tagline):
        plain_words_first(text)


def plain_words_first(text: str) -> None:
    """Each of JARGON's terms in `text` first appears in brackets after its plain words."""
    for term in JARGON:
        found = re.search(rf"\b{re.escape(term)}", text, re.IGNORECASE)  # "eps", not "keeps"
        if found is None:
            continue
        before = text[:found.start()]
        assert before.rfind("(") > before.rfind(")"), f"{term!r} first appears outside brackets: {text}"
        assert before.rfind("(") > 0 and text[before.rfind("(") - 1] == " ", f"{term!r} with no plain words before it"


def test_a_preset_with_a_setting_or_two_changed_is_named_after_it_with_the_changes():
    """A teacher's Standard demo at 5 epochs was named "ResNet-18 plain", as if it were another recipe: every preset
    changed in one or two settings is named after it with what changed; more changes, or other methods, are the
    user's own recipe, named by backbone and methods."""
    from engine.cli import _auto_named
    from engine.config import apply_overrides
    from engine.presets import NEAR_PRESET_CHANGES, fit_to_data, fitted_to, near_preset, run_name

    data = apply_overrides(RunConfig(), ["data.source=/tmp/leaves.zip"])
    for preset in PRESETS.values():
        recipe = preset.apply(data)
        once = apply_overrides(recipe, [f"train.epochs={recipe.train.epochs + 1}"])
        near = near_preset(once)
        assert near is not None and near[1] == [f"epochs {recipe.train.epochs + 1}"], preset.name
        assert run_name(once).startswith(f"{near[0].title}, epochs {recipe.train.epochs + 1} ("), preset.name
        assert _auto_named(dataclasses.replace(once, name=run_name(once))), "the command line knows it as its own name"
    demo = PRESETS["standard_demo"].apply(data)
    twice = apply_overrides(demo, ["train.epochs=6", "optim.lr=0.04"])
    assert run_name(twice) == "Standard demo, learning rate 0.04, epochs 6 (ResNet-18) on leaves.zip"
    three = apply_overrides(twice, ["optim.linear_probe_epochs=1"])
    assert len(near_preset(twice)[1]) == NEAR_PRESET_CHANGES and near_preset(three) is None
    assert run_name(three) == "ResNet-18 plain on leaves.zip", "three changes: the user's own recipe"
    assert run_name(apply_overrides(demo, ["train.augment=false"])) == \
        "Standard demo, augment images off (ResNet-18) on leaves.zip", "a switch in words"
    assert near_preset(apply_overrides(demo, ["wise_ft.enabled=true"])) is None, "a method switched on: not the demo"
    assert run_name(apply_overrides(demo, ["backbone.pretrained=none", "seed=2"])) == \
        "Standard demo (ResNet-18, seed 2) from scratch on leaves.zip", "start and seed are said, not counted"
    # the preset fitted to a small dataset (a smaller batch, the rate scaled with it) is still the preset; ImageNet
    # weights are said: a new user's Fastest model from ImageNet weights was named "Fastest model, learning rate
    # 0.0025, batch size 4 (ResNet-18)", the fit's values, its weights unsaid
    fast = PRESETS["fastest"].apply(data)
    fitted = fit_to_data(apply_overrides(fast, ["backbone.pretrained=imagenet"]), 27)[0]
    assert fitted.train.batch_size < fast.train.batch_size, "the case itself: a fitted batch"
    assert run_name(fitted, fit=fitted_to(27)) == "Fastest model (ResNet-18) from ImageNet weights on leaves.zip"
    assert run_name(apply_overrides(fitted, ["train.epochs=6"]), fit=fitted_to(lambda: 27)) == \
        "Fastest model, epochs 6 (ResNet-18) from ImageNet weights on leaves.zip"
    assert _auto_named(dataclasses.replace(fitted, name=run_name(fitted, fit=fitted_to(27)))), "known as its own"
    assert run_name(fitted, fit=fitted_to(5000)).startswith("Fastest model, learning rate "), "not the fit for 5000"
    assert run_name(apply_overrides(fast, ["train.batch_size=8"])) == \
        "Fastest model, batch size 8 (ResNet-18) on leaves.zip", "a smaller batch at the same rate is a change"


def test_a_preset_card_names_the_methods_its_title_does_not():
    """A student's Small model run pruned half its weights, which only the card's "What it does" said: they took the
    difference from their ResNet-18 run for the backbone alone. A card names the methods its title does not."""
    from app.presets import methods_words

    assert methods_words(PRESETS["small_model"]) == "Switches on: Pruning (Fine-Pruning)"
    assert methods_words(PRESETS["robust"]) == "Switches on: L2-SP, Adversarial fine-tuning"
    assert methods_words(PRESETS["quick_demo"]) == "" and methods_words(PRESETS["pruning_demo"]) == ""
