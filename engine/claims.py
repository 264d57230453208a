"""Did this run show its method's paper claim? One pure function per method, from summary dicts.

Each function takes a finished run's summary (what `summary.json` holds) and, where the claim is a
comparison with another run (standard fine-tuning, a dense run, adversarial training from scratch),
that run's summary as `baseline`. It returns a `Claim`: `shown` is True or False when the numbers
decide it and None when something needed is missing, and `text` is one line with the numbers for
the Results page and the benchmarks (for example "WiSE-FT: alpha 0.6 beats both ends on OOD by 2.1
points, validation within 0.4"). Thresholds are the issue's targets (issue 21); accuracies in the
summaries are fractions, the texts use percentage points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from engine.config import setting_name
from engine.metrics import same_figure, top_point
from engine.words import plural

ADAFILTER_MAX_DROP = 0.01  # test accuracy at least standard fine-tuning's minus 1 point
ADAFILTER_MIN_SPREAD = 0.10  # per-layer (or per-class) share of fine-tuned filters spread >= 10 points
PRUNING_MAX_DROP = 0.02  # unstructured: within 2 test points of the dense run
STRUCTURED_MAX_DROP = 0.03  # structured: within 3 points of the model before removing channels
WISE_GUESS_MARGIN = 0.02  # a fine-tuned end within this of guessing (1 / classes) on validation learnt nothing
WISE_VAL_TOLERANCE = 0.01  # the interior alpha's validation accuracy within 1 point of the fine-tuned end
ADVERSARIAL_MIN_GAIN = 0.15  # robust accuracy at least 15 points above plain fine-tuning's


@dataclass(frozen=True)
class Claim:
    """One method's verdict on its paper's claim for a run: `shown` True or False, None when the summary lacks what
    the claim needs; `text` the one line Results shows, with the run's numbers; `narrow` when a verdict rests
    on so few images (a margin of NARROW_IMAGES or fewer, or held-out splits under engine.chance.SMALL_SPLIT
    images: engine.baselines.run_claims) that another seed may well turn it (the page then shows it as a hint,
    not a success or a failure)."""

    method: str
    shown: bool | None  # None: the summary lacks what the claim needs
    text: str
    narrow: bool = False


NARROW_IMAGES = 2  # a win by this many images or fewer: WiSE-FT's margin moves by more between seeds (README)


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def shown_points(a: float, b: float) -> float:
    """a - b (accuracies as fractions) in percentage points, as the difference of the two percentages
    shown with one decimal: 38.5% and 35.2% give 3.3, never the 3.4 of the unrounded values. The claims'
    verdicts use it too, so a line never says "-2.0 points, more than the 2-point allowance"."""
    return round(round(100 * a, 1) - round(100 * b, 1), 1)


def points_against(a: float, b: float, what: str) -> str:
    """a against b (fractions) in words on `shown_points`: "2.1 points below the better end", "0.8 points
    above ...", "level with ..." when they show alike (a new user read "-2.1 points over" as a typo)."""
    d = shown_points(a, b)
    return f"level with {what}" if d == 0 else f"{abs(d):.1f} points {'above' if d > 0 else 'below'} {what}"


def points_diff(a: float, b: float) -> str:
    """`shown_points` signed with one decimal ("+3.3"), so a reader's own subtraction agrees with the page."""
    return f"{shown_points(a, b):+.1f}"


def _paired(summary: dict, baseline: dict | None) -> tuple[float | None, float | None, str]:
    """(the run's accuracy, the `baseline` run's, the split's word) on one split for both: test where
    both runs have a test split, validation otherwise (a dataset without test images). Each line said
    "test" before, also for validation accuracy, and could set one run's test against the other's
    validation."""
    def has_test(s: dict | None) -> bool:
        return bool(s) and isinstance(s.get("test_acc"), (int, float))

    key = "test_acc" if has_test(summary) and (baseline is None or has_test(baseline)) else "val_acc"
    base = baseline.get(key) if baseline else None
    return summary.get(key), base if isinstance(base, (int, float)) else None, "test" if key == "test_acc" else "validation"


