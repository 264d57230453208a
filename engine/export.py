"""Take the model home: safetensors + config, TorchScript, ONNX, each verified, and a model card.

Every exported file is reloaded and its predictions on the validation split compared with the
model it came from; an export that does not reproduce them is reported as failed, never
silently shipped. Exported models take pixels in [0, 1] (normalisation is inside).

A run with structured pruning has a second, smaller model (`structured.safetensors`, channels
removed); engine.runs rebuilds it and `export_all(..., structured=True)` exports it
like the full one, so the smaller network can be taken home without this project's code.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.augment import augmentation_words, to_float
from engine.bursts import BURST_GAP_S
from engine.backbones import Classifier, backbone_title
from engine.chance import (SPLIT_WORDS, answers_words, chance_finding, colour_words, confusion_rows, few_class_words,
                           few_training_words, findings_split, oversure_words, small_split_words,
                           smaller_model_summary, val_test_gap_words, weak_class_words)
from engine.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from engine.claims import split_sizes
from engine.config import RunConfig, shown_setting, shown_value
from engine.corruptions import corruption_name
from engine.data import PAD_RGB, DataSplits, is_names_warning
from engine.evaluate import FlipAverage, held_out_accuracy, predict
from engine.methods import METHODS
from engine.metrics import class_errors
from engine.runs import load_structured, model_from_state
from engine.structured import save_structured
from engine.words import (balance_words, difference_words, ended_early_words, epochs_run_words, plural,
                          right_of_words)


VALIDATION_IMAGES = "the validation images"  # what the exported files are checked on, as the card says it
GENERATED_CHECKS = 32  # generated images to check on when the run's dataset cannot be read


@dataclass
class ExportCheck:
    """The check of one exported file: its format and path, whether it passed, the share of the check images (0-1;
    the validation images, or generated ones when the run's dataset is gone) on which its prediction matches the
    trained model's, the largest absolute logit difference, a message in plain words when it failed, and `extra`:
    format-specific facts, and from `export_all` `checked_on` (its words for the images) and `images` (how many)."""

    format: str
    path: str
    ok: bool
    agreement: float  # fraction of the check images' predictions that match the source model
    max_abs_logit_diff: float
    message: str = ""
    extra: dict = field(default_factory=dict)


@torch.no_grad()
def _logits(fn, images_u8: torch.Tensor, batch: int = 128) -> torch.Tensor:
    out = [fn(to_float(images_u8[i:i + batch])) for i in range(0, len(images_u8), batch)]
    return torch.cat([torch.as_tensor(o).float() for o in out])


def _compare(fmt: str, path: Path, ref: torch.Tensor, got: torch.Tensor, tol: float = 1e-3) -> ExportCheck:
    agree = float((ref.argmax(1) == got.argmax(1)).float().mean())
    diff = float((ref - got).abs().max())
    ok = agree == 1.0 and diff <= tol * max(1.0, float(ref.abs().max()))
    msg = "" if ok else f"the exported model's outputs differ (agreement {agree:.3f}, max logit difference {diff:.2e})"
    return ExportCheck(fmt, str(path), ok, agree, diff, msg)


# Installed once, at import: a filter changed around each call (warnings.catch_warnings) would swap the
# process-wide filter list under the engine's other threads.
TORCHSCRIPT_DEPRECATION = r".*torch\.jit.*deprecated"
warnings.filterwarnings("ignore", message=TORCHSCRIPT_DEPRECATION, category=FutureWarning)


def export_torchscript(model: Classifier, image_size: int, path: Path, val_images: torch.Tensor) -> ExportCheck:
    """Trace `model` (input float32 [N, 3, image_size, image_size] in 0..1) to a TorchScript file at
    `path`, reload it and compare its logits with the model's on `val_images` (uint8 [N, 3, H, W]).

    TorchScript is deprecated upstream (recent PyTorch warns on trace, save and load) but still the one
    format that torch alone loads without the model's Python code; those FutureWarnings are filtered
    out when this module is imported (TORCHSCRIPT_DEPRECATION), so they do not fill the dashboard's
    log on every export. Other warnings still show."""
    model = model.eval().cpu()
    example = torch.rand(2, 3, image_size, image_size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    return _compare("torchscript", path, _logits(model, val_images), _logits(loaded, val_images))


def export_onnx(model: Classifier, image_size: int, path: Path, val_images: torch.Tensor) -> ExportCheck:
    """Export `model` to ONNX at `path` (input "pixels" float [B, 3, image_size, image_size] in [0, 1], dynamic
    batch; output "logits" float [B, C]; the legacy TorchScript-based exporter) and check it with onnxruntime
    against the model's logits on `val_images` (uint8 [N, 3, S, S]; tolerance 1e-3). Never raises for a failed
    export: a missing onnxruntime, an op the exporter does not support or a file onnxruntime cannot load or run
    is a failed ExportCheck with its message."""
    try:
        import onnxruntime as ort
    except ImportError:
        return ExportCheck("onnx", str(path), False, 0.0, float("nan"), "onnxruntime is not installed: pip install onnx onnxruntime")
    model = model.eval().cpu()
    example = torch.rand(2, 3, image_size, image_size)
    try:
        torch.onnx.export(model, (example,), str(path), input_names=["pixels"], output_names=["logits"],
                          dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    except Exception as exc:  # an op the exporter does not support
        return ExportCheck("onnx", str(path), False, 0.0, float("nan"), f"ONNX export failed: {exc}")
    try:  # a file onnxruntime cannot load or run (an op it lacks) is a failed check too, never an exception
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        run = lambda x: session.run(None, {"pixels": x.numpy()})[0]  # noqa: E731
        theirs = _logits(run, val_images)
    except Exception as exc:
        return ExportCheck("onnx", str(path), False, 0.0, float("nan"), f"onnxruntime could not run the exported file: {exc}")
    return _compare("onnx", path, _logits(model, val_images), theirs, tol=1e-3)


def data_source_text(cfg: RunConfig) -> str:
    """The training data as the card names it: the user's own file name and the content hash for an
    upload, never the server's path or stored file name."""
    from engine.paths import SAMPLE_DATASET, UPLOAD_PREFIX

    d = cfg.data
    if d.source.startswith(UPLOAD_PREFIX):
        digest = d.source[len(UPLOAD_PREFIX):]
        return f"`{d.source_name or 'an upload'}` (SHA-256 {digest[:16]}…)"
    if d.source == SAMPLE_DATASET:
        return "the studio's bundled texture sample"
    return f"`{d.source_name or Path(d.source).name}`"


def card_config_yaml(cfg: RunConfig) -> str:
    """The run's configuration as the card prints it: the YAML `RunConfig.load` reads, except that a path on
    the training machine (the dataset, your OOD set, your checkpoint: a command-line run's, say
    /home/you/photos/leaves.zip) is cut to its file name, with a comment saying so; upload references and
    the bundled sample are kept as they are (they name no folder)."""
    from engine.config import with_section
    from engine.paths import SAMPLE_DATASET, UPLOAD_PREFIX

    cut, shared = [], cfg
    for key in ("data.source", "data.ood_source", "backbone.checkpoint"):
        section, field = key.split(".")
        ref = getattr(getattr(cfg, section), field)
        if ref and not ref.startswith(UPLOAD_PREFIX) and ref != SAMPLE_DATASET and Path(ref).name != ref:
            cut.append(key)
            shared = with_section(shared, section, **{field: Path(ref).name})
    if not cut:
        return cfg.to_yaml()
    return (f"# {', '.join(cut)}: the file's name only (the run read it from a folder on the computer that trained it)\n"
            + shared.to_yaml())


def choice_label(settings: Any, name: str) -> str:
    """A choice setting's value in the dashboard's words (its field's `labels`), else the value."""
    import dataclasses

    meta = {f.name: f.metadata for f in dataclasses.fields(settings)}[name]
    value = getattr(settings, name)
    return (meta.get("labels") or {}).get(value, str(value))


def method_settings_text(settings: Any) -> str:
    """A method's settings (its config dataclass) in words: each field's label from its metadata
    (else its name), a list as comma-separated values, a switch with a `card` phrase (on, off) as that
    phrase; e.g. "target sparsity 0.7; scope the whole network; the classification head not pruned".
    Settings that do not apply (`shown_when` off: the search's settings with the search off) are left out."""
    import dataclasses

    parts = []
    for f in dataclasses.fields(settings):
        if f.name == "enabled" or not shown_setting(settings, f.name):
            continue
        value = getattr(settings, f.name)
        card = f.metadata.get("card")  # (on, off): a switch as a phrase ("the classification head not pruned")
        if isinstance(value, bool) and card:
            if card[0 if value else 1]:
                parts.append(card[0 if value else 1])
            continue
        if value in ((), []) and f.metadata.get("card_empty"):  # "per-stage fractions": none means the target
            parts.append(f.metadata["card_empty"])
            continue
        label = f.metadata.get('label', f.name.replace('_', ' ')).removesuffix(" (optional)")
        zero = re.search(r" \(0 = ([^)]+)\)$", label)
        if zero:  # "steps between mask updates (0 = automatic)": its 0 in words, the bracket dropped
            label = label[:zero.start()]
        if zero and value == 0:
            shown = zero[1]
        elif isinstance(value, bool):
            shown = "on" if value else "off"
        elif isinstance(value, (tuple, list)):
            shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        elif value in (f.metadata.get("labels") or {}):  # a choice in the dashboard's words
            shown = f.metadata["labels"][value]
        elif f.metadata.get("scale", 1) != 1:
            shown = shown_value(f.metadata, value)  # eps 2/255, as the dashboard shows it, not 0.00784314
        else:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"{label} {shown or '(none)'}")
    return "; ".join(parts)


