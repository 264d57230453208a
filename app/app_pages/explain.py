"""Page 5, Explain and export: why a finished run's model says what it says, where it goes wrong,
and the model packed for use elsewhere.

- Attributions (captum, through engine.explain) for one validation image at a time, side by side
  for the starting model, the fine-tuned model, the smaller (channel-pruned) model of a run with
  structured pruning, the WiSE-FT mix at the Results page's alpha, and the fine-tuned model on the
  image's adversarial example.
- Error analysis: the highest-loss validation images, and a confusion matrix whose cells open
  the images in them, of the model in use or of the smaller model.
- Export: safetensors + config, TorchScript and ONNX, each reloaded and checked against the
  model on the validation split, and a model card. Files go to `<run folder>/exports/` only. A run
  with structured pruning exports its channel-pruned model by default (into `exports/structured`).

Everything costly is cached per (run, image, row, method, target; the WiSE-FT row's alpha too): moving to a new
image computes only that image (one PGD attack, one attribution per row), turning on a row computes that row
alone, another alpha only the mix's row, and coming back to an image, method or alpha seen before is instant.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app import charts, components, layout, state, vega
from app.claims_view import at_chance, guess_warning
from engine.claims import smaller_shortfall
from engine.errors import StudioError
from engine.explain import ATTRIBUTIONS, BAR_WEIGHT_NOTE, bar_weight, confusion_cell, gradcam_note
from engine.export import GENERATED_CHECKS, VALIDATION_IMAGES, checked_on_words
from engine.words import difference_words

RUN_KEY = "explain_run"
TAB_KEY = "explain_tab"
METHODS_KEY = "explain_methods"
TARGET_KEY = "explain_target"
STRENGTH_KEY = "explain_strength"
START_KEY = "explain_show_start"  # the starting model's row
ATTACK_KEY = "explain_show_attack"  # the adversarial image's row, in runs not trained against attacks
EXTRA_ROWS = ("pretrained", "adversarial")  # rows shown on request (`extra_rows`)
# Widgets whose values must survive a tab switch (a closed tab draws nothing, and Streamlit forgets
# the values of widgets a run does not draw) and a visit to another page.
KEPT_WIDGETS = ("explain_image_", "explain_class_", "explain_wrong_", "explain_k_", "explain_cell_",
                "explain_errors_of_", "export_which_", METHODS_KEY, TARGET_KEY, STRENGTH_KEY, START_KEY, ATTACK_KEY)
# the starting model and the adversarial image are a click away: a clinician read the attacked image's red cross as
# the model being wrong, and expected one row, the model's own answer and why
WIDGET_DEFAULTS = {TARGET_KEY: "predicted", STRENGTH_KEY: 0.7, START_KEY: False, ATTACK_KEY: False}
KEPT = "explain_kept:"  # prefix of the copies
TABS = ("Attributions", "Error analysis", "Export")
# the two cheapest maps, a new image in about two seconds on a CPU: Grad-CAM's regions, and Saliency's pixels beside
# them (at 64 px Grad-CAM's 4 x 4 grid is often flat, and two new users saw nothing but the picture by default)
DEFAULT_METHODS = ["grad_cam", "saliency"]
VISIBLE_CHANGE = 8 / 255  # a pixel change a viewer can start to see (the usual largest L-inf budget on CIFAR)
DISPLAY_PX = 224  # images are upscaled (nearest neighbour) to at least this, so small pixels stay crisp
THUMB_PX = 96
GALLERY_CELL_PX = 118  # six to a line at 1280 px, four at 1000 px
CELL_IMAGES_SHOWN = 24

METHOD_NAMES = {"integrated_gradients": "Integrated Gradients", "saliency": "Saliency", "grad_cam": "Grad-CAM",
                "occlusion": "Occlusion"}
LOOK_FOR = {  # what to look for, beside the engine's one-line definition
    "integrated_gradients": "Look for bright pixels on the object itself. Speckles on the background, the border or a "
                            "watermark mean the model uses something other than what you meant it to learn. Faithful "
                            "(the map adds up to the score's change from a black image) but grainy.",
    "saliency": "Read it as *sensitivity*: where a tiny change would move the score most, not what the model used. "
                "Expect noise; compare it with Integrated Gradients to see how much of the noise is real.",
    "grad_cam": "Look at where the blob sits: on the object is good, on the background or a corner suggests a "
                "shortcut. Coarse by design: it reads the model's deepest layer that still splits the image into at least "
                "4 x 4 regions (the note under the maps says which), so it shows regions, not edges. A map that stays dark is flat: the model's score "
                "does not depend on where things are at that scale.",
    "occlusion": "Bright patches are those whose greying-out lowers the score most. Easy to trust (it only asks the "
                 "model), blind to details smaller than the patch, and the slowest method: seconds per model on a CPU.",
}
READING_ROWS = (
    "**Reading the rows.** Fine-tuning usually moves the maps from generic textures toward what tells *your* classes "
    "apart. The WiSE-FT mix (runs with WiSE-FT) sits between the starting and the fine-tuned model. The smaller model "
    "(runs with structured pruning) is the fine-tuned one with whole channels removed: a map that moves shows what it "
    "lost. On the adversarial image, pixel changes too small to see (at most eps) flip the answer, and the map often "
    "scatters: the model's evidence was not where you think.")
TARGETS = {"predicted": "each model's own answer", "true": "the true class"}
ROW_TITLES = {"pretrained": "Starting model", "fine_tuned": "Fine-tuned model",
              "smaller": "Smaller (channel-pruned) model", "wise": "WiSE-FT mix",
              "adversarial": "Fine-tuned model on the adversarial image"}
SMALLER = "smaller"  # the error analysis of the channel-pruned model (predictions' `of`)
EXPORT_FILES = {  # file -> (format in the checks, download label, mime, what it is)
    "model.safetensors": ("safetensors", "safetensors", "application/octet-stream",
                          "The weights as a safetensors state dict, the run's config in its metadata (and, for a "
                          "channel-pruned model, every resized layer's shape). Load with this project's "
                          "`engine.runs.model_from_state` (`engine.runs.load_structured` when pruned)."),
    "model.ts": ("torchscript", "TorchScript", "application/octet-stream",
                 "A self-contained TorchScript program: `torch.jit.load('model.ts')`, no project code needed."),
    "model.onnx": ("onnx", "ONNX", "application/octet-stream",
                   "For ONNX Runtime, OpenVINO, TensorRT and browsers; input `pixels` [batch, 3, H, W] in [0, 1], "
                   "output `logits`."),
    "MODEL_CARD.md": ("", "Model card", "text/markdown",
                      "What the model is, the data, the methods and their settings, the metrics and the exact config."),
}


# ---- the run's models, shared by all sessions ---------------------------------------------------

@dataclass
class Guarded:
    """A model shared by every session, with the lock that keeps two attributions from interleaving
    (Grad-CAM hooks a layer; the attack and the exports run the model too)."""

    model: Any
    lock: threading.Lock


# "loss" in plain words, its figures computed (cross-entropy: -ln of the probability given to the true class)
LOSS_HINT = ("Loss says how little the model believed the true class: near 0 when it gave it almost 100%, "
             + ", ".join(f"{-math.log(p):.2g} at {p:.0%}" for p in (0.5, 0.1)) + ".")


def loss_words(loss: float) -> str:
    """An image's loss (cross-entropy, nats) for its caption, in three digits ("loss 4.00" beside "loss 4.51"), and
    "loss under 0.001" for a sure right answer (a teacher read "loss 8.39e-05" as code)."""
    loss = max(float(loss), 0.0) + 0.0
    return "loss under 0.001" if loss < 0.001 else f"loss {f'{loss:#.3g}'.rstrip('.')}"


def _bundle(run_dir: str, datasets_dir: str):
    """The finished run: fine-tuned model, config, classes, decoded data, variants (an LRU in the engine)."""
    from engine.runs import load_run

    return load_run(Path(run_dir), Path(datasets_dir))


def _amp_dtype(b):
    """The autocast dtype the run evaluated in (None: float32), as Try it and `predict` use it
    (engine.devices.run_amp_dtype): Explain's answers are the ones Results reports."""
    from engine.devices import run_amp_dtype

    return run_amp_dtype(b.summary, b.cfg.train.amp, next(b.model.parameters()).device, int(b.cfg.data.image_size))


def _precision(b):
    """The autocast context the run evaluated in (_amp_dtype), so that Explain's answers are the Results page's."""
    from engine.devices import autocast_ctx

    return autocast_ctx(next(b.model.parameters()).device, _amp_dtype(b))


def _fine_tuned(run_dir: str, datasets_dir: str) -> Guarded:
    b = _bundle(run_dir, datasets_dir)
    return Guarded(b.model, b.lock)


@st.cache_resource(max_entries=4, show_spinner=False)
def _pretrained(run_dir: str, datasets_dir: str) -> Guarded:
    """theta_0 for WiSE-FT runs, else the pretrained backbone with this run's (untrained) head."""
    return Guarded(_bundle(run_dir, datasets_dir).model_variant("start"), threading.Lock())


@st.cache_resource(max_entries=4, show_spinner=False)
def _wise(run_dir: str, datasets_dir: str, alpha: float) -> Guarded:
    """theta_alpha = (1 - alpha) theta_0 + alpha theta_1 from the run folder, as WiSE-FT builds it
    (pruning masks re-applied; batch-norm statistics re-estimated when the run asked for it)."""
    return Guarded(_bundle(run_dir, datasets_dir).model_variant("wise", alpha), threading.Lock())


@st.cache_resource(max_entries=4, show_spinner=False)
def _structured(run_dir: str) -> Guarded:
    """The run's channel-pruned model (structured pruning), rebuilt from structured.safetensors (eval mode, CPU).
    Raises StudioError for a file that does not load (engine.runs.load_structured)."""
    from engine.runs import load_structured

    return Guarded(load_structured(Path(run_dir) / "structured.safetensors")[0], threading.Lock())


