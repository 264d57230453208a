"""Use a finished run's model on new images: one image, many, or a whole folder or zip.

One engine path that the dashboard's "Try it" page, `python -m engine predict` and the tests share:

1. `load_variant(run_dir, variant, alpha)` rebuilds one of the run's models (fine-tuned, best
   epoch, WiSE-FT at alpha, smaller channel-pruned, adversarially fine-tuned) from its safetensors
   files, calling the engine's public loaders only.
2. `load_predictor(...)` puts it on the run's device with the run's precision and measures, once,
   where the training images sit in feature space (for the "far from the training data" flag).
3. Images are decoded exactly as for training (`engine.data.decode_image`: EXIF rotation, any mode
   to RGB, centre square or the whole picture padded or stretched (the run's data.fit), bilinear resize to the run's
   size),
   then run in batches.

Low confidence (documented measure, both parts shown to the user in plain words):
- *unsure*: the top class's softmax probability is under `LOW_CONFIDENCE` (0.5 by default);
- *unfamiliar*, either of:
  - its *content* is farther from the training images than `FAR_QUANTILE` (95%) of the run's
    held-out images (validation and test) are: cosine distance of `image_features` (the
    L2-normalised average output of every trunk stage, not only the head's input, in the spirit of
    Lee et al., NeurIPS 2018, who combine layers; a blank page sits near a class mean of the last
    stage's features alone) to the image's `KNN_K`-th nearest training image (the deep
    nearest-neighbour score of Sun et al., ICML 2022). Held-out images, not training ones, set the
    bar: the model has memorised the latter. The bar is split conformal prediction's quantile (Vovk
    et al. 2005; Angelopoulos & Bates 2021): the ceil((n + 1) x 0.95)-th smallest of the n held-out
    distances, so that an image like the held-out ones is flagged at most 5% of the time; with fewer
    than 19 held-out images no such bar exists (a plain 95% quantile of 18 images flagged 7 of a
    user's 46 own images, training images at 99% among them);
  - it is *mostly flat colour*: at least `FLAT_SHARE` (3/4) of its neighbouring pixels are equal
    (`flat_share`), while no training image is even `FLAT_TRAINING_MAX` (half) flat, as in a drawing,
    a screenshot or a blank page among photos (a clip-art ball on grass sat among the sample's textures
    in every feature tried). The gap between the two is JPEG's: its noise leaves drawings saved as JPEG
    62-80% flat at quality 50-95, and the same drawing as a PNG is 98% flat (a new user's own drawing was
    called unfamiliar beside the JPEG drawings it was trained on when the bar was the flattest training
    image). An image drawn like the training images exceeds all n of them with probability at most
    1 / (n + 1), and this flag asks for more, so the two together flag such an image at most
    5% + 1 / (n + 1) of the time. A histogram of every
    pixel step was tried instead and flagged textures merely shrunk from a larger picture or
    slightly blurred (`benchmarks/unfamiliar.py`);
  - it is *mostly noise*: its neighbouring pixels are barely alike in either direction
    (`neighbour_correlation`, the correlation of each pixel's grey level with its right neighbour's and,
    apart, its lower neighbour's: the larger, under `NOISE_CORRELATION`), less alike than in any training
    image, and it is not mostly flat (a near-blank photo's JPEG wobble correlates little), as in static:
    uniform noise carries features close to a grainy texture's and passed the content check (0 of 64
    flagged on the sample); the same 1 / (n + 1) bound holds. A training set that is itself this noisy
    (or whose fine patterns alias at a small image size: a checkerboard at 32 px correlates negatively)
    sets a bar no image passes, and nothing is called noise.
  - it is *all one colour*: its grey levels vary by under `BLANK_SPREAD` (standard deviation,
    `grey_spread`), while every training image varies more, as in a blank page, a covered lens or an
    empty screen among drawings: a white page is as flat as a drawing on white, so the flat-colour
    check cannot fire there, and its features sat within the bar of a new user's 60 drawn shapes.
    The same 1 / (n + 1) bound holds.
  - it has *no strong edges*: its strongest steps between neighbouring pixels (`edge_step`, the S-th largest
    grey-level step of an S x S image) are under `SMOOTH_FRACTION` (half) of every training image's, as in a
    smooth gradient, a blurred or faint picture or a small one enlarged, among drawings or photos: a gradient
    among a new user's drawn shapes was none of one colour, flat or noise and passed every check (4 grey levels
    against at least 39 at 64 px). Named after one colour, flat and noise: the plainest one that applies is said.
    The same 1 / (n + 1) bound holds, with room to spare.
  In a run that keeps whole pictures (data.fit "pad") the four image checks measure the picture inside its grey
  bars, on training images and new ones alike (`picture_checks`).
  Where an image is both far by its features and mostly flat, mostly noise or without strong edges, that kind is
  named first (a blurred drawing "has no strong edges") and the long words add that it is also far (one colour
  needs no second reason); a faint image far by its features whose neighbouring pixels are less alike than any
  training image's (static shrunk from a larger picture) is called unlike the training images instead.
  The run's own images (training, validation or test; the same pixels, or a resized or re-saved copy:
  `NearCopies`) are never called unfamiliar: they are the user's data, labelled with its classes (the
  bar flags 5% of the held-out ones by design, which read as "do not trust" beside a 99% answer).
  These checks need the run's dataset, or what was measured from it and kept in the run's folder
  (`run_feature_stats`); without either, only the probability check applies. Either way the page says why.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engine.augment import to_float
from engine.backbones import Classifier
from engine.chance import answers_words, chance_finding
from engine.config import RunConfig
from engine.data import (COPY_THUMB, IMAGE_EXTENSIONS, MAX_COLOUR_DIFF, MAX_IMAGE_PIXELS, exif_turned, fitted_size,
                         LOOKALIKE_FILES, SAME_PIXELS_THUMB_DIFF, is_greyscale, open_image, picture_boxes,
                         PHASH_MAX_DISTANCE, PIL_FORMATS,
                         SPLIT_FOLDER_NAMES, EmptyArchiveError, SkippedFile, ZipLimits, decode_image,
                         decode_with_header, image_files, kind_reason, MULTI_PAGE_FORMATS, popcount64, not_a_zip_reason,
                         safe_extract_zip, thumbnails_close)
from engine.errors import StudioError
from engine.evaluate import tta_logits
from engine.methods.pruning import smaller_model_warning
from engine.methods.wise_ft import curve_point
from engine.metrics import selection_key, top_point
from engine.resume import RESUME_FILE
from engine.devices import (autocast_ctx, evaluated_precision_here, inference_channels_last, pick_device,
                            run_amp_dtype, usable_cpus)
from engine.run_data import prepare_data
from engine.runs import VARIANTS as RUN_VARIANTS
from engine.runs import has_variant, load_run, run_config, stopped_with_best, summary_stamp
from engine.words import first_and_more, percent

VARIANTS = {k: v for k, v in RUN_VARIANTS.items() if k != "start"}  # the start model is for Explain
LOW_CONFIDENCE = 0.5  # top softmax probability under this reads "unsure"
FAR_QUANTILE = 0.95  # farther from the training images than 95% of held-out images reads "unfamiliar"
KNN_K = 5  # the k-th nearest training image sets an image's distance (Sun et al. 2022: k = 50 of 50,000 images)
FLAT_SHARE = 0.75  # at least this share of equal neighbouring pixels reads "mostly flat colour"
# ... but only where every training image is under this share: training images flatter than it are drawings
# (or screenshots, diagrams) themselves, and a flatter drawing, such as a PNG beside JPEG ones, is no stranger
FLAT_TRAINING_MAX = 0.5
# neighbouring pixels correlating under this (and under every training image) read "noise": pixels all but
# independent at the run's size. 0.5 also caught a noisy training set's kind of picture taken larger and shrunk
# (0.27 against 0.45 for the training images, enlarged from 24 px); static shrunk from 512 px (0.26-0.32) is far
# by its content already
NOISE_CORRELATION = 0.2
BLANK_SPREAD = 2.0  # grey levels (0-255): an image varying less is all one colour (a JPEG's own wobble is under 1)
SMOOTH_FRACTION = 0.5  # an image whose `edge_step` is under this share of every training image's: no strong edges
BANK_MAX = 2048  # training images whose features are kept (a fixed random subset of more): 8 MB for ResNet-18, 31 MB for ResNet-50
DEFAULT_BATCH = 64
FORMAT_WORDS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "GIF": "gif", "WEBP": "webp", "TIFF": "tif", "HEIF": "heic",
                "AVIF": "avif"}
IMAGE_WORDS = ", ".join(FORMAT_WORDS.get(f, f.lower()) for f in PIL_FORMATS)  # the formats this install reads

ProgressFn = Callable[[int, int], None]  # (images done, images total)


# ---- which models a run has --------------------------------------------------------------------

def run_summary(run_dir: Path, stopped_ok: bool = False) -> dict:
    """The finished run's summary.json; with `stopped_ok`, also a stopped run's that kept a best-epoch
    checkpoint (engine.runs.stopped_with_best: its best epoch so far is a model to use). Raises StudioError
    when the run has none or did not finish, saying how to get a model."""
    path = Path(run_dir) / "summary.json"
    summary = json.loads(path.read_text()) if path.is_file() else {}
    finished = summary.get("status", "finished") == "finished"
    if path.is_file() and (finished or stopped_ok and stopped_with_best(run_dir)):
        return summary
    said = "has not finished" if not path.is_file() else f"did not finish ({summary.get('status')})"
    then = (f"continue it to the end first (python -m engine train --resume {Path(run_dir)}, or Continue on "
            "the dashboard's Train page), then use it" if (Path(run_dir) / RESUME_FILE).is_file()
            else "it has no final model to use; train it again to the end")
    best = " Its best epoch so far can be used now: --variant best." if stopped_with_best(run_dir) else ""
    raise StudioError(f"The run in {Path(run_dir).name} {said}: {then}.{best}")


def variant_label(variant: str, adversarial: bool = False) -> str:
    """A model variant's name for people (`VARIANTS`); a run trained adversarially (`adversarial`) has
    one fine-tuned model, its robust one, named "Adversarially fine-tuned (end of training)"."""
    if variant == "fine_tuned" and adversarial:
        return f"{VARIANTS['adversarial']} (end of training)"
    return VARIANTS[variant]


def mix_warning(summary: dict, alpha: float | None) -> str | None:
    """For the WiSE-FT mix at `alpha` when it is a point of the run's curve whose validation accuracy is
    at, below or within luck of guessing (engine.chance.chance_finding on that figure), the warning with
    what it means for its answers; None otherwise, or at alpha 1 (the fine-tuned model, which the run's own
    warning covers). A new user's pruned run answered one class for every image at alpha 0, unwarned."""
    point = curve_point(summary.get("wise_curve") or [], alpha) if alpha is not None and alpha < 1 else None
    if not point or point.get("val_acc") is None:
        return None
    found = chance_finding({**summary, "val_acc": point["val_acc"], "test_acc": None, "val_confusion": None},
                           whose=f"At alpha {alpha:.2f} the WiSE-FT mix's")
    return None if found is None else f"{found.text} {answers_words(found.maybe)}"


def own_figures(variant: str, alpha: float | None = None) -> bool:
    """Whether a run's held-out figures (its summary's accuracies, confusion matrices, greyscale and colour counts)
    are the model `variant`'s own: the fine-tuned model (also in an adversarial run) and the WiSE-FT mix at alpha 1;
    not the best epoch, the smaller model or another mix, which have figures of their own or none."""
    return variant in ("fine_tuned", "adversarial") or (variant == "wise" and alpha is not None and alpha >= 1 - 1e-9)


def model_caution(summary: dict, variant: str, alpha: float | None = None) -> str | None:
    """A warning for the model `variant` of a finished run (its `summary`) when it answers at, below or
    within luck of guessing, with what that means for its answers: the channel-pruned model by its own
    figures (engine.methods.pruning.smaller_model_warning), a WiSE-FT mix at `alpha` < 1 by its point on
    the curve (`mix_warning`), the fine-tuned model (and the mix at alpha 1) by the
    run's (engine.chance.chance_finding); None for the best epoch (no held-out figures of its own) and for a
    model clearly above guessing. `predict` prints it; Try it shows it for the model picked."""
    if variant == "structured":
        return smaller_model_warning(summary)
    if variant == "wise" and alpha is not None and alpha < 1:
        return mix_warning(summary, alpha)
    if variant in ("fine_tuned", "adversarial", "wise"):
        found = chance_finding(summary)
        return None if found is None else f"{found.text} {answers_words(found.maybe)}"
    return None


def available_variants(run_dir: Path) -> dict[str, str]:
    """{variant: label} of the models this finished run can load, in `VARIANTS` order (engine.runs:
    fine_tuned always; best, wise, structured when their files exist; adversarial for runs trained
    with adversarial fine-tuning, whose fine-tuned model is the robust one: `variant_label`). "start"
    is for Explain. A stopped run (engine.runs.stopped_with_best) has its best epoch so far only. Reads the run's
    config and files only (engine.runs.run_config): no model is built. Raises StudioError as load_run does."""
    if stopped_with_best(Path(run_dir)):
        return {"best": variant_label("best")}
    cfg = run_config(Path(run_dir))
    adversarial = has_variant(Path(run_dir), cfg, "adversarial")
    return {v: variant_label(v, adversarial) for v in VARIANTS if has_variant(Path(run_dir), cfg, v)}