def split_sizes(summary: dict, split: str) -> list[int]:
    """Images per class in a run's `split` ("train", "val" or "test"; the summary's data_report
    split_counts), empty when the summary does not say; a missing count is 0."""
    counts = ((summary.get("data_report") or {}).get("split_counts") or {}).get(split) or {}
    return [int(v or 0) for v in counts.values()]


def _undecided(summary: dict, max_drop: float, split: str | None = None) -> str:
    """Why the held-out split behind an accuracy cannot decide a claim that allows `max_drop` (a
    fraction): one of its images moves the accuracy by more than that ("" when it can, or when the
    summary's data_report does not say). `split`: "val" or "test"; default: test where the run has it,
    else validation."""
    if split is None:
        split = "test" if isinstance(summary.get("test_acc"), (int, float)) else "val"
    n = sum(split_sizes(summary, split))
    if not n or 1 / n <= max_drop:
        return ""
    words = {"val": "validation", "test": "test"}[split]
    return (f"too few {words} images to tell: one of the {n} {words} images is {100 / n:.1f} points of accuracy, "
            f"more than the {100 * max_drop:g}-point allowance")


def adafilter_claim(summary: dict, baseline: dict | None = None) -> Claim:
    """Guo et al. 2020: per-example filter choice does at least as well as standard fine-tuning
    (here: test accuracy >= `baseline`'s - 1 point) with gates that adapt (the per-layer, or
    per-class, share of fine-tuned filters spread by >= 10 points)."""
    layers = summary.get("adafilter_gate_mean") or {}
    if not layers:
        return Claim("adafilter", None, "AdaFilter: no gate statistics in this run.")
    layer_spread = max(layers.values()) - min(layers.values())
    by_class = [sum(v.values()) / len(v) for v in (summary.get("adafilter_gate_by_class") or {}).values() if v]
    class_spread = max(by_class) - min(by_class) if by_class else 0.0
    adapts = max(layer_spread, class_spread) >= ADAFILTER_MIN_SPREAD
    gates = (f"the share of fine-tuned filters differs by {_pts(layer_spread)} points between layers and "
             f"{_pts(class_spread)} between classes ({'the gates adapt: 10 or more' if adapts else 'under the 10 points that show the gates adapt'})")
    acc, base, split = _paired(summary, baseline)
    if base is None:
        return Claim("adafilter", None, f"AdaFilter: {split} {_pts(acc or 0)}%, {gates}; run standard fine-tuning "
                                        "with the same settings to compare accuracy.")
    undecided = _undecided(summary, ADAFILTER_MAX_DROP, "test" if split == "test" else "val")
    if undecided and adapts:  # gates that do not adapt fail the claim whatever the accuracy
        return Claim("adafilter", None, f"AdaFilter: {split} {_pts(acc)}% vs {_pts(base)}% for standard fine-tuning "
                                        f"({points_diff(acc, base)} points: {undecided}), {gates}.")
    shown = shown_points(acc, base) >= -100 * ADAFILTER_MAX_DROP and adapts
    return Claim("adafilter", shown, f"AdaFilter: {_verdict(shown)}: {split} {_pts(acc)}% vs "
                                     f"{_pts(base)}% for standard fine-tuning ({points_diff(acc, base)} points), {gates}.")


def _verdict(shown: bool) -> str:
    """The claim line's verdict in words."""
    return "the paper's claim shown in this run" if shown else "the paper's claim not shown in this run"


def _allowance(change: float, max_drop: float) -> str:
    """How an accuracy change (fraction) compares with the claim's allowed drop, in words."""
    if change >= 0:
        return "no loss"
    allowed = f"the {100 * max_drop:g}-point allowance"
    return f"within {allowed}" if change >= -max_drop else f"more than {allowed}"


def _structured_split(s: dict) -> tuple[str, str]:
    """(summary key, its words) of the split the smaller model of structured pruning is judged on (`s`: the
    summary's "structured" figures): test where both models were measured on it (as its Results tile shows),
    else validation."""
    tested = all(isinstance(s.get(k), (int, float)) for k in ("test_acc", "test_acc_before"))
    return ("test_acc", "test") if tested else ("val_acc", "validation")


