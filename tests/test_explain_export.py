"""Attributions (captum), error analysis, and verified exports."""

from pathlib import Path

import pytest
import torch

from engine.backbones import BACKBONES, build_model
from engine.errors import StudioError
from engine.explain import ATTRIBUTIONS, MIN_CAM_SIDE, attribute, confusion_cell, gradcam_layer, highest_loss
from engine.export import CARD_WEIGHTS, export_all, model_card
from engine.train import train


@pytest.fixture(scope="module")
def trained(tiny_zip, tmp_path_factory):
    from conftest import tiny_config

    return train(tiny_config(tiny_zip, "train.epochs=2", "eval.ood=false"), work_dir=tmp_path_factory.mktemp("w"))


@pytest.mark.parametrize("method", list(ATTRIBUTIONS))
def test_attributions_have_the_image_shape_and_are_finite(trained, method):
    ctx = trained.context
    imgs, labels = ctx.data.val.images[:3], ctx.data.val.labels[:3]
    maps = attribute(ctx.model, imgs, labels, method, ig_steps=8)
    assert maps.shape == (3, 32, 32)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("name", list(BACKBONES))
def test_grad_cam_layer_is_found_for_every_backbone(name):
    model, _ = build_model(name, 3, "none")
    size = max(BACKBONES[name].fixed_image_size or 0, 64)
    try:
        layer, _, side = gradcam_layer(model, size)
    except StudioError as exc:  # a stated refusal is allowed, never a silent 1 x 1 map
        assert "Grad-CAM would be a single number" in str(exc)
        return
    assert any(isinstance(m, torch.nn.Conv2d) for m in layer.modules()) and side >= MIN_CAM_SIDE


@pytest.mark.parametrize("method", ["grad_cam", "occlusion"])
def test_small_images_get_maps_with_structure(trained, method):
    """At 32 px the network's last stage is 1 x 1: Grad-CAM moves to the last stage with 4 x 4 cells (the
    ResNet-18's case is Explain's, tests/test_explain_page.py), Occlusion's window scales with the image; both
    maps vary across the image, none is stretched noise."""
    ctx = trained.context
    maps = attribute(ctx.model, ctx.data.val.images[:4], ctx.data.val.labels[:4], method)
    varied = [float(m.std()) > 0.05 for m in maps]
    assert sum(varied) >= 3, [float(m.std()) for m in maps]
    if method == "grad_cam":
        assert gradcam_layer(ctx.model, 32)[2] == 4


def test_a_constant_map_stays_flat():
    from engine.explain import _normalise

    flat = torch.full((1, 8, 8), 3.0) + torch.randn(1, 8, 8) * 1e-7  # rounding noise on a constant
    assert float(_normalise(flat).max()) == 0.0
    ramp = torch.arange(64.0).view(1, 8, 8)
    assert float(_normalise(ramp).max()) == 1.0


def test_a_heavy_tailed_map_is_not_dimmed_by_a_few_bright_pixels():
    # Integrated Gradients on a new user's image: a few pixels 50x the rest left the map near-black
    from engine.explain import _normalise

    g = torch.Generator().manual_seed(0)
    heavy = torch.rand(1, 32, 32, generator=g)
    heavy.view(-1)[:5] = 50.0  # five outliers in 1024 pixels
    out = _normalise(heavy)
    assert float(out.max()) == 1.0 and float(out.min()) == 0.0
    assert float(out.mean()) > 0.4, "the rest of the map keeps its contrast (max-scaling gave about 0.01)"
    assert torch.equal(out.view(-1)[:5], torch.ones(5)), "the outliers share the top colour"
    spot = torch.zeros(1, 32, 32)
    spot[0, 3, 4] = 1.0  # bright in one pixel only: its maximum scales it, the spot stays 1
    assert float(_normalise(spot)[0, 3, 4]) == 1.0 and float(_normalise(spot).sum()) == 1.0


