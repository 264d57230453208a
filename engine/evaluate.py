"""Evaluation: one `evaluate(model, sets)` for every place that measures a model.

The training loop (each epoch), the end-of-run evaluation, WiSE-FT's curve over alpha and the
dashboard's alpha slider all call `evaluate` with an `EvalSets`: clean validation (and test at the
end), the corruption suite (ImageNet-C style, engine.corruptions), the user's OOD set, and robust
accuracy under PGD (engine.attacks). What differs between those places is only which sets they
build (`epoch_sets`, `final_sets`), never how a number is computed.

Everything takes uint8 image tensors [N, 3, S, S] (the cached dataset) and a model that takes
float pixels in [0, 1] (the `Classifier` normalises inside).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from engine.attacks import autoattack_accuracy, robust_accuracy
from engine.augment import to_float
from engine.config import RunConfig
from engine.corruptions import CORRUPTIONS, build_ood_suite
from engine.data import DataSplits, ImageSet
from engine.devices import autocast_ctx, eval_layout, is_channels_last
from engine.metrics import imbalance_scores

ALL_SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class EvalResult:
    """One model's answers on one image set: accuracy (fraction), mean cross-entropy (nats), and per image the
    predicted class (int64 [N], CPU), its probability (float [N]) and its cross-entropy (float [N]). A stop can
    leave fewer than the set's images."""

    acc: float
    loss: float
    preds: torch.Tensor  # int64 [N], CPU
    probs_max: torch.Tensor  # confidence of the prediction, [N]
    losses: torch.Tensor  # per-example cross-entropy, [N]

    def per_class_acc(self, labels: torch.Tensor, num_classes: int) -> list[float]:
        """Accuracy (fraction) per class 0..num_classes-1 over the images predicted (the first len(preds)
        of int64 `labels` [N]: a stop cuts predictions short); NaN for a class without images."""
        labels, out = labels[:len(self.preds)], []
        for c in range(num_classes):
            m = labels == c
            out.append(int((self.preds[m] == c).sum()) / int(m.sum()) if m.any() else float("nan"))
        return out


@torch.no_grad()
def head_features(model, images: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    """The inputs of the classification head, float32 [N, D] on the CPU, for uint8 `images` [N, 3, S, S] (eval
    mode, no augmentation; the model's mode is restored): WiSE-FT's linear probe and the head's stability bound
    (engine.optim.head_feature_curvature) read them."""
    feats: list[torch.Tensor] = []
    handle = model.head.register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(images), batch_size):
            model(to_float(images[i:i + batch_size].to(device)))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(feats)