def smaller_shortfall(summary: dict) -> tuple[float, str] | None:
    """(points, split words) by which the smaller, channel-pruned model of structured pruning falls below the
    full-size model beyond the claim's allowance (STRUCTURED_MAX_DROP) on the split its Results tile shows
    ("61.5", "test"), or None: no smaller model, or one within the allowance. Export then offers the full-size
    model first: an inspector's export defaulted to a smaller model 61.5 test points below it."""
    s = summary.get("structured") or {}
    key, word = _structured_split(s)
    tested = key == "test_acc"
    acc, before = s.get(key), s.get(f"{key}_before")
    if not isinstance(acc, (int, float)) or not isinstance(before, (int, float)):
        return None
    drop = -shown_points(acc, before)
    return (drop, word) if drop > 100 * STRUCTURED_MAX_DROP else None


def pruning_claim(summary: dict, baseline: dict | None = None) -> Claim:
    """Tung et al. 2017 / Zhu & Gupta 2017: pruning while fine-tuning keeps accuracy. Unstructured:
    the final (fully sparse) model's test accuracy within 2 points of the dense `baseline`; with
    structured pruning also the channel-pruned model within 3 points of the model it came from, on test
    where the summary's "structured" has both models' test accuracy (as its Results tile), else validation.
    Without a `baseline` the sparse half is not judged, nor a half whose split is too small to resolve
    its allowance (`_undecided`: one image worth more than it), and the line then has no verdict
    (shown None) unless the other half failed."""
    parts, halves = [], {}  # halves: which model -> its verdict (None: not judged)
    sparsity = summary.get("sparsity")
    if isinstance(sparsity, (int, float)) and sparsity > 0:
        acc, base, split = _paired(summary, baseline)
        if base is None:  # half the claim cannot be judged yet: no verdict for the whole line
            halves["sparse model"] = None
            parts.append(f"{_pts(sparsity)}% sparse at {split} {_pts(acc or 0)}% (run the same settings without "
                         "pruning to compare)")
        elif undecided := _undecided(summary, PRUNING_MAX_DROP, "test" if split == "test" else "val"):
            halves["sparse model"] = None
            parts.append(f"{_pts(sparsity)}% sparse at {split} {_pts(acc)}% vs {_pts(base)}% dense "
                         f"({points_diff(acc, base)} points: {undecided})")
        else:
            change = shown_points(acc, base) / 100
            halves["sparse model"] = change >= -PRUNING_MAX_DROP
            parts.append(f"{_pts(sparsity)}% sparse at {split} {_pts(acc)}% vs {_pts(base)}% dense "
                         f"({points_diff(acc, base)} points, {_allowance(change, PRUNING_MAX_DROP)})")
    s = summary.get("structured") or {}
    key, word = _structured_split(s)
    tested = key == "test_acc"
    if s.get(key) is not None and s.get(f"{key}_before") is not None:
        acc, before = s[key], s[f"{key}_before"]
        drop = shown_points(acc, before) / 100
        undecided = _undecided(summary, STRUCTURED_MAX_DROP, "test" if tested else "val")
        halves["channel-pruned model"] = None if undecided else drop >= -STRUCTURED_MAX_DROP
        own = s.get("fine_tune_epochs") or 0  # its own fine-tune: training the model it was cut from did not have
        extra = (f"; part of a gain is its {plural(own, 'epoch')} of fine-tuning of its own, which the full-size "
                 "model did not have" if own and drop > STRUCTURED_MAX_DROP and not undecided else "")
        left = f"{_pts(s.get('flops_ratio', 1))}% of the arithmetic per image left, in FLOPs"
        parts.append(f"the smaller, channel-pruned model ({left}"
                     + (f", then {plural(own, 'epoch')} of its own fine-tune" if own else "") + f") at "
                     f"{word} {_pts(acc)}% vs {_pts(before)}% for the full-size model "
                     f"({points_diff(acc, before)} points"
                     + (f": {undecided})" if undecided else f", {_allowance(drop, STRUCTURED_MAX_DROP)}{extra})"))
    if not parts:
        return Claim("pruning", None, "Pruning: no sparsity in this run.")
    verdicts = list(halves.values())
    shown = False if False in verdicts else (True if None not in verdicts else None)  # a failed half decides
    if len(set(verdicts)) > 1:  # the two models fared differently: each its verdict, after its own figures
        words = {True: "shown", False: "not shown", None: "not judged yet"}  # (a new user could not tell which
        return Claim("pruning", shown, "Pruning: " + "; ".join(  # verdict went with which figures in one head)
            f"{part}: the paper's claim {words[v]}" for part, v in zip(parts, verdicts)) + ".")
    head = "Pruning" if shown is None else f"Pruning: {_verdict(shown)}"
    return Claim("pruning", shown, f"{head}: " + "; ".join(parts) + ".")