def row_titles(config: dict, stopped: bool = False) -> dict[str, str]:
    """The attribution grid's row titles for a run (`config` as saved): an adversarially trained run's
    fine-tuned model is "Adversarially fine-tuned", as Try it names it (engine.predict.variant_label); a
    `stopped` run's is its best epoch so far."""
    adversarial = bool((config.get("adversarial") or {}).get("enabled"))
    titles = {**ROW_TITLES, **({"fine_tuned": "Adversarially fine-tuned model"} if adversarial else {})}
    if stopped:
        titles["fine_tuned"] += " (its best epoch so far)"
        titles["adversarial"] = titles["adversarial"].replace("Fine-tuned model", "The same model")
    return titles


def uses_wise(rec) -> bool:
    """Whether the run answers with a WiSE-FT mix: the one rule of the dashboard and the CLI
    (engine.runs.default_variant), so Explain, Try it, Export and `predict` agree."""
    from engine.runs import default_variant

    return default_variant(Path(rec.run_dir)) == "wise"


def in_use_words(alpha: float | None) -> str:
    """The model whose answers the error analysis and the mistakes filter show (`predictions`): "the fine-tuned
    model", or for a WiSE-FT run whose alpha (`wise_alpha`) is below 1 "the WiSE-FT mix at alpha 0.90"."""
    return "the fine-tuned model" if alpha is None or alpha >= 1 else f"the WiSE-FT mix at alpha {alpha:.2f}"


def wise_alpha(engine, rec) -> float | None:
    """The WiSE-FT alpha chosen for this run on the Results page (stored with the run; the run's own
    pick when not chosen yet, engine.predict.chosen_alpha), or None without WiSE-FT."""
    if not uses_wise(rec):
        return None
    return state.wise_alpha(engine, rec)[0]


# ---- cached computations: plain data in and out -----------------------------------------------------

@st.cache_resource(show_spinner=False)
def _seen() -> dict[str, Any]:
    """Run folder -> its summary's stamp (engine.runs.summary_stamp) when this page last drew it, for every session
    of the server (the page's own globals are new on every rerun)."""
    return {}


def forget_if_continued(run_dir: str) -> None:
    """Drop what this page computed and cached (answers, maps, models) when the run's summary changed since it was
    last drawn here: a stopped run continued since, so those were an earlier epoch's model's. Every run's entries go
    (the caches are keyed by arguments, not by run): a rare event, and they are computed again on demand."""
    from engine.runs import summary_stamp

    stamp, seen = summary_stamp(Path(run_dir)), _seen()
    if seen.setdefault(run_dir, stamp) != stamp:
        for cached in (_pretrained, _wise, _structured, predictions, model_row, row_map, _best_card):
            cached.clear()
        seen[run_dir] = stamp


@st.cache_data(max_entries=8, show_spinner=False)
def _best_card(run_dir: str, datasets_dir: str, measure: bool = True) -> dict:
    """The model card's summary of a run's best epoch, its accuracy measured now (engine.export.best_card_summary;
    the caches are dropped when the run is continued: forget_if_continued); without `measure` (the run's dataset
    gone) the validation accuracy training recorded for that epoch."""
    from engine.export import best_card_summary

    b = _bundle(run_dir, datasets_dir)
    return best_card_summary(b, b.summary, b.data if measure else None)


def _hwc(t) -> np.ndarray:
    """[3, H, W] (uint8 or float in [0, 1]) -> H x W x 3 float32 in [0, 1]."""
    a = t.detach().float().cpu().numpy()
    if t.dtype.is_floating_point:
        return np.clip(a, 0, 1).transpose(1, 2, 0)
    return (a / 255.0).transpose(1, 2, 0)


@st.cache_data(max_entries=8, show_spinner=False)
def predictions(run_dir: str, datasets_dir: str, alpha: float | None = None, of: str = "in_use") -> dict[str, np.ndarray]:
    """The model in use (`in_use_words`: the fine-tuned model, or a WiSE-FT run's mix at `alpha` < 1), or with
    `of` = SMALLER the run's channel-pruned model, on the whole validation split: label, prediction,
    confidence, loss and file name (as in the user's dataset) per image (index order), and the indices
    sorted from the highest loss down. The smaller model answers as the run measured it (its precision, no
    flip TTA: engine.methods.pruning.held_out_views), so its figures are the Results page's. Raises
    StudioError when the run has no smaller model or its file does not load."""
    from engine.explain import highest_loss

    b = _bundle(run_dir, datasets_dir)
    n = len(b.data.val)
    smaller = of == SMALLER
    used = (_structured(run_dir) if smaller else _wise(run_dir, datasets_dir, alpha) if alpha is not None and alpha < 1
            else _fine_tuned(run_dir, datasets_dir))
    with used.lock:
        cases = highest_loss(used.model, b.data.val.images, b.data.val.labels, k=n,
                             tta_flip=b.cfg.eval.tta_flip and not smaller, amp_dtype=_amp_dtype(b))
    out = {"labels": b.data.val.labels.numpy().astype(int), "preds": np.zeros(n, int), "confs": np.zeros(n),
           "losses": np.zeros(n), "order": np.array([c.index for c in cases], dtype=int)}
    split_files = b.data.report.split_files or {}
    # the user's file names, split order, without the zip's wrapper folder (as Try it names them)
    wrapper = state.wrapper_folders([f for names in split_files.values() for f in names])
    files = [state.without_wrapper(f, wrapper) for f in split_files.get("val") or []]
    out["files"] = np.array(files if len(files) == n else [f"#{i}" for i in range(n)], dtype=object)
    for c in cases:
        out["preds"][c.index], out["confs"][c.index], out["losses"][c.index] = c.pred, c.confidence, c.loss
    return out


def row_keys(has_smaller: bool, alpha: float | None, extras: tuple[str, ...] = EXTRA_ROWS) -> list[str]:
    """The attribution grid's rows in order: the starting model (where `extras` holds "pretrained"), the fine-tuned
    model, the smaller channel-pruned one (`has_smaller`), the WiSE-FT mix (`alpha` not None) and the adversarial
    image (where `extras` holds "adversarial")."""
    return [k for k, on in (("pretrained", "pretrained" in extras), ("fine_tuned", True), ("smaller", has_smaller),
                            ("wise", alpha is not None), ("adversarial", "adversarial" in extras)) if on]


def model_rows(run_dir: str, datasets_dir: str, index: int, alpha: float | None,
               extras: tuple[str, ...] = EXTRA_ROWS) -> list[dict]:
    """One row per model of `row_keys` for validation image `index` (`model_row`, each cached on its own: turning
    a row on computes that row alone, and another alpha only the mix's)."""
    b = _bundle(run_dir, datasets_dir)
    return [model_row(run_dir, datasets_dir, index, k, alpha if k == "wise" else None)
            for k in row_keys(b.has("structured"), alpha, extras)]


@st.cache_data(max_entries=256, show_spinner=False)
def model_row(run_dir: str, datasets_dir: str, index: int, key: str, alpha: float | None = None) -> dict:
    """Row `key` of `row_keys` for validation image `index` (WiSE-FT at `alpha`): the model's answer ("pred" class
    index, "conf" probability 0-1), and the input it sees when that is not the validation image itself (the
    adversarial example as H x W x 3 float32 in [0, 1], so that its attribution sees exactly the attacked pixels);
    a starting model or smaller model that cannot be loaded (the user checkpoint it started from was deleted, a
    damaged structured.safetensors) gives {"key", "error"}, and the other rows still show.

    The adversarial example is PGD at the run's evaluation eps and steps against the fine-tuned
    model (seeded per image, so the same image always gets the same attack)."""
    import torch

    from engine.attacks import pgd
    from engine.augment import to_float
    from engine.evaluate import tta_logits

    b = _bundle(run_dir, datasets_dir)
    x = to_float(b.data.val.images[index:index + 1])

    def answer(model, images):  # as the run measured its accuracy: its precision, the mirror image with flip TTA
        with _precision(b):
            return tta_logits(model, images, b.cfg.eval.tta_flip).float().softmax(1)

    def row(p, image=None, **extra) -> dict:
        return {"key": key, "image": None if image is None else _hwc(image), "pred": int(p.argmax()),
                "conf": float(p.max()), **extra}

    if key == "adversarial":
        y = b.data.val.labels[index:index + 1]
        eps, steps = float(b.cfg.eval.robust_eps), max(int(b.cfg.eval.robust_steps), 1)
        ft = _fine_tuned(run_dir, datasets_dir)
        with ft.lock:
            ft.model.eval()
            x_adv = pgd(ft.model, x, y, eps, 2.5 * eps / steps, steps, True,
                        torch.Generator().manual_seed(int(b.cfg.seed) * 100_003 + index))
            with torch.no_grad(), _precision(b):
                p_adv = ft.model(x_adv).float().softmax(1)  # the attack and robust accuracy target the plain model
        return row(p_adv[0], x_adv[0], eps=eps, steps=steps, linf=float((x_adv - x).abs().max()))
    if key == "smaller":
        try:  # answers as Results measured it (held_out_views): the run's precision, no flip TTA
            small = _row_model(run_dir, datasets_dir, key)
            with small.lock, torch.no_grad(), _precision(b):
                return row(small.model(x).float().softmax(1)[0])
        except Exception as exc:
            return {"key": key, "error": str(exc)}
    try:  # the starting model may fail to load or to answer (the user checkpoint it started from was deleted)
        guarded = _row_model(run_dir, datasets_dir, key, alpha)
        with guarded.lock, torch.no_grad():
            guarded.model.eval()
            return row(answer(guarded.model, x)[0], **({"alpha": alpha} if key == "wise" else {}))
    except Exception as exc:
        if key != "pretrained":
            raise
        return {"key": key, "error": str(exc)}