def chosen_alpha(summary: dict, stored: float | None = None) -> float:
    """The run's WiSE-FT alpha, in [0, 1], the one Results, Explain, Export, Try it and `predict` use:
    `stored` (the user's choice, kept with the run in the store) when given, else `summary["wise_alpha"]`
    when set, else the point of the curve with the best OOD accuracy among those whose validation
    accuracy is within one point of the fine-tuned model's (Wortsman et al.'s criterion), else 1.0
    (the fine-tuned model)."""
    if stored is not None:
        return float(stored)
    if summary.get("wise_alpha") is not None:
        return float(summary["wise_alpha"])
    curve = [p for p in summary.get("wise_curve") or [] if p.get("val_acc") is not None]
    if not curve:
        return 1.0
    end = max(curve, key=lambda p: p["alpha"])
    ok = [p for p in curve if p["val_acc"] >= end["val_acc"] - 0.01]
    best = top_point(ok, lambda p: p["ood_acc"] if p.get("ood_acc") is not None else p["val_acc"])  # ties: larger alpha
    return float(best["alpha"])


def pick_rule_words(summary: dict) -> str:
    """How `chosen_alpha` picked the run's own alpha, in words: the paper's rule on corrupted images when the curve
    has OOD accuracy, else the best validation accuracy, saying why (a run with its OOD evaluation off was told
    "no mix did better on OOD" beside "OOD n/a")."""
    if any(p.get("ood_acc") is not None for p in summary.get("wise_curve") or []):
        return ("the best accuracy on corrupted images among the mixes whose validation accuracy is at most a point "
                "below the fine-tuned model's, as the paper chooses")
    from engine.config import setting_name

    return ("the best validation accuracy among the mixes: the run measured no OOD accuracy "
            f"('{setting_name('eval', 'ood')}' was off), which the paper's choice needs")


def _train_images(cfg: RunConfig, datasets_dir: Path | None):
    """The run's decoded data splits (from the engine's cache when warm), or None when unavailable."""
    if datasets_dir is None:
        return None
    try:
        return prepare_data(cfg, Path(datasets_dir))
    except (StudioError, OSError):
        return None


def load_variant(run_dir: Path, variant: str = "fine_tuned", alpha: float | None = None,
                 datasets_dir: Path | None = None) -> tuple[Classifier, RunConfig, list[str]]:
    """(a copy of the model in eval mode on the CPU, run config, class names) for one variant of a
    finished run, through the one run loader (engine.runs). For "wise", alpha in [0, 1] (None:
    `chosen_alpha`); batch-norm statistics re-estimated on the training images when the run asked
    for it (needs `datasets_dir`). Raises StudioError, in plain words, for a variant the run does not
    have, an alpha out of range, or missing/damaged files."""
    if variant not in VARIANTS:
        raise StudioError(f"Unknown model variant '{variant}'. Choose one of: {', '.join(available_variants(run_dir))}.")
    summary = run_summary(Path(run_dir), stopped_ok=variant == "best")
    have = available_variants(Path(run_dir))
    if variant not in have:
        why = {"best": "it kept no best-epoch checkpoint", "wise": "it was trained without WiSE-FT",
               "structured": "it was trained without structured pruning",
               "adversarial": "it was trained without adversarial fine-tuning"}.get(variant, "")
        raise StudioError(f"This run has no '{VARIANTS[variant]}' model: {why}. Available: "
                          f"{', '.join(have.values())}.")
    if variant == "wise":
        alpha = chosen_alpha(summary) if alpha is None else float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise StudioError(f"The WiSE-FT alpha must be between 0 and 1 (got {alpha:g}).")
    run = load_run(Path(run_dir), datasets_dir)
    try:
        model = run.model_variant(variant, alpha)
    except StudioError as exc:
        if "training images" in str(exc):
            raise StudioError("This run re-estimates batch-norm statistics for each WiSE-FT mix, which needs its "
                              "training images, and its dataset could not be read. Use alpha 0 or 1, or another "
                              "model.") from None
        raise
    return copy.deepcopy(model).eval(), run.cfg, list(run.classes)  # a copy: a predictor may move it to a GPU


# ---- the predictor -------------------------------------------------------------------------------

@dataclass
class Prediction:
    """One image's answer: the top-k classes with probabilities and the low-confidence verdict."""

    top: list[tuple[str, float]]  # (class name, probability), most likely first
    probs: list[float]  # every class, in the run's class order
    unsure: bool  # top probability under the threshold
    unfamiliar: bool | None  # far from the training data; None when that could not be measured
    distance: float | None  # cosine distance of `image_features` to the KNN_K-th nearest training image's
    threshold: float = LOW_CONFIDENCE  # the probability under which `unsure` was set
    flat: float | None = None  # `flat_share` of the image; None when the image was not given
    correlation: float | None = None  # `neighbour_correlation` of the image; None when the image was not given
    spread: float | None = None  # `grey_spread` of the image (grey levels); None when the image was not given
    edge: float | None = None  # `edge_step` of the image (grey levels); None when the image was not given
    far_by: str | None = None  # "blank", "smooth", "content", "flat" or "noise": why `unfamiliar` is True
    own: str | None = None  # "training", "validation" or "test": the image is one of the run's own
    own_copy: bool = False  # `own` found as a resized or re-saved copy (`NearCopies`), not by the same pixels
    own_class: str | None = None  # with `own`: that image's class in the run's data (the user's label for it)

    @property
    def low_confidence(self) -> bool:
        """True when the answer should be flagged: unsure (top probability under the threshold) or the image is
        unfamiliar (far from the training images)."""
        return self.unsure or bool(self.unfamiliar)


@dataclass
class FeatureStats:
    """Where the run's training images sit: their `image_features` [M, D] (float32, rows L2-normalised,
    M <= `BANK_MAX`), the cosine distance (`knn_distance`) above which an image's content reads
    "unlike the training images" (split conformal prediction's bar on the held-out images at
    `FAR_QUANTILE`, `conformal_bar`), the largest `flat_share` and the lowest `neighbour_correlation` of a
    training image, and which split each of the run's images is in, by `pixel_key`."""

    bank: torch.Tensor
    far_distance: float  # math.inf: too few held-out images to set a bar (the content is not checked)
    reference: str  # what set the bar, in words ("128 validation and test images")
    flat_max: float = 1.0  # 1.0: no image is called mostly flat colour
    splits: dict[str, str] = field(default_factory=dict)  # pixel_key -> "training" | "validation" | "test"
    copies: NearCopies | None = None  # the run's images by perceptual hash: resized or re-saved copies
    labels: dict[str, str] = field(default_factory=dict)  # pixel_key -> the image's class name in the run's data
    correlation_min: float = -1.0  # -1.0: no image is called mostly noise
    spread_min: float = 0.0  # the lowest `grey_spread` of a training image; 0.0: no image is called one colour
    measured: str | None = None  # when kept in a run's folder: the day it was measured ("6 Dec 2026")
    edge_min: float | None = None  # the lowest `edge_step` of a training image; None: not measured (kept before it was)

    def mostly_flat(self, flat: float | None) -> bool:
        """Whether an image with `flat_share` `flat` is mostly flat colour (`FLAT_SHARE`) where the training
        images are not: none of them reaches `FLAT_TRAINING_MAX`."""
        return flat is not None and flat >= FLAT_SHARE and self.flat_max < FLAT_TRAINING_MAX

    def one_colour(self, spread: float | None) -> bool:
        """Whether an image with `grey_spread` `spread` is all one colour (under `BLANK_SPREAD`) where no training
        image is."""
        return spread is not None and spread < BLANK_SPREAD <= self.spread_min

    def smooth(self, edge: float | None) -> bool:
        """Whether an image with `edge_step` `edge` has no strong edges: under `SMOOTH_FRACTION` of every training
        image's (never where a training image has none: then nothing is under it)."""
        return edge is not None and self.edge_min is not None and edge < SMOOTH_FRACTION * self.edge_min

    def mostly_noise(self, correlation: float | None) -> bool:
        """Whether an image with `neighbour_correlation` `correlation` is mostly noise, unlike every training image."""
        return correlation is not None and correlation < NOISE_CORRELATION and correlation < self.correlation_min