def flip_average(logits: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
    """Flip test-time augmentation: log of the mean of the softmax of `logits` and of `mirrored`
    (the same images mirrored left-right), both float [N, C]. The result is a valid log-probability
    [N, C] float32, so argmax, softmax and cross-entropy read it like logits."""
    both = torch.stack([logits.float().log_softmax(1), mirrored.float().log_softmax(1)])
    return torch.logsumexp(both, 0) - math.log(2.0)


def tta_logits(model: torch.nn.Module, x: torch.Tensor, tta_flip: bool) -> torch.Tensor:
    """`model(x)` for float pixels [N, 3, H, W], or with `tta_flip` the `flip_average` of the image's
    and its mirror's outputs (the image first, so hooks see it before its mirror)."""
    logits = model(x)
    return flip_average(logits, model(x.flip(-1))) if tta_flip else logits


class FlipAverage(torch.nn.Module):
    """`model` with flip TTA built in: float [N, 3, H, W] pixels -> `flip_average` log-probabilities
    [N, C]. What the exports hold when the run used eval.tta_flip (traceable, ONNX-exportable)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits float [B, C] whose softmax is the mean of the model's probabilities for `x` float [B, 3, S, S] and
        for its left-right mirror (flip test-time augmentation)."""
        return tta_logits(self.model, x, True)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
            batch_size: int = 256, amp_dtype: torch.dtype | None = None,
            should_stop: Callable[[], bool] | None = None, tta_flip: bool = False) -> EvalResult:
    """Predictions for uint8 `images` [N, 3, S, S] with int64 `labels` [N]: accuracy (fraction),
    mean cross-entropy (nats), per-image predictions, confidences and losses. `tta_flip`: each image
    averaged with its mirror (`flip_average`)."""
    was_training = model.training
    model.eval()
    layout = torch.channels_last if is_channels_last(model) else torch.contiguous_format  # eval_layout's
    preds, confs, losses = [], [], []  # kept on the device: one copy to the host at the end, not one per batch
    for i in range(0, len(images), batch_size):
        if should_stop is not None and should_stop():
            break
        x = to_float(images[i:i + batch_size].to(device, non_blocking=True)).contiguous(memory_format=layout)
        y = labels[i:i + batch_size].to(device, non_blocking=True)
        with autocast_ctx(device, amp_dtype):
            logits = tta_logits(model, x, tta_flip).float()
        losses.append(F.cross_entropy(logits, y, reduction="none"))
        conf, pred = logits.softmax(1).max(1)
        preds.append(pred)
        confs.append(conf)
    model.train(was_training)
    if not preds:
        empty = torch.zeros(0)
        return EvalResult(float("nan"), float("nan"), empty.long(), empty, empty)
    preds_t, confs_t, losses_t = (torch.cat(t).cpu() for t in (preds, confs, losses))
    n = len(preds_t)
    acc = int((preds_t == labels[:n]).sum()) / n  # exact: a float32 mean read 0.8999999761581421 for 9 of 10
    return EvalResult(acc, float(losses_t.mean()), preds_t, confs_t, losses_t)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Counts [true class][predicted class] (num_classes x num_classes lists of ints) from int64 `labels` [N] and
    `preds` [M <= N] (labels beyond the predictions, cut short by a stop, are left out). Raises nothing for valid
    class indices."""
    idx = labels[: len(preds)] * num_classes + preds
    cm = torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
    return cm.tolist()


# ---- what a model is evaluated on ---------------------------------------------------------------

@dataclass(frozen=True)
class RobustSpec:
    """Robust accuracy under L-inf PGD-`steps` with radius `eps` (pixels in [0, 1]) on `images`
    (uint8 [N, 3, S, S]) with `labels` (int64 [N]); `split` names them for the summary."""

    images: torch.Tensor
    labels: torch.Tensor
    eps: float
    steps: int
    seed: int = 0
    split: str = "val"
    autoattack_classes: int = 0  # > 0: also AutoAttack (when torchattacks is installed)

    @property
    def attack(self) -> str:
        """The attack's name as the pages show it, "PGD-<steps>"."""
        return f"PGD-{self.steps}"


@dataclass(frozen=True)
class EvalSets:
    """The sets one evaluation measures. `ood_suite` maps corruption -> severity -> uint8 images
    whose labels are `ood_labels`; empty dicts and None switch a measurement off."""

    val: ImageSet
    test: ImageSet | None = None
    ood_suite: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    ood_labels: torch.Tensor | None = None
    ood_user: ImageSet | None = None
    robust: RobustSpec | None = None
    imbalanced: bool = False  # also balanced accuracy and macro-F1: plain accuracy flatters the big class
    tta_flip: bool = False  # eval.tta_flip: every clean prediction averaged with the mirror image (not the attack)

    @property
    def ood_images(self) -> int:
        """How many corrupted images the suite holds (all corruptions and severities)."""
        return sum(len(imgs) for by_sev in self.ood_suite.values() for imgs in by_sev.values())


def robust_on(cfg: RunConfig) -> bool:
    """Robust accuracy is measured when asked for, and always when training adversarially."""
    return cfg.eval.robust or "adversarial" in cfg.enabled_methods()