def test_error_analysis(trained):
    ctx = trained.context
    cases = highest_loss(ctx.model, ctx.data.val.images, ctx.data.val.labels, k=5)
    assert len(cases) == 5 and cases[0].loss >= cases[-1].loss
    labels = torch.tensor([0, 0, 1, 1])
    preds = torch.tensor([0, 1, 1, 0])
    assert confusion_cell(labels, preds, 0, 1) == [1] and confusion_cell(labels, preds, 1, 0) == [3]


def test_exports_reproduce_predictions_and_card_has_the_config(trained, tmp_path):
    ctx = trained.context
    checks = export_all(ctx.model, ctx.cfg, trained.summary, ctx.data.val.images, tmp_path)
    for c in checks:
        assert c.ok, c.message
        assert c.agreement == 1.0
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "Exact configuration" in card and ctx.cfg.backbone.name in card and "verified" in card
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "model.onnx").is_file()


def test_an_onnx_file_onnxruntime_cannot_load_is_a_failed_check(trained, tmp_path, monkeypatch):
    """export_onnx says it never raises for a failed export; a file onnxruntime refused raised."""
    import onnxruntime

    from engine.export import export_onnx

    def refuse(*args, **kwargs):
        raise RuntimeError("Could not find an implementation for SomeOp")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    ctx = trained.context
    check = export_onnx(ctx.model, ctx.cfg.data.image_size, tmp_path / "model.onnx", ctx.data.val.images[:4])
    assert not check.ok and check.message.startswith("onnxruntime could not run the exported file: Could not find")


def test_model_card_mentions_methods_and_metrics(trained):
    card = model_card(trained.context.cfg, {**trained.summary, "robust_acc": 0.25,
                                             "robust_eval": {"attack": "PGD-20", "eps": 4 / 255}})
    assert "Robust accuracy (PGD-20, eps 4.0/255): 25.0%" in card
    # the schedule in words, as the Model page names it (the card said "schedule slow_start_fast_decay")
    import dataclasses

    cfg = trained.context.cfg
    slow = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, schedule="slow_start_fast_decay"))
    assert "schedule slow start, fast decay;" in model_card(slow, trained.summary)
    # the start and the corruptions in words, as the dashboard names them (the card said "started from
    # `bundled` weights" and "gaussian noise", "pixelate" where Results says "Gaussian noise", "Pixelation")
    one = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1))
    card = model_card(one, {**trained.summary, "ood_acc_by_corruption": {"gaussian_noise": 0.5, "pixelate": 0.25}})
    assert "started from `" not in card and any(f"started from {w}" in card for w in CARD_WEIGHTS.values())
    assert "  - Gaussian noise: 50.0%" in card and "  - Pixelation: 25.0%" in card
    assert "- 1 epoch, batch" in card, "one epoch, not '1 epochs'"