def _row_model(run_dir: str, datasets_dir: str, key: str, alpha: float | None = None) -> Guarded:
    """The model behind row `key` (the adversarial row's: the fine-tuned model, which it attacks)."""
    if key == "pretrained":
        return _pretrained(run_dir, datasets_dir)
    if key == "smaller":
        return _structured(run_dir)
    if key == "wise":
        return _wise(run_dir, datasets_dir, alpha)
    return _fine_tuned(run_dir, datasets_dir)


def attribution_maps(run_dir: str, datasets_dir: str, index: int, alpha: float | None, method: str,
                     target: str, extras: tuple[str, ...] = EXTRA_ROWS) -> dict[str, np.ndarray]:
    """{row key: H x W map, uint8 0-255} for one image and one method, for the rows `model_rows` gives with
    `extras` that answered (`row_map`, each cached on its own)."""
    return {r["key"]: row_map(run_dir, datasets_dir, index, r["key"], method, target,
                              alpha if r["key"] == "wise" else None)
            for r in model_rows(run_dir, datasets_dir, index, alpha, extras) if "error" not in r}


@st.cache_data(max_entries=512, show_spinner=False)
def row_map(run_dir: str, datasets_dir: str, index: int, key: str, method: str, target: str,
            alpha: float | None = None) -> np.ndarray:
    """Attribution `method` (engine.explain.attribute) of row `key`'s model for validation image `index` (the
    adversarial row: the fine-tuned model on the attacked image), explaining the true class (`target` "true") or
    the row's own answer: an H x W uint8 map 0-255 (plenty for a picture, a quarter of the cache). Raises
    StudioError where the method cannot explain this model (engine.explain.attribute)."""
    import torch

    from engine.augment import to_float
    from engine.explain import attribute

    b = _bundle(run_dir, datasets_dir)
    r = model_row(run_dir, datasets_dir, index, key, alpha)
    image = (torch.from_numpy(r["image"].transpose(2, 0, 1).copy())[None] if r["image"] is not None
             else to_float(b.data.val.images[index:index + 1]))
    label = int(b.data.val.labels[index]) if target == "true" else r["pred"]
    guarded = _row_model(run_dir, datasets_dir, key, alpha)
    with guarded.lock:
        return to_u8(attribute(guarded.model, image, torch.tensor([label]), method)[0].numpy())


# ---- pictures: numpy only ---------------------------------------------------------------------------

# Anchors of matplotlib's "inferno" (perceptually uniform, readable in grey): black -> purple -> orange -> yellow.
_INFERNO = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                     [250, 193, 39], [252, 255, 164]], dtype=np.float32) / 255.0


def colormap(m: np.ndarray) -> np.ndarray:
    """H x W values in [0, 1] -> H x W x 3 colours (inferno)."""
    pos = np.clip(m, 0, 1) * (len(_INFERNO) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_INFERNO) - 2)
    frac = (pos - lo)[..., None]
    return _INFERNO[lo] * (1 - frac) + _INFERNO[lo + 1] * frac


def overlay(image: np.ndarray, m: np.ndarray, strength: float = 0.7) -> np.ndarray:
    """The heat map over the image, weighted by the map itself: unimportant pixels stay the photo."""
    w = (strength * np.clip(m, 0, 1))[..., None]
    return image * (1 - w) + colormap(m) * w


FLAT_NOTE = "flat: no region stands out, so the picture shows through unchanged"
# Grad-CAM keeps only evidence for the class (a ReLU of the weighted feature maps): on the small grid of a 64 px run
# (4 x 4 regions) it is often zero everywhere, and a new user saw no explanation at all on the page's default method
FLAT_GRAD_CAM = (":material/info: A flat Grad-CAM map: no region raises that class's score at the layer Grad-CAM "
                 "reads (it keeps only evidence for the class). Saliency and Integrated Gradients show the evidence "
                 "pixel by pixel.")


def any_flat(heats) -> bool:
    """Whether any of the maps `heats` (arrays, any dtype; None for one not computed) is flat: zero everywhere."""
    return any(h is not None and not np.any(h) for h in heats)


# shown once under maps of a padded picture whose weight is much on the bars (engine.explain.BAR_WEIGHT_NOTE)
BARS_NOTE = (":material/info: This run keeps whole pictures, padded with grey bars to a square. The bars carry no "
             "picture: a map's weight on them is either Grad-CAM's coarse grid spilling over the picture's edge "
             "(Saliency and Integrated Gradients work pixel by pixel), or the model reading where the picture ends, "
             "its shape, rather than what is in it.")


def map_caption(label: str, heat: np.ndarray, box: tuple[int, int, int, int] | None = None) -> str:
    """A map's caption, saying so when the map is flat (engine.explain leaves a constant map at 0,
    which the overlay draws as the plain picture): otherwise it reads as a map that failed to draw. `box`: a padded
    picture's place inside its grey bars (engine.data.picture_box), or None; a map with at least
    engine.explain.BAR_WEIGHT_NOTE of its weight on the bars, more than their share of the square (more weight per
    pixel there than on the picture), says how much (`BARS_NOTE` says why it matters)."""
    if not np.any(heat > 0):
        return f"{label} · {FLAT_NOTE}"
    shares = bars_heavy(heat, box)
    return f"{label} · {shares[0]:.0%} of its weight on the grey bars ({shares[1]:.0%} of the square)" if shares \
        else label


def bars_heavy(heat: np.ndarray, box: tuple[int, int, int, int] | None) -> tuple[float, float] | None:
    """(the share of an H x W map's weight on a padded picture's grey bars, the bars' share of the square) when the
    bars carry at least engine.explain.BAR_WEIGHT_NOTE of it and more weight per pixel than the picture (a map spread
    evenly puts the bars' area share there); None otherwise, also without a `box` (a cropped run's picture)."""
    if box is None:
        return None
    top, bottom, left, right = box
    area = 1 - (bottom - top) * (right - left) / heat.size
    bars = bar_weight(heat, box)
    return (bars, area) if bars >= BAR_WEIGHT_NOTE and bars > area else None


def padded_box(image_u8, fit: str) -> tuple[int, int, int, int] | None:
    """The picture's place inside its grey bars (engine.data.picture_box) for a uint8 image [3, S, S] (torch or
    numpy) of a run that keeps whole pictures (`fit` "pad"); None for a cropped run's image or one without bars."""
    if fit != "pad":
        return None
    import torch

    from engine.data import picture_box

    image = torch.as_tensor(np.asarray(image_u8))
    box = picture_box(image)
    return None if box == (0, image.shape[-2], 0, image.shape[-1]) else box


def gallery_sizes(n: int) -> list[int]:
    """How many highest-loss images the user can choose to see: 6, 12, 24 or 48, never more than the
    `n` validation images; a single size when n <= 6 (then there is nothing to choose)."""
    return sorted({min(s, n) for s in (6, 12, 24, 48)})


def gallery_size(run_id: str, n: int) -> int:
    """How many of the `n` validation images the highest-loss gallery shows: the user's choice on a slider
    (`gallery_sizes`, 12 at first), or all of them, said in words, when there is nothing to choose."""
    sizes = gallery_sizes(n)
    if st.session_state.get(f"explain_k_{run_id}") not in sizes:
        st.session_state[f"explain_k_{run_id}"] = min(12, n)
    if len(sizes) > 1:
        return st.select_slider(f"How many of the {n} validation images to show", sizes, key=f"explain_k_{run_id}",
                                format_func=lambda size: gallery_size_words(size, n),
                                help="The validation images the model got most wrong come first (highest loss).")
    # a split of 6 images or fewer: a slider with one stop would be a lone dot
    st.caption(f"All {state.plural(sizes[0], 'validation image')}, highest loss first.")
    return sizes[0]


def gallery_size_words(size: int, n: int) -> str:
    """A stop of the gallery's slider: "12", or "all 9" for every one of the `n` validation images (a new
    user read a slider from 6 to 9 as an odd range)."""
    return f"all {n}" if size == n else str(size)


def upscale(a: np.ndarray, px: int = DISPLAY_PX) -> np.ndarray:
    """Nearest-neighbour enlargement to at least `px` pixels, so the browser does not blur small images."""
    f = max(1, math.ceil(px / max(a.shape[0], 1)))
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1) if f > 1 else a


def to_u8(a: np.ndarray) -> np.ndarray:
    """Float image values in [0, 1] (any shape; clipped) as uint8 0-255."""
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def colour_bar() -> np.ndarray:
    """The attribution colour map as a uint8 [14, 256, 3] strip, low to high, for the legend."""
    return to_u8(colormap(np.tile(np.linspace(0, 1, 256, dtype=np.float32), (14, 1))))


def thumbnail(run_dir: str, datasets_dir: str, index: int) -> np.ndarray:
    """Validation image `index` of the run in `run_dir`, enlarged pixel by pixel to at least THUMB_PX pixels: uint8
    [H, W, 3]."""
    b = _bundle(run_dir, datasets_dir)
    return to_u8(upscale(_hwc(b.data.val.images[index]), THUMB_PX))


# ---- widgets --------------------------------------------------------------------------------------

def image_key(run_id: str) -> str:
    """The session-state key of the image picked on Explain for run `run_id`."""
    return f"explain_image_{run_id}"


def _explain_image(run_id: str, index: int) -> None:
    """Button callback: show this image's attributions (filters cleared so it is in the list)."""
    st.session_state[f"explain_class_{run_id}"] = "__all__"
    st.session_state[f"explain_wrong_{run_id}"] = False
    st.session_state[image_key(run_id)] = int(index)
    st.session_state[TAB_KEY] = TABS[0]


# why a mistake Results counts on the test images is not on this page
TEST_UNSEEN = ("Mistakes on the test images (Results, test confusion matrix) are not shown here: Explain uses the "
               "validation images, so the test images stay out of sight and their score an honest final check.")