def _all_right(*values) -> bool:
    """Whether every measured value (a finite number; None and NaN are not measured) is 1.0, at least one."""
    measured = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return bool(measured) and all(v >= 1.0 - 1e-9 for v in measured)


def _at_ceiling(claim: Claim, summary: dict) -> bool:
    """Whether the figures `claim` compares are all 100% in this run (so no method could beat them): the clean
    accuracies for AdaFilter and pruning (and the channel-pruned model's, where the run made one), robust accuracy
    for adversarial fine-tuning, the better end's OOD accuracy for WiSE-FT."""
    if claim.method == "adversarial":
        return _all_right(summary.get("robust_acc"))
    if claim.method == "wise_ft":
        ends = [p.get("ood_acc") for p in summary.get("wise_curve") or [] if p.get("alpha") in (0.0, 1.0)]
        return _all_right(max((e for e in ends if isinstance(e, (int, float))), default=None))
    smaller = summary.get("structured") or {}
    return _all_right(summary.get("val_acc"), summary.get("test_acc"), smaller.get("val_acc"), smaller.get("test_acc"))


def ceiling_words(summary: dict, claims: list[Claim]) -> str | None:
    """Words for a run whose every validation and test image is right (`summary`'s val_acc and test_acc, where
    measured, all 1.0) with a claim of `claims` not shown whose own figures are all 100% too (`_at_ceiling`): on data
    this easy a method has no room to show. None otherwise. A teacher's drawn shapes reached 100% with every demo
    and each line read "not shown" with no word on why."""
    if not _all_right(summary.get("val_acc"), summary.get("test_acc")):
        return None
    if not any(c.shown is False and _at_ceiling(c, summary) for c in claims):
        return None
    return ("Every validation and test image is right in this run (100%): on data this easy the models have little "
            "room to differ, so a method's effect barely shows on your images. Harder data shows it better: more "
            "classes, classes that look alike, more varied pictures.")


def at_guessing(acc: float | None, classes: int) -> bool:
    """Whether an accuracy (a fraction) is at or below guessing among `classes` classes, within
    WISE_GUESS_MARGIN above it (False for fewer than 2 classes or no accuracy)."""
    return classes >= 2 and isinstance(acc, (int, float)) and acc <= 1 / classes + WISE_GUESS_MARGIN


def _alpha_list(alphas: list[float], curve: list[dict]) -> str:
    """Sorted `alphas` in words: "0.85 to 0.95" when there are more than two and they are neighbours on the
    `curve`'s grid (no other alpha of the curve between them), else "0.85, 0.95"."""
    grid = sorted(p["alpha"] for p in curve)
    if len(alphas) > 2 and grid[grid.index(alphas[0]):grid.index(alphas[-1]) + 1] == alphas:
        return f"{alphas[0]:g} to {alphas[-1]:g}"
    return ", ".join(f"{a:g}" for a in alphas)