def curve_ood_source(summary: dict[str, Any], cfg: RunConfig | None) -> str:
    """What the WiSE-FT curve's OOD accuracy was measured on, in words: how many corrupted images (the
    summary's wise_curve_ood_images) and at which severity (engine.methods.wise_ft.curve_sets)."""
    from engine.methods.wise_ft import curve_severity

    n = summary.get("wise_curve_ood_images")
    severity = curve_severity(cfg) if cfg is not None else None
    what = f"{n:,} corrupted images" if isinstance(n, int) and n > 0 else "corrupted images"
    return what + (f" at severity {severity}" if severity else "")


def wise_card_section(summary: dict[str, Any], cfg: RunConfig | None = None) -> list[str]:
    """The model card's lines for a WiSE-FT mix (summary["wise_alpha"] set): that mix's validation and
    test accuracy measured at export (summary["wise_measured"], `held_out_accuracy`), its validation and
    OOD accuracy from the run's curve (fractions shown in %), and that the metrics that follow are the
    fine-tuned model's (an alpha between the curve's points: summary["wise_point"], computed for the export by
    engine.runs.FinishedRun.wise_card_summary); for an export of a WiSE-FT run that is no mix,
    `fine_tuned_of_wise_lines`."""
    from engine.methods.wise_ft import curve_point

    alpha = summary.get("wise_alpha")
    if alpha is None:
        return fine_tuned_of_wise_lines(summary)
    a = float(alpha)
    point = curve_point(summary.get("wise_curve") or [], a) or summary.get("wise_point")  # off the grid: computed
    lines = ["", f"## WiSE-FT (this is the mix at alpha {a:g})"]
    measured = summary.get("wise_measured") or {}
    if measured:
        parts = []
        for split, words in (("test", "test"), ("val", "validation")):
            acc = measured.get(f"{split}_acc")
            parts.append(f"{words} accuracy {'n/a' if acc is None else f'{100 * acc:.1f}%'} "
                         f"({measured.get(f'{split}_images', 0)} images)")
        lines.append(f"- This mix, measured when it was exported: {'; '.join(parts)}")
    if point is not None:
        val, ood = point.get("val_acc"), point.get("ood_acc")
        ood_words = "n/a" if ood is None else f"{100 * ood:.1f}% (the run's curve: {curve_ood_source(summary, cfg)})"
        lines.append(f"- At alpha {a:g}: validation accuracy {'n/a' if val is None else f'{100 * val:.1f}%'}, OOD "
                     f"accuracy {ood_words}")
    else:
        lines.append(f"- Alpha {a:g} is not on the run's curve: no {'OOD ' if measured else ''}accuracy was measured "
                     "for this mix")
    return lines + ["- The metrics below are the fine-tuned model's (alpha 1)"]