def test_torchscript_export_does_not_fill_the_log_with_torchscripts_deprecation_warnings(tmp_path):
    """PyTorch warns that TorchScript is deprecated on every trace, save and load; engine.export
    filters exactly those FutureWarnings once, at import, and the export still works and is checked.
    In a fresh process, with Python's own warning filters (pytest resets them around each test)."""
    import json
    import subprocess
    import sys

    script = f"""
import json, sys, warnings
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
import torch
from engine import export
from engine.backbones import build_model
model, _ = build_model("resnet18", 3)
images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
with warnings.catch_warnings(record=True) as got:  # the filters as the app has them
    check = export.export_torchscript(model, 32, {str(tmp_path / "model.ts")!r}, images)
with warnings.catch_warnings(record=True) as raw:  # what torch says without any filter
    warnings.simplefilter("always")
    torch.jit.trace(model.eval(), torch.rand(1, 3, 32, 32), check_trace=False)
print(json.dumps({{"ok": check.ok, "shown": [str(w.message) for w in got if "torch.jit" in str(w.message)],
                  "torch_warns": any("torch.jit" in str(w.message) for w in raw)}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"]
    if not result["torch_warns"]:
        pytest.skip("this PyTorch does not warn about TorchScript: nothing to filter")
    assert result["shown"] == [], result["shown"]


def test_the_model_card_gives_scaled_settings_in_their_unit():
    # the model card said "eps (attack budget) 0.00784314" where the dashboard and presets say 2/255
    from engine.config import RunConfig, with_section
    from engine.export import method_settings_text

    cfg = with_section(RunConfig(), "adversarial", enabled=True, eps=2 / 255)
    text = method_settings_text(cfg.methods["adversarial"])
    assert "eps (attack budget) 2/255" in text and "0.00784" not in text, text


def test_the_model_card_lists_only_the_settings_that_apply_in_words():
    # a pruning run without the search listed every search setting, and "largest accuracy drop (floor) 1points"
    from engine.config import RunConfig, with_section
    from engine.export import method_settings_text

    plain = method_settings_text(with_section(RunConfig(), "pruning", enabled=True).methods["pruning"])
    assert "target sparsity" in plain and "auto:" not in plain, plain
    # switches as phrases: a new user read "also prune the classification head off; per-stage fractions (optional)
    # (none); structured: remove channels at the end on"
    assert "the classification head not pruned; the target in every stage; no channels removed (unstructured only); " \
           "no search" in plain, plain
    assert " off" not in plain and "(none)" not in plain and "(optional)" not in plain
    searched = method_settings_text(with_section(RunConfig(), "pruning", enabled=True, auto=True, objective="floor",
                                                 max_acc_drop=0.01).methods["pruning"])
    assert "auto: trials 10" in searched and "largest accuracy drop (floor) 1 point;" in searched, searched
    assert "lambda" not in searched, "the score objective's weight does not apply to the floor objective"
    assert "scope each layer alike" in plain and "pruning schedule cubic (fast, then slow)" in plain, \
        "choices in the dashboard's words"
    assert "steps between mask updates automatic;" in plain, "a 0 that means automatic, in words"
    from engine.export import training_lines

    assert "SGD with momentum, lr 0.01" in training_lines(RunConfig(), {})[1]
    assert training_lines(RunConfig(), {})[1].endswith("; random crops and left-right mirrors")
    assert training_lines(with_section(RunConfig(), "train", flip=False), {})[1].endswith("; random crops, no mirroring")
    assert training_lines(with_section(RunConfig(), "train", augment=False), {})[1].endswith("; no augmentation")
    frozen = with_section(RunConfig(), "optim", freeze_blocks=2)  # a card that left out frozen blocks misdescribed
    assert training_lines(frozen, {})[1].endswith("; first 2 blocks frozen (kept as pretrained)")
    assert training_lines(with_section(RunConfig(), "optim", freeze_blocks=1), {})[1].endswith("; first block frozen "
                                                                                               "(kept as pretrained)")
    scratch = with_section(frozen, "backbone", pretrained="none")  # nothing pretrained to keep: said as it is
    assert training_lines(scratch, {})[1].endswith("; first 2 blocks frozen at random weights")
    probe = with_section(RunConfig(), "optim", linear_probe_epochs=2)  # the Quick demo's: the card said "20 epochs" alone
    assert training_lines(probe, {})[1].endswith("; the first 2 epochs trained the new head only (a linear probe), "
                                                 "then every layer")
    # a searched run is saved with the search off and its fractions in the config: the card says where they came from
    ran = with_section(RunConfig(), "pruning", enabled=True, stage_fractions=(0.1, 0.2, 0.3, 0.4, 0.5))
    lines = training_lines(ran, {"pruning_search": {"best_fractions": [0.1, 0.2, 0.3, 0.4, 0.5], "trials": [{}] * 6,
                                                    "sampler": "tpe", "objective": "floor"}})
    assert lines[-1] == ("  - the per-stage fractions were found by a Bayesian search before training: 6 trials, "
                         "TPE sampler, objective floor"), lines[-1]
    two = with_section(RunConfig(), "pruning", enabled=True, auto=True, objective="floor", max_acc_drop=0.02)
    assert "largest accuracy drop (floor) 2 points" in method_settings_text(two.methods["pruning"])


def test_the_cards_corruption_figures_sit_under_its_ood_line_on_imbalanced_data():
    """A student's imbalanced run: the six corruptions' accuracies came as sub-items of the "Imbalanced classes"
    line and read as a breakdown of balanced accuracy. They sit under the OOD line."""
    from engine.config import RunConfig

    summary = {"classes": ["a", "b"], "val_acc": 0.8, "test_acc": 0.8, "ood_acc": 0.5, "test_balanced_acc": 0.6,
               "test_macro_f1": 0.55, "ood_acc_by_corruption": {"gaussian_noise": 0.25, "defocus_blur": 0.75},
               "data_report": {"imbalance": {"imbalanced": True, "largest": "a", "smallest": "b", "ratio": 8.2}}}
    metrics = model_card(RunConfig(), summary).split("## Metrics")[1].split("\n## ")[0].strip().splitlines()
    ood = next(i for i, line in enumerate(metrics) if line.startswith("- OOD accuracy"))
    assert [line[:4] for line in metrics[ood + 1:ood + 3]] == ["  - ", "  - "], metrics
    assert metrics[ood + 3].startswith("- Imbalanced classes ('a' 8.2x 'b'): test balanced accuracy 60.0%"), metrics


def test_the_model_card_cautions_a_model_that_learnt_nothing_and_figures_on_few_images():
    """Whoever receives the exported files sees what the Results page warned about: answers no better
    than guesses, and accuracies measured on a handful of images."""
    from engine.config import RunConfig, apply_overrides

    split = {"val": {"a": 4, "b": 4}, "test": {"a": 4, "b": 4}}
    card = model_card(RunConfig(), {"classes": ["a", "b"], "val_acc": 0.5, "test_acc": 0.5,
                                    "data_report": {"split_counts": split}})
    caution = card[card.index("## Caution"):].split("\n## ")[0]
    assert "test accuracy (50.0%) is at the level of guessing among 2 classes (50.0%): it learnt nothing yet. " \
           "Its answers are no better than guesses" in caution
    assert "Measured on 8 validation images (one image is 12.5 points of accuracy) and 8 test images" in caution
    assert card.index("## Metrics") < card.index("## Caution") < card.index("## Use it")
    assert "OOD accuracy (corruption suite, severities 1-5): not measured (the run ended before its final " \
           "evaluation)" in card, "on, but no figure in the summary"
    off = model_card(apply_overrides(RunConfig(), ["eval.ood=false"]), {"classes": ["a", "b"], "test_acc": 0.9})
    assert "OOD accuracy (corruption suite, severities 1-5): not measured (the run's OOD evaluation was off)" in off
    # a model clearly above guessing on 80 test images has no caution; 5 of 8 is within luck (p = 0.36)
    big = {"val": {"a": 40, "b": 40}, "test": {"a": 40, "b": 40}}
    assert "## Caution" not in model_card(RunConfig(), {"classes": ["a", "b"], "test_acc": 0.9,
                                                        "data_report": {"split_counts": big}})
    lucky = model_card(RunConfig(), {"classes": ["a", "b"], "test_acc": 5 / 8, "data_report": {"split_counts": split}})
    assert "may be no better than guesses" in lucky
    # a WiSE-FT mix's card judges the mix it ships (measured at export), not the fine-tuned end's 90%
    nine = {"val": {"a": 5, "b": 4}, "test": {"a": 5, "b": 4}}
    mix = model_card(RunConfig(), {"classes": ["a", "b"], "test_acc": 0.9, "val_acc": 0.9, "wise_alpha": 0.5,
                                   "wise_measured": {"test_acc": 5 / 9, "val_acc": 5 / 9, "test_images": 9,
                                                     "val_images": 9},
                                   "data_report": {"split_counts": nine}})
    caution = mix[mix.index("## Caution"):]
    assert "This mix's test accuracy (55.6%, 5 of 9 images)" in caution and "may be no better than guesses" in caution


def test_a_wise_ft_card_says_what_the_curves_ood_figure_was_measured_on():
    from engine.config import RunConfig, apply_overrides

    cfg = apply_overrides(RunConfig(), ["wise_ft.enabled=true", "wise_ft.ood_subset=64"])
    card = model_card(cfg, {"classes": ["a", "b"], "wise_alpha": 0.5, "wise_curve_ood_images": 54,
                            "wise_curve": [{"alpha": 0.5, "val_acc": 0.5, "ood_acc": 0.6}]})
    assert "- At alpha 0.5: validation accuracy 50.0%, OOD accuracy 60.0% (the run's curve: 54 corrupted images at " \
           "severity 3)" in card, card


def test_the_fine_tuned_export_of_a_wise_ft_run_says_it_is_alpha_1_and_how_to_get_the_mix():
    """A new user's default export of a WiSE-FT run was titled "... WiSE-FT ..." with nothing saying that its
    files were the fine-tuned model, not the mix the run had announced as chosen."""
    from engine.config import RunConfig, apply_overrides

    cfg = apply_overrides(RunConfig(), ["wise_ft.enabled=true"])
    curve = [{"alpha": a, "val_acc": v, "ood_acc": o} for a, v, o in ((0.0, 0.5, 0.4), (0.4, 0.8, 0.6), (1.0, 0.8, 0.5))]
    card = model_card(cfg, {"classes": ["a", "b"], "wise_curve": curve})
    assert "## WiSE-FT\n- These files are the fine-tuned model (alpha 1), not a mix" in card, card
    assert "- A mix (alpha 0.4, validation 80.0%, OOD 60.0% on the run's curve, by the run's own pick, unless another " \
           "alpha was chosen on the Results page) is exported with `python -m engine export --run <run id> --variant " \
           "wise`" in card, card
    structured = model_card(cfg, {"classes": ["a", "b"], "wise_curve": curve, "export_variant": "structured"})
    assert "- These files are the channel-pruned model, not a mix" in structured
    curve[1]["ood_acc"] = 0.4  # the run kept alpha 1 itself: no mix named as if it were another model
    own = model_card(cfg, {"classes": ["a", "b"], "wise_curve": curve})
    assert "- Alpha 1, the fine-tuned model itself, is the run's own pick" in own and "- A mix (" not in own, own
    # the smaller model's card of a run whose user chose alpha 0 on Results names that choice, not the run's pick
    chosen = model_card(cfg, {"classes": ["a", "b"], "wise_curve": curve, "export_variant": "structured",
                              "wise_chosen": 0.0})
    assert "- A mix (alpha 0, validation 50.0%, OOD 40.0% on the run's curve, chosen on the Results page)" in chosen
    assert "## WiSE-FT" not in model_card(RunConfig(), {"classes": ["a", "b"]}), "a run without WiSE-FT"


def test_the_cards_export_checks_read_as_the_pages_say_them():
    from engine.config import RunConfig
    from engine.export import ExportCheck

    check = ExportCheck("ONNX", "model.onnx", True, 1.0, 2.5e-6, "")
    card = model_card(RunConfig(), {"classes": ["a", "b"]}, [check])
    assert "- ONNX: verified (same class as the model on 100.0% of the validation images, largest difference in " \
           "its output scores under 0.0001)\n" in card, card  # "2.5e-06" meant nothing to a photographer
    from engine.words import difference_words

    assert [difference_words(x) for x in (0.0, 2.6e-6, 0.0123)] == ["none", "under 0.0001", "0.0123"]


def test_a_wise_ft_mix_off_the_curve_has_its_measured_accuracy_and_no_contradiction():
    from engine.config import RunConfig

    card = model_card(RunConfig(), {"classes": ["a", "b"], "wise_alpha": 0.37, "wise_curve": [],
                                    "wise_measured": {"test_acc": 0.8, "val_acc": 0.75, "test_images": 40,
                                                      "val_images": 40}})
    assert "- This mix, measured when it was exported: test accuracy 80.0% (40 images)" in card
    assert "- Alpha 0.37 is not on the run's curve: no OOD accuracy was measured for this mix\n" in card, card
    bare = model_card(RunConfig(), {"classes": ["a", "b"], "wise_alpha": 0.37, "wise_curve": []})
    assert "- Alpha 0.37 is not on the run's curve: no accuracy was measured for this mix" in bare


def test_the_card_cautions_a_gap_between_validation_and_test_beyond_chance():
    from engine.config import RunConfig

    split = {"val": {"a": 64, "b": 64}, "test": {"a": 64, "b": 64}}
    card = model_card(RunConfig(), {"classes": ["a", "b"], "val_acc": 120 / 128, "test_acc": 90 / 128,
                                    "data_report": {"split_counts": split}})
    caution = card[card.index("## Caution"):]
    assert "- Validation (93.8%) and test (70.3%) differ by 23.5 points on 128 and 128 images" in caution, caution
    assert "Which of the two holds for new images is open: more held-out images per class would tell." in caution
    assert "Weaker than the other classes" not in caution
    weak = model_card(RunConfig(), {"classes": ["a", "b"], "val_acc": 0.75, "test_acc": 0.75,
                                    "test_confusion": [[64, 0], [32, 32]], "data_report": {"split_counts": split}})
    assert "- Weaker than the other classes on the test images, by more than luck on that many images: b, 32 of " \
           "64 right (50%, against 100% for the others), most often taken for a (32 of 64)." in weak, weak


def test_the_card_gives_each_classs_figure_its_rare_classes_and_its_limits():
    """A clinician took home a card with overall figures only: their rare class had no figure of its own, nothing
    said it rested on 2 images or 5 training pictures, nor what the model is not meant for."""
    from engine.config import RunConfig

    split = {"train": {"naevus": 43, "melanoma": 5, "bcc": 18}, "val": {"naevus": 14, "melanoma": 2, "bcc": 6},
             "test": {"naevus": 14, "melanoma": 2, "bcc": 6}}
    summary = {"classes": ["naevus", "melanoma", "bcc"], "val_acc": 21 / 22, "test_acc": 1.0,
               "test_confusion": [[14, 0, 0], [0, 2, 0], [0, 0, 6]],
               "val_confusion": [[14, 0, 0], [1, 1, 0], [0, 0, 6]],
               "data_report": {"split_counts": split}}
    card = model_card(RunConfig(), summary)
    metrics = card[card.index("## Metrics"):card.index("## Caution")]
    assert "- Per class (test images): naevus 100.0% (14 of 14); melanoma 100.0% (2 of 2); bcc 100.0% (6 of 6)" \
        in metrics, metrics
    caution = card[card.index("## Caution"):card.index("## Limits")]
    assert "- Few images to judge this class by. melanoma: 2 of 2 test images right, 1 of 2 validation images right " \
           "(1 taken for naevus)." in caution, caution
    assert "- The model learnt melanoma from only 5 training pictures (naevus from 43)" in caution
    limits = card[card.index("## Limits"):]
    assert "- Measured only on 44 held-out images from the same collection as its training images" in limits
    assert "Not validated for decisions with consequences (medical, legal, safety)" in limits
    assert "OOD figure" not in limits, "no OOD figure above to speak of"
    ood = model_card(RunConfig(), {**summary, "ood_acc": 0.6, "ood_acc_by_corruption": {"gaussian_noise": 0.6}})
    assert ood.index("  - Gaussian noise: 60.0%") < ood.index("- Per class"), "the breakdown stays under OOD's line"
    assert "The OOD figure above is on generated corruptions" in ood
    assert "- Measured only on held-out images from the same collection" in model_card(RunConfig(), {"classes": ["a"]})
    # without a test split the figures are validation's; a malformed matrix gives no line
    no_test = model_card(RunConfig(), {**summary, "test_confusion": None, "test_acc": None})
    assert "- Per class (validation images): naevus 100.0% (14 of 14); melanoma 50.0% (1 of 2)" in no_test
    assert "- Per class" not in model_card(RunConfig(), {**summary, "test_confusion": [[1, 2]]})
    assert "- Per class" not in model_card(RunConfig(), {**summary, "test_confusion": [[1, 2], [3], [4, 5, 6]]})


def test_the_cards_configuration_names_a_local_dataset_by_its_file_name_not_its_folder():
    """A command-line run's card gave /home/<user>/... in its exact configuration: a card is shared."""
    import yaml

    from engine.config import RunConfig
    from engine.export import card_config_yaml

    cfg = RunConfig.from_dict({"data": {"source": "/home/ana/field photos/leaves.zip", "ood_source": "/srv/x/fog"},
                               "backbone": {"pretrained": "checkpoint", "checkpoint": "/home/ana/w/start.pt"}},
                              validated=False)
    text = card_config_yaml(cfg)
    assert "/home" not in text and "/srv" not in text, text
    read = yaml.safe_load(text)
    assert (read["data"]["source"], read["data"]["ood_source"], read["backbone"]["checkpoint"]) == (
        "leaves.zip", "fog", "start.pt")
    assert text.startswith("# data.source, data.ood_source, backbone.checkpoint: the file's name")
    plain = RunConfig()  # the bundled sample, no path: the YAML as it is, without the comment
    assert card_config_yaml(plain) == plain.to_yaml()
    upload = RunConfig.from_dict({"data": {"source": "upload:" + "a" * 64, "source_name": "mine.zip"}},
                                 validated=False)
    assert card_config_yaml(upload) == upload.to_yaml()