def image_picker(rec, classes: list[str], pred: dict[str, np.ndarray], whose: str, test_split: bool = True) -> int | None:
    """The validation image to explain, filtered by class and by the mistakes of `whose` (the model `pred`
    holds the answers of, in words: `in_use_words`, or the smaller model chosen under "Mistakes of"); without
    a mistake to show, why the test images' are not here (`test_split`: the run has test images)."""
    labels, preds, confs = pred["labels"], pred["preds"], pred["confs"]
    # the filters (class, mistakes only) in one half, the image in the other; on a narrow page they wrap
    left, right = layout.cells(2)
    with left:
        c = [*layout.cells(2), right]
    for k in (f"explain_class_{rec.id}", f"explain_wrong_{rec.id}", image_key(rec.id)):
        state.seed_choice(k)  # a refresh keeps the user's filters and image
    if st.session_state.get(f"explain_class_{rec.id}", "__all__") not in ["__all__", *classes]:
        st.session_state.pop(f"explain_class_{rec.id}")
    cls = c[0].selectbox("Class", ["__all__", *classes], key=f"explain_class_{rec.id}",
                         format_func=lambda k: "all classes" if k == "__all__" else k)
    wrong = c[1].toggle("Only mistakes", key=f"explain_wrong_{rec.id}",
                        help=f"Only the validation images {whose} gets wrong.")
    state.remember_choice(f"explain_class_{rec.id}", cls, default="__all__")
    state.remember_choice(f"explain_wrong_{rec.id}", bool(wrong), default=False)
    options = [i for i in range(len(labels))
               if (cls == "__all__" or classes[labels[i]] == cls) and (not wrong or preds[i] != labels[i])]
    if not options:
        of = "" if cls == "__all__" else f" of '{state.md_text(cls)}'"
        if cls != "__all__" and not any(classes[label] == cls for label in labels):
            said = f"No validation image{of}."
        elif wrong:
            said = (f"{whose[:1].upper()}{whose[1:]} gets every validation image{of} right: no mistake to explain."
                    + (f" {TEST_UNSEEN}" if test_split else ""))
        else:
            said = "No validation image matches these filters."
        c[2].info(said, icon=":material/filter_alt_off:")
        return None
    key = image_key(rec.id)
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]

    def label(i: int) -> str:
        mark = "✓" if preds[i] == labels[i] else "✗"
        return f"{pred['files'][i]} · {classes[labels[i]]} → {mark} {classes[preds[i]]} ({confs[i]:.0%})"

    where = f"Validation image {options.index(st.session_state[key]) + 1} of {len(options)}"  # the one shown
    where += f" (the filters keep {len(options)} of {len(labels)})" if len(options) < len(labels) else ""
    index = c[2].selectbox(where, options, key=key, format_func=label,
                           help=f"File · true class → what {whose} says (its confidence).")
    state.remember_choice(key, int(index), default=int(options[0]))
    return index


def smaller_answers(engine, rec) -> "state.Outcome":
    """`predictions` of the run's smaller model, through state.attempt (a message shown when it cannot answer)."""
    return state.attempt("predicting the validation images with the smaller model", predictions, str(rec.run_dir),
                         str(engine.datasets_dir), None, SMALLER)