class Predictor:
    """A run's model variant ready for new images: on its device, eval mode, batched, thread-safe."""

    stats_note: str | None = None  # where `stats` came from when the run's dataset is gone (`gone_note`)
    fit: str = "crop"  # how a picture becomes the model's square, as in the run (engine.data.fit_square)
    as_evaluated: bool = True  # its precision is the one the run was evaluated in (set in __init__)

    def __init__(self, model: Classifier, cfg: RunConfig, classes: list[str], variant: str, alpha: float | None,
                 device: torch.device, stats: FeatureStats | None = None, low_confidence: float = LOW_CONFIDENCE,
                 summary: dict | None = None):
        self.model, self.cfg, self.classes = model.eval().to(device), cfg, list(classes)
        self.variant, self.alpha, self.device = variant, alpha, device
        # the run's own evaluation precision where it ran on this kind of device (engine.devices.run_amp_dtype)
        self.amp_dtype = run_amp_dtype(summary or {}, cfg.train.amp, device, int(cfg.data.image_size))
        self.as_evaluated = evaluated_precision_here(summary or {}, device)  # else `pick_amp`'s choice here
        if inference_channels_last(cfg.train.channels_last, device, self.amp_dtype):
            self.model.to(memory_format=torch.channels_last)  # bf16 answers 1.3-1.6x faster (inference_channels_last)
        self.epochs = best_epoch((summary or {}).get("history") or [])  # (best, of) or None
        self.stats, self.low_confidence = stats, low_confidence
        self.pruned = bool((summary or {}).get("sparsity"))  # a WiSE-FT mix keeps the pruning masks
        self.image_size = int(cfg.data.image_size)
        self.fit = cfg.data.fit
        self.lock = threading.Lock()  # Grad-CAM hooks layers; sessions share the predictor

    @property
    def label(self) -> str:
        """The model's name as the pages and CSV files show it ("Best epoch (7 of 20)", "WiSE-FT mix at alpha 0.60",
        "Smaller (channel-pruned, faster)")."""
        if self.variant == "wise":
            start = " (the starting model, pruned)" if self.pruned else " (the starting model)"  # claims.wise_pruned_start
            end = {0.0: start, 1.0: " (the fine-tuned model)"}.get(round(float(self.alpha), 4), "")
            return f"WiSE-FT mix at alpha {self.alpha:.2f}{end}"
        if self.variant == "best" and self.epochs:
            return f"Best epoch ({self.epochs[0]} of {self.epochs[1]})"  # short: a title in a half-width column
        return variant_label(self.variant, "adversarial" in self.cfg.enabled_methods())

    @torch.no_grad()
    def forward(self, images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(softmax probabilities [N, C] float32, `image_features` [N, D] float32), both on the CPU,
        for uint8 images [N, 3, S, S] (one batch; callers batch). With the run's eval.tta_flip the
        probabilities average the image's and its mirror's (`flip_average`); the features are the
        image's own."""
        with stage_outputs(self.model) as outputs:
            x = to_float(images_u8.to(self.device, non_blocking=True))
            with autocast_ctx(self.device, self.amp_dtype):
                logits = tta_logits(self.model, x, self.cfg.eval.tta_flip)  # as the run measured its accuracy
        return logits.float().softmax(1).cpu(), image_features(outputs).cpu()

    def answers(self, probs: torch.Tensor, feats: torch.Tensor, top_k: int = 3,
                threshold: float | None = None, images_u8: torch.Tensor | None = None) -> list[Prediction]:
        """Predictions for the rows of `forward`'s outputs; `threshold` overrides `low_confidence` for
        this call (sessions share one predictor, so a user's setting is passed, never stored). With the
        images themselves (uint8 [N, 3, S, S]) the flat-colour and noise checks run too, and each is looked up
        among the run's own images."""
        threshold = self.low_confidence if threshold is None else float(threshold)
        k = max(1, min(int(top_k), len(self.classes)))
        # a stable sort: classes of exactly equal probability (bf16 logits tie) in class order, so the first
        # answer is argmax's, the one the run's accuracy counted (topk's order among ties is unspecified)
        top_p, top_i = (t[:, :k] for t in probs.sort(dim=1, descending=True, stable=True))
        stats = self.stats
        dist = knn_distance(feats, stats.bank) if stats is not None else None
        given = stats is not None and images_u8 is not None  # the image checks need the run's training images
        flat, correlation, spread, edge = picture_checks(images_u8, self.fit) if given else [[None] * len(probs)] * 4
        own, own_copy, own_class = [None] * len(probs), [False] * len(probs), [None] * len(probs)
        if given and stats.splits:
            keys = [pixel_key(img) for img in images_u8]
            own, own_class = [stats.splits.get(k) for k in keys], [stats.labels.get(k) for k in keys]
        if given and stats.copies is not None and None in own:
            rest = [n for n, o in enumerate(own) if o is None]
            for n, (split, label) in zip(rest, stats.copies.find_labelled(images_u8[rest])):
                own[n], own_copy[n], own_class[n] = split, split is not None, label
        out = []
        for n in range(len(probs)):
            d = None if dist is None else float(dist[n])
            far_by = None
            far = stats is not None and d is not None and not math.isinf(stats.far_distance) and d > stats.far_distance
            # shrunk static is faint (weak edges) but grainy, its neighbours less alike than any training image's:
            # "no strong edges, as a smooth gradient" would mislead where its content is far anyway
            grainy = stats is not None and correlation[n] is not None and correlation[n] < stats.correlation_min
            if stats is not None and own[n] is None:  # the run's own images (and copies) are its data, never unlike it
                # the most telling reason: what the picture is (one colour, flat, noise, smooth) before how far its
                # features are; a new user's blurred drawing, also far, was only called unlike the training images
                if stats.one_colour(spread[n]):
                    far_by = "blank"  # the plainest reason first: it is also flat, and often far
                elif stats.mostly_flat(flat[n]):
                    far_by = "flat"
                elif (flat[n] or 0.0) < FLAT_SHARE and stats.mostly_noise(correlation[n]):
                    far_by = "noise"  # not a near-flat photo (a white wall): its JPEG wobble correlates little
                elif stats.smooth(edge[n]) and not (far and grainy):
                    far_by = "smooth"  # a gradient or a blur: neither one colour, flat nor noise (after them: a
                    # flat disc and shrunk static have weak edges too, and their own words say more)
                elif far:
                    far_by = "content"
            checked = stats is not None and (not math.isinf(stats.far_distance) or flat[n] is not None)
            out.append(Prediction(
                top=[(self.classes[int(i)], float(p)) for p, i in zip(top_p[n], top_i[n])],
                probs=[float(p) for p in probs[n]],
                unsure=float(top_p[n, 0]) < threshold,
                unfamiliar=(far_by is not None) if checked else None,
                distance=d,
                threshold=threshold,
                flat=flat[n],
                correlation=correlation[n],
                spread=spread[n],
                edge=edge[n],
                far_by=far_by,
                own=own[n],
                own_copy=own_copy[n],
                own_class=own_class[n],
            ))
        return out

    def predict(self, images_u8: torch.Tensor, top_k: int = 3, batch_size: int = DEFAULT_BATCH,
                threshold: float | None = None) -> list[Prediction]:
        """Predictions for uint8 images [N, 3, S, S] at the run's size, in batches of `batch_size`.
        Raises ValueError for another dtype or layout."""
        if images_u8.dtype != torch.uint8 or images_u8.dim() != 4 or images_u8.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, S, S], got {images_u8.dtype} {tuple(images_u8.shape)}")
        out: list[Prediction] = []
        with self.lock:
            for i in range(0, len(images_u8), batch_size):
                batch = images_u8[i:i + batch_size]
                out += self.answers(*self.forward(batch), top_k, threshold, images_u8=batch)
        return out

    def familiarity_note(self) -> str | None:
        """Why answers are not checked for looking unlike the training images, in plain words; None
        when they are. Names the run's dataset when it is gone (`gone_note`)."""
        if self.stats is None:
            return self.stats_note or ("Only the probability was checked: the run's training images could not be "
                                       "read to measure how far an image is from them.")
        gone = f"{self.stats_note} " if self.stats_note else ""
        if math.isinf(self.stats.far_distance):
            return gone + (f"Images unlike the training images are not flagged for this run: it held out only "
                    f"{self.stats.reference}, and at least {far_minimum()} are needed to learn what unusual looks "
                    "like. Answers are still flagged when their probability is low or the image is one colour, "
                    "mostly flat colour or noise" + (", or has no strong edges." if self.stats.edge_min is not None
                                                     else "."))
        return gone.strip() or None

    def explanation(self, prediction: Prediction, brief: bool = False) -> str | None:
        """The low-confidence flag and the own-image note in plain words, or None when neither applies.
        Headed "Unfamiliar image" when the image is far from the training images (a high probability
        then says nothing), "Low confidence" when only the probability is low. `brief`: an unfamiliar
        image's flag in one short sentence, for a page that has explained the same flag at length above
        (a page of flagged images repeated the paragraph under each)."""
        name, p = prediction.top[0]
        if prediction.unfamiliar and brief:
            what = {"blank": "all one colour", "smooth": "no strong edges",
                    "flat": f"mostly flat colour ({100 * (prediction.flat or 0):.0f}% of neighbouring pixels)",
                    "noise": f"mostly noise (neighbouring pixels correlate {prediction.correlation or 0:.2f})"}.get(
                prediction.far_by, "unlike the training images")
            unsure = ", and the model is unsure" if prediction.unsure else ""
            text = (f"Unfamiliar image (as explained above): {what}{unsure}. It says {name} "
                    f"({percent(p, prediction.threshold)}); {trust_words(prediction.far_by, brief=True)}.")
        elif prediction.unfamiliar:
            if prediction.far_by == "blank":
                own, least = two_figures(prediction.spread or 0.0, self.stats.spread_min)
                what = (f"it is all one colour, as a blank page, a covered lens or an empty screen: there is "
                        f"nothing in it to classify (its grey levels vary by {own}; every training image's by at least {least})")
            elif prediction.far_by == "smooth":
                what = (f"it has no strong edges, as a smooth gradient, a blurred or faint picture or a small one "
                        f"enlarged: its strongest steps between neighbouring pixels are {prediction.edge or 0.0:.1f} "
                        f"grey levels, under half of every training image's (at least {self.stats.edge_min or 0.0:.1f})")
            elif prediction.far_by == "flat":
                what = (f"most of it ({100 * prediction.flat:.0f}% of neighbouring pixels) is flat colour, as in a "
                        f"drawing, a screenshot or a blank page, and none of the training images is (at most "
                        f"{100 * self.stats.flat_max:.0f}%)")
            elif prediction.far_by == "noise":
                own, least = two_figures(prediction.correlation or 0.0, self.stats.correlation_min)
                what = (f"it is mostly noise, as in static or a random pattern: neighbouring pixels are barely alike "
                        f"(they correlate {own}; in every training image at least {least})")
            else:
                what = (f"it looks unlike the training images, farther from them than {100 * FAR_QUANTILE:.0f}% of "
                        "the images the model was checked on")
            if prediction.far_by in ("flat", "noise", "smooth") and prediction.distance is not None \
                    and prediction.distance > self.stats.far_distance:  # both said: the second reason confirms it
                what += (f"; it also looks unlike the training images, farther from them than "
                         f"{100 * FAR_QUANTILE:.0f}% of the images the model was checked on")
            unsure = (f"; the model is unsure, too ({name} has only {percent(p, prediction.threshold)}, under "
                      f"{100 * prediction.threshold:.0f}%)" if prediction.unsure else "")
            text = (f"Unfamiliar image: {what}{unsure}. The model always answers with one of its classes (it says "
                    f"{name}, {100 * p:.0f}%), but this image may show none of them ({', '.join(self.classes)}), "
                    f"so {trust_words(prediction.far_by)}.")
        elif prediction.unsure:
            second = (f"; next, {prediction.top[1][0]} {100 * prediction.top[1][1]:.0f}%"
                      if len(prediction.top) > 1 else "")
            text = (f"Low confidence: the model is unsure (its best guess, {name}, has only "
                    f"{percent(p, prediction.threshold)} probability, under {100 * prediction.threshold:.0f}%{second}). It may be torn between "
                    "similar classes, or the image may show none of them; check it yourself.")
        else:
            text = None
        own = own_image_note(prediction.own, prediction.own_copy, prediction.own_class, name)
        return own if text is None else (text + (" " + own if own else ""))

    @staticmethod
    def short_reason(prediction: Prediction, beside: str | None = None) -> str:
        """A few words for a table or a printed line: "unfamiliar (unlike the training images)", "unfamiliar (one
        colour)", "unfamiliar (no strong edges)", "unfamiliar (flat colour)", "unfamiliar (noise)", "unsure (44%)",
        "run's training image, labelled dotted" ("copy of a training image, labelled dotted"; the label
        when the run's data gives one, unless it is `beside`, the class the row already shows: its folder's),
        joined by "; "; empty when none applies."""
        parts = []
        if prediction.unfamiliar:
            parts.append("unfamiliar" + {"blank": " (one colour)", "smooth": " (no strong edges)",
                                         "flat": " (flat colour)", "noise": " (noise)"}.get(
                prediction.far_by or "", " (unlike the training images)"))
        if prediction.unsure:
            parts.append(f"unsure ({percent(prediction.top[0][1], prediction.threshold)})")
        if prediction.own:
            parts.append(own_short_words(prediction.own, prediction.own_copy, prediction.own_class, beside))
        return "; ".join(parts)


OWN_WORDS = {"training": "one of the run's training images: the model was fitted on it, so its answer says "
                         "little about new images",
             "validation": "one of the run's validation images (never trained on, but the run measured its "
                           "progress on them)",
             "test": "one of the run's test images (held out: the model never trained on it)"}


def trust_words(far_by: str | None, brief: bool = False) -> str:
    """How far to trust an unfamiliar image's answer (`far_by`: Prediction.far_by), after "so": "do not trust this
    answer" where the picture is one colour, flat, noise or without strong edges; for one unlike the training
    images by content, "check this answer" and (unless `brief`) that the check flags up to 1 in 20 pictures like
    them (FAR_QUANTILE): a teacher's ordinary slide read "do not trust" in front of a class."""
    if far_by != "content":
        return "do not trust this answer"
    if brief:
        return "check this answer"
    return (f"check this answer before relying on it (the check also flags up to 1 in "
            f"{round(1 / (1 - FAR_QUANTILE))} pictures like the training images)")


def own_short_words(split: str | None, copy: bool = False, label: str | None = None,
                    beside: str | None = None) -> str:
    """A few words for a table or a printed line on an image that is one of the run's own (`split`:
    `Prediction.own`, "training", "validation" or "test"): "run's training image" ("copy of a training
    image" with `copy`, `Prediction.own_copy`), then ", labelled <label>" with `label` (`Prediction.own_class`)
    unless it is `beside`, the class the reader sees in the same row (a zip's folder's, in Try it's table); "" for
    None."""
    if not split:
        return ""
    words = f"copy of a {split} image" if copy else f"run's {split} image"  # training: 20 characters, Try it's
    # 160 px note column's
    return words + (f", labelled {label}" if label and label != beside else "")


def own_image_note(split: str | None, copy: bool = False, label: str | None = None,
                   answer: str | None = None) -> str | None:
    """"This is one of the run's training images: ..." for a `Prediction.own` split ("This looks like a
    resized or re-saved copy of one of ..." with `copy`, `Prediction.own_copy`), then "In the run's data it is
    labelled <label>." with `label` (`Prediction.own_class`), and with the model's `answer` (a class name)
    whether that answer is right; None for None."""
    if split not in OWN_WORDS:
        return None
    note = f"This looks like a resized or re-saved copy of {OWN_WORDS[split]}." if copy else f"This is {OWN_WORDS[split]}."
    if not label:
        return note
    if answer is None:
        return note + f" In the run's data it is labelled {label}."
    return note + (f" In the run's data it is labelled {label}: the model's answer is right." if answer == label else
                   f" In the run's data it is labelled {label}: the model's answer, {answer}, is wrong.")


def own_images_note(splits: Sequence[str | None], copies: Sequence[bool] | None = None,
                    accuracy: bool = True, labels: Sequence[str | None] | None = None,
                    answers: Sequence[str] | None = None) -> str | None:
    """For a set of predicted images, how many are the run's own and what that means for their
    accuracy (`accuracy`: one is shown; else for the answers), in plain words; None when none is.
    `copies`: per image, whether it was found as a resized or re-saved copy (`Prediction.own_copy`);
    counted among the run's own and said. `labels`: per image, its class in the run's data
    (`Prediction.own_class`), said for a single image, with whether its answer (`answers`: per image, the
    model's class name) is right."""
    copies = list(copies) if copies is not None else [False] * len(splits)
    counts = {k: sum(1 for s in splits if s == k) for k in OWN_WORDS}
    own = sum(counts.values())
    if not own:
        return None
    if len(splits) == 1:
        return own_image_note(splits[0], copies[0], labels[0] if labels else None, answers[0] if answers else None)
    which = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    n_copies = sum(1 for s, c in zip(splits, copies) if c and s in OWN_WORDS)
    if n_copies:
        which += f"; {n_copies} of them {'a resized or re-saved copy' if n_copies == 1 else 'resized or re-saved copies'}"
    if counts["training"] and accuracy:
        meaning = "the model learned from its training images, so an accuracy over them is not a test of the model"
    elif counts["training"]:
        meaning = "the model learned from its training images, so its answers on them say little about new images"
    else:
        meaning = "none is a training image, so they test the model like the run's own held-out images"
    are = "is" if own == 1 else "are"
    return f"{own} of these {len(splits)} images {are} the run's own ({which}): {meaning}."