def fine_tuned_of_wise_lines(summary: dict[str, Any]) -> list[str]:
    """The card's lines for an export of a WiSE-FT run that is not a mix (a curve, no `wise_alpha`): what
    its files are (the fine-tuned model, alpha 1, or the channel-pruned one) and how to export a mix (the
    alpha chosen on Results, summary["wise_chosen"], else the run's own pick, engine.predict.chosen_alpha); [] for a run
    without a curve. A new user's default export of a WiSE-FT run was titled "... WiSE-FT ..." with nothing
    saying which model it held."""
    curve = summary.get("wise_curve") or []
    if not curve:
        return []
    from engine.methods.wise_ft import curve_point
    from engine.predict import chosen_alpha, pick_rule_words

    what = ("the channel-pruned model" if summary.get("export_variant") == "structured" else
            "the fine-tuned model (alpha 1)")
    lines = ["", "## WiSE-FT", f"- These files are {what}, not a mix of the fine-tuned and starting weights"]
    chosen = summary.get("wise_chosen")  # the alpha chosen on Results (the run store's), when one was
    pick = chosen_alpha(summary, chosen)
    if pick == 1.0:  # no mix to point to: the run kept the fine-tuned model itself
        measured = any(p.get("ood_acc") is not None for p in curve)  # else the pick was on validation: said so
        why = ("chosen on the Results page" if chosen is not None else "the run's own pick (no mix did better on OOD "
               "with validation within a point of it)" if measured else
               f"the run's own pick ({pick_rule_words(summary)})")
        return lines + [f"- Alpha 1, the fine-tuned model itself, is {why}; another alpha is exported with "
                        "`python -m engine export --run <run id> --variant wise --alpha A`"]
    point = curve_point(curve, pick) or {}
    figures = ", ".join(f"{words} {100 * point[k]:.1f}%" for k, words in (("val_acc", "validation"), ("ood_acc", "OOD"))
                        if point.get(k) is not None)
    mix = f"alpha {pick:g}" + (f", {figures} on the run's curve" if figures else "")
    whose = "chosen on the Results page" if chosen is not None else \
        "by the run's own pick, unless another alpha was chosen on the Results page"
    lines.append(f"- A mix ({mix}, {whose}) is exported with `python -m engine export --run <run id> --variant wise`, "
                 "or under 'Weights to export' on the dashboard's Export tab")
    return lines


def training_lines(cfg: RunConfig, summary: dict[str, Any]) -> list[str]:
    """The model card's Training section: the recipe, where its learning rate came from (and the head's, where
    it was kept under its stability bound), the methods."""
    from engine.lr_find import lr_find_sentence
    from engine.optim import frozen_words, head_lr_words
    from engine.schedules import schedule_label

    stopped = summary.get("export_variant") == "best" and summary.get("status") == "stopped"
    epochs = f"{plural(cfg.train.epochs, 'epoch')} planned" if stopped else epochs_run_words(summary, cfg.train.epochs)
    lines = ["## Training",
             f"- {epochs}, batch {cfg.train.batch_size}, "
             f"{choice_label(cfg.optim, 'optimizer')}, lr {cfg.optim.lr:g} "
             f"(momentum {cfg.optim.momentum:g}, effective lr {cfg.effective_lr:g}), schedule "
             f"{schedule_label(cfg.optim.schedule)}; {augmentation_words(cfg.train)}"
             + (f"; {frozen}" if (frozen := frozen_words(cfg.optim, cfg.backbone.pretrained, kept=True)) else "")
             + (f"; the first {plural(lp, 'epoch')} trained the new head only (a linear probe), then every layer"
                if (lp := cfg.optim.linear_probe_epochs) else "")
             + (f"; imbalanced classes: {balance}" if (balance := balance_words(cfg.data.class_balance)) else "")
             + {"pad": "; whole pictures, padded with grey to squares",
                "stretch": "; whole pictures, stretched to squares"}.get(cfg.data.fit, "")]
    if ended := ended_early_words(summary):
        lines.append("- " + ended)
    if summary.get("export_variant") == "best":
        best = summary.get("best_epoch")
        stopped = ", stopped before its end" if summary.get("status") == "stopped" else ""
        lines.append("- These files are its best epoch" + (f", epoch {best[0]} of the {best[1]} it ran" if best else "")
                     + f" (highest validation accuracy){stopped}")
    if summary.get("lr_find"):
        lines.append("- " + lr_find_sentence(summary["lr_find"]))
    if head := head_lr_words(summary, cfg.data.image_size):
        lines.append("- " + head)
    lines.append("- Methods: " + (", ".join(METHODS[m].title for m in cfg.enabled_methods() if m in METHODS)
                                  or "plain fine-tuning"))
    lines += [f"  - {METHODS[m].title if m in METHODS else m}: {method_settings_text(cfg.methods[m])}"
              for m in cfg.enabled_methods()]
    search = summary.get("pruning_search") or {}
    if search.get("best_fractions"):  # the run's config holds the result, with the search switched off
        lines.append(f"  - the per-stage fractions were found by a Bayesian search before training: "
                     f"{len(search.get('trials') or [])} trials, {search.get('sampler', 'tpe').upper()} sampler, "
                     f"objective {search.get('objective')}")
    return lines


# what a run started from, in the model card's words (backbone.pretrained)
CARD_WEIGHTS = {"bundled": "the studio's bundled weights (pretrained offline on formula-drawn images)",
                "imagenet": "torchvision's ImageNet weights", "none": "random weights (no pretraining)",
                "checkpoint": "a checkpoint the user gave"}