def wise_ft_claim(summary: dict, baseline: dict | None = None) -> Claim:
    """Wortsman et al. 2021: an interior alpha beats both ends (0 and 1) on OOD accuracy at
    in-distribution accuracy within 1 point of the fine-tuned end (alpha 1). The best such alpha
    is reported. When no mix keeps validation within the point, the nearest is at most one validation image
    short and one image is worth more than the point (`_undecided`), the line has no verdict (shown None), as
    pruning's; nor when the fine-tuned end is at or below guessing on validation (`at_guessing`; a new
    user's run at 16.7% on 3 classes read "claim shown" by one corrupted image). `baseline` is unused (both ends are in the run's own curve)."""
    from engine.methods.wise_ft import tied_alphas

    curve = [p for p in summary.get("wise_curve") or [] if p.get("ood_acc") is not None]
    ends = {p["alpha"]: p for p in curve if p["alpha"] in (0.0, 1.0)}
    if not curve and summary.get("wise_curve"):  # the run's OOD evaluation was off
        from engine.config import setting_name

        switch = setting_name("eval", "ood")
        return Claim("wise_ft", None, f"WiSE-FT: no OOD accuracy was measured in this run ('{switch}' was off), so "
                                      "the claim, a mix that beats both ends on corrupted images, cannot be judged.")
    if len(ends) < 2:
        return Claim("wise_ft", None, "WiSE-FT: the alpha curve has no OOD accuracy at both ends.")
    zero, one = ends[0.0], ends[1.0]
    best_end = max(zero["ood_acc"], one["ood_acc"])
    ok = [p for p in curve if 0 < p["alpha"] < 1 and p["val_acc"] >= one["val_acc"] - WISE_VAL_TOLERANCE]
    # ties go to the larger alpha (nearer the fine-tuned model), as engine.predict.chosen_alpha breaks them
    pick = top_point(ok or [p for p in curve if 0 < p["alpha"] < 1], lambda p: p["ood_acc"])
    if pick is None:
        return Claim("wise_ft", None, "WiSE-FT: the curve has no interior alpha.")
    gain = pick["ood_acc"] - best_end
    undecided = ""
    n = sum(split_sizes(summary, "val"))
    nearest = max(p["val_acc"] for p in curve if 0 < p["alpha"] < 1)
    if not ok and n and one["val_acc"] - nearest <= 1 / n + 1e-9:  # the nearest mix one image short: can't tell
        undecided = _undecided(summary, WISE_VAL_TOLERANCE, "val")
    k = len(summary.get("classes") or [])
    if at_guessing(one["val_acc"], k):  # mixes of a model that learnt nothing: noise
        undecided = (f"the fine-tuned end is at or below guessing on validation ({_pts(one['val_acc'])}%; guessing "
                     f"is {_pts(1 / k)}%), so the mixes compare noise")
    # the verdict on the shown figures (shown_points): a gain that rounds to +0.0 points is no win, as the
    # plain reading (wise_ft_reading) says too
    shown = None if undecided else bool(ok) and shown_points(pick["ood_acc"], best_end) > 0
    head = "WiSE-FT" if shown is None else f"WiSE-FT: {_verdict(shown)}"
    # alphas with the same OOD figure (the run's own pick may be one of them: a new user read "alpha 0.95"
    # here beside "alpha 1 chosen", both at 79.2%)
    tied = [f"{a:g}" for a in tied_alphas(curve, pick)]
    same = f" (the same OOD as at alpha {', '.join(tied)})" if tied else ""
    images = summary.get("wise_curve_ood_images")
    narrow = bool(shown) and isinstance(images, int) and images > 0 and round(gain * images) <= NARROW_IMAGES
    if narrow:
        head = f"WiSE-FT: {_verdict(True)}, narrowly"
        undecided = (f"an OOD margin of {plural(round(gain * images), 'corrupted image')} can go the other way with "
                     "another seed: read it as a hint, and train another seed to see whether it holds")
    tol = f"{100 * WISE_VAL_TOLERANCE:g}"
    alpha = f"alpha {pick['alpha']:g}{same}"
    if shown:  # the claim in its own words: the mix beats both ends
        what = f"{alpha} beats both ends on OOD by {shown_points(pick['ood_acc'], best_end):.1f} points"
    elif ok and (end := next((e for e in (one, zero) if same_figure(e["ood_acc"], pick["ood_acc"])
                              and same_figure(pick["ood_acc"], best_end)), None)):
        # the best mixes only tie with an end: named as a tie with that end, the alpha the rest of the page names
        # (a new user read "the best mix ... alpha 0.95" beside "alpha 1.00, the run's own pick" as two answers)
        mixes = sorted([pick["alpha"]] + [a for a in tied_alphas(curve, pick) if 0 < a < 1])
        ends = "both ends" if same_figure(zero["ood_acc"], one["ood_acc"]) else f"alpha {end['alpha']:g}"
        what = (f"the best {'mix' if len(mixes) == 1 else 'mixes'}, alpha {_alpha_list(mixes, curve)}, only "
                f"tie{'s' if len(mixes) == 1 else ''} with {ends} on OOD")
    else:
        which = (f"the best mix at most {tol} validation point below the fine-tuned end" if ok else
                 f"no mix kept validation within {tol} point of the fine-tuned end; the best in-between mix")
        what = f"{which}, {alpha}, is {points_against(pick['ood_acc'], best_end, 'the better end')} on OOD"
    figures = f"{_pts(pick['ood_acc'])}% vs {_pts(zero['ood_acc'])}% at alpha 0 and {_pts(one['ood_acc'])}% at alpha 1"
    count = _images(gain, summary.get("wise_curve_ood_images"))  # "8 more of its 384 corrupted images right"
    return Claim("wise_ft", shown,
                 f"{head}: {what} ({figures}{'; ' + count if count else ''}); validation "
                 f"{points_against(pick['val_acc'], one['val_acc'], 'the fine-tuned end')}"
                 + (f" ({undecided})." if undecided else "."), narrow)