@contextmanager
def stage_outputs(model: Classifier) -> Iterator[list]:
    """Within the block, records each trunk block's output (`Classifier.trunk_blocks`) averaged over
    its positions, [N, C_i] float32 (None for a block whose output is not a map [N, C_i, H, W]),
    and then the head's input [N, D], from the first forward pass only (the image's, not a TTA
    mirror's); yields that list, None where a module did not run. Only the averages are kept, so
    the maps are freed as usual. Hooks are removed on exit."""
    modules = [*model.trunk_blocks(), model.head]
    seen: list = [None] * len(modules)
    done = [False] * len(modules)

    def keep(i: int, is_head: bool):
        def hook(module, inputs, output):
            if done[i]:
                return
            done[i] = True
            if is_head:
                seen[i] = inputs[0]
            elif isinstance(output, torch.Tensor) and output.dim() == 4:
                seen[i] = output.mean((2, 3), dtype=torch.float32)
        return hook

    handles = [m.register_forward_hook(keep(i, m is model.head)) for i, m in enumerate(modules)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def image_features(outputs: list) -> torch.Tensor:
    """An image's features at every depth [N, D] (float32, rows L2-normalised) from `stage_outputs`:
    each trunk stage's average [N, C_i], L2-normalised so that every stage counts alike,
    concatenated (D = sum C_i: 960 for ResNet-18); for a backbone without map-shaped stage outputs
    (a ViT), the head's input alone, in the spirit of Lee et al. (NeurIPS 2018), who combine layers for
    out-of-distribution detection."""
    *stages, head_input = outputs
    pooled = [F.normalize(o, dim=1) for o in stages if o is not None]
    return F.normalize(torch.cat(pooled, 1) if pooled else head_input.float().flatten(1), dim=1)


def best_epoch(history: list[dict]) -> tuple[int, int] | None:
    """(the epoch whose model best.safetensors holds, the epochs run) from a summary's `history`: the
    epoch the training loop keeps (engine.metrics.selection_key: the highest `val_acc`, ties to the lower
    `val_loss`, then the earliest); None without one."""
    scored = [(*selection_key(h), -i, h.get("epoch", i + 1)) for i, h in enumerate(history) if "val_acc" in h]
    if not scored:
        return None
    return max(scored)[-1], int(history[-1].get("epoch", len(history)))


def epoch_entry(history: list[dict], epoch: int | None) -> dict:
    """The `history` entry (a summary's per-epoch figures) of `epoch`, {} when there is none or `epoch` is None."""
    return next((h for h in history if epoch is not None and h.get("epoch") == epoch), {})


def knn_distance(feats: torch.Tensor, bank: torch.Tensor, k: int = KNN_K) -> torch.Tensor:
    """Cosine distance [N] from normalised features [N, D] to their k-th nearest row of the normalised
    `bank` [M, D] (the M-th when M < k; 0 = same direction, 2 = opposite): the deep nearest-neighbour
    out-of-distribution score of Sun et al. (ICML 2022), which needs no class labels."""
    k = max(1, min(int(k), len(bank)))
    return 1.0 - (feats @ bank.T).topk(k, dim=1).values[:, -1]


def flat_share(images_u8: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The share [N] (float32, 0-1) of each image's neighbouring pixel pairs (right and below) whose
    grey levels (the mean of R, G and B, 0-255) differ by less than 1, for uint8 images [N, 3, S, S]
    on any device: 1 for a blank page, about 0.9 for a drawing, near 0 for a photo (sensor grain).
    Computed `chunk` images at a time (a few bytes per pixel)."""
    out = []
    for i in range(0, len(images_u8), chunk):
        grey = images_u8[i:i + chunk].cpu().sum(1, dtype=torch.int16)  # 3 x the mean: steps under 3 are under 1
        right = (grey[:, :, 1:] - grey[:, :, :-1]).abs_().lt_(3)  # in place: 4-7x faster at 224 px than new tensors
        below = (grey[:, 1:, :] - grey[:, :-1, :]).abs_().lt_(3)
        pairs = max(1, right[0].numel() + below[0].numel())  # a picture one pixel across has none
        out.append((right.flatten(1).sum(1) + below.flatten(1).sum(1)).float() / pairs)
    return torch.cat(out) if out else torch.zeros(0)


def grey_spread(images_u8: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The standard deviation [N] (float32, grey levels 0-255) of each image's grey levels (the mean of R, G and B),
    for uint8 images [N, 3, S, S] on any device: 0 for a blank page, tens for a drawing or a photo. Computed `chunk`
    images at a time."""
    out = [images_u8[i:i + chunk].cpu().float().mean(1).flatten(1).std(1, correction=0)
           for i in range(0, len(images_u8), chunk)]
    return torch.cat(out) if out else torch.zeros(0)


def edge_step(images_u8: torch.Tensor, max_pixels: int = 1 << 23) -> torch.Tensor:
    """How strong each image's edges are [N] (float32, grey levels 0-255): the S-th largest absolute step in grey
    level (the mean of R, G and B) between a pixel and its right neighbour or the one below, for uint8 images
    [N, 3, H, W] on any device (S: the shorter of H and W): one edge line across the image is enough, at any size
    (a share of the steps, such as their 99th percentile, let a drawing's thin lines fall out of it at 224 px and
    up). 0 for one colour, about
    255 / S for a black-to-white gradient across the image, tens to 255 for a drawing, a texture or a photo.
    Computed on at most `max_pixels` grey pixels at a time."""
    out = []
    chunk = max(1, max_pixels // max(1, images_u8.shape[-1] * images_u8.shape[-2]))
    for i in range(0, len(images_u8), chunk):
        grey = images_u8[i:i + chunk].cpu().float().mean(1)  # [n, S, S]
        steps = torch.cat([(grey[:, :, 1:] - grey[:, :, :-1]).abs().flatten(1),
                           (grey[:, 1:, :] - grey[:, :-1, :]).abs().flatten(1)], 1)
        k = min(int(min(grey.shape[-2:])), steps.shape[1])  # the shorter side: a padded picture's (picture_checks)
        out.append(steps.topk(k, dim=1).values[:, -1] if k else torch.zeros(len(grey)))
    return torch.cat(out) if out else torch.zeros(0)


def picture_checks(images_u8: torch.Tensor, fit: str = "crop") -> list[list[float]]:
    """[`flat_share`, `neighbour_correlation`, `grey_spread`, `edge_step`] of each uint8 image [N, 3, S, S], four
    lists of N floats. With `fit` "pad" (engine.data.fit_square) each is measured on the picture inside its grey bars
    (engine.data.picture_boxes): the bars are the studio's, not the user's, and made a panorama "mostly flat colour".
    Images with the same bars are measured together."""
    checks = (flat_share, neighbour_correlation, grey_spread, edge_step)
    if fit != "pad" or not len(images_u8):
        return [check(images_u8).tolist() for check in checks]
    groups: dict[tuple[int, int, int, int], list[int]] = {}
    for n, box in enumerate(picture_boxes(images_u8)):
        groups.setdefault(box, []).append(n)
    out = [[0.0] * len(images_u8) for _ in checks]
    for (top, bottom, left, right), rows in groups.items():
        pictures = images_u8[rows][:, :, top:bottom, left:right]
        for values, check in zip(out, checks):
            for n, value in zip(rows, check(pictures).tolist()):
                values[n] = value
    return out


def two_figures(a: float, b: float) -> tuple[str, str]:
    """`a` and `b` to 2 decimals, or to 3 where 2 would show a smaller figure as equal to a larger one
    ("0.45; at least 0.45")."""
    shown = (f"{a:.2f}", f"{b:.2f}")
    return shown if shown[0] != shown[1] or a == b else (f"{a:.3f}", f"{b:.3f}")


def neighbour_correlation(images_u8: torch.Tensor, max_pixels: int = 1 << 24) -> torch.Tensor:
    """The lag-1 spatial autocorrelation [N] (float32, -1 to 1) of each image's grey levels (the sum of R,
    G and B): the Pearson correlation of every pixel with its right neighbour and, apart, with the one
    below, the larger of the two (stripes, blinds and lines of text are alike along one direction and
    alternate across it: pooled, the two cancelled to about 0), for uint8 images [N, 3, S, S] on any device.
    About 0.6-1 for photos and textures at 64 px and up, 0 for uniform noise made at that size, about 0.27
    for noise shrunk from a larger picture and 0.45-0.5 for noise enlarged from 24 to 32 px; 1 for a flat
    image (no variance: every neighbour alike).
    Computed on at most `max_pixels` grey pixels at a time (float32: 64 MB)."""
    out = []
    chunk = max(1, max_pixels // max(1, images_u8.shape[-1] * images_u8.shape[-2]))
    for i in range(0, len(images_u8), chunk):
        grey = images_u8[i:i + chunk].cpu().sum(1, dtype=torch.int16).float()  # [n, S, S]
        best = torch.full((len(grey),), -1.0)
        for a, b in ((grey[:, :, 1:], grey[:, :, :-1]), (grey[:, 1:, :], grey[:, :-1, :])):
            a, b = a - a.mean((1, 2), keepdim=True), b - b.mean((1, 2), keepdim=True)
            var = ((a * a).sum((1, 2)) * (b * b).sum((1, 2))).sqrt()
            corr = torch.where(var > 0, (a * b).sum((1, 2)) / var.clamp_min(1e-12), torch.ones_like(var))
            best = torch.maximum(best, corr)
        out.append(best)
    return torch.cat(out) if out else torch.zeros(0)


def pixel_key(image_u8: torch.Tensor) -> str:
    """A digest of one decoded image's pixels (uint8 [3, S, S]; hashlib's BLAKE2b, 128 bits): equal
    for the same file decoded at the same size, so a user's image is found among a run's own."""
    import hashlib

    return hashlib.blake2b(image_u8.contiguous().cpu().numpy().tobytes(), digest_size=16).hexdigest()


# COPY_THUMB (engine.data): the side of the thumbnails a copy is compared on once its hash is close
# (`engine.data.thumbnails_close`).


_DCT_8X32 = torch.cos(math.pi * (2 * torch.arange(32, dtype=torch.float64)[None] + 1)
                      * torch.arange(8, dtype=torch.float64)[:, None] / 64)  # [8, 32]: DCT-II's 8 lowest rows
_GREY = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)  # ITU-R 601, as PIL's "L" mode


def copy_keys(images_u8: torch.Tensor, chunk: int = 256, fit: str = "crop") -> tuple[np.ndarray, np.ndarray]:
    """(64-bit perceptual hashes uint64 [N], thumbnails float32 [N, 3, COPY_THUMB, COPY_THUMB] (each
    cell's mean, 0-255)) of uint8 images [N, 3, S, S] on any device, `chunk` images at a time. With `fit` "pad"
    (engine.data.fit_square) each is taken of the picture inside its grey bars (engine.data.picture_boxes), images
    with the same bars together: a wide spectrogram fills a quarter of its square, and on the whole square the bars'
    grey outweighed the picture, so a new recording was "a copy of a training image, labelled blackbird".

    The hash is imagehash.phash's (Zauner 2010; what engine.data's near-duplicate groups use): grey
    levels shrunk to 32 x 32, the 8 x 8 lowest frequencies of their 2-D DCT-II, a bit set where a
    coefficient is above their median, the lowest frequency first. Batched in torch with an area
    (box) shrink where imagehash takes one PIL image at a time with a Lanczos one: with imagehash,
    prediction on decoded 64 px images ran at 0.749 of a bare forward pass (target 0.8), with this
    at 0.853 (`benchmarks/results/predict_throughput_amd.txt`); per 64 px image imagehash takes about
    0.23 ms, this about 0.07 ms, and the two hashes of a sample image differ in 2 of 64 bits on
    average (`benchmarks/near_copies.py`)."""
    if fit == "pad" and len(images_u8):
        hashes_out = np.zeros(len(images_u8), dtype=np.uint64)
        thumbs_out = np.zeros((len(images_u8), 3, COPY_THUMB, COPY_THUMB), dtype=np.float32)
        groups: dict[tuple[int, int, int, int], list[int]] = {}
        for n, box in enumerate(picture_boxes(images_u8)):
            groups.setdefault(box, []).append(n)
        for (top, bottom, left, right), rows in groups.items():
            hashes_out[rows], thumbs_out[rows] = copy_keys(images_u8[rows][:, :, top:bottom, left:right], chunk)
        return hashes_out, thumbs_out
    hashes, thumbs = [], []
    for i in range(0, len(images_u8), chunk):
        small = F.adaptive_avg_pool2d(images_u8[i:i + chunk].cpu().float(), 32)  # one pass over the full image
        grey = torch.einsum("nchw,c->nhw", small.double(), _GREY)
        coeffs = (_DCT_8X32 @ grey @ _DCT_8X32.T).flatten(1)  # [n, 64], float64: a flat picture's are ~1e-12
        bits = (coeffs > coeffs.median(1, keepdim=True).values + 1e-6).numpy().astype(np.uint8)
        hashes.append(np.frombuffer(np.packbits(bits, axis=1).tobytes(), dtype=">u8").astype(np.uint64))
        thumbs.append(F.adaptive_avg_pool2d(small, COPY_THUMB).numpy())  # as from the image when its size is a multiple or divisor of 32
    return (np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64),
            np.concatenate(thumbs) if thumbs else np.zeros((0, 3, COPY_THUMB, COPY_THUMB), dtype=np.float32))


# A new picture close to more than LOOKALIKE_FILES of the run's images, or any picture of a run whose images hold such
# a crowd of look-alikes (a fixed camera's parts, a camera trap's frames), is called one of the run's images only where
# its pixels are the same (engine.data.SAME_PIXELS_THUMB_DIFF; engine.data.split_crowds). The
# crowd is counted up to this many hash bits away (close colours and thumbnails too): at the run's size a fixed
# camera's parts lie 6-10 bits apart, and a new part's picture matched 8 of them at 6.
LOOKALIKE_BITS = 2 * PHASH_MAX_DISTANCE
CROWD_SAMPLE = 256  # the run's images `NearCopies.has_crowds` looks at (each compared with all: 256 x M bit counts)


def unknown_folder_words(folder: str, classes: Sequence[str]) -> str:
    """A folder of new images not named after any of `classes`, with the class it may mean: "fox (perhaps 'Red
    fox')" where a class's name holds the folder's as a word, or is close to it in spelling (difflib, case
    ignored); the folder's name alone otherwise. An ecologist's card folder "fox" beside the class "Red fox" counted
    for no accuracy, with no word of which class it meant."""
    import difflib

    low = {c.lower(): c for c in classes}
    words = [c for c in classes if folder.lower() in c.lower().replace("_", " ").replace("-", " ").split()]
    close = words or [low[m] for m in difflib.get_close_matches(folder.lower(), list(low), n=1, cutoff=0.6)]
    return f"{folder} (perhaps '{close[0]}')" if close else folder


@dataclass
class NearCopies:
    """The run's images by perceptual hash, to recognise a resized or re-saved copy of one of them: a
    hash at most PHASH_MAX_DISTANCE bits away and mean colours at most MAX_COLOUR_DIFF apart on every
    channel (0-255), and close thumbnails (`copy_keys`; `engine.data.thumbnails_close`): the rule of
    engine.data's near-duplicate groups; among a crowd of look-alikes, or in a run that holds one, only the same
    pixels (`has_crowds`).
    Measured by `benchmarks/near_copies.py` on the sample
    and on scikit-learn's digits (README, "Copies of the run's own images")."""

    hashes: np.ndarray  # uint64 [M]
    thumbs: np.ndarray  # float16 [M, 3, COPY_THUMB, COPY_THUMB] (384 bytes per image; steps of 1/8 at 255)
    splits: list[str]  # [M]: "training", "validation" or "test"
    labels: list[str | None] | None = None  # [M]: each image's class name in the run's data (None: not known)
    fit: str = "crop"  # the run's data.fit: with "pad", keys of the picture inside its grey bars (`copy_keys`)
    crowded: dict[int, bool] = field(default_factory=dict, repr=False, compare=False)  # `in_crowd`'s answers

    def _close(self, hash_: int, thumb: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The run's images within `bits` hash bits of `hash_` whose colours and thumbnails are close to `thumb`
        (float [3, COPY_THUMB, COPY_THUMB]): (their indices, their hash distances, their mean thumbnail
        differences)."""
        distance = popcount64(np.uint64(hash_) ^ self.hashes)
        near = np.flatnonzero(distance <= bits)
        near = near[(np.abs(self.colours[near] - thumb.mean((1, 2))) <= MAX_COLOUR_DIFF).all(-1)]
        own = self.thumbs[near].astype(np.float32)
        close = thumbnails_close(own, np.broadcast_to(thumb, own.shape))
        near = near[close]
        return near, distance[near], np.abs(own[close] - thumb).mean((1, 2, 3))

    @cached_property
    def has_crowds(self) -> bool:
        """Whether the run's images hold a crowd of look-alikes (`in_crowd`), judged on up to CROWD_SAMPLE of them
        spread evenly (a crowd is more than LOOKALIKE_FILES pictures): then any match must have the same pixels, as
        a camera trap's new frame matched an earlier frame of the same clearing, and was "labelled deer: right"."""
        step = max(1, len(self.hashes) // CROWD_SAMPLE)
        return any(self.in_crowd(j) for j in range(0, len(self.hashes), step))

    def in_crowd(self, j: int) -> bool:
        """Whether the run's image `j` has more than LOOKALIKE_FILES look-alikes among the run's images (within
        LOOKALIKE_BITS), computed once per image."""
        if j not in self.crowded:
            others = self._close(int(self.hashes[j]), self.thumbs[j].astype(np.float32), LOOKALIKE_BITS)[0]
            self.crowded[j] = len(others) - 1 > LOOKALIKE_FILES
        return self.crowded[j]

    @cached_property
    def colours(self) -> np.ndarray:
        """float32 [M, 3]: each image's mean colour (0-255), from its thumbnail (computed once)."""
        return self.thumbs.astype(np.float32).mean((2, 3))

    @classmethod
    def of(cls, parts: list[tuple[str, torch.Tensor]], labels: list[list[str]] | None = None,
           fit: str = "crop") -> "NearCopies":
        """From (split name, uint8 images [N, 3, S, S]) pairs; `labels`: per pair, each image's class name; `fit`:
        the run's data.fit."""
        keys = [copy_keys(images, fit=fit) for _, images in parts]
        return cls(np.concatenate([h for h, _ in keys]) if keys else np.zeros(0, dtype=np.uint64),
                   (np.concatenate([t for _, t in keys]) if keys else np.zeros((0, 3, COPY_THUMB, COPY_THUMB))
                    ).astype(np.float16),
                   [name for name, images in parts for _ in range(len(images))],
                   [label for part in labels for label in part] if labels is not None else None, fit)

    def find(self, images_u8: torch.Tensor) -> list[str | None]:
        """For uint8 images [N, 3, S, S] at the run's size: the split of the run's image each is a copy
        of, or None. "training" when any training image matches (as for the same pixels: an answer on
        a picture the model was fitted on is never a test), else the closest thumbnail's split."""
        return [split for split, _ in self.find_labelled(images_u8)]

    def find_labelled(self, images_u8: torch.Tensor) -> list[tuple[str | None, str | None]]:
        """`find`'s split with the class name of the matched image (the closest training image's when any
        training image matches; None without `labels`): (None, None) for an image that is no copy."""
        if not len(self.splits) or not len(images_u8):
            return [(None, None)] * len(images_u8)
        hashes, thumbs = copy_keys(images_u8, fit=self.fit)
        out: list[str | None] = []
        for n in range(len(hashes)):
            near, bits, diff = self._close(int(hashes[n]), thumbs[n], LOOKALIKE_BITS)  # few, if any, outside a crowd
            if len(near):  # a new picture usually matches nothing: the run's crowds are looked for only when it does
                # one of a crowd of look-alikes (a fixed camera's): a copy only where the pixels are its own
                crowd = len(near) > LOOKALIKE_FILES or self.has_crowds
                keep = diff <= SAME_PIXELS_THUMB_DIFF if crowd else bits <= PHASH_MAX_DISTANCE
                near, diff = near[keep], diff[keep]
            if not len(near):
                out.append((None, None))
                continue
            training = np.array([self.splits[j] == "training" for j in near])
            if training.any():  # the closest of the training images that match
                near, diff = near[training], diff[training]
            j = int(near[diff.argmin()])
            out.append((self.splits[j], self.labels[j] if self.labels is not None else None))
        return out


FEATURES_CACHE = "feature_cache"  # in a run's folder: each model's `FeatureStats`, measured once
FEATURES_CACHE_KEEP = 6  # models' files kept there, the most recently used (4-5 MB each for ResNet-18)
# part of every key: raise it when what `feature_stats` measures changes in a way a kept file cannot take in (a new
# figure read as missing, such as `edge_min`, is added to a kept file instead: run_feature_stats)
FEATURES_CACHE_VERSION = 2


def feature_stats(predictor: Predictor, data) -> FeatureStats | None:
    """Where the training images sit (`FeatureStats`), from a run's `DataSplits`: the training images'
    `image_features` (at most `BANK_MAX`, a fixed random subset of more), the bar (`conformal_bar` of
    the held-out images' `knn_distance`; math.inf under `far_minimum()` of them), the largest
    `flat_share` and the lowest `neighbour_correlation`, `grey_spread` and `edge_step` of a training image, the
    split and class of every image of the run by `pixel_key` and by perceptual hash (`NearCopies`). None when the
    training split is empty.
    A forward pass over up to BANK_MAX + every held-out image: `run_feature_stats` keeps the result."""
    if data is None or len(data.train) == 0:
        return None
    train = data.train.images
    if len(train) > BANK_MAX:
        train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:BANK_MAX]]
    parts = (("test", data.test), ("validation", data.val), ("training", data.train))  # training last: it wins
    named = [(name, part, [data.classes[int(y)] for y in part.labels]) for name, part in parts]
    keyed = [(pixel_key(img), name, label) for name, part, labels in named for img, label in zip(part.images, labels)]
    splits, labels = {k: name for k, name, _ in keyed}, {k: label for k, _, label in keyed}  # each image hashed once
    copies = NearCopies.of([(name, part.images) for name, part, _ in named[::-1]], [lab for *_, lab in named[::-1]],
                           predictor.fit)
    held_out = torch.cat([data.val.images, data.test.images])
    reference = f"{len(held_out)} validation and test images"  # never the training images: memorised, too close
    bank, dist = _bank_and_distances(predictor, train, held_out)
    flat, correlation, spread, edge = picture_checks(data.train.images, predictor.fit)
    return FeatureStats(bank, conformal_bar(dist), reference, max(flat), splits, copies, labels, min(correlation),
                        min(spread), edge_min=min(edge))


def _bank_and_distances(predictor: Predictor, train: torch.Tensor,
                        held_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(`image_features` [M, D] of the training images `train`, `knn_distance` [N] of the `held_out` images to
    them), both float32 on the CPU, in batches of 256 forward passes."""
    def features(images: torch.Tensor) -> torch.Tensor:
        with predictor.lock:
            chunks = [predictor.forward(images[i:i + 256])[1] for i in range(0, len(images), 256)]
        return torch.cat(chunks) if chunks else torch.zeros(0, 1)

    bank = features(train)
    dist = torch.cat([knn_distance(features(held_out[i:i + 1024]), bank) for i in range(0, len(held_out), 1024)]
                     ) if len(held_out) else torch.zeros(0)
    return bank, dist


def run_feature_stats(predictor: Predictor, cfg: RunConfig, datasets_dir: Path | None,
                      cache_dir: Path | None) -> tuple[FeatureStats | None, str | None]:
    """`feature_stats` of the run's data (`cfg`, decoded under `datasets_dir`) for `predictor`'s model, read from
    `cache_dir` (the run's `FEATURES_CACHE` folder) when a file there has its `stats_key`, else measured and
    written there, so that a new process (a one-image `predict`, a restarted dashboard) neither decodes the
    dataset nor runs it through the network again. Returns (the stats, a note), the note (`gone_note`) naming the
    run's dataset when it is gone (moved, renamed, deleted): the stats are then those kept from when this model
    last read it, or None; (None, None) without `datasets_dir`. A damaged or other model's file is measured
    again; a folder that cannot be written (another user's run, a read-only disk) only goes uncached."""
    if datasets_dir is None:
        return None, None
    path = None if cache_dir is None else Path(cache_dir) / _cache_name(predictor)
    model = model_key(predictor, cfg)  # the weights hashed once per load
    fingerprint, missing = data_fingerprint(cfg)
    if fingerprint is None:  # the dataset moved or was deleted: what was measured from it while it was here
        kept = _read_stats(path, model, field="model_key")
        return kept, gone_note(missing, kept)
    key = _data_key(model, fingerprint)
    stats = _read_stats(path, key)
    if stats is not None and stats.edge_min is None:  # kept before edges were measured: only they are, no network
        data = _train_images(cfg, datasets_dir)
        edges = edge_step(data.train.images) if data is not None else torch.zeros(0)
        if len(edges):
            stats = replace(stats, edge_min=float(edges.min()))
            if path is not None:
                _write_stats(path, key, stats, model)
    elif stats is None:
        stats = feature_stats(predictor, _train_images(cfg, datasets_dir))
        if stats is not None and path is not None:
            _write_stats(path, key, stats, model)
    return stats, None


def data_fingerprint(cfg: RunConfig) -> tuple[str | None, str | None]:
    """(engine.data.source_fingerprint of the run's dataset, None), or (None, why it cannot be read, in plain
    words naming the file: "The run's dataset, '/data/shapes.zip', is not there any more ..."). An upload read from
    its extracted copy (its zip gone, engine.paths) has its zip's fingerprint, the first digits of the SHA-256 its
    reference names: the copy holds the zip's files, and what was measured from the zip stays in use. Raises
    nothing."""
    from engine.data import source_fingerprint
    from engine.paths import EXTRACTED_DIGITS, upload_sha
    from engine.run_data import dataset_path

    try:
        path = dataset_path(cfg)
        if not path.exists():
            return None, (f"The run's dataset, '{path}', is not there any more (moved, renamed or deleted; put it back "
                          "there to check against it again).")
        if upload_sha(cfg.data.source) and path.is_dir():
            return upload_sha(cfg.data.source)[:EXTRACTED_DIGITS], None
        return source_fingerprint(path), None
    except (StudioError, OSError) as e:
        return None, str(e) or f"Could not read '{cfg.data.source}'."


def gone_note(missing: str | None, kept: FeatureStats | None) -> str:
    """What the checks of a run whose dataset is gone (`missing`: `data_fingerprint`'s reason) rest on, in plain
    words: the `FeatureStats` `kept` from when the model last read it, or the probability alone."""
    missing = (missing or "The run's dataset could not be read.").rstrip()
    if kept is None:
        return (f"{missing} So only the probability was checked: how far an image is from the training images "
                "cannot be measured, and the run's own images are not recognised.")
    when = f" on {kept.measured}" if kept.measured else ""
    return (f"{missing} The checks for unfamiliar images and for the run's own images use what was measured from "
            f"it{when}, kept in the run's folder.")


def weights_digest(model: torch.nn.Module) -> str:
    """BLAKE2b (hashlib, 128 bits, hex) of `model`'s state dict: every parameter's and buffer's name, dtype,
    shape and bytes, in the state dict's order; equal exactly when the weights are."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def stats_key(predictor: Predictor, cfg: RunConfig, fingerprint: str | None = None) -> str | None:
    """What `feature_stats` depends on, as one BLAKE2b digest (hex): `model_key` and the dataset's content
    (`fingerprint`, engine.data.source_fingerprint; read from `cfg` when not given). None when the run's dataset
    cannot be found."""
    fingerprint = fingerprint or data_fingerprint(cfg)[0]
    return None if fingerprint is None else _data_key(model_key(predictor, cfg), fingerprint)


def _data_key(model: str, fingerprint: str) -> str:
    """`stats_key` from its two parts: a `model_key` and a dataset's content fingerprint (BLAKE2b, hex)."""
    import hashlib

    return hashlib.blake2b(f"{model}\0{fingerprint}".encode(), digest_size=16).hexdigest()


def model_key(predictor: Predictor, cfg: RunConfig) -> str:
    """The part of `stats_key` that leaves out the dataset's content, as a BLAKE2b digest (hex): the model
    (`weights_digest`, device type, precision, memory layout, torch's version), the run's data settings and
    seed, and `FEATURES_CACHE_VERSION`, `BANK_MAX`, `KNN_K`. Finds the kept measurement of a dataset that
    has gone since."""
    import hashlib

    first = next((p for p in predictor.model.parameters() if p.dim() == 4), None)
    layout = bool(first is not None and first.is_contiguous(memory_format=torch.channels_last))
    data = asdict(cfg.data)
    if data.get("fit") == "crop":  # the default, as every run before the setting was: their kept measurements stay
        del data["fit"]
    elif data.get("fit") == "pad":  # measured inside the grey bars since (picture_checks, then copy_keys too): older
        data["checks"] = "picture, copies"  # measurements are stale
    data = json.dumps(data, sort_keys=True, default=str)
    h = hashlib.blake2b(digest_size=16)
    for part in (FEATURES_CACHE_VERSION, BANK_MAX, KNN_K, weights_digest(predictor.model), predictor.device.type,
                 predictor.amp_dtype, layout, torch.__version__, data, cfg.seed):
        h.update(f"{part}\0".encode())
    return h.hexdigest()


def _cache_name(predictor: Predictor) -> str:
    alpha = "" if predictor.alpha is None else f"_alpha{float(predictor.alpha):.4f}"
    return f"{predictor.variant}{alpha}.safetensors"


def _read_stats(path: Path | None, key: str, field: str = "key") -> FeatureStats | None:
    """The `FeatureStats` `_write_stats` kept in `path` under `key` (its `field`: "key", or "model_key" for a
    dataset gone since); None when there is none, or it is another key's or unreadable."""
    from engine.checkpoints import load_checkpoint

    if path is None or not path.is_file():
        return None
    try:
        t, m = load_checkpoint(path)
        if m.get(field) != key:
            return None
        copies = NearCopies(t["copy_hashes"].numpy().view(np.uint64), t["copy_thumbs"].numpy(), m["copy_splits"],
                            m["copy_labels"], m.get("copy_fit") or "crop")
        stats = FeatureStats(t["bank"], float(m["far_distance"]), m["reference"], float(m["flat_max"]), m["splits"],
                             copies, m["labels"], float(m["correlation_min"]), float(m["spread_min"]),
                             m.get("measured"), None if m.get("edge_min") is None else float(m["edge_min"]))
    except (StudioError, OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.utime(path)  # recently used: kept when the folder is trimmed
    except OSError:
        pass
    return stats


def _write_stats(path: Path, key: str, stats: FeatureStats, model: str | None = None) -> None:
    """Keep `stats` in `path` under `key` and `model` (`model_key`), with the day it was measured (`stats.measured`,
    else today's), atomically (engine.checkpoints.save_checkpoint), then trim the folder to the
    `FEATURES_CACHE_KEEP` most recently used files; an unwritable folder is left as it is."""
    from engine.checkpoints import save_checkpoint

    c = stats.copies or NearCopies(np.zeros(0, np.uint64), np.zeros((0, 3, COPY_THUMB, COPY_THUMB), np.float16), [])
    tensors = {"bank": stats.bank, "copy_hashes": torch.from_numpy(c.hashes.astype(np.uint64).view(np.int64)),
               "copy_thumbs": torch.from_numpy(np.ascontiguousarray(c.thumbs, dtype=np.float16))}
    meta = {"key": key, "model_key": model, "measured": stats.measured or time.strftime("%d %b %Y").lstrip("0"),
            "far_distance": stats.far_distance, "reference": stats.reference, "flat_max": stats.flat_max,
            "correlation_min": stats.correlation_min, "spread_min": stats.spread_min, "edge_min": stats.edge_min,
            "splits": stats.splits, "labels": stats.labels, "copy_splits": c.splits, "copy_labels": c.labels,
            "copy_fit": c.fit}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, tensors, {}, meta)
        kept = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in kept[FEATURES_CACHE_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def far_minimum(level: float = FAR_QUANTILE) -> int:
    """The fewest held-out images for which `conformal_bar` exists at `level` (19 at 0.95)."""
    return math.ceil(level / (1.0 - level) - 1e-9)


def conformal_bar(dist: torch.Tensor, level: float = FAR_QUANTILE) -> float:
    """Split conformal prediction's bar for distances [n] (float): the ceil((n + 1) x level)-th
    smallest, so that a new image drawn like them exceeds it with probability at most 1 - level;
    math.inf when n is too small for one (ceil((n + 1) x level) > n)."""
    n = len(dist)
    k = math.ceil((n + 1) * level - 1e-9)
    if n == 0 or k > n:
        return math.inf
    return float(torch.sort(dist.float()).values[k - 1])


def resolve_device(cfg: RunConfig, device: str | None = None) -> torch.device:
    """The device to predict on: `device` when given, else the run's own (`train.device`), falling back
    to the CPU when the run trained on a GPU this machine does not have."""
    name = device or cfg.train.device
    try:
        return pick_device(name, distributed=False)
    except StudioError:
        if device:  # asked for explicitly: say so
            raise
        return torch.device("cpu")


_PREDICTORS: "OrderedDict[tuple, Predictor]" = OrderedDict()
_PREDICTORS_LOCK = threading.Lock()


def load_predictor(run_dir: Path, variant: str = "fine_tuned", alpha: float | None = None,
                   datasets_dir: Path | None = None, device: str | None = None, keep: int = 4) -> Predictor:
    """A `Predictor` for one variant of a run, from a small LRU (a page rerun reloads nothing; a run whose summary
    changed since, a stopped run continued, is loaded again: engine.runs.summary_stamp).

    With `datasets_dir`, the run's dataset is read (decode cache) to set up the "far from the
    training data" flag; without it, or when the dataset is gone, only the probability check runs.
    """
    if variant == "wise" and alpha is None:
        alpha = chosen_alpha(run_summary(Path(run_dir)))
    key = (str(Path(run_dir).resolve()), variant, None if alpha is None else round(float(alpha), 4),
           str(datasets_dir), device, summary_stamp(Path(run_dir)))  # a stopped run continued since: loaded again
    with _PREDICTORS_LOCK:
        if key in _PREDICTORS:
            _PREDICTORS.move_to_end(key)
            return _PREDICTORS[key]
    model, cfg, classes = load_variant(Path(run_dir), variant, alpha, datasets_dir)
    try:
        summary = run_summary(Path(run_dir), stopped_ok=variant == "best")
    except (StudioError, OSError, ValueError):
        summary = {}
    predictor = Predictor(model, cfg, classes, variant, alpha if variant == "wise" else None,
                          resolve_device(cfg, device), summary=summary)
    predictor.stats, predictor.stats_note = run_feature_stats(predictor, cfg, datasets_dir,
                                                              Path(run_dir) / FEATURES_CACHE)
    with _PREDICTORS_LOCK:
        _PREDICTORS[key] = predictor
        while len(_PREDICTORS) > keep:
            _PREDICTORS.popitem(last=False)
    return predictor


# ---- images from users -------------------------------------------------------------------------

_EXIF_ORIENTATION = {2: "mirrored", 3: "turned 180°", 4: "flipped upside down", 5: "mirrored and turned 90°",
                     6: "turned 90° clockwise", 7: "mirrored and turned 90°", 8: "turned 90° anticlockwise"}


def crop_place(width: int, height: int, crop_at: float) -> str:
    """Where the square `decode_image` keeps sits in an upright width x height picture (pixels), in a word:
    "centre" at `crop_at` 0.5 (training's crop), else "left" / "right" (0 / 1) in a landscape picture and "top" /
    "bottom" in a portrait one; "centre" for a square picture, which is kept whole."""
    if width == height or crop_at == 0.5:
        return "centre"
    ends = ("left", "right") if width > height else ("top", "bottom")
    return ends[0] if crop_at < 0.5 else ends[1]


CROP_AT = {"left": 0.0, "top": 0.0, "centre": 0.5, "right": 1.0, "bottom": 1.0}  # crop_place's words back to crop_at


def upright_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels of an image's bytes as the model sees it, upright (its EXIF orientation applied);
    None for bytes that are not a readable image. A JPEG's header is read; Pillow decodes a PNG to find its EXIF."""
    try:
        with open_image(data) as img:
            w, h = img.width, img.height
            turned = exif_turned(img)  # the rule decoding uses for the dataset's picture shapes
    except Exception:
        return None
    return (h, w) if turned else (w, h)


SCALE_APART = 3.0  # a new picture's shorter side this many times the training pictures' (or a third): said


def scale_words(dims: tuple[int, int] | None, shape: dict | None) -> str | None:
    """For a new picture of `dims` (upright (width, height), pixels) and the run's training pictures' typical shape
    (`shape`: engine.data.picture_shape's dict, the data report's "picture_shape"): where its shorter side is
    SCALE_APART times theirs or more, or that much smaller, that it is a picture of another size, and what that
    means if it also shows its subject at another scale (another magnification, distance or zoom); None otherwise
    or where either is unknown. A geology instructor's 4096 x 3072 TIFF beside 640 x 480 training pictures got a
    wrong answer with only the generic "unfamiliar" flag; to a microscopist the size meant another magnification."""
    ratio = scale_ratio(dims, shape)
    if ratio is None or 1 / SCALE_APART < ratio < SCALE_APART:
        return None
    how = f"about {ratio:.0f} times as large as" if ratio >= SCALE_APART else f"about 1/{1 / ratio:.0f} the size of"
    return (f"This picture is {dims[0]} x {dims[1]} pixels, {how} the training pictures (typically {shape['long']} x "
            f"{shape['short']}). Every picture is shrunk to the same size, so if it also shows its subject larger or "
            "smaller than they do (another magnification, distance or zoom), the model sees details at a scale it did "
            "not learn.")


def scale_ratio(dims: tuple[int, int] | list[int] | None, shape: dict | None) -> float | None:
    """A new picture's shorter side (`dims`: upright (width, height), pixels) over the training pictures' typical
    one (`shape`: engine.data.picture_shape's dict); None where either is unknown."""
    short, long = int((shape or {}).get("short") or 0), int((shape or {}).get("long") or 0)
    if not dims or not short or not long or min(dims) <= 0:
        return None
    return min(dims) / short


def batch_scale_words(rows: list[dict], names: list[str], shape: dict | None) -> str | None:
    """For a batch's answered rows (each with its picture's "size", as `predict_folder` reads it) and `names` (the
    user's names for their files, one per row): how many pictures are SCALE_APART times larger or smaller than the
    training pictures (`shape`: engine.data.picture_shape's dict), naming a few, and what that means if their
    subject is at another scale too (`scale_words`, for a batch: Try it's zip table); None when none is, or either
    size is unknown (a result kept from before sizes were read)."""
    ratios = [scale_ratio(r.get("size"), shape) for r in rows]
    apart = [(name, x) for name, x in zip(names, ratios) if x is not None and not 1 / SCALE_APART < x < SCALE_APART]
    if not apart:
        return None
    named = first_and_more([f"{name} ({f'{x:.0f} times as large' if x >= 1 else f'1/{1 / x:.0f} the size'})"
                            for name, x in apart], 3)
    return (f"Of your {len(rows)} pictures, {len(apart)} {'is' if len(apart) == 1 else 'are'} {SCALE_APART:g} or more "
            f"times larger or smaller than the training pictures (typically {shape['long']} x {shape['short']}), by "
            f"the shorter side: {named}. Every picture is shrunk to the same size, so where one also shows its subject "
            "larger or smaller than they do (another magnification, distance or zoom), the model sees details at a "
            "scale it did not learn.")


FIRST_PAGE_START = "page 1 of its "  # how `first_page_words` begins: Try it finds that note among the decoding's


def first_page_words(pages: int) -> str:
    """That only the first of a file's `pages` pictures (pages, frames) is answered, and how to try another: Try it's
    "What was done to the image", a batch's CSV note and `predict`'s line under the file's answer."""
    return (f"{FIRST_PAGE_START}{pages} used (the model answers one picture; save another page as a file of its own "
            "to try it)")


def describe_decoding(path: Path, size: int, crop_at: float = 0.5, fit: str = "crop") -> list[str]:
    """What `decode_image` does to this file, in plain words (format, EXIF rotation, colour mode,
    the square kept (`crop_place` of `crop_at`) or, with `fit` "pad", the whole picture padded, with "stretch" the
    whole picture stretched, resize). Reads the header only; an unreadable file gets an empty list."""
    from PIL import Image

    try:
        with open_image(Path(path).read_bytes()) as img:  # a 200 MP phone photo too
            w, h, mode, fmt = img.width, img.height, img.mode, img.format
            orientation = img.getexif().get(0x0112, 1)
            transparent = img.has_transparency_data
            pages = max(1, int(getattr(img, "n_frames", 1))) if fmt in MULTI_PAGE_FORMATS else 1  # not MPO
    except Exception:
        return []
    notes = [f"{fmt} image, {w} x {h} pixels, colour mode {mode}"]
    if pages > 1:  # a 3-page TIFF (crossed and plane polarised light) was described as one picture
        notes.append(first_page_words(pages))
    if orientation in _EXIF_ORIENTATION:
        notes.append(f"{_EXIF_ORIENTATION[orientation]} upright, as its EXIF orientation tag says")
        if orientation in (5, 6, 7, 8):
            w, h = h, w
    if mode != "RGB":
        what = "transparent pixels put on white, " if transparent else ""
        notes.append(f"converted from {mode} to RGB ({what}as in training)")
    side = min(w, h)
    if fit == "pad":  # engine.data.fit_square's rounding: a near-square picture may fill the square
        filled = fitted_size(w, h, size) == (size, size)
        bars = "" if filled else f", grey bars {'left and right' if h > w else 'above and below'}"
        notes.append(f"the whole picture kept, resized to fit {size} x {size} pixels (bilinear){bars}: as in the "
                     "run's training")
        return notes
    if fit == "stretch" and max(w, h) > 1.05 * side:  # a near-square picture is stretched no more than it is cropped
        longer, shorter = ("width", "height") if w > h else ("height", "width")
        notes.append(f"the whole picture kept, stretched to {size} x {size} pixels (bilinear; its {longer} squeezed "
                     f"{max(w, h) / side:.1f}x more than its {shorter}): as in the run's training")
        return notes
    if w != h:
        place = crop_place(w, h, crop_at)
        notes.append(f"{place} square of {side} x {side} kept (the model sees squares"
                     + ("; training used the centre square)" if place != "centre" else ")"))
    if side != size:
        notes.append(f"resized to {size} x {size} pixels (bilinear), the run's training size")
    else:
        notes.append(f"already {size} x {size} pixels, the run's training size: not resized")
    return notes


def decode_bytes(data: bytes, name: str, size: int, max_pixels: int = MAX_IMAGE_PIXELS,
                 crop_at: float = 0.5, fit: str = "crop") -> tuple[torch.Tensor, list[str]]:
    """Decode uploaded bytes exactly as training does: (uint8 [3, size, size], what was done); `crop_at` places
    a non-square picture's square along its longer side (engine.data.decode_image; 0.5, the centre, as training);
    `fit`: the run's data.fit ("pad" or "stretch": the whole picture, `crop_at` unused).

    Raises StudioError naming `name` with the plain reason when the bytes are not a readable image.
    """
    suffix = Path(name).suffix.lower()
    if kind := kind_reason(name):  # as the Data page and a zip's table say it, not "unknown format or damaged"
        raise StudioError(f"'{name}' could not be used: {kind}.")
    with tempfile.TemporaryDirectory(prefix="studio-try-") as tmp:
        path = Path(tmp) / f"image{suffix if suffix in IMAGE_EXTENSIONS else '.bin'}"
        path.write_bytes(data)
        try:
            image = decode_image(path, size, max_pixels, crop_at=crop_at, fit=fit)
        except ValueError as err:
            advice = ("Scale it down (a few thousand pixels a side is plenty) and try again" if "too large" in str(err)
                      else "Try a JPEG or PNG photo")
            raise StudioError(f"'{name}' could not be used: {err}. {advice}.") from None
        return image, describe_decoding(path, size, crop_at, fit)


# ---- a folder or a zip of images ------------------------------------------------------------------

def true_labels(rel_paths: Sequence[str], classes: Sequence[str]) -> tuple[list[int | None], list[str]]:
    """The class of each file from its folder, when the folders are the run's classes.

    Looks at the first folder of each path below any wrapper folders that hold every file (a zipped
    `mydata/cats/...`), and one level further when that folder is a split folder of a pre-split
    export (`train/cats/...`, `valid/dogs/...`; engine.data.SPLIT_FOLDER_NAMES) that is not a class
    of the run. Class names match case-insensitively. Returns (label per file or None, folder names
    that are not classes of the run: a page says why a batch gets no accuracy).
    """
    index = {c.lower(): i for i, c in enumerate(classes)}
    folders = [p.split("/")[:-1] for p in rel_paths]
    depth = 0
    while folders:  # wrapper folders: one folder holds every file and is not a class
        tops = {f[depth] for f in folders if len(f) > depth}
        if len(tops) != 1 or not all(len(f) > depth + 1 for f in folders) or next(iter(tops)).lower() in index:
            break
        depth += 1
    labels: list[int | None] = []
    unknown: set[str] = set()
    for f in folders:
        d = depth + (len(f) > depth + 1 and f[depth].lower() in SPLIT_FOLDER_NAMES and f[depth].lower() not in index)
        folder = f[d] if len(f) > d else None
        labels.append(index.get(folder.lower()) if folder is not None else None)
        if folder is not None and folder.lower() not in index:
            unknown.add(folder)
    if len(unknown) == 1 and not any(lab is not None for lab in labels) and all(len(f) == depth + 1 for f in folders):
        return labels, []  # one folder holding every image loose (a zipped "photos/"): a wrapper, not a class
    return labels, sorted(unknown)


@dataclass
class FolderResult:
    """Predictions for a folder: one row per readable image, skipped files with reasons, and
    accuracy when the folders named the classes."""

    classes: list[str]
    variant: str
    rows: list[dict] = field(default_factory=list)  # path, file, pages, size, true, top, low_confidence, reason,
    # distance, why, own, own_copy, own_class, greyscale, unfamiliar, unsure
    skipped: list[SkippedFile] = field(default_factory=list)
    unknown_folders: list[str] = field(default_factory=list)
    seconds: float = 0.0
    thumbs: list[np.ndarray] = field(default_factory=list)  # per row, when asked: uint8 [T, T, 3], what the model saw

    @property
    def images_per_sec(self) -> float:
        """Images answered per second of wall time (0.0 before any time was measured)."""
        return len(self.rows) / self.seconds if self.seconds > 0 else 0.0

    def flag_words(self) -> str:
        """How many answers are flagged, and why, in a few words, after "answers flagged: ": "3 (1 unfamiliar,
        3 unsure; 1 both)", "2 (2 unsure)", or "none". An archivist read "1 unfamiliar, 3 unsure" as 4 pictures of
        the 3 flagged."""
        unfamiliar = sum(bool(r.get("unfamiliar")) for r in self.rows)
        unsure = sum(bool(r.get("unsure")) for r in self.rows)
        both = sum(bool(r.get("unfamiliar")) and bool(r.get("unsure")) for r in self.rows)
        if not unfamiliar + unsure:
            return "none"
        parts = [f"{unfamiliar} unfamiliar"] * bool(unfamiliar) + [f"{unsure} unsure"] * bool(unsure)
        return f"{unfamiliar + unsure - both} ({', '.join(parts)}" + (f"; {both} both)" if both else ")")

    def own_note(self) -> str | None:
        """`own_images_note` for these images: how many are the run's own, in plain words (about the
        accuracy when the folders give one, else about the answers)."""
        return own_images_note([r.get("own") for r in self.rows], [bool(r.get("own_copy")) for r in self.rows],
                               accuracy=self.metrics() is not None, labels=[r.get("own_class") for r in self.rows],
                               answers=[r["top"][0][0] for r in self.rows])

    def metrics(self, without_training: bool = False) -> dict | None:
        """{accuracy, balanced_accuracy, confusion [C x C] (rows true, columns predicted), labelled}
        over the rows with a known class (`without_training`: and not one of the run's training
        images), or None when there are none."""
        labelled = [r for r in self.rows if r["true"] is not None
                    and not (without_training and r.get("own") == "training")]
        if not labelled:
            return None
        idx = {c: i for i, c in enumerate(self.classes)}
        n = len(self.classes)
        cm = [[0] * n for _ in range(n)]
        for r in labelled:
            cm[idx[r["true"]]][idx[r["top"][0][0]]] += 1
        recalls = [cm[i][i] / sum(cm[i]) for i in range(n) if sum(cm[i])]
        return {"accuracy": sum(cm[i][i] for i in range(n)) / len(labelled),
                "balanced_accuracy": sum(recalls) / len(recalls), "confusion": cm, "labelled": len(labelled)}


    def sure_mistakes(self) -> list[dict]:
        """The rows whose folder names a class (`true`) and whose answer is another class given with SURE (90%) or
        more confidence, the surest first: each a wrong answer the model gave as one a user takes at its word (a
        mislabelled picture, or one unlike what it learnt). A labelled batch's single 99% miss had no flag of its
        own: only its row's cross, among the right ones."""
        return sorted(filter(is_sure_mistake, self.rows), key=lambda r: -r["top"][0][1])


def is_sure_mistake(row: dict) -> bool:
    """Whether a `FolderResult` row's folder names a class (`true`) and its answer is another class given with
    engine.chance.SURE (90%) or more confidence."""
    from engine.chance import SURE

    return row["true"] is not None and row["top"][0][0] != row["true"] and row["top"][0][1] >= SURE


SURE_MISTAKES_NAMED = 3  # the sure mistakes named by file; the rest counted


def sure_mistakes_words(rows: list[dict], names: list[str]) -> str | None:
    """`FolderResult.sure_mistakes` (`rows`) in words, with `names` (the user's names for their files, one per row):
    "2 answers were wrong though the model was 90% sure or more: leaf 12.jpg (rust, taken for healthy at 99%), ...
    A wrong answer this sure is worth a look: ..."; None when there are none."""
    from engine.chance import SURE

    if not rows:
        return None
    named = [f"{name} ({row['true']}, taken for {row['top'][0][0]} at {percent(row['top'][0][1])})"
             for name, row in zip(names[:SURE_MISTAKES_NAMED], rows)]
    more = len(rows) - len(named)
    many = "answers were" if len(rows) > 1 else "answer was"
    return (f"{len(rows)} {many} wrong though the model was {100 * SURE:.0f}% sure or more: {', '.join(named)}"
            + (f" and {more} more" if more else "") + ". A wrong answer this sure is worth a look: the picture may "
            "be in the wrong class folder, or show something the training images did not.")


PREDICT_ADVICE = f"Give one image ({IMAGE_WORDS}), a folder of images or a .zip of them."


def is_single_image(source: Path) -> bool:
    """Whether `source` is one image file to predict (an image extension, and not a zip renamed)."""
    source = Path(source)
    return source.is_file() and source.suffix.lower() in IMAGE_EXTENSIONS and not zipfile.is_zipfile(source)


def empty_words(name: str) -> str:
    """What an empty folder or zip `name` (the user's name for it) is told when images are to be answered."""
    return (f"'{name}' is empty (no files, or only hidden or system files). Put the images in it, loose or in "
            "folders named after the classes, and try again.")


def check_source(source: Path, name: str | None = None, advice: str = PREDICT_ADVICE) -> None:
    """Refuse, before any model is loaded, what `predict_folder` cannot read at all: a path that does not
    exist, or a file that is neither an image (by its extension), a zip archive nor a folder. Raises
    StudioError naming it `name` (default its file name), with `advice` on what to give instead; also for an
    empty folder or zip (a new user's empty folder was found empty only after the model had loaded)."""
    source = Path(source)
    if source.is_dir():
        if not any(p.is_file() for p in source.rglob("*")):  # stops at the first file
            raise StudioError(empty_words(name or source.name))
        return
    if is_single_image(source):
        return
    if not source.is_file():
        raise StudioError(f"Could not find '{source}'. Give a folder of images or a .zip of them.")
    if not zipfile.is_zipfile(source):  # the training set's advice (class folders) would mislead here
        kind = kind_reason(source)  # a PDF, a JPEG 2000: said as the Data page says it
        why = f"cannot be used: {kind}" if kind else not_a_zip_reason(
            source, "is not an image this studio reads, a zip archive or a folder")
        raise StudioError(f"'{name or source.name}' {why}. {advice}")
    with zipfile.ZipFile(source) as zf:
        if not any(not info.is_dir() for info in zf.infolist()):
            raise StudioError(empty_words(name or source.name))


def check_sources(sources: Sequence[Path], advice: str = PREDICT_ADVICE) -> None:
    """Refuse what predict_folder cannot answer, before any model is loaded: one source as `check_source`;
    several must each be a file and no zip (`predict --run R *.jpg`), since a folder or zip among them would mix
    two ways of naming rows and labelling them; a file that is no readable image is skipped with its reason when
    answered, as in a folder (a camera export without an extension is read by its content). Raises StudioError
    naming the first path at fault, or for none."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise StudioError("Give the images to answer: a folder or .zip of images, or one or more image files.")
    if len(sources) == 1:
        check_source(sources[0], advice=advice)
        return
    for s in sources:
        if not s.exists():
            raise StudioError(f"Could not find '{s}'.")
        if s.is_dir() or zipfile.is_zipfile(s):
            raise StudioError(f"'{s}' is {'a folder' if s.is_dir() else 'a zip'}, not an image file: give several "
                              "image files, or one folder or .zip of images.")


def _materialise(source: Path, work_dir: Path | None, name: str,
                 advice: str = PREDICT_ADVICE) -> tuple[Path, Path | None]:
    """(folder to read, temporary folder to delete afterwards or None) for a folder or a zip (`name`:
    what the user calls it; `advice`: what to give instead of a file that is neither)."""
    source = Path(source)
    if source.is_dir():
        return source, None
    check_source(source, name, advice)
    base = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir())
    dest = base / f"predict-{uuid.uuid4().hex[:12]}"
    try:
        safe_extract_zip(source, dest, ZipLimits())
    except EmptyArchiveError as exc:  # its advice is for a training set's class folders
        shutil.rmtree(dest, ignore_errors=True)
        raise StudioError(empty_words(name)) from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest, dest


def _decode_or_reason(args: tuple[Path, int, str]) -> tuple[torch.Tensor, tuple[int, int], int] | str:
    """(path, size, fit) decoded as training decodes, with the picture's own upright (width, height) in pixels and
    its page count (engine.data.decode_with_header), or why it could not be."""
    if kind := kind_reason(args[0]):  # a PDF among the files given: said as everywhere else
        return kind
    try:
        return decode_with_header(args[0], args[1], fit=args[2])
    except ValueError as err:
        return str(err)


def _decoded_batches(items: list[tuple[str, Path]], size: int, batch_size: int, skipped: list[SkippedFile],
                     overlap: bool, fit: str = "crop") -> Iterator[tuple[list[int], torch.Tensor, int, list]]:
    """(item indices, uint8 batch, files consumed so far, each picture's (upright (width, height) in pixels, page
    count)); unreadable files go to `skipped`.

    With `overlap` (a GPU does the model's work), decoding threads run up to four batches ahead
    while the model works on the previous batch (PIL releases the GIL). Without it (the model runs
    on the CPU), each batch is decoded by all threads and then handed over, so decoding never
    competes with torch's own threads for the cores (on a 2-core machine both ways measured the
    same, 0.71 of a bare forward pass from a zip: benchmarks/predict_throughput.py)."""
    workers = min(8, usable_cpus())  # a container's quota counted
    ahead = batch_size * 4
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict-decode") as pool:
        if not overlap:
            for start in range(0, len(items), batch_size):
                chunk = items[start:start + batch_size]
                idx, imgs, dims = [], [], []
                for j, result in enumerate(pool.map(_decode_or_reason, [(p, size, fit) for _, p in chunk])):
                    if isinstance(result, str):
                        skipped.append(SkippedFile(chunk[j][0], result))
                    else:
                        idx.append(start + j)
                        imgs.append(result[0])
                        dims.append(result[1:])
                if imgs:
                    yield idx, torch.stack(imgs), start + len(chunk), dims
            return
        pending = [pool.submit(_decode_or_reason, (p, size, fit)) for _, p in items[:ahead]]
        next_i, done = len(pending), 0
        idx: list[int] = []
        imgs: list[torch.Tensor] = []
        dims: list[tuple[tuple[int, int], int]] = []
        while done < len(items):
            result = pending[done].result()
            pending[done] = None  # free the decoded tensor once batched
            if next_i < len(items):
                pending.append(pool.submit(_decode_or_reason, (items[next_i][1], size, fit)))
                next_i += 1
            if isinstance(result, str):
                skipped.append(SkippedFile(items[done][0], result))
            else:
                idx.append(done)
                imgs.append(result[0])
                dims.append(result[1:])
            done += 1
            if len(imgs) == batch_size or (done == len(items) and imgs):
                yield idx, torch.stack(imgs), done, dims
                idx, imgs, dims = [], [], []


def predict_folder(predictor: Predictor, source: Path | Sequence[Path], work_dir: Path | None = None,
                   top_k: int = 3, batch_size: int = DEFAULT_BATCH, progress: ProgressFn | None = None,
                   threshold: float | None = None, name: str | None = None,
                   advice: str = PREDICT_ADVICE, thumbs: int = 0) -> FolderResult:
    """Predict every image in a folder or zip (at any depth), one image file, or a list of image files
    (`predict --run R a.jpg b.png`: each row's path is the file's path as given, and no row has a true
    class). Unreadable files are listed in `skipped` with their reason, never fatal; class folders named
    after the run's classes give each row its true class (see `true_labels`). A zip is extracted safely
    (engine.data's limits) into a temporary folder under `work_dir`, removed afterwards. `progress(done,
    total)` is called after each batch. Raises StudioError when the source is missing, unsafe, empty or
    holds no images, naming it `name` (the user's name for it, e.g. an upload's file name; default its
    own), with `advice` for a file that is no image, zip or folder (the command line's by default), and
    for a list that holds anything but image files (see `check_sources`). `thumbs` > 0: each row also gets the
    model's square (as decoded for it) shrunk to `thumbs` x `thumbs` px (`FolderResult.thumbs`, for a table)."""
    if not isinstance(source, (str, Path)):
        files = [Path(f) for f in source]
        check_sources(files)
        if len(files) > 1:
            return _predict_items(predictor, [(str(f), f) for f in files], [], top_k, batch_size, progress, threshold,
                                  thumbs=thumbs)
        source = files[0]  # one: a folder, zip or image, as given alone
    source = Path(source)
    name = name or source.name
    single = is_single_image(source)
    root, temporary = (source.parent, None) if single else _materialise(source, work_dir, name, advice)
    try:
        items, skipped = ([(source.name, source)], []) if single else image_files(root)
        if not items:
            listed = f" ({len(skipped)} other files: {', '.join(s.path for s in skipped[:3])})" if skipped else ""
            raise StudioError(f"'{name}' holds no image files ({IMAGE_WORDS}){listed}.")
        return _predict_items(predictor, items, skipped, top_k, batch_size, progress, threshold, not single, thumbs)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _predict_items(predictor: Predictor, items: list[tuple[str, Path]], skipped: list, top_k: int, batch_size: int,
                   progress: ProgressFn | None, threshold: float | None, labelled: bool = False,
                   thumbs: int = 0) -> FolderResult:
    """predict_folder's answers for `items` ((shown path, file) pairs), with `skipped` (the files already found
    unreadable) kept; rows get a true class from their folders when `labelled` (see `true_labels`), and a
    `thumbs` px thumbnail when `thumbs` > 0."""
    labels, unknown = (true_labels([rel for rel, _ in items], predictor.classes) if labelled
                       else ([None] * len(items), []))
    result = FolderResult(list(predictor.classes), predictor.label, skipped=skipped, unknown_folders=unknown)
    t0 = time.perf_counter()
    overlap = predictor.device.type != "cpu"
    for idx, batch, done, dims in _decoded_batches(items, predictor.image_size, batch_size, result.skipped, overlap,
                                                   predictor.fit):
        answers = predictor.predict(batch, top_k, batch_size, threshold)
        grey = is_greyscale(batch).tolist()  # for the run's figures on that kind (engine.chance.pictures_kind_words)
        if thumbs > 0:
            result.thumbs += list(thumbnails(batch, thumbs))
        for i, a, g, (wh, pages) in zip(idx, answers, grey, dims):
            true = None if labels[i] is None else predictor.classes[labels[i]]
            result.rows.append({"path": items[i][0], "file": str(items[i][1]),  # the name shown; where it was read
                                "pages": pages,  # an archivist's 2-page letters went unsaid
                                "size": wh,  # its own (width, height), upright: a zip's files are gone once answered
                                "true": true,
                                "top": a.top, "low_confidence": a.low_confidence,
                                "reason": predictor.explanation(a) or "", "distance": a.distance,
                                # the folder's class is in the row (the table's column, the printed path)
                                "why": predictor.short_reason(a, true),
                                "own": a.own, "own_copy": a.own_copy,
                                "own_class": a.own_class, "greyscale": g,
                                "unfamiliar": bool(a.unfamiliar), "unsure": a.unsure})
        if progress is not None:
            progress(done, len(items))
    result.seconds = time.perf_counter() - t0
    result.skipped.sort(key=lambda s: s.path)
    return result


def thumbnails(images_u8: torch.Tensor, side: int) -> np.ndarray:
    """uint8 images [N, 3, S, S] shrunk to [N, side, side, 3] uint8 (bilinear, antialiased; never enlarged)."""
    if images_u8.shape[-1] > side:
        images_u8 = F.interpolate(images_u8.cpu().float(), size=(side, side), mode="bilinear", antialias=True,
                                  align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    return images_u8.cpu().permute(0, 2, 3, 1).contiguous().numpy()


def csv_columns(top_k: int) -> list[str]:
    """Columns of `predict`'s CSV for `top_k` answers per image: path, answered (False for a file that got no answer:
    a spreadsheet filters on it), true_class, class_k and probability_k for k = 1..top_k, then flagged, unsure,
    unfamiliar and note."""
    cols = ["path", "answered", "true_class"]
    for k in range(1, top_k + 1):
        cols += [f"class_{k}", f"probability_{k}"]
    return cols + ["flagged", "unsure", "unfamiliar", "note"]  # flagged: either (a 99% answer can be unfamiliar)


SKIPPED_NOTE = "not answered: "  # a skipped file's row in the CSV: this, then why (the reason the pages give)


def result_rows(result: FolderResult, top_k: int) -> list[dict]:
    """One flat dict per image with `csv_columns(top_k)` keys (probabilities rounded to 4 places), then one
    per skipped file with its classes, probabilities and flags empty and its reason in `note` (SKIPPED_NOTE
    first), so that every file of a batch has its line. `true_class` is the class its folder names, else its label
    in the run's data when it is one of the run's own images (the note says which), else empty. Raises nothing."""
    out = []
    for r in result.rows:
        row = {"path": r["path"], "answered": True, "true_class": r["true"] or r.get("own_class") or ""}
        for k in range(top_k):
            name, p = r["top"][k] if k < len(r["top"]) else ("", None)
            row[f"class_{k + 1}"], row[f"probability_{k + 1}"] = name, "" if p is None else round(p, 4)
        pages = first_page_words(r["pages"]) if r.get("pages", 1) > 1 else ""
        row["flagged"], row["note"] = r["low_confidence"], "; ".join(w for w in (r["reason"], pages) if w)
        row["unsure"], row["unfamiliar"] = r.get("unsure", False), r.get("unfamiliar", False)
        out.append(row)
    blank = dict.fromkeys(csv_columns(top_k), "")
    out += [{**blank, "path": s.path, "answered": False, "note": SKIPPED_NOTE + s.reason} for s in result.skipped]
    return out


def write_csv(result: FolderResult, path: Path, top_k: int) -> Path:
    """The predictions as CSV (UTF-8 after a byte-order mark, as Try it's download: Excel reads a CSV without one in
    the computer's legacy code page, "Ã©tÃ©" for "été"; pandas and csv with encoding="utf-8-sig" read past it):
    path, answered, true_class, class_1, probability_1, ..., flagged (unsure or unfamiliar: the column read
    "low_confidence" beside a 99% answer flagged as unfamiliar), unsure, unfamiliar, note; a skipped file's line
    says why in `note` (`result_rows`). Raises OSError when `path` cannot be written."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns(top_k))
        writer.writeheader()
        writer.writerows(result_rows(result, top_k))
    return path