def caution_section(summary: dict[str, Any]) -> list[str]:
    """The card's "Caution" lines: the exported model at or near the level of guessing
    (engine.chance.chance_finding; for a WiSE-FT mix its own accuracy measured at export,
    summary["wise_measured"]), validation and test accuracies further apart than chance usually puts
    them (engine.chance.val_test_gap_words), classes the model gets wrong far more often than the others
    (engine.chance.weak_class_words, on the test images, else validation; for a mix its own confusion matrices
    measured at export, none before), figures measured on few held-out images (engine.chance.small_split_words) and
    classes of few held-out images (engine.chance.few_class_words) or few training images
    (engine.chance.few_training_words); [] when none applies."""
    measured = summary.get("wise_measured") or {}
    if measured:  # the mix is what is shipped, not the fine-tuned end: its own accuracies and confusion matrices
        summary = dict(summary, **{k: measured.get(k) for k in ("val_acc", "test_acc", "val_confusion",
                                                                 "test_confusion", "val_by_colour", "test_by_colour",
                                                                 "val_confidence", "test_confidence")})
    found = chance_finding(summary, whose="This mix's" if measured else "This model's")
    small, gap = small_split_words(summary), val_test_gap_words(summary)
    # a mix not measured yet (Explain's preview) has no confusion of its own: the fine-tuned end's is not its
    unmeasured_mix = summary.get("wise_alpha") is not None and not measured
    weak = None if unmeasured_mix else weak_class_words(summary)
    colour = None if unmeasured_mix else colour_words(summary)  # a mix's own, once measured
    few = few_class_words(dict(summary, val_confusion=None, test_confusion=None) if unmeasured_mix else summary)
    learnt = few_training_words(summary)
    oversure = None if unmeasured_mix else oversure_words(summary)  # a mix's answers were never counted by confidence
    if found is None and not small and not gap and not weak and not colour and not few and not learnt \
            and not oversure:
        return []
    # after "Metrics (the fine-tuned model, alpha 1)" a reader pinned a mix's cautions on the fine-tuned model
    alpha = summary.get("wise_alpha")
    whose = f" (this mix, alpha {float(alpha):g}, measured when it was exported)" if measured and alpha is not None else ""
    lines = ["", f"## Caution{whose}"]
    if found is not None:
        lines.append(f"- {found.text} {answers_words(found.maybe)}")
    if gap:
        lines.append(f"- {gap} Which of the two holds for new images is open: more held-out images per class would tell.")
    if weak:
        lines.append(f"- {weak}")
    if colour:
        lines.append(f"- {colour}")
    if small:
        lines.append(f"- {small}")
    if few:
        lines.append(f"- {few}")
    if learnt:
        lines.append(f"- {learnt}")
    if oversure:
        lines.append(f"- {oversure}")
    return lines


def per_class_lines(summary: dict[str, Any], whose: str = "") -> list[str]:
    """The card's accuracy of each class, on the test images (else validation), from the summary's
    `{split}_confusion` (rows: true class; image counts): "- Per class (test images): Melanoma 50.0% (1 of 2); ...",
    and of each class the share of the model's answers that were right (precision, engine.metrics.class_errors):
    "- Right when it answers each class (precision, test images): Melanoma 33.3% (1 of 3); ..."; [] without a
    well-formed matrix. A clinician's rare class had no figure of its own on the card they took home.
    `whose`: a model other than the heading's, said in the brackets ("this smaller model's")."""
    split = findings_split(summary)
    rows = confusion_rows(summary, split)
    if rows is None:
        return []
    shown = [f"{c} {right_of_words(row[i], sum(row))}" if sum(row) else f"{c}: no images"
             for i, (c, row) in enumerate(zip(summary["classes"], rows))]
    said = [f"{e.name} {right_of_words(e.found, e.answered)}" if e.answered else f"{e.name}: never answered"
            for e in class_errors(rows, summary["classes"])]
    where = f"{whose + ', ' if whose else ''}{SPLIT_WORDS[split]} images"
    return [f"- Per class ({where}): " + "; ".join(shown),
            f"- Right when it answers each class (precision, {where}): " + "; ".join(said)]


def limits_section(summary: dict[str, Any]) -> list[str]:
    """The card's "Limits" lines (Mitchell et al. 2019, "Model Cards for Model Reporting": intended use and its
    bounds): measured only on held-out images of the same collection (how many, where the summary's data_report
    split_counts say), generated corruptions alone for the OOD figure (where the card gives one), and no validation
    for decisions with consequences."""
    held = sum(sum(split_sizes(summary, s)) for s in ("val", "test"))
    measured = (f"Measured only on {held:,} held-out images from the same collection as its training images"
                if held else "Measured only on held-out images from the same collection as its training images")
    ood = (" The OOD figure above is on generated corruptions of those images, not on pictures of other conditions."
           if summary.get("ood_acc") is not None else "")
    return ["", "## Limits",
            f"- {measured}: pictures from other cameras, places, people or conditions may fare worse.{ood}",
            "- Not validated for decisions with consequences (medical, legal, safety): its answers are suggestions for "
            "a person who knows the subject to check."]


def ood_text(cfg: RunConfig, summary: dict[str, Any]) -> str:
    """The run's OOD accuracy on the corruption suite in the card's words: "61.2%", "not measured (the run's
    OOD evaluation was off)", or, when it was on and the summary holds no figure (a run stopped before its
    final evaluation), "not measured (the run ended before its final evaluation)"; for the best epoch's model
    (`best_epoch_summary`) that the suite did not measure it."""
    if summary.get("ood_acc") is not None:
        return f"{100 * summary['ood_acc']:.1f}%"
    if summary.get("export_variant") == "best" and cfg.eval.ood:
        return "not measured for the best epoch's model (the suite measures the model at the end of training)"
    return ("not measured (the run's OOD evaluation was off)" if not cfg.eval.ood else
            "not measured (the run ended before its final evaluation)")