def test_the_starting_model_is_the_runs_own_start_whatever_came_before():
    """Explain's "starting model" answered "grid (19%)" before a restart of the dashboard and "zigzagged (24%)"
    after it: its new head was drawn from whatever state the random generator was in."""
    import torch

    from engine.backbones import build_model
    from engine.config import RunConfig, apply_overrides
    from engine.runs import start_model

    cfg = apply_overrides(RunConfig(), ["backbone.name=resnet18", "backbone.pretrained=bundled", "seed=3"])
    classes = ["a", "b", "c"]
    torch.manual_seed(123)
    first = start_model(cfg, classes).state_dict()
    torch.manual_seed(999)
    before = torch.get_rng_state()
    second = start_model(cfg, classes).state_dict()
    assert torch.equal(before, torch.get_rng_state()), "the caller's random state is left as it was"
    torch.manual_seed(cfg.seed)  # as engine.train draws the run's model
    trained_from = build_model(cfg.backbone.name, len(classes), cfg.backbone.pretrained,
                               classes=classes)[0].state_dict()
    for key in first:
        assert torch.equal(first[key], second[key]) and torch.equal(first[key], trained_from[key]), key


def test_the_channel_pruned_models_card_names_only_the_figures_it_gives():
    """"OOD and robust accuracy below were measured on the full model" on a card without robust accuracy."""
    from engine.config import RunConfig
    from engine.export import model_card

    structured = {"channel_fraction": 0.3, "fine_tune_epochs": 10, "params_before": 100, "params_after": 50,
                  "flops_ratio": 0.5, "val_acc": 0.8, "val_acc_before": 0.82}
    base = {"classes": ["a", "b"], "export_variant": "structured", "structured": structured, "val_acc": 0.82}
    assert "); OOD accuracy below was measured on the full model" in model_card(RunConfig(), base)
    assert "); OOD and robust accuracy below" in model_card(RunConfig(), {**base, "robust_acc": 0.4})
    # the figures under Metrics (and the sparsity there) are the full-size model's, and say so; its own test
    # accuracy is beside its validation accuracy
    card = model_card(RunConfig(), {**base, "sparsity": 0.7, "structured": {**structured, "test_acc": 0.75,
                                                                           "test_acc_before": 0.78}})
    assert "## Metrics (the full-size model this one was cut from; its own are above)" in card
    assert "- Validation accuracy 80.0% (the full model: 82.0%), test accuracy 75.0% (the full model: 78.0%); " in card
    # as exported (the smaller model's own figures in the summary's place), Metrics still gives the full model's
    from engine.chance import smaller_model_summary

    full = {**base, "test_acc": 0.78, "structured": {**structured, "test_acc": 0.75, "test_acc_before": 0.78,
                                                     "test_confusion": [[3, 1], [1, 3]]}}
    exported = model_card(RunConfig(), smaller_model_summary(full))
    metrics = exported[exported.index("## Metrics"):]
    assert "- Validation accuracy: 82.0%; test accuracy: 78.0%" in metrics, metrics
    tta = model_card(RunConfig(), smaller_model_summary({**full, "val_acc": 0.84}))  # flip TTA: Results' figure
    assert "- Validation accuracy: 84.0%; test accuracy: 78.0%" in tta[tta.index("## Metrics"):]
    assert "- Per class (this smaller model's, test images): a 75.0% (3 of 4); b 75.0% (3 of 4)" in metrics
    assert "## Metrics\n" in model_card(RunConfig(), {k: v for k, v in base.items() if k != "export_variant"})