def wise_ft_reading(curve: list[dict], classes: int = 0) -> str | None:
    """WiSE-FT's curve (`summary["wise_curve"]`: dicts with alpha, val_acc, ood_acc as fractions) in
    one plain line, after the claim line on Results and on the command line: where OOD accuracy
    peaks (of tied alphas the largest) and what it costs on your data, that fine-tuning lowered OOD
    accuracy (the starting model is best), or that it left it level (both ends level, no mix above); with
    the number of `classes` known, that the curve compares noise when the fine-tuned end is at guessing on
    validation (`at_guessing`), as the claim line says.
    None with fewer than two points with OOD accuracy, or without both ends (alpha 0 and 1)."""
    pts = [p for p in curve if p.get("ood_acc") is not None]
    if len(pts) < 2:
        return None
    start, end = min(pts, key=lambda p: p["alpha"]), max(pts, key=lambda p: p["alpha"])
    if (start["alpha"], end["alpha"]) != (0.0, 1.0):  # the ends are the two models; a curve without them (made
        return None  # before they were always measured) would name its outer mixes as the models
    if at_guessing(end.get("val_acc"), classes):
        return (f"The fine-tuned model is at or below guessing on validation ({100 * end['val_acc']:.1f}%, guessing "
                f"{100 / classes:.1f}%): it learnt nothing yet, so the mixes' differences on corrupted images are "
                "noise. Read this curve once a run beats guessing; the run's warning says what to change (more "
                "epochs are not always it).")
    # ties go to the larger alpha (nearer the fine-tuned model), as the run's pick (engine.predict.chosen_alpha)
    # and the claim line break them: one alpha named for one figure across the panel
    best = top_point(pts, lambda p: p["ood_acc"])
    gain = shown_points(best["ood_acc"], max(start["ood_acc"], end["ood_acc"]))  # as the claim line rounds
    if gain < 0.05 and abs(shown_points(start["ood_acc"], end["ood_acc"])) < 0.05:  # both ends level, no mix above
        # "fine-tuning lowered OOD accuracy ... (100.0% vs 100.0% fine-tuned)" was said of a run level on both ends
        return (f"Fine-tuning left OOD accuracy where it was in this run: the starting and fine-tuned models are level "
                f"on corrupted images ({100 * end['ood_acc']:.1f}%), and no mix beats them.")
    if gain < 0.05:  # a tie with an end is no win for the mix: the better end is the best
        best = start if start["ood_acc"] > end["ood_acc"] and not same_figure(start["ood_acc"], end["ood_acc"]) \
            else end
    if best is start or best["alpha"] == start["alpha"]:
        return ("Fine-tuning lowered OOD accuracy in this run: the starting model is best on corrupted images "
                f"({100 * start['ood_acc']:.1f}% vs {100 * end['ood_acc']:.1f}% fine-tuned).")
    if best is end or best["alpha"] == end["alpha"]:
        # "in this run", not "on this data": on the sample the WiSE-FT demo shows a mix winning on most seeds
        return (f"No mix beats the fine-tuned model on corrupted images in this run ({100 * end['ood_acc']:.1f}%): "
                "the weight-space ensemble did not add robustness here; a run with another seed can differ.")
    cost = shown_points(end["val_acc"], best["val_acc"])
    over_start, over_end = shown_points(best["ood_acc"], start["ood_acc"]), shown_points(best["ood_acc"], end["ood_acc"])
    return (f"Of the mixes measured, the best on corrupted images, at alpha {best['alpha']:g}, beats the fine-tuned "
            f"model by {over_end:.1f} points and the starting model by {over_start:.1f}, "
            + (f"for {cost:.1f} points of validation accuracy." if cost > 0.05 else "at no cost on your data."))