def balanced_subset(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (int64, sorted) of `n` images taking the classes in turn (each class's images in
    split order): a subset whose class mix matches the split's, so its accuracy does not depend on
    which classes the first images happened to be."""
    seen: dict[int, int] = {}
    rank = []  # each image's place among its class's images
    for y in labels.tolist():
        rank.append(seen.get(y, 0))
        seen[y] = rank[-1] + 1
    order = sorted(range(len(rank)), key=lambda i: (rank[i], i))
    return torch.tensor(sorted(order[:n]), dtype=torch.long)


def epoch_sets(cfg: RunConfig, data: DataSplits, ood_user: ImageSet | None = None,
               ood_subset: int | None = None, severity: int | None = None) -> EvalSets:
    """What each epoch (and WiSE-FT's curve) measures: validation, the corruption suite at
    `eval.ood_severity_each_epoch` on a fixed class-balanced subset of `ood_subset` validation
    images (None: `eval.ood_subset_each_epoch`; 0: all), the user's OOD set, and PGD with
    `eval.robust_steps_each_epoch` steps (never more than `eval.robust_steps`) on the first
    `eval.robust_subset` validation images (a fixed subset: the split is in seeded random order).
    `severity` overrides `eval.ood_severity_each_epoch` (0 = no corruption suite)."""
    val = data.val
    suite: dict = {}
    ood_labels = val.labels
    ood_subset = cfg.eval.ood_subset_each_epoch if ood_subset is None else ood_subset
    severity = cfg.eval.ood_severity_each_epoch if severity is None else severity
    if cfg.eval.ood and severity:
        images = val.images
        if ood_subset and ood_subset < len(val):
            idx = balanced_subset(val.labels, ood_subset)
            images, ood_labels = images[idx], val.labels[idx]
        suite = build_ood_suite(images, severities=(severity,), seed=cfg.seed)
    robust = None
    if robust_on(cfg):
        n, steps = cfg.eval.robust_subset, min(cfg.eval.robust_steps_each_epoch, cfg.eval.robust_steps)
        robust = RobustSpec(val.images[:n], val.labels[:n], cfg.eval.robust_eps, steps, cfg.seed)
    return EvalSets(val=val, ood_suite=suite, ood_labels=ood_labels, ood_user=ood_user, robust=robust,
                    imbalanced=bool(data.report.imbalance.get("imbalanced")), tta_flip=cfg.eval.tta_flip)


def epoch_sets_note(sets: EvalSets) -> dict[str, Any]:
    """What the per-epoch figures are measured on, for the summary and the charts' captions:
    ood_images (per corruption), ood_severity, robust_attack (e.g. "PGD-5"), robust_images."""
    note: dict[str, Any] = {}
    if sets.ood_suite:
        by_sev = next(iter(sets.ood_suite.values()))
        note.update(ood_images=len(next(iter(by_sev.values()))), ood_severity=next(iter(by_sev)),
                    ood_corruptions=len(sets.ood_suite))
    if sets.robust is not None:
        note.update(robust_attack=sets.robust.attack, robust_images=len(sets.robust.labels))
    return note


def final_sets(cfg: RunConfig, data: DataSplits, ood_user: ImageSet | None = None) -> EvalSets:
    """What the end of a run measures: validation and test, the full corruption suite (severities
    1-5), the user's OOD set, and PGD (and AutoAttack when asked) on the whole test split (the
    validation split when there is no test split)."""
    test = data.test if len(data.test) else None
    suite = build_ood_suite(data.val.images, severities=ALL_SEVERITIES, seed=cfg.seed) if cfg.eval.ood else {}
    robust = None
    if robust_on(cfg):
        split = test or data.val
        robust = RobustSpec(split.images, split.labels, cfg.eval.robust_eps, cfg.eval.robust_steps, cfg.seed,
                            "test" if test is not None else "val",
                            len(data.classes) if cfg.eval.autoattack else 0)
    return EvalSets(val=data.val, test=test, ood_suite=suite, ood_labels=data.val.labels, ood_user=ood_user,
                    robust=robust, tta_flip=cfg.eval.tta_flip)


# ---- the one evaluation ------------------------------------------------------------------------

def evaluate(model: torch.nn.Module, sets: EvalSets, device: torch.device, batch_size: int = 256,
             amp_dtype: torch.dtype | None = None, should_stop: Callable[[], bool] | None = None,
             classes: list[str] | None = None, on_part: Callable[[str, int, int], None] | None = None
             ) -> dict[str, Any]:
    """Measure `model` on `sets`. Accuracies are fractions in [0, 1]; losses are mean cross-entropy
    in nats. Keys: val_acc, val_loss; test_acc (when sets.test); ood_acc (mean over corruptions, each
    the mean over its severities) and ood/<corruption>; ood_user_acc; robust_acc (+ autoattack_acc).
    With `classes` (the class names), per-class accuracies and confusion matrices for val and test
    too (val_per_class_acc, val_confusion, ..., and the user's OOD set's: ood_user_per_class_acc,
    ood_user_confusion); with `classes` or imbalanced sets, balanced accuracy
    and macro-F1 (val_balanced_acc, val_macro_f1, ...). Measurements a set does not ask for are absent.
    `on_part(what, done, total)` is called after each part (a split, a severity of the corruption
    suite, the attack), for a progress bar. On a CPU where channels_last evaluates faster the model is
    in it meanwhile (engine.devices.eval_layout), and back in its own layout on return."""
    with eval_layout(model, device, amp_dtype, sets.val.images.shape[-1]):
        return _evaluate(model, sets, device, batch_size, amp_dtype, should_stop, classes, on_part)


def _evaluate(model, sets: EvalSets, device, batch_size, amp_dtype, should_stop, classes, on_part) -> dict[str, Any]:
    """`evaluate`'s measurements, the model in the layout it is in."""
    parts = (["validation images"] + (["test images"] if sets.test is not None else [])
             + [f"corrupted images, severity {s}" for s in sorted({s for by in sets.ood_suite.values() for s in by})]
             + (["your OOD set"] if sets.ood_user is not None else [])
             + ([f"attack ({sets.robust.attack})"] if sets.robust is not None else []))
    done = [0]

    def run(images, labels):
        return predict(model, images, labels, device, batch_size, amp_dtype, should_stop, sets.tta_flip)

    def part_done() -> None:
        done[0] += 1
        if on_part is not None:
            on_part(parts[done[0] - 1], done[0], len(parts))

    out: dict[str, Any] = {}
    for split_name, split in (("val", sets.val), ("test", sets.test)):
        if split is None:
            continue
        res = run(split.images, split.labels)
        out[f"{split_name}_acc"], out[f"{split_name}_loss"] = res.acc, res.loss
        if classes is not None or sets.imbalanced:
            scores = imbalance_scores(split.labels[:len(res.preds)], res.preds, len(classes or sets.val.classes))
            out.update({f"{split_name}_{k}": v for k, v in scores.items()})
        if classes is not None:
            out[f"{split_name}_per_class_acc"] = dict(zip(classes, res.per_class_acc(split.labels, len(classes))))
            out[f"{split_name}_confusion"] = confusion_matrix(split.labels, res.preds, len(classes))
            if (by_colour := colour_groups(split, res.preds)) is not None:
                out[f"{split_name}_by_colour"] = by_colour
            right = res.preds == split.labels[:len(res.preds)]
            out[f"{split_name}_confidence"] = confidence_bands(res.probs_max, right)  # how far its confidence holds
        part_done()
    if sets.ood_suite:
        by_c = ood_accuracy(sets, run, after_each=part_done)
        out["ood_acc"] = sum(by_c.values()) / len(by_c)
        out.update({f"ood/{name}": acc for name, acc in by_c.items()})
    if sets.ood_user is not None:
        user = sets.ood_user
        res = run(user.images, user.labels)
        out["ood_user_acc"] = res.acc
        if classes is not None:  # what the user can inspect of their own OOD set: per class, and the mix-ups
            out["ood_user_per_class_acc"] = dict(zip(classes, res.per_class_acc(user.labels, len(classes))))
            out["ood_user_confusion"] = confusion_matrix(user.labels, res.preds, len(classes))
        part_done()
    r = sets.robust
    if r is not None:
        out["robust_acc"] = robust_accuracy(model, r.images, r.labels, device, r.eps, r.steps, batch_size=batch_size,
                                            amp_dtype=amp_dtype, seed=r.seed, should_stop=should_stop)
        if r.autoattack_classes:  # None when torchattacks is not installed
            out["autoattack_acc"] = autoattack_accuracy(model, r.images, r.labels, device, r.eps, r.autoattack_classes)
        part_done()
    return out


CONFIDENCE_BANDS = (0.0, 0.5, 0.7, 0.9)  # lower edges of the bands a run's answers are counted in, by confidence


def confidence_bands(probs_max: torch.Tensor, right: torch.Tensor) -> dict[str, list]:
    """How often the model's answers are right at each confidence (a reliability table, as a reliability diagram
    bins it: Guo et al. 2017, "On Calibration of Modern Neural Networks"): {"from": CONFIDENCE_BANDS (fractions),
    "images": answers per band, "right": the right ones, "confidence": the band's mean confidence (a fraction; NaN
    for an empty band)}, from `probs_max` (float [N], the answer's probability) and `right` (bool [N]). The last band
    runs to 1.0 inclusive."""
    probs, right = probs_max.detach().float().cpu(), right.detach().cpu().bool()
    edges = torch.tensor(list(CONFIDENCE_BANDS) + [2.0], dtype=probs.dtype)  # float32 edges: 0.9 is in the top band
    images, hits, conf = [], [], []
    for lo, hi in zip(edges, edges[1:]):
        m = (probs >= lo) & (probs < hi)
        images.append(int(m.sum()))
        hits.append(int(right[m].sum()))
        conf.append(float(probs[m].mean()) if m.any() else float("nan"))
    return {"from": list(CONFIDENCE_BANDS), "images": images, "right": hits, "confidence": conf}


def colour_groups(split: ImageSet, preds: torch.Tensor) -> dict[str, list[int]] | None:
    """{"greyscale": [right, images], "colour": [right, images], "greyscale_by_class": [[right, images] of each
    class, in the split's class order]} for a split (`ImageSet.greyscale`) and the model's `preds` [n <= N] (int64;
    the images answered), or None unless both kinds are among them: night shots beside day ones, scans beside
    photos, whose accuracies a single figure hides (and the classes the greyscale ones hold: an ecologist's night
    figure held no fox)."""
    n = len(preds)
    grey = split.greyscale()[:n]
    if n == 0 or bool(grey.all()) or not bool(grey.any()):
        return None
    right = preds == split.labels[:n]
    labels = split.labels[:n][grey]
    by_class = [[int(right[grey][labels == k].sum()), int((labels == k).sum())] for k in range(len(split.classes))]
    return {"greyscale": [int(right[grey].sum()), int(grey.sum())],
            "colour": [int(right[~grey].sum()), int((~grey).sum())], "greyscale_by_class": by_class}


def eval_passes(sets: EvalSets) -> float:
    """What one `evaluate` of `sets` costs, in image forward passes: every clean, corrupted and
    user-OOD image once (twice with flip TTA), and each attacked image 2 (steps + 1) times (a forward and a backward per PGD
    step, then the scoring pass). The loop scales its measured evaluation time by this for its ETA."""
    passes = len(sets.val) + (len(sets.test) if sets.test is not None else 0) + sets.ood_images
    passes += len(sets.ood_user) if sets.ood_user is not None else 0
    passes *= 2 if sets.tta_flip else 1  # each clean image and its mirror
    if sets.robust is not None:
        passes += len(sets.robust.labels) * 2 * (sets.robust.steps + 1)
    return float(passes)


def epoch_passes(cfg: RunConfig, data: DataSplits, ood_user: ImageSet | None = None,
                 ood_subset: int | None = None, severity: int | None = None) -> float:
    """`eval_passes` of `epoch_sets` with the same arguments, without corrupting any image (for a time
    estimate made long before the sets are built)."""
    val = len(data.val)
    ood_subset = cfg.eval.ood_subset_each_epoch if ood_subset is None else ood_subset
    severity = cfg.eval.ood_severity_each_epoch if severity is None else severity
    ood = len(CORRUPTIONS) * (min(ood_subset, val) if ood_subset else val) if cfg.eval.ood and severity else 0
    clean = val + ood + (len(ood_user) if ood_user is not None else 0)
    steps = min(cfg.eval.robust_steps_each_epoch, cfg.eval.robust_steps)
    robust = min(cfg.eval.robust_subset, val) * 2 * (steps + 1) if robust_on(cfg) else 0
    return float(clean * (2 if cfg.eval.tta_flip else 1) + robust)


def final_passes(cfg: RunConfig, data: DataSplits, ood_user: ImageSet | None = None) -> float:
    """`eval_passes` of `final_sets` without building them (the full corruption suite is large)."""
    test = len(data.test)
    ood = len(CORRUPTIONS) * len(ALL_SEVERITIES) * len(data.val) if cfg.eval.ood else 0
    robust = (test or len(data.val)) * 2 * (cfg.eval.robust_steps + 1) if robust_on(cfg) else 0
    clean = len(data.val) + test + ood + (len(ood_user) if ood_user is not None else 0)
    return float(clean * (2 if cfg.eval.tta_flip else 1) + robust)


def ood_accuracy(sets: EvalSets, run: Callable[[torch.Tensor, torch.Tensor], EvalResult],
                 after_each: Callable[[], None] | None = None) -> dict[str, float]:
    """{corruption: accuracy averaged over its severities}. All corruptions of one severity go
    through `run` (predict) as one stream of batches: full batches throughout, one pass per
    severity instead of one per corruption and severity; `after_each()` after each severity."""
    labels = sets.ood_labels if sets.ood_labels is not None else sets.val.labels
    names = list(sets.ood_suite)
    severities = sorted({s for by_sev in sets.ood_suite.values() for s in by_sev})
    sums = dict.fromkeys(names, 0.0)
    for sev in severities:
        parts = [(name, sets.ood_suite[name][sev]) for name in names if sev in sets.ood_suite[name]]
        stream_labels = torch.cat([labels[:len(imgs)] for _name, imgs in parts])
        res = run(torch.cat([imgs for _name, imgs in parts]), stream_labels)
        right = res.preds == stream_labels[:len(res.preds)]
        start = 0
        for name, imgs in parts:
            chunk = right[start:start + len(imgs)]  # shorter or empty when a stop cut the stream
            sums[name] += int(chunk.sum()) / len(chunk) if len(chunk) else float("nan")  # exact, not a float32 mean
            start += len(imgs)
        if after_each is not None:
            after_each()
    return {name: sums[name] / len(sets.ood_suite[name]) for name in names}


def ood_by_corruption(metrics: dict[str, Any]) -> dict[str, float]:
    """{corruption: accuracy} from `evaluate`'s ood/<corruption> entries."""
    return {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("ood/")}


@torch.no_grad()
def cpu_latency_ms(model: torch.nn.Module, image_size: int, batch: int = 1, repeats: int = 20,
                   warmup: int = 3) -> float:
    """Median CPU latency in milliseconds of one forward pass of a float32 batch [batch, 3, image_size, image_size]
    over `repeats` (at least 1) timed passes, after `warmup` untimed ones (0 for a model just measured at this
    size). Puts `model` in eval mode on the CPU. Raises ValueError for `repeats` < 1."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (got {repeats})")
    model = model.eval().to("cpu")
    x = torch.rand(batch, 3, image_size, image_size)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


def held_out_accuracy(model: torch.nn.Module, cfg: RunConfig, data: DataSplits) -> dict[str, Any]:
    """{"val_acc", "test_acc": fraction or None for an empty split, "val_images", "test_images": counts,
    "val_confusion", "test_confusion": [C][C] image counts (rows: true class, columns: answer; absent for an
    empty split), "val_by_colour", "test_by_colour" (`colour_groups`, where a split has both kinds)} of `model` on the
    run's held-out splits, on the CPU, with the run's flip TTA (eval.tta_flip) as its exports answer. The confusion
    matrices give a WiSE-FT mix's card its own weaker classes."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        images = getattr(data, split)
        res = predict(model, images.images, images.labels, torch.device("cpu"), tta_flip=cfg.eval.tta_flip)
        out[f"{split}_acc"] = res.acc if len(images) else None
        out[f"{split}_images"] = len(images)
        if len(images):
            out[f"{split}_confusion"] = confusion_matrix(images.labels, res.preds, len(data.classes))
        if (by_colour := colour_groups(images, res.preds)) is not None:
            out[f"{split}_by_colour"] = by_colour
    return out