def test_the_channel_pruned_models_card_cautions_from_its_own_confusion_matrix():
    """The smaller model's card read its weak classes from the full-size model's matrix ("c, 2 of 8 right")
    while Results showed the smaller model getting all of c right; now its own matrices, and none of the
    full-size model's other per-split figures (balanced accuracy, the user's OOD set's matrix)."""
    from engine.chance import smaller_model_summary
    from engine.config import RunConfig
    from engine.export import model_card

    classes = ["a", "b", "c"]
    counts = {"data_report": {"split_counts": {"test": {c: 8 for c in classes}, "val": {c: 8 for c in classes}},
                              "imbalance": {"imbalanced": True, "largest": "a", "smallest": "c", "ratio": 2}}}
    weak_c = [[8, 0, 0], [0, 8, 0], [6, 0, 2]]
    all_right = [[8, 0, 0], [0, 8, 0], [0, 0, 8]]
    full = {"classes": classes, "test_acc": 18 / 24, "val_acc": 18 / 24, "test_confusion": weak_c,
            "val_confusion": weak_c, "test_balanced_acc": 0.75, "ood_user_confusion": weak_c, **counts,
            "structured": {"val_acc": 1.0, "test_acc": 1.0, "test_confusion": all_right, "val_confusion": all_right,
                           "params_before": 100, "params_after": 50}}
    assert "c, 2 of 8 right" in model_card(RunConfig(), full), "the full-size model's card names c"
    small = smaller_model_summary(full)
    assert small["test_confusion"] == all_right and "ood_user_confusion" not in small
    assert "test_balanced_acc" not in small and small["num_params"] == 50
    card = model_card(RunConfig(), small)
    assert "2 of 8 right" not in card and "test balanced accuracy" not in card, card
    weak_small = {**full, "structured": {**full["structured"], "test_acc": 18 / 24, "test_confusion": weak_c}}
    assert "c, 2 of 8 right" in model_card(RunConfig(), smaller_model_summary(weak_small))