def pct(x: float | None) -> str:
    """A model card's percentage: 0.823 -> "82.3%", None -> "n/a"."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def structured_card_section(summary: dict[str, Any]) -> list[str]:
    """The model card's lines on the channel-pruned model, when that is what is exported (else none)."""
    structured = summary.get("structured") or {}
    if summary.get("export_variant") != "structured" or not structured:
        return []
    before, after = structured.get("params_before", 0), structured.get("params_after", 0)
    return [
        "",
        "## Structured pruning (this is the channel-pruned model)",
        f"- {100 * structured.get('channel_fraction', 0):.0f}% of the channels removed, then "
        f"{structured.get('fine_tune_epochs', 0)} fine-tuning epochs: {after:,} parameters instead of {before:,}, "
        f"{100 * structured.get('flops_ratio', 1):.0f}% of the multiply-adds",
        f"- Validation accuracy {pct(structured.get('val_acc'))} (the full model: "
        f"{pct(structured.get('val_acc_before'))})"
        + (f", test accuracy {pct(structured['test_acc'])} (the full model: {pct(structured.get('test_acc_before'))})"
           if structured.get("test_acc") is not None else "") + "; "
        + ("OOD and robust accuracy below were" if summary.get("robust_acc") is not None else "OOD accuracy below was")
        + " measured on the full model",
    ]


def data_card_section(cfg: RunConfig, rep: dict[str, Any]) -> list[str]:
    """The model card's "## Data" lines from the run's data report `rep` (engine.data's, in the summary): where the
    images came from and how many per class, the layout, the split, skipped files, duplicates and warnings."""
    dropped = rep.get("duplicates_dropped")
    return [
        "",
        "## Data",
        f"- Source: {data_source_text(cfg)}; images per class: "
        + ", ".join(f"{k} {v}" for k, v in rep.get("counts", {}).items()),
        f"- Layout: {rep.get('layout', 'class folders')}",
        ("- Split (given by the dataset's folders): " if rep.get("split_given") else f"- Split (seed {cfg.seed}): ")
        + ", ".join(f"{s} {sum(c.values())}" for s, c in rep.get("split_counts", {}).items()),
        f"- Skipped files: {len(rep.get('skipped', []))}; duplicate groups: {len(rep.get('duplicate_groups', []))} "
        f"({'where the split folders put them' if rep.get('split_given') else 'kept within one split'}"
        f"{'; ' + str(len(dropped)) + ' extra copies dropped' if dropped else ''})",
        *bursts_card_line(rep),
        *(f"- {'File names' if is_names_warning(w) else 'Warning'}: {w}"  # a picture under two classes; the names
          for w in rep.get("warnings") or []),
    ]


def bursts_card_line(rep: dict[str, Any]) -> list[str]:
    """The model card's line on the data's bursts (engine.bursts: frames one camera took moments apart), where the
    report found any: how many pictures in how many, and where they went ("- Bursts: 199 pictures in 48 bursts
    (frames of one camera at most 3 s apart), each kept within one split"); [] without."""
    bursts = rep.get("bursts") or []
    if not bursts:
        return []
    where = "where the split folders put them" if rep.get("split_given") else "each kept within one split"
    return [f"- Bursts: {sum(map(len, bursts))} pictures in {len(bursts)} bursts (frames of one camera at most "
            f"{BURST_GAP_S:g} s apart), {where}"]


def exports_card_section(checks: list[ExportCheck], checked_on: str = VALIDATION_IMAGES) -> list[str]:
    """The model card's "## Exports" lines: each exported file's check against the model (made on `checked_on`,
    words such as "the validation images"; generated images where the run's data could not be read); [] without
    checks."""
    if not checks:
        return []
    on = "the validation split" if checked_on == VALIDATION_IMAGES else checked_on
    lines = ["", f"## Exports (verified on {on})"]
    if checked_on != VALIDATION_IMAGES:
        lines += ["", "The run's dataset could not be read when these files were exported, so each file was "
                  "checked against the model on generated images: it computes the same function, but these "
                  "images say nothing of its accuracy (see Metrics)."]
    for c in checks:
        lines.append(f"- {c.format}: {'verified' if c.ok else 'FAILED'} (same class as the model on "
                     f"{100 * c.agreement:.1f}% of {checked_on}, largest difference in its output scores "
                     f"{difference_words(c.max_abs_logit_diff)}) {c.message}".rstrip())
    return lines