def wise_user_ood_reading(curve: list[dict]) -> str | None:
    """The WiSE-FT curve on the user's own OOD set (`ood_user_acc` of the curve's points, fractions) in one
    line: the mix that does best on it against both ends (of tied alphas the largest), or that no mix beats
    the better end; None when the curve has no such figures. The paper's claim is judged on the corruption
    suite; a new user's mixes at 0.10-0.35 got 66.7% of their own darker pictures right against 33.3% for the
    fine-tuned model, and nothing said it."""
    pts = [p for p in curve if p.get("ood_user_acc") is not None]
    if len(pts) < 2:
        return None
    start, end = min(pts, key=lambda p: p["alpha"]), max(pts, key=lambda p: p["alpha"])
    if (start["alpha"], end["alpha"]) != (0.0, 1.0):  # as wise_ft_reading: the ends are the two models
        return None
    best = max(pts, key=lambda p: (p["ood_user_acc"], p["alpha"]))
    ends = max(start["ood_user_acc"], end["ood_user_acc"])
    gain = shown_points(best["ood_user_acc"], ends)
    if best["alpha"] in (start["alpha"], end["alpha"]) or gain < 0.05:
        better = "the starting model" if start["ood_user_acc"] > end["ood_user_acc"] else "the fine-tuned model"
        return (f"On your OOD set no mix beats {better} ({100 * ends:.1f}%; the starting model "
                f"{100 * start['ood_user_acc']:.1f}%, the fine-tuned model {100 * end['ood_user_acc']:.1f}%).")
    return (f"On your OOD set the mix at alpha {best['alpha']:g} does best: {100 * best['ood_user_acc']:.1f}% against "
            f"{100 * start['ood_user_acc']:.1f}% for the starting model and {100 * end['ood_user_acc']:.1f}% for the "
            "fine-tuned one.")


def wise_pruned_start(summary: dict) -> str | None:
    """With pruning in the same run, the line that says why the WiSE-FT curve's low end is weak: every
    mix keeps the pruned weights at zero (engine.methods.wise_ft.interpolate_state re-applies the masks,
    so the model's size holds at every alpha), so alpha 0 is the starting model with `summary["sparsity"]`
    of its weights removed and never retrained. Names its validation accuracy on the curve against the
    starting model's with all its weights (`wise_theta0_val_acc`, fractions). None without pruning's sparsity or a
    curve point at alpha 0."""
    sparsity = summary.get("sparsity")
    start = next((p for p in summary.get("wise_curve") or [] if p.get("alpha") == 0.0), None)
    if not isinstance(sparsity, (int, float)) or sparsity <= 0 or start is None or start.get("val_acc") is None:
        return None
    full = summary.get("wise_theta0_val_acc")
    was = f", against {100 * full:.1f}% with all its weights" if isinstance(full, (int, float)) else ""
    return (f"Pruning is on in this run, so every mix keeps the {100 * sparsity:.0f}% of weights pruning removed at "
            "zero (the model stays as small at every alpha). At alpha 0 that is the starting model with those "
            f"weights removed and never retrained: {100 * start['val_acc']:.1f}% on validation{was}. The low end "
            "of the curve shows what pruning without fine-tuning costs; the mixes near alpha 1 are the ones to use.")


def _images(gain: float, images) -> str:
    """How many corrupted images a difference in OOD accuracy (a fraction) is, out of `images` (the
    curve's count, equal per corruption and severity, so accuracy x count = images right); "" when the
    count is unknown. A margin of a few images is within what another seed moves."""
    if not isinstance(images, int) or images <= 0:
        return ""
    n = round(gain * images)
    if n == 0:
        return f"the same number of its {images} corrupted images right"
    return f"{abs(n)} {'more' if n > 0 else 'fewer'} of its {images} corrupted images right"


ADVERSARIAL_MAX_COMPUTE = 0.25  # scratch's final robust accuracy reached with at most a quarter of its compute