def test_a_wise_ft_mix_card_names_the_mixs_own_weaker_classes_not_the_fine_tuned_models():
    """The exported card of a WiSE-FT mix left out the weak-class caution its preview showed, and that preview's
    caution was the fine-tuned end's: the mix's own confusion matrices, measured at export, give its caution."""
    from engine.config import RunConfig

    split = {"val": {"a": 64, "b": 64}, "test": {"a": 64, "b": 64}}
    end_weak = {"classes": ["a", "b"], "val_acc": 0.75, "test_acc": 0.75, "test_confusion": [[64, 0], [32, 32]],
                "data_report": {"split_counts": split}, "wise_curve": []}
    weak_b = "Weaker than the other classes on the test images, by more than luck on that many images: b,"
    assert weak_b in model_card(RunConfig(), end_weak), "the fine-tuned end's own card names b"
    preview = model_card(RunConfig(), {**end_weak, "wise_alpha": 0.5})
    assert "Weaker than the other classes" not in preview, "a mix not measured yet has no weaker class of its own"
    mix_weak_a = {"test_acc": 0.75, "val_acc": 0.75, "test_images": 128, "val_images": 128,
                  "test_confusion": [[30, 34], [0, 64]], "val_confusion": [[32, 32], [0, 64]]}
    card = model_card(RunConfig(), {**end_weak, "wise_alpha": 0.5, "wise_measured": mix_weak_a})
    assert "by more than luck on that many images: a, 30 of 64 right" in card and weak_b not in card, card
    assert "## Caution (this mix, alpha 0.5, measured when it was exported)\n" in card, "not the fine-tuned model's"
    assert "## Caution\n" in model_card(RunConfig(), end_weak)
    even = {**mix_weak_a, "test_confusion": [[48, 16], [16, 48]]}
    assert "Weaker than" not in model_card(RunConfig(), {**end_weak, "wise_alpha": 0.5, "wise_measured": even})