def model_card(cfg: RunConfig, summary: dict[str, Any], checks: list[ExportCheck] | None = None,
               checked_on: str = VALIDATION_IMAGES) -> str:
    """A markdown model card: data, methods and their settings, metrics, the checks of the exported files
    (made on `checked_on`, words such as "the validation images"), the exact config."""
    rep = summary.get("data_report", {})
    lines = [
        f"# Model card: {cfg.name or cfg.backbone.name}",
        "",
        "## Model",
        f"- Architecture: {backbone_title(cfg.backbone.name)} (`{cfg.backbone.name}`; {summary.get('num_params', 0):,} parameters), "
        f"started from {CARD_WEIGHTS.get(cfg.backbone.pretrained, cfg.backbone.pretrained + ' weights')}",
        f"- Input: RGB pixels in [0, 1], {cfg.data.image_size} x {cfg.data.image_size} (normalisation is inside the model)",
        f"- Classes ({len(summary.get('classes', []))}): {', '.join(summary.get('classes', []))}",
    ]
    if cfg.eval.tta_flip:
        lines.append("- Flip test-time augmentation: every prediction averages the probabilities of the image and "
                     "of its left-right mirror; model.ts and model.onnx do this inside (their output is the log of "
                     "that average), model.safetensors holds the plain network's weights")
    lines += [*data_card_section(cfg, rep), "", *training_lines(cfg, summary)]
    structured = structured_card_section(summary)
    lines += structured
    alpha = summary.get("wise_alpha")
    lines += wise_card_section(summary, cfg)
    # a channel-pruned export: the full-size model's as Results shows them (else as measured before the cut)
    full = {k: summary.get(f"full_{k}", (summary.get("structured") or {}).get(f"{k}_before"))
            for k in ("val_acc", "test_acc")} if structured else summary
    lines += [
        "",
        "## Metrics" + (" (the fine-tuned model, alpha 1)" if alpha is not None else
                        " (the full-size model this one was cut from; its own are above)" if structured else
                        BEST_METRICS[bool(summary.get("recorded_in_training"))]
                        if summary.get("export_variant") == "best" else ""),
        # the full-size model's under that heading: a smaller model's card gave its own 50% there beside 90%
        f"- Validation accuracy: {pct(full.get('val_acc'))}; test accuracy: {pct(full.get('test_acc'))}",
        f"- OOD accuracy (corruption suite, severities 1-5): {ood_text(cfg, summary)}",
    ]
    for k, v in (summary.get("ood_acc_by_corruption") or {}).items():  # under the OOD line (they were read as a
        lines.append(f"  - {corruption_name(k)}: {pct(v)}")  # breakdown of the imbalance line that came between)
    lines += per_class_lines(summary, "this smaller model's" if structured else "")
    imb = rep.get("imbalance") or {}
    if imb.get("imbalanced") and summary.get("test_balanced_acc") is not None:
        lines.append(f"- Imbalanced classes ('{imb['largest']}' {imb['ratio']}x '{imb['smallest']}'): test balanced "
                     f"accuracy {pct(summary['test_balanced_acc'])}, macro-F1 {pct(summary.get('test_macro_f1'))}")
    if summary.get("ood_user_acc") is not None:
        lines.append(f"- Your OOD set: {pct(summary['ood_user_acc'])}")
    if summary.get("robust_acc") is not None:
        ev = summary.get("robust_eval", {})
        lines.append(f"- Robust accuracy ({ev.get('attack', 'PGD')}, eps {ev.get('eps', 0) * 255:.1f}/255): "
                     f"{pct(summary['robust_acc'])}")
    if summary.get("sparsity") is not None:
        lines.append(f"- Sparsity: {pct(summary['sparsity'])}")
    lines += caution_section(summary)
    lines += limits_section(summary)
    lines += exports_card_section(checks or [], checked_on)
    lines += use_it_section(summary.get("classes", []), cfg.data.image_size, cfg.data.fit)
    lines += ["", "## Exact configuration", "", "```yaml", card_config_yaml(cfg).rstrip(), "```", ""]
    return "\n".join(lines)


# The preprocessing lines below follow engine.data.decode_image step by step (JPEG draft decoding,
# EXIF rotation, 16-bit and float greyscale scaled to 8 bits, any mode to RGB with transparency on white,
# centre square (or the whole picture on grey: engine.data.fit_square), bilinear resize), so the exported model
# sees the same pixels as in the studio;
# tests/test_predict.py runs them. (A 16-bit X-ray went white through convert("RGBA") alone.)
_PREPROCESS = """import sys{stdlib_import}

import numpy as np
{runtime_import}
from PIL import Image, ImageOps, JpegImagePlugin

CLASSES = {classes!r}
SIZE = {size}  # pixels; the model was trained on SIZE x SIZE {squares}


def eight_bit(img):
    \"\"\"16/32-bit or float greyscale (scans, X-rays) -> 8-bit greyscale, scaled as the studio scales it.\"\"\"
    a = np.asarray(img, dtype=np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and 255 < hi <= 65535):
        a = a / 257.0  # 65535 -> 255
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255.0
    elif not (img.mode == "I" and lo >= 0 and hi <= 255):  # any other range: stretched to 0..255
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def load(path):
    \"\"\"One image file -> float32 [3, SIZE, SIZE] in [0, 1], decoded as the studio decodes it.\"\"\"
    with open(path, "rb") as f:
        jpeg = f.read(3) == b"\\xff\\xd8\\xff"
    # a JPEG is opened without Pillow's size check (a 200 MP phone photo): it is decoded scaled down just below
    img = JpegImagePlugin.JpegImageFile(path) if jpeg else Image.open(path)
    w, h = img.size
    if img.format in ("JPEG", "MPO"):  # libjpeg's fast downscaling, to at least twice SIZE
        img.draft(None, (max(1, w * 2 * SIZE // {side}(w, h)), max(1, h * 2 * SIZE // {side}(w, h))))
    try:
        img = ImageOps.exif_transpose(img)  # phone photos store their rotation in EXIF
    except Exception:  # a broken EXIF block: the picture as stored
        pass
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        img = eight_bit(img)
    if img.mode != "RGB":  # grey, palette, CMYK; transparent pixels go on white
        rgba = img.convert("RGBA")
        img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img.alpha_composite(rgba)
        img = img.convert("RGB")
{square}    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0  # no mean/std: the model does it


MODEL, IMAGES = sys.argv[1], sys.argv[2:]  # python predict.py <the exported model file> <image> ...
x = np.stack([load(p) for p in IMAGES])
"""

_PRINT = """probs = np.exp(logits - logits.max(1, keepdims=True))
probs /= probs.sum(1, keepdims=True)
for path, p in zip(IMAGES, probs):
    print(path, CLASSES[p.argmax()], f"{p.max():.4f}")
"""

_RUNTIMES = {  # runtime -> (title, standard-library imports, its own import, the lines that run the model)
    "onnx": ("ONNX Runtime (`pip install onnxruntime numpy pillow`)", "",
             "import onnxruntime as ort",
             "session = ort.InferenceSession(MODEL, providers=[\"CPUExecutionProvider\"])\n"
             "logits = session.run(None, {\"pixels\": x})[0]\n"),
    "torchscript": ("TorchScript (`pip install torch numpy pillow`; no project code needed)", "\nimport warnings",
                    "import torch",
                    "# recent PyTorch warns that TorchScript is deprecated; the file loads all the same (ONNX is the\n"
                    "# format to keep for the long run)\n"
                    f"warnings.filterwarnings(\"ignore\", message=r\"{TORCHSCRIPT_DEPRECATION}\", category=FutureWarning)\n"
                    "model = torch.jit.load(MODEL, map_location=\"cpu\").eval()\n"
                    "with torch.no_grad():\n"
                    "    logits = model(torch.from_numpy(x)).numpy()\n"),
}