def compute_curve(summary: dict) -> list[tuple[float, float]]:
    """(compute, robust accuracy) after each epoch of a run that measured robust accuracy every
    epoch: compute = training images x forward-backward passes per image, summed over epochs
    (`images_per_process_per_epoch` x `world_size` x the adversarial method's `passes_per_step`,
    1 for a run without the attack). Empty when the summary lacks any of these."""
    per_process = summary.get("images_per_process_per_epoch")
    if not isinstance(per_process, (int, float)):
        return []
    passes = (summary.get("adversarial") or {}).get("passes_per_step", 1)
    per_epoch = per_process * summary.get("world_size", 1) * passes
    return [(h["epoch"] * per_epoch, h["robust_acc"]) for h in summary.get("history") or []
            if isinstance(h.get("robust_acc"), (int, float)) and isinstance(h.get("epoch"), int)]


def compute_share_to_reach(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> float | None:
    """The share of `theirs`'s total compute at which the curve `ours` first reaches the accuracy
    `theirs` ends with (both `compute_curve` lists, non-empty), or None when it never does."""
    total, target = theirs[-1]
    return next((c / total for c, a in ours if a >= target - 1e-9), None)


def adversarial_claim(summary: dict, baseline: dict | None = None, scratch: dict | None = None,
                      unattacked: str | None = None) -> Claim:
    """Jeddi et al. 2020: adversarial fine-tuning is robust (here: robust accuracy >= plain
    fine-tuning's `baseline` + 15 points) at a fraction of the cost of adversarial training from
    `scratch`: the robust accuracy scratch ends with, on the validation subset both runs attack each
    epoch, reached with at most a quarter of scratch's compute (images x forward/backward passes,
    `compute_curve`). Robust accuracies are fractions; the text gives percentage points. Without a
    comparison, the line says what to train: `unattacked` names a standard run with the same settings that
    did not measure robust accuracy under this run's attack (engine.baselines.unattacked_twin)."""
    robust = summary.get("robust_acc")
    if robust is None:
        return Claim("adversarial", None, "Adversarial: switch on robust evaluation to see robust accuracy.")
    parts, verdicts = [f"robust {_pts(robust)}%"], []
    base = (baseline or {}).get("robust_acc")
    if base is not None:
        ok = shown_points(robust, base) >= 100 * ADVERSARIAL_MIN_GAIN
        verdicts.append(ok)
        parts.append(f"vs {_pts(base)}% for plain fine-tuning ({points_diff(robust, base)} points, needs +15)")
    ours, theirs = compute_curve(summary), compute_curve(scratch or {})
    if ours and theirs:
        share = compute_share_to_reach(ours, theirs)
        verdicts.append(share is not None and share <= ADVERSARIAL_MAX_COMPUTE)
        parts.append(f"adversarial training from scratch ends at {_pts(theirs[-1][1])}% robust (validation subset), "
                     + ("this run never reached it" if share is None else f"this run reached it with {share:.2f} "
                        "of its compute") + f" (needs at most {ADVERSARIAL_MAX_COMPUTE:g})")
    switch = setting_name("eval", "robust")
    if verdicts and base is None and unattacked:  # judged on the cost half alone: the robustness half is missing
        parts.append(f"no comparison with plain fine-tuning yet: '{unattacked}' did not measure robust accuracy under "
                     f"this run's attack (train it again with '{switch}' switched on, at this run's eps and PGD steps)")
    if not verdicts:
        if unattacked:
            return Claim("adversarial", None, f"Adversarial: {parts[0]}; '{unattacked}', standard fine-tuning with "
                         f"the same settings, did not measure robust accuracy under this run's attack: train it "
                         f"again with '{switch}' switched on, at this run's eps and PGD steps, to compare.")
        return Claim("adversarial", None, f"Adversarial: {parts[0]}; train standard fine-tuning with the same "
                                          f"settings and '{switch}' switched on, at this run's eps and PGD steps, to compare.")
    shown = all(verdicts)
    return Claim("adversarial", shown, f"Adversarial: {_verdict(shown)}: " + ", ".join(parts) + ".")


CLAIMS: dict[str, Callable[..., Claim]] = {
    "adafilter": adafilter_claim, "pruning": pruning_claim, "wise_ft": wise_ft_claim,
    "adversarial": adversarial_claim,
}