def picker_answers(engine, rec, b, pred: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """(answers, whose words) for the image picker: the model chosen under "Mistakes of" on Error analysis
    sets its mistakes filter and the answers in its list (a caption says so for the smaller model); the
    model in use (`pred`) otherwise, or when the smaller model cannot answer."""
    whose = in_use_words(wise_alpha(engine, rec))
    of_key = f"explain_errors_of_{rec.id}"
    state.seed_choice(of_key)  # a refresh: the choice kept with the draft
    if not (b.has("structured") and st.session_state.get(of_key) == SMALLER):
        return pred, whose
    got = smaller_answers(engine, rec)
    if not got.ok:
        return pred, whose
    st.caption(":material/info: The mistakes filter and the answers in the image list are the smaller model's, as "
               "chosen under *Mistakes of* on Error analysis.")
    return got.value, "the smaller (channel-pruned) model"


# ---- tab 1: attributions -----------------------------------------------------------------------------

def attributions_tab(engine, rec, b, pred: dict[str, np.ndarray]) -> None:
    """The attribution tab: pick a validation image, the methods (Grad-CAM, Saliency, Integrated Gradients,
    Occlusion; captum) and the class explained, then one map per method and model compared, each computed once
    and cached."""
    run_dir, ds = str(rec.run_dir), str(engine.datasets_dir)
    classes = list(b.classes)
    index = image_picker(rec, classes, *picker_answers(engine, rec, b, pred), test_split=len(b.data.test) > 0)
    methods = st.pills("Attribution methods", list(ATTRIBUTIONS), selection_mode="multi", key=METHODS_KEY,
                       format_func=METHOD_NAMES.get,
                       help="Pick one or more; each is a column below. On a CPU, a new image takes about a second "
                            "with Grad-CAM or Saliency, one or two with Integrated Gradients, ten or more with "
                            "Occlusion. Images seen before answer at once.")
    c = layout.cells(2)
    target = c[0].radio("Explain the score of", list(TARGETS), key=TARGET_KEY, format_func=TARGETS.get,
                        horizontal=True, help="Which class's score the maps explain.")
    strength = c[1].slider("Overlay strength", 0.0, 1.0, step=0.05, key=STRENGTH_KEY,
                           help="0 shows the photo only, 1 paints the strongest pixels fully in the heat colour.")
    methods = [m for m in ATTRIBUTIONS if m in (methods or [])]
    state.remember_choice(METHODS_KEY, methods, default=DEFAULT_METHODS)
    state.remember_choice(TARGET_KEY, target, default=WIDGET_DEFAULTS[TARGET_KEY])
    state.remember_choice(STRENGTH_KEY, float(strength), default=WIDGET_DEFAULTS[STRENGTH_KEY])
    shown_rows = extra_rows(rec)
    with st.expander("What the methods show and what to look for", icon=":material/school:"):
        for m in ATTRIBUTIONS:
            st.markdown(f"**{ATTRIBUTIONS[m]}**  \n{LOOK_FOR[m]}")
        st.markdown(READING_ROWS)
    if index is None:
        return
    if not methods:
        st.info("Pick at least one attribution method above.", icon=":material/touch_app:")
        return
    alpha = wise_alpha(engine, rec)
    started = time.perf_counter()
    maps, refused = {}, {}
    with st.spinner(f"Explaining {pred['files'][index]} with {', '.join(METHOD_NAMES[m] for m in methods)} ..."):
        extras = tuple(k for k in EXTRA_ROWS if k in shown_rows)  # the rows not shown are not computed
        rows = model_rows(run_dir, ds, index, alpha, extras)
        for m in methods:
            try:
                maps[m] = attribution_maps(run_dir, ds, index, alpha, m, target, extras)
            except StudioError as exc:  # e.g. an image too small for Grad-CAM: say so, draw the others
                refused[m] = str(exc)
    elapsed = time.perf_counter() - started
    for m, why in refused.items():
        st.info(f"{METHOD_NAMES[m]}: {why}", icon=":material/info:")
    methods = [m for m in methods if m in maps]
    if "grad_cam" in methods:
        with b.lock:  # the note runs the shared model once with hooks on its stages
            st.caption(gradcam_note(b.model, b.cfg.data.image_size))
        if any_flat(maps["grad_cam"].values()):
            st.caption(FLAT_GRAD_CAM)
    maps_view(rec, b, pred, index, rows, {m: maps[m] for m in methods}, strength)
    again = "this image, method and WiSE-FT alpha" if alpha is not None else "this image and method"
    st.caption(f"Computed in {elapsed:.1f} s (cached: {again} answer at once next time).")


def extra_rows(rec) -> set[str]:
    """Two switches above the maps, kept for a refresh: the starting model's row (what fine-tuning changed) and, in
    a run not trained against attacks, the adversarial image's (a robustness check); an adversarial run always
    shows its attacked image, the method's own row. The row keys of `model_rows` to show of EXTRA_ROWS."""
    trained = bool((rec.config.get("adversarial") or {}).get("enabled"))
    c = layout.cells(2)
    start = c[0].toggle("Compare with the starting model", key=START_KEY,
                        help="A row for the backbone before fine-tuning: what fine-tuning changed in where the model "
                             "looks.")
    attack = trained or c[1].toggle("Show a robustness check", key=ATTACK_KEY,
                                    help="A row for the fine-tuned model on an adversarial image: the picture with "
                                         "pixel changes too small to see, chosen to flip its answer (a PGD attack). "
                                         "A wrong answer there is the check's finding, not a mistake on the picture.")
    state.remember_choice(START_KEY, bool(start), default=False)
    if not trained:
        state.remember_choice(ATTACK_KEY, bool(attack), default=False)
    return {k for k, on in (("pretrained", start), ("adversarial", attack)) if on}


def maps_view(rec, b, pred: dict[str, np.ndarray], index: int, rows: list[dict], maps: dict[str, dict],
              strength: float) -> None:
    """The attribution tab's grid for validation image `index`: a row per model of `rows` (`model_rows`), its answer
    and the input it saw, then a column per method of `maps` (method -> model key -> uint8 H x W map), overlaid at
    `strength`; under a padded picture whose maps weigh its grey bars, `BARS_NOTE`."""
    classes = list(b.classes)
    truth = classes[int(pred["labels"][index])]
    clean = _hwc(b.data.val.images[index])
    box = padded_box(b.data.val.images[index], b.cfg.data.fit)
    heavy = False
    head = layout.cells(2)
    head[0].markdown(f"**{state.md_text(pred['files'][index])}**, true class **{state.md_text(truth)}**. Each row is one model, each column one method; "
                     "bright = strong influence on the score.")
    head[1].image(colour_bar(), caption="low → high influence", width="stretch")  # a fixed 256 px overflowed
    if shrunk := shrunk_note(rec):
        st.caption(shrunk)
    pretrained_src = rec.config.get("backbone", {}).get("pretrained")
    titles = row_titles(rec.config, rec.status == "stopped")
    for r in rows:
        if "error" in r:
            st.markdown(f"**{titles[r['key']]}**")
            st.warning(f"This model could not be loaded, so it is left out: {r['error']}", icon=":material/warning:")
            continue
        answer = classes[r["pred"]]
        note = row_note(r, pretrained_src, rec)
        title = titles[r["key"]] + (f" at alpha {r['alpha']:.2f}" if r["key"] == "wise" else "")
        if head_untrained(r, rec):  # right or wrong by chance, so no mark
            st.markdown(f"**{title}** guesses **{state.md_text(answer)}** ({r['conf']:.0%})")
        else:
            mark = ":green[✓]" if answer == truth else ":red[✗]"
            st.markdown(f"**{title}** says {mark} **{state.md_text(answer)}** ({r['conf']:.0%})")
        if note:
            st.caption(note)
        cols = st.columns(len(ATTRIBUTIONS) + 1)  # a fixed grid: images keep their size whatever is picked
        input_caption = ("adversarial input" if r["key"] == "adversarial" else "input")
        image = clean if r["image"] is None else r["image"]
        cols[0].image(to_u8(upscale(image)), caption=input_caption, width="stretch")
        for col, m in zip(cols[1:], maps):
            heat = maps[m][r["key"]].astype(np.float32) / 255.0
            heavy = heavy or bars_heavy(heat, box) is not None
            col.image(to_u8(upscale(overlay(image, heat, strength))), caption=map_caption(METHOD_NAMES[m], heat, box),
                      width="stretch")
    if heavy:
        st.caption(BARS_NOTE)


def shrunk_note(rec) -> str | None:
    """Under the maps of a run whose pictures were shrunk SHRINK_SAID times or more to its image size
    (engine.words.shrink_factor): that detail finer than that many of their pixels is not in what the model saw, so
    no map can point at it. A geology instructor's biotite, shrunk 8x to 64 px, was a plain brown square with its
    cleavage lines gone, and the maps had nothing to show."""
    from engine.words import SHRINK_SAID, run_picture_shape, shrink_factor, shrunk_along

    data = rec.config.get("data") or {}
    shape = run_picture_shape(components.read_summary(str(rec.run_dir)))
    size = int(data.get("image_size") or 0)
    shrink = shrink_factor(shape, size, data.get("fit") or "crop")
    if shrink < SHRINK_SAID:
        return None
    return (f":material/zoom_out: The model saw each picture at {size} x {size} px, about {shrink:.0f}x smaller "
            f"than yours{shrunk_along(data.get('fit'))} (typically {shape['long']} x {shape['short']}): detail "
            f"finer than about {shrink:.0f} of their pixels is not in what it saw, so no map can point at it. A run "
            "at a larger image size keeps finer detail.")


def cut_ends_hint(rec) -> str:
    """For the error gallery of a run that kept the middle square of pictures mostly wider or taller than square
    (engine.words.oblong): ", or what tells the class apart lying in the ends cut away (...)"; "" otherwise. A
    bioacoustics researcher's 6 mistakes were all spectrograms whose call lay outside the middle square, and the
    advice named labels, look-alikes and backgrounds only."""
    from engine.words import oblong, run_picture_shape

    shape = run_picture_shape(components.read_summary(str(rec.run_dir)))
    if ((rec.config.get("data") or {}).get("fit") or "crop") != "crop" or not oblong(shape):
        return ""
    return (", or what tells the class apart lying in the ends of the picture cut away (this run saw the middle "
            "square of each; the Data page's *Wide and tall pictures* keeps the whole picture)")


def head_kept(rec) -> bool:
    """Whether the run started from a checkpoint's own classification head (the same classes)."""
    return bool((components.read_summary(str(rec.run_dir)).get("load_report") or {}).get("head_kept"))


def head_untrained(r: dict, rec) -> bool:
    """Whether row `r` is the starting model with this run's new head, never trained: its answer is a guess
    (WiSE-FT's theta_0 has a probe fitted; a kept head is the checkpoint's own)."""
    return r["key"] == "pretrained" and not uses_wise(rec) and not head_kept(rec)


def row_note(r: dict, pretrained_src: str | None, rec) -> str:
    """The words under a model's row of maps: what that model is (the starting model, this run's model) and how to
    read its maps."""
    if r["key"] == "pretrained":
        if uses_wise(rec):
            return ("The starting model of WiSE-FT (theta_0, alpha 0): the pretrained backbone, unchanged, with only a "
                    "new final layer trained on your images (a linear probe).")
        src = state.WEIGHTS_TEXT.get(pretrained_src, pretrained_src)
        if head_kept(rec):
            return (f"The model this run started from ({src}), with the classification head it was trained with "
                    "(kept: the same classes): its answers are that model's own, before this run.")
        return (f"The backbone before fine-tuning ({src}) with this run's new head, which was never trained: "
                "its answer is a guess, so read its maps as what its features respond to"
                + (" (this run started from random weights, so there is little to see)." if pretrained_src == "none"
                   else "."))
    if r["key"] == "smaller":
        return smaller_note(components.read_summary(str(rec.run_dir)).get("structured") or {},
                            bool((rec.config.get("eval") or {}).get("tta_flip")))
    if r["key"] == "wise":
        chosen = state.wise_alpha(state.get_engine(), rec)[1]
        pruned = components.read_summary(str(rec.run_dir)).get("sparsity")  # every mix keeps the pruning masks
        same = not pruned and (r.get("alpha") or 0.0) <= 0.0  # (1 - 0) theta_0 + 0 theta_1: the row above
        return ("The starting and fine-tuned weights mixed at the alpha chosen on the Results page"
                f"{'' if chosen else ' (none chosen yet, so the run’s own pick)'}."
                + (" At alpha 0 the mix is the starting model itself (its row shows with *Compare with the starting "
                   "model* switched on): the same answers and maps (a teacher took the two rows for two models)."
                   if same else "")
                + (f" Pruning is on in this run, so every mix keeps the {100 * pruned:.0f}% of weights it removed at "
                   "zero: near alpha 0 it is the starting model without them, not the starting model itself."
                   if pruned else ""))
    if r["key"] == "adversarial":
        unseen = ", too little to see" if round(r["linf"] * 255, 1) <= VISIBLE_CHANGE * 255 else ""  # float32
        # a run that measured robust accuracy attacked at this budget; another one never did: the setting's
        # value is used here (a run without any robustness evaluation read "the run's evaluation budget")
        measured = bool((rec.config.get("eval") or {}).get("robust")
                        or (rec.config.get("adversarial") or {}).get("enabled"))
        whose = "the run's evaluation budget" if measured else "the attack budget the studio evaluates robustness at"
        budget = (whose if r["linf"] >= r["eps"] - 0.05 / 255
                  else f"within {whose} of {round(r['eps'] * 255, 1):g}/255")
        # a new user's plain run showed a wrong answer here by default, unexplained: what the row is for, first
        why = ("" if (rec.config.get("adversarial") or {}).get("enabled") else
               "A robustness check (this run was not trained against such attacks): how easily "
               f"{'changes too small to notice' if unseen else 'small changes'} fool the model. ")
        return (f"{why}The image nudged in {state.plural(r['steps'], 'small step')} (a PGD attack) to push the "
                f"fine-tuned model away from the true class: each pixel moved by at most "
                f"{round(r['linf'] * 255, 1):g}/255 of the brightness range, {budget}{unseen}.")
    return ""


def smaller_note(info: dict, tta_flip: bool = False) -> str:
    """What the smaller model's row is, from the run's `summary["structured"]` (channel_fraction and
    fine_tune_epochs as set, params_before / params_after counts): its share of the full model's
    parameters, the channels removed, its own fine-tuning, and how to read its map beside the full model's.
    `tta_flip`: the run answers with the mirror image too, which the smaller model's figures do not."""
    before, after = info.get("params_before"), info.get("params_after")
    size = f", {after / before:.0%} of its parameters" if before and after else ""
    removed = info.get("channel_fraction")
    cut = f"{removed:.0%} of the channels" if removed is not None else "whole channels"
    epochs = info.get("fine_tune_epochs")
    again = f" and fine-tuned again for {state.plural(int(epochs), 'epoch')}" if epochs else ""
    mirror = " It answers as Results measured it, without the mirror image." if tta_flip else ""
    return (f"The fine-tuned model with {cut} of its layers removed (structured pruning){again}{size}.{mirror} "
            "Where its map leaves what the fine-tuned model's used, that evidence went with the removed channels.")


# ---- tab 2: error analysis ---------------------------------------------------------------------------

def breakable_name(name: str) -> str:
    """A user's file name as markdown text for st.caption(unsafe_allow_html=True), safe at the start of
    a line: shown as it is (markdown and HTML characters escaped by app.state.md_text, a leading list or
    heading marker such as "1. " or "- " escaped too), with a `<wbr>` break opportunity after each /, so
    that a narrow column wraps "mildew/mildew_08.jpg" after it rather than inside the name (after "_" it
    read "mildew_" and "08.jpg" on two lines); a
    copy of the shown name is the name itself (the zero-width spaces used before were copied with it)."""
    shown = state.md_text(name)
    shown = re.sub(r"^(\s*)([#+-]+)(?=\s|$)", r"\1\\\2", shown)  # "- x.jpg", "# x": no list, no heading
    shown = re.sub(r"^(\s*)(\d+)([.)])(?=\s|$)", r"\1\2\\\3", shown)  # "1. x.jpg": no numbered list
    return shown.replace("/", "/<wbr>")


def gallery(run_dir: str, ds: str, rec, indices: list[int], captions: list[str], key: str,
            files: np.ndarray | None = None) -> None:
    """Thumbnails in rows, each with its file name (from `files`, by index) before its caption and a
    button that opens its attributions. `captions` are markdown with HTML allowed: callers escape the
    user's names in them (app.state.md_text)."""
    # cells of one width in a row that wraps: as many to a line as the page holds (six columns of a fixed
    # count broke "Explain" into "Expl / ain" on a 1000 px window); each cell as tall as its line, its
    # button at the bottom, so captions of different lengths leave a line's buttons level
    with st.container(horizontal=True, wrap=True, vertical_alignment="distribute", gap="small"):
        for i, cap in zip(indices, captions):
            with st.container(width=GALLERY_CELL_PX, height="stretch", vertical_alignment="distribute"):
                name = str(files[i]) if files is not None else f"#{i}"
                with st.container():  # the picture and its name together: "distribute" spaces two children
                    st.image(thumbnail(run_dir, ds, i), width="stretch")
                    st.caption(f"{breakable_name(name)} · {cap}", unsafe_allow_html=True)
                st.button("Explain", key=f"{key}_{i}", icon=":material/visibility:", on_click=_explain_image,
                          args=(rec.id, i), help=f"Open {state.md_text(name)} on the Attributions tab.")


def confusion_cells(labels: np.ndarray, preds: np.ndarray, k: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The k x k matrix and its non-empty cells (true, predicted, n): mix-ups first, largest first."""
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (labels, preds), 1)
    cells = [(t, p, int(matrix[t, p])) for t in range(k) for p in range(k) if matrix[t, p]]
    cells.sort(key=lambda c: (c[0] == c[1], -c[2], c[0], c[1]))
    return matrix, cells


def _cell_from_chart(view: str, classes: list[str], options: list[str]) -> None:
    """Chart-click callback: select the clicked cell in the cell picker of `view` (the run id, with "_smaller"
    for the smaller model's matrix) (an empty cell: no change)."""
    event = st.session_state.get(f"confusion_chart_{view}") or {}
    points = (event.get("selection") or {}).get("cell") or []
    if points and points[0].get("true") in classes and points[0].get("predicted") in classes:
        wanted = f"{classes.index(points[0]['true'])}:{classes.index(points[0]['predicted'])}"
        if wanted in options:
            st.session_state[f"explain_cell_{view}"] = wanted


def mistakes_of(engine, rec, b, pred: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str] | None:
    """(predictions, whose words) for the error analysis: the model in use (`pred`, `in_use_words`), or, for
    a run with a smaller channel-pruned model, the one the "Mistakes of" choice names. None (a message shown)
    when the smaller model cannot answer."""
    used = in_use_words(wise_alpha(engine, rec))
    if not b.has("structured"):
        return pred, used
    whose = {"in_use": used[0].upper() + used[1:], SMALLER: "The smaller (channel-pruned) model"}
    of_key = f"explain_errors_of_{rec.id}"
    state.seed_choice(of_key)  # a refresh keeps the model chosen
    if st.session_state.get(of_key) not in whose:
        st.session_state[of_key] = "in_use"
    of = st.radio("Mistakes of", list(whose), key=of_key, format_func=whose.get, horizontal=True,
                  help="The model whose answers the gallery and the confusion matrix below show. The smaller model "
                       "is the fine-tuned one with whole channels removed (structured pruning).")
    state.remember_choice(of_key, of, default="in_use")
    if of != SMALLER:
        return pred, used
    got = smaller_answers(engine, rec)
    return (got.value, "the smaller (channel-pruned) model") if got.ok else None


def errors_tab(engine, rec, b, pred: dict[str, np.ndarray]) -> None:
    """The mistakes tab: the validation confusion matrix, a cell to pick (true -> predicted class) and that cell's
    images with their confidence and loss, most confident mistakes first."""
    import altair as alt
    import torch

    run_dir, ds = str(rec.run_dir), str(engine.datasets_dir)
    classes = list(b.classes)
    pred, used = mistakes_of(engine, rec, b, pred) or (None, "")
    if pred is None:
        return
    # the smaller model's cells get a picker of their own: a shared one kept the other model's count in its label
    view = rec.id + ("_smaller" if used.startswith("the smaller") else "")
    labels, preds, confs, losses = pred["labels"], pred["preds"], pred["confs"], pred["losses"]
    n, wrong = len(labels), int((labels != pred["preds"]).sum())
    st.markdown(f"{used[0].upper()}{used[1:]} gets **{n - wrong} of {n}** validation images right "
                f"({(n - wrong) / max(n, 1):.1%})" + (", the model Try it and Export use (its alpha is chosen on "
                                                     "Results)." if used.startswith("the WiSE") else ".")
                + (f" {TEST_UNSEEN}" if not wrong and len(b.data.test) else ""))

    st.subheader("Highest-loss images")
    st.caption("The validation images the model is most confidently wrong about (or least sure of, when it is "
               "right). Look for a pattern: mislabelled files, two classes that look alike, an unusual background"
               + cut_ends_hint(rec) + ". " + LOSS_HINT)
    k = gallery_size(rec.id, n)
    top = [int(i) for i in pred["order"][:min(k, n)]]
    gallery(run_dir, ds, rec, top,
            [f"{'✓' if preds[i] == labels[i] else '✗'} true {state.md_text(classes[labels[i]])} · "
             f"said {state.md_text(classes[preds[i]])} "
             f"({confs[i]:.0%}) · {loss_words(losses[i])}" for i in top], key=f"hl_{rec.id}",
            files=pred["files"])

    st.subheader("Confusion matrix")
    matrix, cells = confusion_cells(labels, preds, len(classes))
    options = [f"{t}:{p}" for t, p, _ in cells]  # class indices: any folder name is safe
    counts = {f"{t}:{p}": c for t, p, c in cells}
    left, right = st.columns([1, 1] if len(classes) > 6 else [2, 3])  # many classes: the matrix gets half
    with left:
        budget = 300 if len(classes) > 6 else 240
        chart = charts.confusion_chart(charts.confusion_frame(matrix.tolist(), classes),
                                       "Confusion matrix (validation images)" if used.startswith("the fine") else
                                       f"Confusion matrix of {used} (validation images)", width=budget)
        # A click on a cell selects it in the picker on the right.
        pick = alt.selection_point(name="cell", fields=["true", "predicted"], on="click")
        chart.layer = [layer.add_params(pick) for layer in chart.layer]
        vega.altair_chart(chart, width=charts.confusion_px(len(classes), budget, classes),
                          key=f"confusion_chart_{view}", selection_mode="cell",
                          on_select=functools.partial(_cell_from_chart, view, classes, options))
        st.caption("Rows: true class; columns: what the model said. Click a cell, or pick it on the right.")
    with right:
        cell_key = f"explain_cell_{view}"
        if not options:
            st.info("No validation images.")
            return
        state.seed_choice(cell_key)  # a refresh keeps the cell picked
        if st.session_state.get(cell_key) not in options:
            st.session_state[cell_key] = options[0]
        chosen = st.selectbox("Cell (true → predicted)", options, key=cell_key,
                              format_func=lambda o: cell_label(o, classes, counts),
                              help="Mix-ups first, the largest first; then the correct cells.")
        state.remember_choice(cell_key, chosen, default=options[0])
        t, p = (int(k) for k in chosen.split(":"))
        t_name, p_name = classes[t], classes[p]
        members = confusion_cell(torch.as_tensor(labels), torch.as_tensor(preds), t, p)
        members.sort(key=lambda i: -confs[i])
        shown = members[:CELL_IMAGES_SHOWN]
        st.markdown(f"**{len(members)}** {'image' if len(members) == 1 else 'images'} of **{state.md_text(t_name)}** "
                    + ("classified correctly" if t == p else f"taken for **{state.md_text(p_name)}**")
                    + (f" (the {len(shown)} most confident shown)" if len(members) > len(shown) else "") + ".")
        if t != p:
            st.caption("Open one with **Explain**: if the maps sit on the background or on a detail both classes "
                       "share, more (or more varied) images of these classes will help more than more epochs.")
    gallery(run_dir, ds, rec, shown, [f"{confs[i]:.0%} sure" for i in shown], key=f"cell_{rec.id}",
            files=pred["files"])


def cell_label(option: str, classes: list[str], counts: dict[str, int]) -> str:
    """A confusion-matrix cell's name in the picker, "true → predicted (N images)", "· correct" on the diagonal.
    `option` is "t:p" (class indices)."""
    t, p = (int(k) for k in option.split(":"))
    n = counts[option]
    return f"{classes[t]} → {classes[p]} ({state.plural(n, 'image')})" + (" · correct" if t == p else "")


# ---- tab 3: export ---------------------------------------------------------------------------------

@st.cache_resource(max_entries=8, show_spinner=False)
def _export_bytes(path: str, mtime_ns: int) -> bytes:
    return Path(path).read_bytes()


def read_checks(out_dir: Path) -> list[dict]:
    """The export checks saved in `out_dir`/exports.json (one dict per file); [] when there are none or the file
    cannot be read."""
    try:
        return json.loads((out_dir / "exports.json").read_text())
    except (OSError, ValueError):
        return []


def export_and_verify(b, model: Guarded, summary: dict, out_dir: Path, structured: bool = False) -> list:
    """export_all: safetensors, TorchScript and ONNX, each reloaded and checked on the run's validation images (on
    generated images when its dataset cannot be read, which the card and exports.json say: check_images), and the
    model card."""
    from engine.export import check_images, export_all

    images, held_out, checked_on, _ = check_images(b)
    with model.lock:
        return export_all(model.model, b.cfg, summary, images, out_dir, structured=structured, held_out=held_out,
                          checked_on=checked_on)


def export_choices(run_dir: Path, summary: dict, alpha: float | None, chosen: bool = True) -> dict[str, str]:
    """The weights a run can export, the default first: a WiSE-FT run's mix at its alpha (the one Results
    says Explain, Try it and export use; not at alpha 1: that mix is the fine-tuned model, said beside it),
    then the channel-pruned model when structured pruning made one (the point of such a run), then the
    full fine-tuned model; the channel-pruned one last where it falls more than the claim's allowance below the
    full-size model (engine.claims.smaller_shortfall), its label saying by how much."""
    choices = {}
    if alpha is not None and alpha != 1.0:
        choices["wise"] = f"WiSE-FT mix at alpha {alpha:.2f} " + ("(chosen on Results)" if chosen else "(the run's own pick)")
    s = summary.get("structured") or {}
    short = smaller_shortfall(summary)
    if (run_dir / "structured.safetensors").is_file():
        before, after = s.get("params_before"), s.get("params_after")
        size = f", {after / before:.0%} of the parameters" if before and after else ""
        choices["structured"] = f"smaller, channel-pruned (structured pruning{size}" + (
            f"; {short[0]:.1f} {short[1]} points below full size)" if short else ")")
    choices["fine_tuned"] = "fine-tuned, full size" + (" (alpha 1)" if alpha is not None else "")
    if alpha is not None and alpha == 1.0:  # the mix at 1 is the fine-tuned model: offered once (a new user saw it twice)
        choices["fine_tuned"] += ", the WiSE-FT " + ("alpha chosen on Results" if chosen else "run's own pick")
    if short and "structured" in choices:  # a smaller model far below full size is offered last, not first
        choices["structured"] = choices.pop("structured")
    return choices


def check_images_words(checks: list[dict]) -> str:
    """The images `checks` (read_checks) compared the files on, in words: "the 40 validation images", "the 32
    generated images" (the run's dataset gone), "the validation images" for checks saved without saying."""
    extra = (checks[0].get("extra") or {}) if checks else {}
    return checked_on_words(str(extra.get("checked_on") or VALIDATION_IMAGES), extra.get("images"))


def checks_view(checks: list[dict]) -> None:
    """A table of the export checks (format, file, verified, agreement on the images they were checked on, largest
    score difference in plain decimals: an agronomist read "max logit difference 4.5e-6" as jargon) and a line
    saying whether every file passed."""
    on = check_images_words(checks)
    table = pd.DataFrame([{"format": c["format"], "file": Path(c["path"]).name, "verified": bool(c["ok"]),
                           "agreement": 100 * c["agreement"],
                           "largest score difference": difference_words(c["max_abs_logit_diff"]),
                           "message": c.get("message") or ""} for c in checks])
    st.dataframe(table, hide_index=True, width="stretch", column_config={  # plain decimals: "4.5e-6" read as jargon
        "verified": st.column_config.CheckboxColumn("verified"),
        "agreement": st.column_config.NumberColumn("agreement", format="%.1f%%",
                                                   help=f"Share of {on} with the same predicted class."),
        "largest score difference": st.column_config.TextColumn(
            "largest score difference", help="The largest difference between the file's and the model's output "
                                             "scores (the numbers behind the percentages), on any image.")})
    failed = [c for c in checks if not c["ok"]]
    if not failed:
        worst = max((c["max_abs_logit_diff"] for c in checks), default=0.0)
        st.success(f"All {len(checks)} exports verified: reloaded, they give the same class on "
                   f"{on if ' one ' in on else on.replace('the ', 'all ', 1)}, and their scores match (largest "
                   f"difference {difference_words(worst)}; "
                   "allowed: 0.1% of the largest score).", icon=":material/verified:")
    for c in failed:
        st.error(f"The **{c['format']}** export does not reproduce the model: {c.get('message') or 'no reason given'}. "
                 "Do not use this file; the others are fine. Try exporting again, or use the safetensors file "
                 "with this project's code.", icon=":material/error:")


def _export_which(run_id: str, choices: dict[str, str], alpha: float | None) -> str:
    """The Export tab's choice among `choices` (export_choices; a radio when there are several), and for a WiSE-FT
    run (`alpha` not None) where another mix is chosen. Returns the chosen key ("wise", "structured",
    "fine_tuned")."""
    which = next(iter(choices))
    if len(choices) > 1:
        if st.session_state.get(f"export_which_{run_id}", which) not in choices:  # kept from a visit when it was
            st.session_state.pop(f"export_which_{run_id}")  # offered (a WiSE-FT mix, before alpha 1 was chosen)
        which = st.radio("Weights to export", list(choices), horizontal=True, key=f"export_which_{run_id}",
                         format_func=choices.get)
    else:  # which weights, even without a choice (not the best epoch a Results download may have picked)
        st.caption("Exports the run's best epoch so far (its highest validation accuracy), full size: the run was "
                   "stopped before its end." if which == "best" else
                   "Exports the fine-tuned model at the end of training, full size.")
    if alpha is not None:  # a teacher looked here for the other mixes: one is chosen on Results, then offered here
        st.caption(f"Another mix of the starting and fine-tuned weights: choose its alpha on Results (the WiSE-FT "
                   f"slider, \"Use alpha ...\"); this tab then offers it instead of alpha {alpha:.2f}.")
        st.page_link("app_pages/results.py", label="Choose another alpha on Results", icon=":material/tune:")
    return which


def without_mix_on_gone_data(b, choices: dict[str, str], alpha: float | None) -> dict[str, str]:
    """`choices` (export_choices) for a run whose dataset is gone: without the WiSE-FT mix when building it
    re-estimates batch-norm statistics on the training images (`wise_ft.recalibrate_bn`, alpha strictly between 0
    and 1), which are gone too, said in a caption; else `choices` unchanged."""
    if "wise" in choices and alpha is not None and 0 < alpha < 1 and b.cfg.methods["wise_ft"].recalibrate_bn:
        st.caption(f"The WiSE-FT mix at alpha {alpha:.2f} cannot be exported now: it re-estimates its batch-norm "
                   "statistics on the training images, which are gone with the dataset.")
        return {k: v for k, v in choices.items() if k != "wise"}
    return choices


def card_summary(b, summary: dict, which: str, alpha: float | None, chosen: bool, best, gone: bool) -> dict:
    """The summary the exported card of `which` is written from: a WiSE-FT mix's own figures at `alpha` (measured now
    between the curve's points, unless the run's images are `gone`), the best epoch's (`best`, an Outcome of
    _best_card), else the run's, naming the mix chosen on Results (`chosen`) as the page does."""
    if which == "wise":
        mix = state.attempt("measuring the mix", b.wise_card_summary, summary, alpha) if not gone else None
        return mix.value if mix is not None and mix.ok else dict(summary, wise_alpha=alpha)
    if best is not None:
        return best.value
    return {**summary, **({"wise_chosen": alpha} if chosen else {})}


FORMAT_WORDS = ("Which file: **ONNX** for other programs and for phones (ONNX Runtime runs it on Windows, macOS, "
                "Linux, Android and iOS); **TorchScript** for PyTorch programs without this studio's code, in Python "
                "or C++; **safetensors** (the weights alone) for Python with this studio's code. The model card's "
                "*Use it* section has a script for the ONNX and the TorchScript file.")


def export_tab(engine, rec, b, summary: dict, gone: bool = False) -> None:
    """The export tab: which model to pack (the run's, the smaller one, a WiSE-FT mix; a stopped run's best epoch so
    far), a button that exports safetensors, TorchScript and ONNX and verifies each against the model, then the
    checks and the downloads. `gone`: the run's dataset cannot be read, so the files are checked on generated
    images (engine.export.generated_check_images) and no accuracy is measured."""
    run_dir, ds = Path(rec.run_dir), str(engine.datasets_dir)
    on = f"{GENERATED_CHECKS} generated images" if gone else checked_on_words(VALIDATION_IMAGES, len(b.data.val))
    st.markdown("Pack the model for use outside the studio. Each file is **reloaded and compared** with the model on "
                f"{on} before it is offered: same predicted class for every image, "
                "and output scores equal to within 0.1%. Exported models take RGB pixels in [0, 1] at "
                f"{b.cfg.data.image_size} x {b.cfg.data.image_size}; the normalisation is inside."
                + (f" They compute in float32, while the run was evaluated (and Try it answers) in {summary['precision']} "
                   "on this computer: a percentage can differ by about a point between the two."
                   if summary.get("precision") not in (None, "float32") else ""))
    st.caption(FORMAT_WORDS)  # which file for what: an agronomist could not tell which suits a phone
    alpha, chosen = state.wise_alpha(engine, rec) if uses_wise(rec) else (None, False)  # one lookup
    # a stopped run has its best epoch so far only (engine.runs.default_variant), exported as `export --variant best`
    choices = ({"best": "best epoch so far"} if rec.status == "stopped"
               else export_choices(run_dir, summary, alpha, chosen))
    which = _export_which(rec.id, without_mix_on_gone_data(b, choices, alpha) if gone else choices, alpha)
    from engine.export import export_dir

    best = state.attempt("measuring the best epoch", _best_card, str(run_dir), ds, not gone) \
        if which == "best" else None
    if best is not None and not best.ok:
        return
    epoch = (best.value.get("best_epoch") or [None])[0] if best is not None else None  # its folder names the epoch
    out_dir = export_dir(run_dir, which, alpha, epoch).resolve()
    if run_dir.resolve() not in out_dir.parents:  # exports live inside the run folder, nowhere else
        st.error("The export folder would leave the run folder; nothing was written.")
        return
    may_write = state.attempt("checking your access to this run", engine.authorize, rec.id, state.user(),
                              write=True, show=False).ok
    row = layout.button_row()  # the button as wide as its words
    clicked = row.button("Export and verify", type="primary", icon=":material/package_2:", key=f"export_{rec.id}",
                         disabled=not may_write)
    folder = out_dir.relative_to(run_dir.resolve()).as_posix()
    row.container(width="stretch").caption(
        f"Writes model.safetensors, model.ts, model.onnx and MODEL_CARD.md into the run's own folder (`{folder}`), "
        "then offers them for download below." if may_write
        else "This run belongs to another user: you can download its exports, not make new ones.")
    if clicked:
        with st.spinner("Exporting and verifying (safetensors, TorchScript, ONNX) ..."):
            summary_for_card = card_summary(b, summary, which, alpha, chosen, best, gone)
            loaded = state.attempt("loading the weights to export", {
                "wise": lambda: _wise(str(run_dir), ds, alpha), "structured": lambda: _structured(str(run_dir)),
            }.get(which, lambda: _fine_tuned(str(run_dir), ds)))
            if loaded.ok:
                state.attempt("exporting the model", export_and_verify, b, loaded.value, summary_for_card, out_dir,
                              structured=which == "structured")
    checks = read_checks(out_dir)
    if checks:
        stamp = components.short_time((out_dir / "exports.json").stat().st_mtime)
        st.markdown(f"**Verification** (exported {stamp})")
        checks_view(checks)
        downloads(rec, out_dir, checks)
    else:
        st.caption("Nothing exported yet for these weights.")
    st.markdown("**Model card**")
    card_path = out_dir / "MODEL_CARD.md"
    if card_path.is_file():
        card = card_path.read_text()
    else:
        from engine.chance import smaller_model_summary
        from engine.export import model_card

        # the card of the weights chosen above: the WiSE-FT mix's says it is that mix (the preview described
        # the fine-tuned model, alpha 1, while the mix was the export chosen)
        measured = st.session_state.get("wise_points", {}).get((rec.id, round(alpha, 4))) if alpha is not None else None
        kept = {"wise_chosen": alpha} if chosen else {}  # the mix chosen on Results, named by the other cards
        preview = (best.value if best is not None else
                   smaller_model_summary({**summary, **kept}) if which == "structured" else  # a mix Results computed
                   {**summary, "wise_alpha": alpha, **({"wise_point": measured} if measured else {})}
                   if which == "wise" and alpha is not None else {**summary, **kept})
        card = model_card(b.cfg, preview)
        st.caption("A preview: the exported card also lists the verification of each file" + (
            " and the mix's own test accuracy and weaker classes, measured when it is exported." if which == "wise"
            else "."))
    # tall enough for the card's figures and cautions at a glance (a 480 px box showed its first lines only);
    # the exact configuration below them scrolls
    with st.container(border=True, height=1000):
        st.markdown(components.smaller_headings(card))  # the page's headings stay the largest text


def downloads(rec, out_dir: Path, checks: list[dict]) -> None:
    """Download buttons for the exported files in `out_dir` (a file that failed its check is not offered) and the
    run's config.yaml, named after the user's run."""
    ok = {c["format"]: bool(c["ok"]) for c in checks}
    files = [(f, spec) for f, spec in EXPORT_FILES.items() if (out_dir / f).is_file()]
    cols = st.columns(max(len(files), 1) + 1)
    for col, (fname, (fmt, label, mime, what)) in zip(cols, files):
        path = out_dir / fname
        verified = ok.get(fmt, True) if fmt else True
        col.download_button(label, _export_bytes(str(path), path.stat().st_mtime_ns),
                            file_name=state.download_name(rec.name, rec.id, out_dir, fname), mime=mime, icon=":material/download:",
                            key=f"dl_{fname}_{rec.id}_{out_dir.name}", disabled=not verified,
                            help=what if verified else "This file failed verification: it is not offered.")
    cfg_file = Path(rec.run_dir) / "config.yaml"
    if cfg_file.is_file():
        cols[-1].download_button("Config (YAML)", cfg_file.read_text(), file_name=state.download_name(rec.name, rec.id, Path("exports"), "config.yaml"),
                                 mime="text/yaml", icon=":material/description:", key=f"dl_cfg_{rec.id}",
                                 help="The run's exact settings; also inside the safetensors metadata and the card.")


# ---- the page ---------------------------------------------------------------------------------------

def no_finished_run(runs) -> None:
    """What Explain shows when no run has finished: a run still training (with a link to it) or none yet (with the
    way to train one)."""
    active = [r for r in runs if r.status in ("queued", "running")]
    if active:
        st.info(f"{state.plural(len(active), 'run')} still training. A run can be explained once it has finished: "
                "come back when the Train page says *Finished*.", icon=":material/hourglass_top:")
        st.page_link("app_pages/train.py", label="Watch it on the Train page", icon=":material/monitoring:")
    else:
        st.info("No finished run yet. Train one first (the Quick demo preset on the bundled sample takes 40 s to "
                "2 minutes on a 2-core CPU); its attributions, mistakes and exports appear here.", icon=":material/info:")
        st.page_link("app_pages/train.py", label="Go to training", icon=":material/arrow_forward:")


def keep_widget_state() -> None:
    """Streamlit forgets a widget's value after a run that does not draw it (a closed tab, another
    page). Each run starts by setting every kept widget value again (the browser's own where it sent
    one, else the copy: a value set in the run that draws the widget is the one the browser shows),
    then copying the values to keys of its own. Defaults are seeded here, not in the widgets, so that Streamlit does not
    warn about a value set both ways."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(KEPT)]:
        widget = key[len(KEPT):]
        # set in this run, even when present: a value Streamlit holds from an earlier run (put back by an
        # earlier run of this function while another tab was open) reaches the browser only when it was set
        # in the run that draws the widget; else the browser drew its own default (no methods, overlay 0),
        # as a new user saw after Export and verify, and sent that back
        st.session_state[widget] = st.session_state.get(widget, st.session_state[key])
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(KEPT_WIDGETS)]:
        st.session_state[KEPT + key] = st.session_state[key]
    for key in (METHODS_KEY, TARGET_KEY, STRENGTH_KEY, START_KEY, ATTACK_KEY, TAB_KEY):
        state.seed_choice(key)  # a new session (a refresh): the choices its draft kept
    st.session_state.setdefault(METHODS_KEY, list(DEFAULT_METHODS))
    for key, value in WIDGET_DEFAULTS.items():
        st.session_state.setdefault(key, value)


def data_gone_words(config: dict, error: BaseException | None) -> str:
    """What Explain says when a run's dataset cannot be read (`error`, from reading it): the user's name for it
    (their upload's file name, the folder they gave), why, what is left out, and that its export still works."""
    ds = state.dataset_of_config(config)
    if state.source_exists(ds.source):  # there, but unreadable: the engine's own words say why
        why, fix = f"could not be read ({state.message_md(state.message_words(str(error))).rstrip('.')})", ""
    else:
        why = "is no longer on this server (deleted or moved, or the run comes from another studio)"
        fix = f" ({state.bring_back_words(ds)} to see them)"
    return (f"The data of this run, **{state.md_text(ds.label)}**, {why}, so its validation images cannot be "
            f"shown: the attributions and the mistakes need them{fix}. "
            "Its model is still here: the export below works, each file checked on "
            f"{GENERATED_CHECKS} generated images, which shows it computes the model's function, not its accuracy. "
            "Try it answers your own images with it.")


def data_gone(engine, rec, b, error: BaseException | None) -> None:
    """Explain for a run whose dataset is gone (`error`, from reading it): what is missing and why, then the
    Export tab alone, its files checked on generated images (engine.export.generated_check_images)."""
    st.warning(data_gone_words(rec.config, error), icon=":material/folder_off:")
    st.page_link("app_pages/try_it.py", label="Try it on your own images", icon=":material/image_search:")
    with state.guarded("drawing the Export tab"):
        export_tab(engine, rec, b, b.summary, gone=True)


def render() -> None:
    """Draw the Explain and export page (5) for the finished run picked: attributions, mistakes, export."""
    engine = state.get_engine()
    keep_widget_state()
    st.title("5 · Explain and export")
    st.caption("Why the model says what it says, where it goes wrong, and the model packed to take home.")
    rec = components.finished_run_picker(
        engine, RUN_KEY, "Any finished run, or a stopped run's best epoch so far: its model is explained and exported.",
        no_finished_run, stopped=True)
    if rec is None:
        return
    b_cfg = rec.config.get("backbone", {})
    start = state.start_words(b_cfg.get("pretrained"), b_cfg.get("checkpoint") or "", rec.owner)  # a checkpoint by name
    st.caption(f"{state.backbone_title(b_cfg.get('name'))} ({start}) · "
               f"{rec.config.get('data', {}).get('image_size')} px · "
               f"{rec.status} {components.short_time(rec.finished)}")
    summary = components.read_summary(str(rec.run_dir))
    if rec.status == "stopped":  # its best epoch so far is the model below, not a final one
        st.info(components.stopped_note(Path(rec.run_dir), summary, rec.config, "is explained and exported"),
                icon=":material/stop_circle:")
    chance = at_chance(summary, rec.config)  # a right answer here is luck
    if chance:
        st.warning(guess_warning(chance, "Its answers and their maps below"), icon=":material/warning:")
    run_dir, ds = str(rec.run_dir), str(engine.datasets_dir)
    forget_if_continued(run_dir)
    with st.spinner("Loading the run's model and validation images ..."):
        loaded = state.attempt("loading the run", _bundle, run_dir, ds)
        if not loaded.ok:
            st.caption("The run's files or its dataset may have been removed. Other runs can still be explained.")
            return
        images = state.attempt("reading the run's images", lambda: loaded.value.data, show=False)
        pred = state.attempt("predicting the validation images", predictions, run_dir, ds, wise_alpha(engine, rec)) \
            if images.ok else None
    if not images.ok:  # its dataset deleted or moved: the model is still there to export
        data_gone(engine, rec, loaded.value, images.error)
        return
    if not pred.ok:
        return
    b = loaded.value
    if len(b.data.val) == 0:
        st.info("This run has no validation images to explain.")
        return
    tabs = st.tabs(list(TABS), key=TAB_KEY, on_change="rerun")
    state.remember_choice(TAB_KEY, st.session_state.get(TAB_KEY) or TABS[0], default=TABS[0])
    sections = (lambda: attributions_tab(engine, rec, b, pred.value), lambda: errors_tab(engine, rec, b, pred.value),
                lambda: export_tab(engine, rec, b, b.summary))
    for tab, name, draw in zip(tabs, TABS, sections):
        if tab.open is False:  # stateful tabs: only the open one is computed
            continue
        with tab, state.guarded(f"drawing the {name} tab"):
            draw()


if __name__ == "__main__":  # run as a page (st.Page executes it as __main__); importable for tests
    render()