_SQUARE = {  # data.fit -> (what the model was trained on, the script's lines that make the square)
    "crop": ("centre squares", """    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)  # centre square
    img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
"""),
    "pad": ("whole pictures, padded with grey to a square", """    w, h = img.size
    scale = SIZE / max(w, h)  # the whole picture, its longer side SIZE, centred on grey
    small = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR,
                       reducing_gap=3.0)
    img = Image.new("RGB", (SIZE, SIZE), """ + repr(PAD_RGB) + """)
    img.paste(small, ((SIZE - small.width) // 2, (SIZE - small.height) // 2))
"""),
    "stretch": ("whole pictures, stretched to a square", """    # the whole picture, stretched
    img = img.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0)
"""),
}


def use_it_code(classes: list[str], image_size: int, runtime: str, fit: str = "crop") -> str:
    """A self-contained Python script that loads the exported model (`runtime`: onnx or
    torchscript) named first on its command line (whatever the file was saved as), preprocesses the
    image files named after it exactly as the studio does (`fit`: the run's data.fit), and prints `path class
    probability` per image. Raises KeyError for an unknown `runtime` or `fit`."""
    _, stdlib, runtime_import, run = _RUNTIMES[runtime]
    squares, square = _SQUARE[fit]
    return _PREPROCESS.format(classes=list(classes), size=int(image_size), runtime_import=runtime_import,
                              stdlib_import=stdlib, squares=squares, side="max" if fit == "pad" else "min",
                              square=square) + run + _PRINT


def use_it_section(classes: list[str], image_size: int, fit: str = "crop") -> list[str]:
    """The model card's "Use it" lines: one script per exported format (`fit`: the run's data.fit)."""
    square = {"pad": "the whole picture resized to fit a square of",
              "stretch": "the whole picture stretched to"}.get(fit, "the centre square resized to")
    lines = ["", "## Use it",
             f"Save one of these as `predict.py` and run `python predict.py <the .onnx or .ts file> photo.jpg ...` "
             f"(the model file under whatever name you saved it). "
             f"Images are prepared as in the studio: EXIF rotation, RGB, {square} "
             f"{image_size} x {image_size}" + (" (grey bars fill the rest)" if fit == "pad" else "")
             + ", pixels in [0, 1]; mean/std normalisation is inside the model."]
    for runtime, (title, *_) in _RUNTIMES.items():
        code = use_it_code(classes, image_size, runtime, fit).rstrip()
        lines += ["", f"### {title}", "", "```python", code, "```"]
    return lines


def verify_safetensors(path: Path, model: Classifier, val_images: torch.Tensor, num_classes: int) -> ExportCheck:
    """Reload an exported safetensors file the way a user would and compare it with `model`.

    A structured (channel-pruned) file is rebuilt from the layer shapes in its metadata
    (engine.runs.load_structured); any other from its run config
    (engine.runs.model_from_state). An unreadable file fails the check, with the reason.
    """
    try:
        state, meta = load_checkpoint(path)
        if "structured_arch" in meta:
            reloaded = load_structured(path)[0]
        else:
            reloaded = model_from_state(RunConfig.from_dict(meta["config"]), num_classes, state)
        return _compare("safetensors", path, _logits(model.eval().cpu(), val_images), _logits(reloaded, val_images))
    except Exception as exc:  # unreadable file, config that does not rebuild the model
        return ExportCheck("safetensors", str(path), False, 0.0, float("nan"), f"reloading failed: {exc}")


def export_dir(run_dir: Path, variant: str = "fine_tuned", alpha: float | None = None,
               epoch: int | None = None) -> Path:
    """Where a run's exports of `variant` go inside its folder: exports/ for the fine-tuned model,
    exports/structured/ for the channel-pruned one, exports/best_epoch_3/ for the best epoch's (its `epoch`:
    a stopped run continued later has another best epoch, whose files do not mix with the earlier one's;
    exports/best_epoch/ when unknown), exports/wise_alpha_0.60/ for a WiSE-FT mix (alpha
    to two decimals: the dashboard's slider steps). The dashboard's Export tab and `python -m engine
    export` write and read the same folders."""
    sub = {"wise": f"wise_alpha_{alpha:.2f}" if alpha is not None else "", "structured": "structured",
           "best": "best_epoch" + (f"_{int(epoch)}" if epoch else "")}.get(variant, "")
    return Path(run_dir) / "exports" / sub


# the best epoch's Metrics heading: measured at export, or (the dataset gone) as the training recorded them
BEST_METRICS = {False: " (the best epoch's, measured at export)",
                True: " (the best epoch's validation accuracy as recorded in training: the dataset could not be read)"}
# what a best epoch's card keeps of the run's summary: facts of the run, not figures of its final model
BEST_EPOCH_FACTS = ("classes", "data_report", "num_params", "lr_find", "pruning_search", "device", "precision",
                    "channels_last", "run_id", "load_report", "status", "head_lr_capped", "train_greyscale")


def best_epoch_summary(summary: dict, classes: list[str], measured: dict | None,
                       epochs: tuple[int, int] | None) -> dict:
    """`summary` as the best epoch's model's, for its model card: the run's facts (BEST_EPOCH_FACTS) without its
    figures (they are the final model's, or a stopped run has none), `classes`, the model's own held-out figures
    measured at export (`measured`: engine.evaluate.held_out_accuracy's dict; None when the dataset is gone, so
    none are given), and "best_epoch": (that epoch, the epochs run), None when unknown."""
    kept = {k: v for k, v in summary.items() if k in BEST_EPOCH_FACTS}
    return dict(kept, **(measured or {}), classes=list(classes), export_variant="best",
                best_epoch=list(epochs) if epochs else None)


def best_card_summary(run, summary: dict[str, Any], held_out) -> dict[str, Any]:
    """`summary` for the model card of the best epoch of `run` (an engine.runs.FinishedRun; `best_epoch_summary`):
    that model's accuracy on the run's held-out splits measured now (`held_out`, the run's DataSplits; None when
    its dataset is gone: then the validation accuracy training recorded for that epoch), the epoch from the run's
    history or, for a run stopped from the command line, from the checkpoint's metadata. Raises StudioError for a
    run without a best-epoch checkpoint."""
    from engine.predict import best_epoch, epoch_entry

    model = run.model_variant("best")
    epochs = best_epoch(summary.get("history") or [])
    if epochs is None:  # a run stopped from the command line: its summary has the epochs it finished only
        meta = read_metadata(run.run_dir / "best.safetensors")
        epochs = (int(meta["epoch"]), int(summary.get("epochs") or meta["epoch"])) if meta.get("epoch") else None
    with run.lock:
        measured = held_out_accuracy(model, run.cfg, held_out) if held_out is not None else None
    recorded = epoch_entry(summary.get("history") or [], epochs[0] if epochs else None)
    if measured is None and recorded.get("val_acc") is not None:  # the dataset is gone: what training recorded
        measured = {"val_acc": recorded["val_acc"], "recorded_in_training": True}
    # what the training wrote in its summary, which a stop from the command line leaves out
    known = {"num_params": sum(p.numel() for p in model.parameters()),
             **({"data_report": held_out.report.to_dict()} if held_out is not None else {})}
    return best_epoch_summary({**known, **summary}, run.classes, measured, epochs)


def generated_check_images(image_size: int, n: int = GENERATED_CHECKS, seed: int = 0) -> torch.Tensor:
    """Images to check exported files on when the run's validation images cannot be read (its dataset was
    deleted or moved): uint8 [n, 3, image_size, image_size], smooth random colour fields (8 x 8 noise
    resized bilinearly, as blobs and gradients of real photos vary) with fine noise on top, the same for a
    given seed. A file that gives the model's logits on them computes the model's function; they say
    nothing of its accuracy."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    fields = torch.nn.functional.interpolate(coarse, size=(image_size, image_size), mode="bilinear",
                                             align_corners=False)
    noisy = fields + 0.1 * (torch.rand(n, 3, image_size, image_size, generator=g) - 0.5)
    return (noisy.clamp(0, 1) * 255).round().to(torch.uint8)


def check_images(run) -> tuple[torch.Tensor, DataSplits | None, str, str | None]:
    """What to check a run's exported files on (`run`, an engine.runs.FinishedRun): (uint8 [N, 3, S, S] images, the
    run's splits or None, the card's words for the images, why the run's dataset could not be read or None). Its
    validation images; when its dataset cannot be read (deleted, moved), `generated_check_images`: the files are
    still checked, their accuracy is not. Raises nothing for a missing dataset."""
    from engine.errors import StudioError

    try:
        return run.data.val.images, run.data, VALIDATION_IMAGES, None
    except StudioError as exc:
        images = generated_check_images(int(run.cfg.data.image_size))
        return images, None, f"the {len(images)} generated images", str(exc)


def checked_on_words(checked_on: str, n: int | None) -> str:
    """`checked_on` (export_all's words for the images the files were checked on) with the count of validation
    images where it is `VALIDATION_IMAGES` and `n` is known: "the 40 validation images", "the 32 generated images";
    "the one validation image" for one (an inspector read "the 1 validation images")."""
    if checked_on != VALIDATION_IMAGES or not n:
        return checked_on
    return "the one validation image" if n == 1 else f"the {n} validation images"


def export_all(model: Classifier, cfg: RunConfig, summary: dict, val_images: torch.Tensor, out_dir: Path,
               formats: tuple[str, ...] = ("torchscript", "onnx"), structured: bool = False,
               held_out: DataSplits | None = None, checked_on: str = VALIDATION_IMAGES) -> list[ExportCheck]:
    """Write model.safetensors, model.ts, model.onnx and MODEL_CARD.md into out_dir; verify each.

    `val_images`: uint8 [N, 3, H, W], the images the files are checked on: the validation split, or
    `generated_check_images` with `checked_on` saying so in the card (the run's dataset gone). With
    `structured=True` the model is a channel-pruned one (engine.structured): its safetensors file
    also records every resized layer's shape, so it can be rebuilt. For a WiSE-FT mix (the summary's
    `wise_alpha` set), `held_out` (the run's splits) gives the card the mix's own validation and test
    accuracy, measured here (`held_out_accuracy`). Returns the checks, the safetensors file's first, each
    with `checked_on` and the number of `images` in its `extra`; they are also written to exports.json and the
    card.
    """

    out_dir.mkdir(parents=True, exist_ok=True)
    classes = summary.get("classes", [])
    weights = out_dir / "model.safetensors"
    if structured:
        save_structured(weights, model, cfg, {"classes": classes, "num_classes": model.num_classes})
    else:
        save_checkpoint(weights, model.state_dict(), cfg, {"classes": classes})
    checks = [verify_safetensors(weights, model, val_images, model.num_classes)]
    runnable = FlipAverage(model).eval() if cfg.eval.tta_flip else model  # what the studio's predictions ran
    if "torchscript" in formats:
        checks.append(export_torchscript(runnable, cfg.data.image_size, out_dir / "model.ts", val_images))
    if "onnx" in formats:
        checks.append(export_onnx(runnable, cfg.data.image_size, out_dir / "model.onnx", val_images))
    for c in checks:  # what the agreement is a share of, for whoever reads exports.json later
        c.extra.update(checked_on=checked_on, images=int(val_images.shape[0]))
    card_summary = smaller_model_summary(summary) if structured else summary
    if summary.get("wise_alpha") is not None and held_out is not None:
        card_summary = dict(card_summary, wise_measured=held_out_accuracy(model, cfg, held_out))
    (out_dir / "MODEL_CARD.md").write_text(model_card(cfg, card_summary, checks, checked_on))
    (out_dir / "exports.json").write_text(json.dumps([c.__dict__ for c in checks], indent=1))
    return checks
