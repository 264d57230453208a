"""Did a finished run learn anything, and how much is one held-out image worth? From summary dicts.

The dashboard (app.claims_view, followed by advice in its own words), the command line after a run
and the model card all say the same findings with these functions: a run at or below the level of
guessing (1 / number of classes), one above it by no more than luck on that many images (an exact
binomial test), a validation curve that clearly peaked and fell, and held-out splits so small that
one image moves a figure by more than 2 points. A class whose held-out images the model gets right far
less often than the other classes' is named with what it was taken for. Accuracies are fractions; the
texts use percents.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

from engine.claims import split_sizes
from engine.words import and_words, percent_half_up, plural, run_picture_shape, shrink_factor, shrunk_along

LUCK_P = 0.05  # above guessing by more than this chance of luck (binomial test) is "clearly better"
LUCK_MARK = "may have learnt nothing yet"  # in every luck finding: how the pages tell it from "learnt nothing"
PEAK_DROP = 0.15  # validation that fell this far (a fraction) from its best epoch: the run unlearnt
PEAK_DROP_IMAGES = 3  # ... and by at least this many images: one or two is noise on a small split
FEW_STEPS = 100  # optimiser steps: below this a fine-tuning run on a new dataset rarely gets far
SMALL_SPLIT = 50  # held-out images: below this one image moves an accuracy by more than 2 points
GAP_P = 0.05  # a validation-test gap that chance gives less often than this is pointed out
WEAK_P = 0.05  # a class below the others by more than chance gives this often is named (Fisher, one-sided)
WEAK_GAP = 0.2  # ... and by at least this much accuracy (a fraction): a significant 5-point gap is not news
BY_CLASS_DRAWS = 9999  # permutations in `by_class_clear`'s test: its smallest p is 1 / 10000
WEAK_SHOWN = 3  # at most this many weak classes named, the weakest first
# an epoch's mean training loss (nats) this many times a guess's (ln of the number of classes) or more: the steps
# overshot (the Quick demo at 32 px, lr 0.02, before the head's rate was kept under its stability bound
# (engine.optim.head_lr_bound; optim.head_lr_cap=false still does it): 21.7 in epoch 2 against 2.08 for 8 classes,
# 21.9% test in the end; at 0.005 the loss stayed under 2.4 and the run reached 37.5% in 8 epochs; ordinary runs
# start near 1 x)
UNSTABLE_LOSS = 3.0
SPLIT_WORDS = {"val": "validation", "test": "test", "ood_user": "OOD set"}  # "ood_user": the user's own OOD set


@dataclass(frozen=True)
class ChanceFinding:
    """What `chance_finding` found. `kind`: "below" (under the level of guessing), "nothing" (at it),
    "largest" (above guessing but no better than always answering the split's largest class) or
    "luck" (above both, but within luck). `split`: "test" or "validation", the split the accuracy is
    from. `text`: the finding with its numbers, one or two sentences, without advice."""

    kind: str
    split: str
    text: str

    @property
    def maybe(self) -> bool:
        """True when the run may have learnt something (the figures cannot tell), False when it did not."""
        return self.kind in ("largest", "luck")


def answers_words(maybe: bool, what: str = "Its answers") -> str:
    """What a finding means for the model's answers (`what`, e.g. "Its answers below"): no better than
    guesses, or maybe not (`maybe`, ChanceFinding.maybe), however sure they look."""
    return f"{what} {'may be' if maybe else 'are'} no better than guesses, however sure they look."


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def images_right(acc: float, n: int) -> int | None:
    """How many of `n` images an accuracy `acc` (a fraction) got right; None when `n` is 0 or `acc` is
    not a whole number of them (measured on something else)."""
    right = round(acc * n)
    return right if n >= 1 and abs(right - acc * n) <= 0.01 else None


def chance_finding(summary: dict, margin: float = 0.02, whose: str = "This run's",
                   validation_clears: bool = True) -> ChanceFinding | None:
    """`accuracy_finding`, unless the run's classes are imbalanced and its balanced accuracy on the
    finding's split is clearly above guessing (`by_class_clear`): such a model tells the classes apart, though its
    accuracy is no better than always answering the largest class. A factory inspector's class-weighted run (3 of 13
    test parts defects) was told it "may have learnt nothing" for trading a few 'ok' parts for found defects."""
    found = accuracy_finding(summary, margin, whose, validation_clears)
    if found is None or by_class_clear(summary, _split_key(found)) is None:
        return found
    return None


def accuracy_finding(summary: dict, margin: float = 0.02, whose: str = "This run's",
                     validation_clears: bool = True) -> ChanceFinding | None:
    """A finding when the run's test (else validation) accuracy is within `margin` (a fraction) of
    guessing (1 / number of classes) or below it, or above it by no more than luck on that split's
    images (`_luck`); None for a run clearly better than guessing, when the summary lacks the classes
    or a finite accuracy (an empty split's is NaN on the command line), when an accuracy above
    guessing comes from a split of unknown size, or when a test accuracy within luck of, at or below guessing on a
    small test split (`small_splits`) sits beside a validation accuracy clearly above guessing (the small-split
    note says the splits' gap: `small_split_words`), unless
    `validation_clears` is False (the smaller model's warning says both splits itself). `whose` starts the text
    ("This model's" on a card)."""
    classes = summary.get("classes") or []
    measured = {k: v for k in ("test_acc", "val_acc") if _finite(v := summary.get(k))}  # NaN: an empty split
    acc = measured.get("test_acc", measured.get("val_acc"))
    if len(classes) < 2 or acc is None:
        return None
    guess = 1 / len(classes)
    split = "test" if "test_acc" in measured else "validation"
    val = measured.get("val_acc")
    if validation_clears and split == "test" and val is not None and "test" in small_splits(summary) \
            and _clearly_above(summary, val, guess) and not _clearly_below(summary, acc, guess):
        return None  # the validation images show it learnt: a small test split at, below or within luck of guessing
        # is no finding (a student's 14 of 18 validation images right read "may have learnt nothing" beside 4 of 9
        # test ones; a photographer's 9 of 21 beside 1 of 21 read "check each class folder"); one beyond luck below
        # it (0 of 40: a test folder's labels swapped) still is
    if acc > guess + margin:
        return _luck(summary, acc, guess, split, whose)
    head = f"{whose} {split} accuracy ({100 * acc:.1f}%) is"
    if acc < guess - margin:
        return ChanceFinding("below", split, f"{head} below the level of guessing among {len(classes)} classes "
                                             f"({100 * guess:.1f}%).")
    return ChanceFinding("nothing", split, f"{head} at the level of guessing among {len(classes)} classes "
                                           f"({100 * guess:.1f}%): it learnt nothing yet.")


def by_class_clear(summary: dict, split: str) -> tuple[float, float] | None:
    """(balanced accuracy, p) on `split` ("val" or "test") for a run whose classes are imbalanced (its data report's
    `imbalance`) when that balanced accuracy (the mean of the per-class accuracies, a fraction) is beyond luck: a
    model whose answers ignore the picture, answering each class as often as this one does, reaches it with
    probability p < LUCK_P (`balanced_p`). None otherwise, and when the split's confusion matrix (`confusion_rows`)
    is missing or does not hold the split's accuracy (it would be another model's)."""
    rows, acc = confusion_rows(summary, split), summary.get(f"{split}_acc")
    if rows is None or not _finite(acc) or not ((summary.get("data_report") or {}).get("imbalance") or {}).get(
            "imbalanced"):
        return None
    n, right = sum(map(sum, rows)), sum(rows[i][i] for i in range(len(rows)))
    if n < 2 or images_right(acc, n) != right:
        return None
    bal, p = balanced_p(tuple(map(tuple, rows)))
    return (bal, p) if p < LUCK_P else None


@functools.lru_cache(maxsize=256)
def balanced_p(rows: tuple[tuple[int, ...], ...]) -> tuple[float, float]:
    """(balanced accuracy, one-sided p) of a confusion matrix `rows` (rows: true class, columns: answer; image
    counts): the balanced accuracy over the classes with images, and how often answers paired with the images at
    random, each class answered as often as here, reach it: a permutation test of the answers against the true
    classes, its tables drawn with both margins fixed (scipy.stats.random_table, Patefield's algorithm: the
    permutation null of scipy.stats.permutation_test's "pairings", at a cost that does not grow with the images;
    2,800 test images took 3.9 s that way), BY_CLASS_DRAWS draws (a tenth of them above 20 classes), in chunks of
    about 16 MB, seeded, p = (1 + draws at or above) / (1 + draws). Cached: the pages ask for one run's again and
    again."""
    import numpy as np
    from scipy.stats import random_table

    table = np.asarray(rows, dtype=np.int64)
    sizes, answered = table.sum(1), table.sum(0)
    present = sizes > 0

    def balanced(t: np.ndarray) -> np.ndarray:  # t: (..., K, K)
        return (np.diagonal(t, axis1=-2, axis2=-1)[..., present] / sizes[present]).mean(-1)

    seen = float(balanced(table))
    total = BY_CLASS_DRAWS if len(rows) <= 20 else BY_CLASS_DRAWS // 10  # 50 classes drew 200 MB in 2.7 s
    chunk = max(1, 2_000_000 // len(rows) ** 2)  # tables at a time: about 16 MB whatever the classes
    rng, above, left = np.random.default_rng(0), 0, total
    while left:
        draws = random_table(sizes, answered).rvs(size=min(chunk, left), method="patefield", random_state=rng)
        above += int((balanced(draws) >= seen - 1e-12).sum())
        left -= len(draws)
    return seen, (1 + above) / (1 + total)


def by_class_words(summary: dict) -> str:
    """For a run whose accuracy reads as learnt nothing (`accuracy_finding`) while its balanced accuracy clears
    guessing (`by_class_clear`), the sentence saying so: "Its balanced accuracy (each class's share right, averaged)
    on the test images is 66.7%, against 33.3% for answers that ignore the picture: it tells the classes apart
    (permutation test, p = 0.002)."; "" otherwise."""
    found = accuracy_finding(summary)
    key = None if found is None else _split_key(found)
    clear = None if key is None else by_class_clear(summary, key)
    if clear is None:
        return ""
    bal, p = clear
    present = sum(1 for row in confusion_rows(summary, key) or [] if sum(row))  # the classes the split holds
    return (f"Its balanced accuracy (each class's share right, averaged) on the {SPLIT_WORDS[key]} images is "
            f"{100 * bal:.1f}%, against {100 / max(present, 1):.1f}% for answers that ignore the picture: it tells the "
            f"classes apart (permutation test, p {p_words(p)}).")


def p_words(p: float) -> str:
    """A p-value after "p": "= 0.35", "= 0.054" under 0.1 (0.054 is not "0.05", the bar it missed), "< 0.001"."""
    return f"= {p:.2f}" if p >= 0.1 else f"= {p:.3f}" if p >= 0.001 else "< 0.001"


def _split_key(found: ChanceFinding) -> str:
    """The summary's key ("test" or "val") of the split a finding is from."""
    return "test" if found.split == "test" else "val"


def labels_not_the_cause(summary: dict) -> str | None:
    """For a run whose test accuracy is below guessing (`chance_finding` kind "below") while its validation images,
    split by the studio from the same class folders, score clearly above it (`_clearly_above`): the words that say
    the folders' labels are unlikely to be the cause, and what is ("The validation images, from the same class
    folders, are 72.2% right (26 of 36), clearly above guessing: the labels are unlikely to be the cause. The test
    images differ from the ones the model learnt from ..."); None otherwise (a split given by the user's folders can
    hold its own wrong labels). A camera-trap run whose test deer were all night shots read "check that each class
    folder holds the images of its class"."""
    found = chance_finding(summary)
    classes, val = summary.get("classes") or [], summary.get("val_acc")
    report = summary.get("data_report") or {}
    if found is None or found.kind != "below" or found.split != "test" or report.get("split_given") \
            or not _finite(val) or not _clearly_above(summary, val, 1 / len(classes)):
        return None
    n = sum(split_sizes(summary, "val"))
    return (f"The validation images, from the same class folders, are {100 * val:.1f}% right ({images_right(val, n)} "
            f"of {n}), clearly above guessing: the labels are unlikely to be the cause. The test images differ from "
            f"the ones the model learnt from (their light, background or size: compare the splits' files on the Data "
            f"page), and a shortcut learnt from few pictures fails on them; more pictures of each class in every "
            f"condition help.")


def largest_class_words(summary: dict) -> str:
    """For a run on imbalanced classes (the data report's `imbalance`), what always answering each held-out split's
    largest class scores, the accuracy a model must clear: "Always answering 'empty' gets 60.0% of the validation
    images and 62.5% of the test images right."; "" for classes of even size or without split counts. A camera
    trap's run read "validation accuracy 72.5%" with 60% of its validation frames empty, unsaid."""
    rep = summary.get("data_report") or {}
    if not (rep.get("imbalance") or {}).get("imbalanced"):
        return ""
    shares = []
    for split, words in (("val", "validation"), ("test", "test")):
        counts = {c: int(n or 0) for c, n in ((rep.get("split_counts") or {}).get(split) or {}).items()}
        if sum(counts.values()):
            top = max(counts, key=counts.get)
            shares.append((top, f"{100 * counts[top] / sum(counts.values()):.1f}% of the {words} images"))
    if not shares:
        return ""
    if len({top for top, _ in shares}) == 1:
        return f"Always answering '{shares[0][0]}' gets {' and '.join(w for _, w in shares)} right."
    return "Always answering the largest class gets " + " and ".join(f"{w} ('{top}')" for top, w in shares) + " right."


def binomial_tail(right: int, n: int, p: float) -> float:
    """P(X >= `right`) for X ~ Binomial(`n`, `p`): the p-value of the one-sided exact binomial test
    (scipy.stats.binomtest(right, n, p, alternative="greater"), to the last digits), computed by
    scipy.special.bdtrc, which a one-image `predict` imports in a fraction of scipy.stats's time. 1.0 for
    `right` <= 0."""
    from scipy.special import bdtrc

    return 1.0 if right <= 0 else float(bdtrc(right - 1, n, p))


def _clearly_above(summary: dict, val: float, guess: float) -> bool:
    """Whether the validation accuracy `val` (a fraction) is beyond luck above guessing (`guess`) and above always
    answering the largest validation class: a whole number of the split's known images, with the one-sided
    binomial test's p under LUCK_P (as `_luck` judges a split)."""
    sizes = split_sizes(summary, "val")
    n = sum(sizes)
    right = images_right(val, n) if n else None
    if right is None or right <= max(sizes):
        return False
    return binomial_tail(min(right, n), n, max(guess, max(sizes) / n)) < LUCK_P


def _clearly_below(summary: dict, acc: float, guess: float) -> bool:
    """Whether the test accuracy `acc` (a fraction) lies below guessing (`guess`) beyond luck: a model that guesses
    gets at most as many of the test split's known images right with probability under LUCK_P (the one-sided
    binomial test, lower tail). False when the split's size is unknown."""
    n = sum(split_sizes(summary, "test"))
    right = images_right(acc, n) if n else None
    return right is not None and acc < guess and 1.0 - binomial_tail(right + 1, n, guess) < LUCK_P


def _luck(summary: dict, acc: float, guess: float, split: str, whose: str) -> ChanceFinding | None:
    """The finding for an accuracy `acc` above guessing (`guess`) that is still within luck: a model that
    learnt nothing (guessing, or always answering the split's largest class, whichever scores more)
    gets at least as many of the split's images right with probability p >= LUCK_P (one-sided exact
    binomial test, `binomial_tail`). The split's size comes from the summary's data_report
    split_counts; None when it is unknown, empty, or `acc` is not a whole number of its images right."""
    sizes = split_sizes(summary, "test" if split == "test" else "val")
    n = sum(sizes)
    right = images_right(acc, n)
    if right is None:
        return None
    null = max(guess, max(sizes) / n)  # a model that always answers the largest class scores its share
    if right <= max(sizes):  # above guessing, but not above always answering the largest class
        return ChanceFinding("largest", split, (
            f"{whose} {split} accuracy ({100 * acc:.1f}%, {right} of {plural(n, 'image')}) is no better than always "
            f"answering the largest class of the {split} images ({max(sizes)} of {n}, {100 * null:.1f}%). "
            f"It {LUCK_MARK}."))
    p = binomial_tail(min(right, n), n, null)
    if p < LUCK_P:
        return None
    largest = "" if null == guess else f"; {100 * null:.1f}% always answering its largest class"  # no nested brackets
    return ChanceFinding("luck", split, (
        f"{whose} {split} accuracy ({100 * acc:.1f}%, {right} of {plural(n, 'image')}) is above the level of guessing "
        f"among {len(summary.get('classes') or [])} classes ({100 * guess:.1f}%{largest}), but not clearly: a model "
        f"that learnt nothing gets {right} or more of {n} right {100 * p:.0f}% of the time (binomial test, "
        f"p {p_words(p)}). It {LUCK_MARK}."))


SPLIT_FIGURES = ("_confusion", "_per_class_acc", "_balanced_acc", "_macro_f1", "_by_colour",
                 "_confidence")  # one model's


def smaller_model_summary(summary: dict) -> dict:
    """`summary` as the channel-pruned model's (structured pruning: `summary["structured"]`): its own
    parameter count, validation and test accuracies (fractions), confusion matrices and per-class accuracies
    (engine.methods.pruning.held_out_views) in place of the run's, and none of the run's other per-split
    figures (balanced accuracy, macro-F1, the user's OOD set's matrix: the full-size model's), so that what
    reads them (the smaller model's card and its Caution section, `smaller_model_finding`, Results' confusion
    matrix of the smaller model) never describes the full-size model. The corruption-suite OOD figures stay:
    the card says they are the full model's, as `full_val_acc` and `full_test_acc` (the run's own, as Results shows
    them, flip TTA included) are."""
    s = summary.get("structured") or {}
    own = {k: v for k, v in s.items() if k.endswith(SPLIT_FIGURES)}
    rest = {k: v for k, v in summary.items() if not k.endswith(SPLIT_FIGURES)}
    return dict(rest, export_variant="structured", num_params=s.get("params_after", summary.get("num_params", 0)),
                val_acc=s.get("val_acc"), test_acc=s.get("test_acc"), full_val_acc=summary.get("val_acc"),
                full_test_acc=summary.get("test_acc"), **own)


def smaller_model_finding(summary: dict) -> ChanceFinding | None:
    """`chance_finding` for the channel-pruned model of a run with structured pruning, on its own test
    (else validation) accuracy, its text starting "The smaller (channel-pruned) model's". None for a run
    without a smaller model or one clearly above guessing. What it means and what to change is the
    pruning method's to say (engine.methods.pruning.smaller_model_warning)."""
    if not summary.get("structured"):
        return None
    return chance_finding(smaller_model_summary(summary), whose="The smaller (channel-pruned) model's",
                          validation_clears=False)  # its warning weighs validation itself (smaller_model_warning)


def peaked_and_fell(summary: dict) -> tuple[dict, float] | None:
    """(history entry of the best validation epoch, final validation accuracy) when the run clearly
    learnt and then lost it: the peak beats guessing beyond luck (one-sided binomial test, p < LUCK_P,
    on the validation split's size from data_report), the final epoch is PEAK_DROP and
    PEAK_DROP_IMAGES images lower, and that fall is beyond luck too (one-sided Fisher exact test of the
    two epochs' right and wrong counts, p < LUCK_P: a new user's 8 of 12 then 4 of 12, p = 0.11, was
    blamed on a learning rate of 0.000625). None otherwise, or when the validation split's size is
    unknown (then one image could be the drop)."""
    from scipy.stats import fisher_exact

    history = [h for h in summary.get("history") or [] if isinstance(h.get("val_acc"), (int, float))]
    n, k = sum(split_sizes(summary, "val")), len(summary.get("classes") or [])
    if not history or n < 1 or k < 2:
        return None
    best, last = max(history, key=lambda h: h["val_acc"]), history[-1]["val_acc"]
    drop = best["val_acc"] - last
    if drop < PEAK_DROP or round(drop * n) < PEAK_DROP_IMAGES:
        return None
    right, now = round(best["val_acc"] * n), round(last * n)
    clear = binomial_tail(right, n, 1 / k) < LUCK_P
    fell = fisher_exact([[right, n - right], [now, n - now]], alternative="greater").pvalue < LUCK_P
    return (best, last) if clear and fell else None


JOLT_DROP = 0.15  # validation that fell this far (a fraction) in the first whole-network epoch: said why
# (measured: benchmarks/probe_jolt.py and the WiSE-FT demo at trunk_lr_mult 0.1, README; the words say what
# was measured without sending a user to another run or to a file)
JOLT_ADVICE = ("On the studio's sample, a tenth of the rate for the layers below the head (Trunk learning-rate "
               "multiplier 0.1 on the Model page) kept that epoch's accuracy but ended about 4 points lower after "
               "the whole run: the fall comes with this recipe's fast rate.")
JOLT_ADVISED_MULT = 0.1  # the trunk multiplier the advice names: a run already at or below it is not told it


@dataclass(frozen=True)
class ProbeJolt:
    """The first whole-network epoch after the head-only (linear-probe) epochs, where validation accuracy
    fell (`probe_jolt`). `epoch`: that epoch (1-based); `before`, `after`: validation accuracy (fractions)
    after the last head-only epoch and after it; `loss_before`, `loss_after`: validation loss (nats);
    `back`: the first later epoch at `before` or above (None: none yet)."""

    epoch: int
    before: float
    after: float
    loss_before: float
    loss_after: float
    back: int | None


def probe_jolt(history: list[dict], probe_epochs: int, val_images: int = 0) -> ProbeJolt | None:
    """The fall of validation accuracy in the first epoch that trains the whole network after
    `probe_epochs` head-only epochs (LP-FT, Kumar et al. 2022), from a run's per-epoch `history`
    (summary["history"]: dicts with "epoch", "val_acc", "val_loss"): a ProbeJolt when it fell by
    JOLT_DROP or more and, with `val_images` (the validation split's size) known, by PEAK_DROP_IMAGES
    images or more; None otherwise, without head-only epochs, or before that epoch ends. Raises nothing."""
    rows = [h for h in history or [] if isinstance(h.get("val_acc"), (int, float))]
    if probe_epochs < 1 or len(rows) <= probe_epochs:
        return None
    last_probe, first = rows[probe_epochs - 1], rows[probe_epochs]
    drop = last_probe["val_acc"] - first["val_acc"]
    if drop < JOLT_DROP or (val_images and round(drop * val_images) < PEAK_DROP_IMAGES):
        return None
    back = next((int(h.get("epoch", i + 1)) for i, h in enumerate(rows) if i > probe_epochs
                 and h["val_acc"] >= last_probe["val_acc"]), None)
    return ProbeJolt(int(first.get("epoch", probe_epochs + 1)), float(last_probe["val_acc"]), float(first["val_acc"]),
                     float(last_probe.get("val_loss", math.nan)), float(first.get("val_loss", math.nan)), back)


def probe_jolt_words(jolt: ProbeJolt, probe_epochs: int, effective_lr: float, running: bool,
                     trunk_lr_mult: float = 1.0) -> str:
    """`jolt` in words for the charts of a run (`running`: its next epochs are still to come), with
    its `probe_epochs`, `effective_lr` (lr / (1 - momentum) for SGD, Li et al. 2020) and
    `trunk_lr_mult` (optim.trunk_lr_mult: the layers below the head learn at that share of the rate)."""
    head = "epoch 1" if probe_epochs == 1 else f"epochs 1-{probe_epochs}"
    loss = (f" (validation loss {jolt.loss_before:.2f} to {jolt.loss_after:.2f})"
            if _finite(jolt.loss_before) and _finite(jolt.loss_after) else "")
    before = percent_half_up(jolt.before)
    rate = (f"at the full learning rate (effective {effective_lr:.2g})" if trunk_lr_mult == 1 else
            f"at the rate of the layers below the head (effective {effective_lr * trunk_lr_mult:.2g})")
    if jolt.back is not None:
        after = f"It was back to {before} or more by epoch {jolt.back}."
    elif running:
        after = "The next epochs show whether it climbs back."
    else:
        after = f"It did not climb back to {before} in this run."
    return (f"Epoch {jolt.epoch} was the first in which the whole network learnt ({head} trained only the new "
            f"head, a linear probe), and validation accuracy fell from {before} to {percent_half_up(jolt.after)}"
            f"{loss}: its first steps {rate} moved the pretrained features away from the ones the head was "
            f"fitted to. {after}" + (f" {JOLT_ADVICE}" if trunk_lr_mult > JOLT_ADVISED_MULT else ""))


SPIKE_RATIO = 2.0  # validation loss at least this many times the epoch before's: a jump worth a word
SPIKE_RISE = 0.5  # ... and up by at least this many nats (0.02 to 0.05 is no jump a user needs explained)
TRAIN_ROSE = 1.1  # the training loss this many times the epoch before's or more: it rose with the jump


@dataclass(frozen=True)
class LossSpike:
    """An epoch whose validation loss jumped (`loss_spike`). `epoch`: that epoch (1-based); `before`, `after`:
    validation loss (nats) the epoch before and in it; `acc_before`, `acc_after`: validation accuracy (fractions;
    NaN when not logged); `train_before`, `train_after`: training loss (nats; NaN when not logged); `back`: the first
    later epoch whose validation loss is at `before` or under (None: none yet); `jumps`: how many epochs jumped."""

    epoch: int
    before: float
    after: float
    acc_before: float
    acc_after: float
    train_before: float
    train_after: float
    back: int | None
    jumps: int

    @property
    def train_rose(self) -> bool:
        """Whether the training loss rose with it (by TRAIN_ROSE or more): the steps overshot, not only new
        images being judged harder."""
        return _finite(self.train_before) and _finite(self.train_after) and \
            self.train_after >= TRAIN_ROSE * self.train_before


def loss_spike(history: list[dict], probe_epochs: int = 0, val_images: int = 0) -> LossSpike | None:
    """The largest jump of validation loss in a run's per-epoch `history` (summary["history"]: dicts with "epoch",
    "val_loss", and where logged "val_acc", "train_loss"): an epoch whose validation loss is SPIKE_RATIO times the
    epoch before's or more and SPIKE_RISE nats above it. The first whole-network epoch after `probe_epochs` head-only
    epochs is left to `probe_jolt` where that found a fall there (`val_images`: the validation split's size, as
    `probe_jolt` takes it). None when no epoch jumped. Raises nothing. An agronomist's run went from 1.29 to 3.57 at
    epoch 5 of 20 and back by epoch 7, and nothing said what that was."""
    rows = [h for h in history or [] if _finite(h.get("val_loss"))]
    jolt = probe_jolt(history, probe_epochs, val_images) if probe_epochs else None
    jumps = [at for at in range(1, len(rows)) if rows[at - 1]["val_loss"] > 0  # a loss of 0.0: no ratio to take
             and rows[at]["val_loss"] >= SPIKE_RATIO * rows[at - 1]["val_loss"]
             and rows[at]["val_loss"] - rows[at - 1]["val_loss"] >= SPIKE_RISE
             and not (jolt is not None and int(rows[at].get("epoch", 0)) == jolt.epoch)]
    if not jumps:
        return None
    at = max(jumps, key=lambda k: rows[k]["val_loss"] / rows[k - 1]["val_loss"])
    prev, row = rows[at - 1], rows[at]
    back = next((int(h.get("epoch", 0)) for h in rows[at + 1:] if h["val_loss"] <= prev["val_loss"]), None)
    number = lambda h, key: float(h[key]) if _finite(h.get(key)) else math.nan  # noqa: E731
    return LossSpike(int(row.get("epoch", at + 1)), float(prev["val_loss"]), float(row["val_loss"]),
                     number(prev, "val_acc"), number(row, "val_acc"), number(prev, "train_loss"),
                     number(row, "train_loss"), back, len(jumps))


def loss_spike_words(spike: LossSpike, running: bool, lr: float | None = None) -> str:
    """`spike` in words for the loss chart or the command line (`running`: the run's next epochs are still to come;
    `lr`: the learning rate during that epoch, None where not known): what jumped, why (the training loss rose too:
    the steps overshot; it did not: the model grew sure of some wrong validation answers, which the loss punishes far
    more than unsure ones) and whether it came back."""
    acc = (f", and validation accuracy went from {percent_half_up(spike.acc_before)} to "
           f"{percent_half_up(spike.acc_after)}" if _finite(spike.acc_before) and _finite(spike.acc_after) else "")
    rate = f" at that epoch's learning rate ({lr:.2g})" if lr is not None and _finite(lr) else ""
    if spike.train_rose:
        why = (f"The training loss rose in the same epoch ({spike.train_before:.2f} to {spike.train_after:.2f}): "
               f"steps{rate} overshot and moved the weights off course for a while, not new pictures being harder.")
    else:
        why = ("The training loss did not rise with it: the model grew very sure of some wrong answers on the "
               "validation images, and the loss punishes a sure mistake far more than an unsure one.")
    if spike.back is not None:
        after = f"It was back to {spike.before:.2f} or lower by epoch {spike.back}."
    elif running:
        after = "The next epochs show whether it comes back down."
    else:
        after = (f"It did not come back down to {spike.before:.2f} in this run"
                 + ("; a lower learning rate makes such jumps rarer." if spike.train_rose else "."))
    more = f" (the largest of {spike.jumps} such jumps)" if spike.jumps > 1 else ""
    return (f"Validation loss jumped at epoch {spike.epoch}{more}, from {spike.before:.2f} to {spike.after:.2f} "
            f"({spike.after / spike.before:.1f} times){acc}. {why} {after}")


# the last epoch's training accuracy this far (a fraction) above a run's held-out accuracy at guessing: it learnt its
# training images by heart (a new user's 45 drawn shapes: 95% training, 33% validation and test, once advised to
# lower the learning rate, which does not mend it). Training accuracy is on augmented images, so it errs low.
MEMORISED_GAP = 0.3
PROBE_GAP = 0.25  # training accuracy this far (a fraction) above validation in the head-only epochs: said why


def probe_gap_words(history: list[dict], probe_epochs: int, wise: bool = False, train_images: int = 0) -> str | None:
    """Why training accuracy lies far above validation accuracy in a run's head-only (linear-probe)
    epochs, from its per-epoch `history` (dicts with "train_acc" and "val_acc", fractions): words when the
    last head-only epoch so far has training accuracy PROBE_GAP or more above validation, else None
    (also without head-only epochs). `wise`: a WiSE-FT run, whose head was fitted to convergence on the
    training images before epoch 1 (theta_0's linear probe). `train_images`: the training split's size
    (0: not said). Raises nothing. Measured in the WiSE-FT demo: about 95% against 49%."""
    rows = [h for h in (history or [])[:max(probe_epochs, 0)]
            if _finite(h.get("train_acc")) and _finite(h.get("val_acc"))]
    if not rows or rows[-1]["train_acc"] - rows[-1]["val_acc"] < PROBE_GAP:
        return None
    last = rows[-1]
    head = "epoch 1, which trains" if probe_epochs == 1 else f"epochs 1-{probe_epochs}, which train"
    images = f"its {train_images} training images" if train_images else "the training images"
    fitted = ("WiSE-FT fitted it to convergence on them before epoch 1 (theta_0's linear probe). " if wise else "")
    return (f"In {head} only the new head, training accuracy ({percent_half_up(last['train_acc'])}) lies far above "
            f"validation accuracy ({percent_half_up(last['val_acc'])}): a head alone on the pretrained features "
            f"fits {images} much better than it generalises to new ones. {fitted}The epochs that train the whole "
            "network decide the final accuracy.")


@dataclass(frozen=True)
class ChanceCause:
    """The likeliest reason a run stayed at guessing, which the pages and the command line word as advice
    in their own terms (`chance_cause`). `kind`: "peaked" (validation clearly peaked and fell: the
    learning rate; `best` is the best epoch's history entry, `last` the final validation accuracy),
    "memorised" (its last epoch got MEMORISED_GAP or more of its training images right above its held-out
    accuracy: it learnt the training images by heart, overfitting; `train_acc` is that epoch's training accuracy,
    `held_out` the held-out accuracy, fractions), "few_steps" (fewer than FEW_STEPS optimiser steps), "many_steps"
    (FEW_STEPS or more: the rate or the data) or "unknown" (the summary or config does not say the steps).
    `steps` = `per_epoch` x `epochs`; `batch` is the batch size, `n_train` the training images (None when
    unknown)."""

    kind: str
    best: dict | None = None
    last: float | None = None
    steps: int = 0
    per_epoch: int = 0
    epochs: int = 0
    batch: int = 0
    n_train: int | None = None
    train_acc: float | None = None
    held_out: float | None = None

    @property
    def one_step_epochs(self) -> bool:
        """True when the batch holds every training image, so that each epoch is a single step."""
        return isinstance(self.n_train, int) and self.batch >= self.n_train


def unstable_epoch(summary: dict) -> tuple[dict, float] | None:
    """(the history entry of the epoch with the highest mean training loss, a guess's loss) when that loss (nats)
    reached UNSTABLE_LOSS times a guess's, ln(number of classes): a model that gives every class the same
    probability scores ln C, and a training loss far above it means the optimiser's steps overshot, as a learning
    rate too high for the recipe makes them. None when no epoch did, or the summary lacks the classes or a
    history. Not for adversarial training, whose training loss is on attacked images."""
    classes = len(summary.get("classes") or [])
    losses = [e for e in summary.get("history") or [] if _finite(e.get("train_loss"))]
    if classes < 2 or not losses:
        return None
    guess = math.log(classes)
    worst = max(losses, key=lambda e: e["train_loss"])
    return (worst, guess) if worst["train_loss"] >= UNSTABLE_LOSS * guess else None


def unstable_words(summary: dict, lr: float | None = None) -> str | None:
    """`unstable_epoch`'s finding in words, with the run's learning rate `lr` when known, without advice
    ("Training was unstable: its training loss reached 21.7 in epoch 2, 10 times what a guess scores among 8
    classes (2.08): ..."); None when training was stable."""
    found = unstable_epoch(summary)
    if found is None:
        return None
    entry, guess = found
    rate = f" ({lr:g})" if lr else ""
    return (f"Training was unstable: its training loss reached {entry['train_loss']:.1f} in epoch "
            f"{entry.get('epoch', '?')}, {entry['train_loss'] / guess:.0f} times what a guess scores among "
            f"{len(summary['classes'])} classes ({guess:.2f}): the optimiser's steps overshot, as they do when the "
            f"learning rate{rate} is too high for the recipe, and the run's figures are what was left after it.")


def run_lr(summary: dict, config: dict | None) -> tuple[float | None, bool]:
    """(the run's peak learning rate, whether it was found automatically): the LR range test's pick
    (`summary["lr_find"]`) when `config` (a run's config dict) has optim.lr_auto on, else optim.lr; None when
    neither says."""
    optim = (config or {}).get("optim") or {}
    if optim.get("lr_auto"):
        found = (summary.get("lr_find") or {}).get("lr")
        return (float(found) if _finite(found) else None), True
    return (float(optim["lr"]) if _finite(optim.get("lr")) else None), False


def chance_cause(summary: dict, epochs: int, batch: int) -> ChanceCause:
    """Why a run at guessing likely learnt nothing, from its summary (history, steps_per_epoch,
    train_images, data_report) and its config's `epochs` and `batch` (batch size): a validation curve
    that clearly peaked and fell first (`peaked_and_fell`), else its optimiser steps against FEW_STEPS.
    Raises nothing."""
    peak = peaked_and_fell(summary)
    if peak is not None:
        return ChanceCause("peaked", best=peak[0], last=peak[1])
    per_epoch, n_train = summary.get("steps_per_epoch"), summary.get("train_images")
    memorised = _memorised(summary)
    if memorised is not None:
        return ChanceCause("memorised", n_train=n_train if isinstance(n_train, int) else None,
                           train_acc=memorised[0], held_out=memorised[1])
    if not (epochs and batch and isinstance(per_epoch, int)):
        return ChanceCause("unknown")
    steps = per_epoch * epochs
    return ChanceCause("many_steps" if steps >= FEW_STEPS else "few_steps", steps=steps, per_epoch=per_epoch,
                       epochs=epochs, batch=batch, n_train=n_train if isinstance(n_train, int) else None)


def _memorised(summary: dict) -> tuple[float, float] | None:
    """(the last epoch's training accuracy, the held-out accuracy: test, else validation; fractions) when the
    first is MEMORISED_GAP or more above the second, else None (also without a history)."""
    rows = [h for h in summary.get("history") or [] if _finite(h.get("train_acc"))]
    held_out = next((summary[k] for k in ("test_acc", "val_acc") if _finite(summary.get(k))), None)
    if not rows or held_out is None or rows[-1]["train_acc"] - held_out < MEMORISED_GAP:
        return None
    return rows[-1]["train_acc"], held_out


MEMORISED_SHORT_RUN = 10  # epochs: a run this short that learnt its images by heart is also advised a longer one
# training accuracy (a fraction) from which a run at guessing is said to have learnt its training images "by heart";
# below it, MEMORISED_GAP above held-out accuracy is said as learning those images (a new user's 45% of 96 images
# against 12.5% held out read "it learnt those by heart")
BY_HEART = 0.8


def memorised_words(cause: ChanceCause) -> str:
    """What a "memorised" ChanceCause means, without the pages' advice: "It did get 96% of its 45 training images
    right in its last epoch: it learnt those by heart (overfitting) more than what tells the classes apart in new
    images."; under BY_HEART training accuracy "it is learning those particular images (overfitting) more than
    ...". Raises nothing."""
    images = f"its {cause.n_train} training images" if cause.n_train else "its training images"
    learnt = ("it learnt those by heart" if (cause.train_acc or 0.0) >= BY_HEART
              else "it is learning those particular images")
    return (f"It did get {percent_half_up(cause.train_acc or 0.0)} of {images} right in its last epoch: {learnt} "
            "(overfitting) more than what tells the classes apart in new images.")


def memorised_fixes(config: dict | None) -> list[str]:
    """What in a run's recipe (`config`, its config dict) may have let it learn its training images by heart, as
    keys the pages word in their own terms: "augment" (augmentation was off), "frozen" (its first blocks kept as
    they were), "short" (fewer than MEMORISED_SHORT_RUN epochs). A new user's Fastest model run (4 epochs, 2 blocks
    frozen, no augmentation) at 46% test reached 85% with the Quick demo's 20 epochs, every layer and augmentation
    on the same images, so more images are not the only cure. Raises nothing."""
    train, optim = (config or {}).get("train") or {}, (config or {}).get("optim") or {}
    fixes = []
    if train.get("augment") is False:
        fixes.append("augment")
    if int(optim.get("freeze_blocks") or 0) > 0:
        fixes.append("frozen")
    if 0 < int(train.get("epochs") or 0) < MEMORISED_SHORT_RUN:
        fixes.append("short")
    return fixes


OVERFIT_GAP = 0.15  # training accuracy this far (a fraction) above validation at a run's end, beyond luck: said


def overfit_words(summary: dict, config: dict | None = None) -> str:
    """For a finished run clearly above guessing (`chance_finding` is None: a run at guessing says it in its own
    finding) whose last epoch got OVERFIT_GAP or more of its training images right above its validation accuracy,
    beyond luck (a one-sided Fisher exact test, scipy.stats.fisher_exact, p < GAP_P): the gap in words, with what
    in its recipe (`config`, its config dict: `memorised_fixes`) may narrow it; "" otherwise. Training accuracy is on
    augmented images while the weights still move, so it errs low. An agronomist saw a note on the head-only epochs'
    gap and none on the one that stayed to the end (training about 100%, validation 81%)."""
    from scipy.stats import fisher_exact

    last = (summary.get("history") or [{}])[-1]
    train, val, n_train = last.get("train_acc"), summary.get("val_acc"), int(summary.get("train_images") or 0)
    n_val = sum(split_sizes(summary, "val"))
    if not (_finite(train) and _finite(val)) or not n_train or not n_val or train - val < OVERFIT_GAP \
            or chance_finding(summary) is not None:
        return ""
    r_val, r_train = images_right(val, n_val), round(train * n_train)
    if r_val is None or fisher_exact([[r_train, n_train - r_train], [r_val, n_val - r_val]],
                                     alternative="greater").pvalue >= GAP_P:
        return ""
    fixes = {"augment": "augmentation (off in this run)", "frozen": "training every layer (its first blocks were "
             "frozen)", "short": ""}
    more = [fixes[k] for k in memorised_fixes(config) if fixes.get(k)]
    return (f"In its last epoch it got {percent_half_up(train)} of its {n_train} training images right, against "
            f"{percent_half_up(val)} of its {n_val} validation images: a gap of {100 * (train - val):.0f} points, "
            f"beyond luck, is what it learnt of its training images that does not carry to new ones (overfitting). "
            f"More varied pictures of each class narrow it most" + (f"; {and_words(more)} too" if more else "") + ".")


DETAIL_WEAK = 0.9  # validation accuracy (a fraction) under which a run on shrunk pictures is told of finer detail


def finer_detail_words(summary: dict, config: dict | None, control: str) -> str:
    """For a finished run whose validation accuracy (summary["val_acc"], a fraction) stayed under DETAIL_WEAK while
    its pictures (summary["data_report"]["picture_shape"]: engine.data.picture_shape's dict) were shrunk 3x or more
    to its image size (`config`, its config dict: data.image_size, px): that it lost their detail finer than about
    that many pixels, and that a run at twice the size keeps finer detail at about four times the computing per
    image. `control` words the setting where the words are read, "{size}" standing for the doubled size
    ("--image-size {size}"); none for a backbone that takes one image size only (ViT-B/16). A student's 320 x 200
    scans: 55.6% validation at 64 px, 88.9% at 128 px (one trial, not a benchmark: the words say "if", not that it
    helps). "" otherwise, also when the shape or accuracy is unknown. Raises nothing."""
    shape = run_picture_shape(summary)
    long, short = int(shape.get("long") or 0), int(shape.get("short") or 0)
    data = (config or {}).get("data") or {}
    size, accuracy = int(data.get("image_size") or 0), summary.get("val_acc")
    factor = shrink_factor(shape, size, data.get("fit") or "crop")  # a whole picture is shrunk by its longer side
    from engine.backbones import BACKBONES
    from engine.config import setting_meta

    spec = BACKBONES.get(((config or {}).get("backbone") or {}).get("name") or "")
    fixed = bool(spec and spec.fixed_image_size)
    most = setting_meta("data", "image_size")["max"]  # 512 px
    larger = min(2 * size, most)
    if fixed or not size or not _finite(accuracy) or accuracy >= DETAIL_WEAK or factor < 3 or larger <= size:
        return ""
    shrink, along = f"{factor:.0f}", shrunk_along(data.get("fit"))
    return (f"This run shrank your pictures (about {long} by {short} px) about {shrink}x{along} to {size} px, so "
            f"detail finer than about {shrink} of their pixels was lost to it. If what tells your classes apart is "
            f"small (a texture, a mark, a thin line), {control.format(size=larger)} keeps finer detail; each epoch "
            f"then takes about {(larger / size) ** 2:.0f}x as long.")


def cut_ends_words(summary: dict, config: dict | None, control: str) -> str:
    """For a finished run under DETAIL_WEAK validation accuracy (summary["val_acc"], a fraction) that kept the middle
    square (`config`'s data.fit "crop", the default) of pictures wider or taller than square (engine.words.oblong of
    summary["data_report"]["picture_shape"]): what share of their longer side it kept, and that `control` (words
    naming the whole-picture setting where they are read) keeps the ends in view. A field biologist's camera-trap
    run, its animals near the frame's edges, was told to check its folders and train longer, never that 44% of
    each picture's width was cut away. "" otherwise (also for an unknown shape or accuracy). Raises nothing."""
    from engine.words import oblong

    shape = run_picture_shape(summary)
    fit = ((config or {}).get("data") or {}).get("fit") or "crop"
    accuracy = summary.get("val_acc")
    if fit != "crop" or not oblong(shape) or not _finite(accuracy) or accuracy >= DETAIL_WEAK:
        return ""
    return (f"This run kept the middle square of your pictures, {percent_half_up(float(shape['square_share']))} of "
            f"their longer side: if what tells your classes apart can sit near a picture's end, {control} keeps it "
            "in view (at fewer pixels).")


def small_splits(summary: dict) -> dict[str, int]:
    """{"val" and/or "test": number of images} for the held-out splits with fewer than SMALL_SPLIT
    images (none empty), from the summary's data_report split_counts; {} when both are large enough
    or the summary does not say."""
    sizes = {split: sum(split_sizes(summary, split)) for split in ("val", "test")}
    return {split: n for split, n in sizes.items() if 0 < n < SMALL_SPLIT}


def one_image_words(small: dict[str, int]) -> str:
    """`small_splits`' result in words: "9 validation images (one image is 11.1 points of accuracy) and 9
    test images (one image is 11.1 points of accuracy)"."""
    return " and ".join(f"{plural(n, SPLIT_WORDS[split] + ' image')} (one image is {100 / n:.1f} points of accuracy)"
                        for split, n in small.items())


def few_held_out_words(split_counts: dict[str, dict[str, int]], report: dict | None = None) -> str:
    """Before any run, when the validation or test split will hold fewer than SMALL_SPLIT images (`split_counts`:
    {split: {class: images}}), what one image will be worth in every accuracy measured on it: "Few images to
    measure on: 9 validation images (one image is 11.1 points) and ... . A run's accuracies will move in steps that
    large, ..."; then, from the data `report` (a dict), what its bursts make of that (`moments_words`); "" when
    neither applies. The Data page and `inspect` say it (Results, `small_split_words`, after a run)."""
    small = small_splits({"data_report": {"split_counts": split_counts}})
    moments = moments_words(report or {})
    if not small:
        return moments
    return ("Few images to measure on: " + one_image_words(small) + ". A run's accuracies will move in steps that "
            "large, and two runs can differ by an image or two from luck alone; more images per class make them "
            "firmer." + (f" {moments}" if moments else ""))


def moments_words(report: dict) -> str:
    """Where the held-out splits hold bursts (the data `report`'s "bursts" and "split_files": frames one camera took
    moments apart, engine.bursts), how many separate moments each split's figures rest on: "The 42 validation images
    are 14 separate moments and the 43 test images 15 (a burst counts once): a burst's frames are mostly right or
    wrong together, so a figure moves by about 7.1 points with one moment, not 2.4 with one image."; "" without
    bursts there. An agronomist's 7 of 8 validation misses were two leaves shot 4 times each."""
    files = {split: set((report.get("split_files") or {}).get(split) or []) for split in ("val", "test")}
    counted = []
    for split, names in files.items():  # a burst's frames in this split count once (a burst your folders cut
        inside = [len(set(b) & names) for b in report.get("bursts") or []]  # counts once in each split it is in)
        inside = [k for k in inside if k]
        if names and inside and sum(inside) > len(inside):
            counted.append((split, len(names), len(names) - sum(inside) + len(inside)))
    if not counted:
        return ""
    said = " and the ".join(f"{plural(n, SPLIT_WORDS[split] + ' image')} " + (
        f"{'is' if n == 1 else 'are'} {plural(units, 'separate moment')}" if i == 0 else f"{units}")
        for i, (split, n, units) in enumerate(counted))
    split, n, units = min(counted, key=lambda c: c[2])
    return (f"The {said} (a burst counts once): a burst's frames are mostly right or wrong together, so a figure "
            f"moves by about {100 / units:.1f} points with one moment, not {100 / n:.1f} with one image.")


def luck_gap(n: int) -> tuple[float, str]:
    """How far apart two figures measured on `n` held-out images can be by an image or two: (points, at most 100,
    and its words, "one or two images"; for one image 100 points, "one image": a split of 1 image read "figures up
    to 200 points apart")."""
    n = max(int(n), 1)
    return 100.0 * min(2, n) / n, "one or two images" if n > 1 else "one image"


def small_split_words(summary: dict) -> str:
    """A caution for figures measured on few held-out images (`small_splits`): how many points one image
    is worth on each small split and how far apart figures can be by one or two images, and what the splits' bursts
    make of it (`moments_words`, also for larger splits); "" when neither applies."""
    small = small_splits(summary)
    moments = moments_words(summary.get("data_report") or {})
    if not small:
        return moments
    gap, images = luck_gap(min(small.values()))
    return ("Measured on " + one_image_words(small) + f": figures up to {gap:.0f} points apart (between the splits, "
            f"across the corruptions, between runs, in the methods' verdicts) can be {images} apart, so read them as "
            "hints; more images per class make them firmer." + _wide_gap_words(summary)
            + (f" {moments}" if moments else ""))


def _wide_gap_words(summary: dict) -> str:
    """For `small_split_words`: a validation-test gap of more than two images of the smaller split that chance
    still gives often (p >= GAP_P, so `val_test_gap_words` is silent), said with its odds, with a leading space;
    "" otherwise. A new user's 66.7% validation beside 100% test (12 images each) was left to the one-or-two-images
    caution, which it exceeds."""
    from engine.claims import shown_points

    found = _gap_test(summary)
    if found is None:
        return ""
    (val, n_val, r_val), (test, n_test, r_test), p = found
    if p < GAP_P or abs(r_val / n_val - r_test / n_test) * min(n_val, n_test) <= 2:
        return ""
    check = ("your validation and test folders may also hold different kinds of pictures (the split is yours)"
             if (summary.get("data_report") or {}).get("split_given") else
             "the same settings with another seed show which is typical")
    return (f" Here validation and test are {abs(shown_points(val, test)):.1f} points apart ({r_val} of {n_val} and "
            f"{r_test} of {n_test} images right): with this few images a gap at least this large still comes up by "
            f"chance {100 * p:.0f}% of the time (Fisher's exact test), so neither figure is firm; {check}.")


def _gap_test(summary: dict) -> tuple[tuple[float, int, int], tuple[float, int, int], float] | None:
    """((val_acc, val images, right), (test_acc, test images, right), the two-sided Fisher exact test's p-value of
    the right/wrong counts, scipy.stats.fisher_exact) from a summary; None when either accuracy is missing or NaN,
    a split's size unknown or empty, or an accuracy is not a whole number of its images."""
    from scipy.stats import fisher_exact

    val, test = summary.get("val_acc"), summary.get("test_acc")
    if not (_finite(val) and _finite(test)):
        return None  # missing, or NaN (an empty split)
    n_val, n_test = sum(split_sizes(summary, "val")), sum(split_sizes(summary, "test"))
    r_val, r_test = images_right(val, n_val), images_right(test, n_test)
    if r_val is None or r_test is None:
        return None
    p = fisher_exact([[r_val, n_val - r_val], [r_test, n_test - r_test]]).pvalue
    return (val, n_val, r_val), (test, n_test, r_test), float(p)


def val_test_gap_words(summary: dict) -> str | None:
    """A finding when a run's validation and test accuracies differ by more than chance usually gives:
    both are fractions of their split's images (data_report split_counts), and a two-sided Fisher
    exact test (scipy.stats.fisher_exact) of right/wrong counts gives p < GAP_P. None otherwise, or
    when either split's size is unknown, empty, or an accuracy is not a whole number of its images."""
    from engine.claims import shown_points

    found = _gap_test(summary)
    if found is None or found[2] >= GAP_P:
        return None
    (val, n_val, _), (test, n_test, _), p = found
    odds = f"only {100 * p:.1f}% of the time (Fisher's exact test, p = {p:.3f})" if p >= 0.001 \
        else "less than 0.1% of the time (Fisher's exact test, p < 0.001)"  # not "only less than"
    return (f"Validation ({100 * val:.1f}%) and test ({100 * test:.1f}%) differ by "
            f"{abs(shown_points(val, test)):.1f} points on {n_val} and {plural(n_test, 'image')}: if the model were equally "
            f"accurate on both, a gap at least this large would come up {odds}.")


@dataclass(frozen=True)
class WeakClass:
    """One class `weak_classes` found. `name`: the user's class name; `right` of its `images` held-out
    images right; `others`: the accuracy (a fraction) on the other classes' images together; `taken_for`:
    the classes its images were most often answered as (more than one when tied, in the run's class
    order), and `taken`: how many of its images each of them got; `p`: the one-sided Fisher exact test's
    p-value of its right/wrong counts against the others'."""

    name: str
    right: int
    images: int
    others: float
    taken_for: tuple[str, ...]
    taken: int
    p: float

    @property
    def acc(self) -> float:
        """The class's accuracy on its held-out images, a fraction (right / images)."""
        return self.right / self.images


def findings_split(summary: dict) -> str:
    """The held-out split a run's per-class findings read: "test", else "val" when the summary has no test
    confusion matrix (a run without a test split), as Results' confusion matrix opens."""
    return "test" if summary.get("test_confusion") else "val"


def confusion_rows(summary: dict, split: str) -> list[list[int]] | None:
    """The summary's `{split}_confusion` (rows: true class, columns: answer; image counts) as ints, where it is
    well formed: a list of lists, as many rows and columns as the summary's `classes` (at least one); None
    otherwise. Every per-class reading of a run (weak classes, a class's answers, a split at guessing, the card's
    and Compare's per-class figures) starts from it."""
    classes, rows = summary.get("classes") or [], summary.get(f"{split}_confusion")
    n = len(classes)
    if not n or not isinstance(rows, list) or len(rows) != n or any(not isinstance(r, list) or len(r) != n
                                                                      for r in rows):
        return None
    return [[int(v) for v in r] for r in rows]


def findings_at_guessing(summary: dict, split: str) -> bool:
    """Whether a run's per-group findings on `split` ("test" or "val") are to be left unsaid: the run as a whole
    (`chance_finding`; a small test split within luck that validation clears included) or this split
    (`split_at_guessing`) is at guessing, which the pages say as that (and every group would be named)."""
    return chance_finding(summary, validation_clears=False) is not None or split_at_guessing(summary, split) is not None


def gap_p(group: tuple[int, int], others: tuple[int, int], alternative: str = "two-sided") -> float | None:
    """The Fisher exact test's p (scipy.stats.fisher_exact) of a group's (right, images) against the others' where
    their accuracies are at least WEAK_GAP apart (`alternative` "less": the group's at least WEAK_GAP below); None
    where they are closer or either has no images. A weak class (`weak_classes`) and the weaker of greyscale and
    colour pictures (`colour_gap`) are both found this way."""
    from scipy.stats import fisher_exact

    (right, n), (o_right, o_n) = group, others
    if not n or not o_n:
        return None
    below = o_right / o_n - right / n
    if (below if alternative == "less" else abs(below)) < WEAK_GAP:
        return None
    return float(fisher_exact([[right, n - right], [o_right, o_n - o_right]], alternative=alternative).pvalue)


def weak_classes(summary: dict, split: str | None = None) -> list[WeakClass]:
    """The classes of a finished run the model gets wrong far more often than the rest on `split`
    ("test" or "val"; None: the test split, else validation when the run has no test confusion matrix),
    from the summary's `classes` and `{split}_confusion` (rows: true class, columns:
    answer; image counts): a class's right/wrong counts against those of all other classes' images
    together, a one-sided Fisher exact test (scipy.stats.fisher_exact) with p < WEAK_P and an accuracy
    at least WEAK_GAP below theirs. The weakest first, at most WEAK_SHOWN. [] when the confusion matrix
    is missing or malformed, and when the run as a whole or this split is at the level of guessing
    (`chance_finding`, `split_at_guessing` say that, and every class would be named). Raises nothing."""
    split = split or findings_split(summary)
    classes, rows = summary.get("classes"), confusion_rows(summary, split)
    if rows is None:
        return []
    if findings_at_guessing(summary, split):
        return []
    right_all, n_all = sum(rows[i][i] for i in range(len(rows))), sum(map(sum, rows))
    found = []
    for i, name in enumerate(classes):
        n, right = sum(rows[i]), rows[i][i]
        o_n, o_right = n_all - n, right_all - right
        p = gap_p((right, n), (o_right, o_n), alternative="less")
        if p is None or p >= WEAK_P:
            continue
        taken = max(rows[i][j] for j in range(len(classes)) if j != i)
        ties = tuple(str(classes[j]) for j in range(len(classes)) if j != i and rows[i][j] == taken)
        found.append(WeakClass(str(name), right, n, o_right / o_n, ties, taken, p))
    return sorted(found, key=lambda w: (w.acc, w.p))[:WEAK_SHOWN]


FEW_PER_CLASS = 5  # held-out images of one class: below this one image moves its own accuracy by over 20 points


def few_image_classes(summary: dict) -> dict[str, dict[str, int]]:
    """The classes with fewer than FEW_PER_CLASS images in the validation or test split (the summary's, or a
    DataReport's, data_report split_counts: {split: {class: images}}) while another class there has that many or
    more (where every class has fewer, `small_split_words` says it of the whole split): {class: {"val": images,
    "test": images}} (the splits the counts give), in the counts' class order; {} when none or the counts are
    missing. A clinician's rare class read "100% (2 of 2)" in green with no word that 2 images settle nothing."""
    counts = (summary.get("data_report") or {}).get("split_counts") or {}
    held = {s: {str(c): int(n or 0) for c, n in (counts.get(s) or {}).items()}
            for s in ("val", "test") if counts.get(s)}
    few = [c for s, by in held.items() if max(by.values()) >= FEW_PER_CLASS for c, n in by.items() if n < FEW_PER_CLASS]
    names = [c for c in next(iter(held.values()), {}) if c in few]
    return {c: {s: by.get(c, 0) for s, by in held.items()} for c in names}


def class_answers(summary: dict, name: str, split: str) -> str | None:
    """Class `name`'s answers on `split` from the summary's `{split}_confusion` (rows: true class, columns: answer):
    "1 of 2 validation images right (1 taken for Naevus)"; None without a well-formed matrix or that class."""
    classes, rows = [str(c) for c in summary.get("classes") or []], confusion_rows(summary, split)
    if rows is None or name not in classes:
        return None
    i = classes.index(name)
    row = rows[i]
    if not sum(row):
        return None
    taken = [f"{n} taken for {classes[j]}" for j, n in enumerate(row) if j != i and n]
    return (f"{row[i]} of {plural(sum(row), SPLIT_WORDS[split] + ' image')} right"
            + (f" ({', '.join(taken)})" if taken else ""))


def few_class_words(summary: dict) -> str:
    """`few_image_classes` in words, with each such class's answers where the run measured them (`class_answers`):
    "Few images to judge this class by. Melanoma: 2 of 2 test images right, 1 of 2 validation images right (1 taken
    for Naevus (benign)). One image is 50 points of such a class's own accuracy, so its figures say little (2
    images prove little either way). More of its pictures, or larger validation and test shares, make them
    firmer."; before a run (a DataReport's counts) the images each split will hold ("Melanoma: 2 validation
    images, 2 test images"); a class with no held-out image is said to be unmeasurable. "" when no class is that
    few. Results, the model card, the Data page, `inspect` and `train` say it."""
    few = few_image_classes(summary)
    if not few:
        return ""
    parts = []
    for name, sizes in few.items():
        said = [w for s in ("test", "val") if (w := class_answers(summary, name, s))]
        counts = [plural(n, SPLIT_WORDS[s] + " image") for s, n in sizes.items()]
        parts.append(f"{name}: " + (", ".join(said or counts) if any(sizes.values()) else
                                    "no validation or test image, so its accuracy cannot be measured"))
    least = min([n for sizes in few.values() for n in sizes.values() if n] or [0])
    weight = (f" One image is {100 / least:.0f} points of such a class's own accuracy, so its figures say little "
              f"({plural(least, 'image')} {'proves' if least == 1 else 'prove'} little either way)." if least else "")
    return (f"Few images to judge {'this class' if len(few) == 1 else 'these classes'} by. " + "; ".join(parts)
            + f".{weight} More of its pictures, or larger validation and test shares, make them firmer.")


FEW_TRAIN = 10  # training images of one class: below this (beside a class of twice as many) it is named


def few_training_words(summary: dict) -> str | None:
    """The classes a run's model learnt from fewer than FEW_TRAIN training images while its largest class had at
    least twice as many (the summary's data_report split_counts "train"): "The model learnt Melanoma from only 5
    training pictures (Naevus (benign) from 43): it knows that class least, so it may miss such pictures or take
    others for it."; None otherwise. Try it says it under a new picture's answer: a clinician's rare-class photo
    was answered as another class at 94% with no word that the model had seen 5 of its kind. A class without a
    training picture is said never to have been seen."""
    train = {str(c): int(n or 0) for c, n in
             (((summary.get("data_report") or {}).get("split_counts") or {}).get("train") or {}).items()}
    if not train:
        return None
    largest = max(train, key=train.get)
    few = [(c, n) for c, n in train.items() if n < FEW_TRAIN and 2 * n <= train[largest]]
    if not few:
        return None
    unseen = [c for c, n in few if not n]
    few = [(c, n) for c, n in few if n]
    named = and_words([f"{c} from {'only ' if i == 0 else ''}{plural(n, 'training picture') if i == 0 else n}"
                       for i, (c, n) in enumerate(few)])
    one = len(few) == 1
    learnt = (f"The model learnt {named} ({largest} from {train[largest]}): it knows "
              f"{'that class' if one else 'those classes'} least, so it may miss such pictures or take others for "
              f"{'it' if one else 'them'}.") if few else ""
    never = (f"{' ' if learnt else ''}It never saw {and_words(unseen)} in training (no training picture), so it "
             f"does not know {'that class' if len(unseen) == 1 else 'those classes'} at all.") if unseen else ""
    return learnt + never


COLOUR_P = 0.05  # greyscale and colour pictures' accuracies further apart than chance gives this often: said


@dataclass
class ColourGap:
    """A split's greyscale and colour pictures' answers (`colour_gap`): right and images of each kind, and the kind
    the model is weaker on by more than luck (None where the gap is under WEAK_GAP or within luck)."""

    split: str
    grey: tuple[int, int]
    colour: tuple[int, int]
    weaker: str | None
    luck: bool  # the gap is WEAK_GAP or more but within luck (p >= COLOUR_P)


def colour_gap(summary: dict, split: str | None = None) -> ColourGap | None:
    """`split`'s greyscale and colour counts (`{split}_by_colour`, engine.evaluate.colour_groups; `split` None: the
    test images where they have both kinds, else the validation images where they have, else as `findings_split`)
    and whether they differ by at least WEAK_GAP and by more than luck (a two-sided Fisher exact test,
    scipy.stats.fisher_exact, p < COLOUR_P). None without both
    kinds, for malformed counts, or when the run or the split is at guessing (`chance_finding`, `split_at_guessing`
    say that)."""
    split = split or next((s for s in ("test", "val") if f"{s}_by_colour" in summary), findings_split(summary))
    by = summary.get(f"{split}_by_colour")
    if not isinstance(by, dict) or findings_at_guessing(summary, split):
        return None
    try:
        grey, colour = (tuple(int(v) for v in by[k]) for k in ("greyscale", "colour"))
        (g_right, g_n), (c_right, c_n) = grey, colour
    except (KeyError, TypeError, ValueError):
        return None
    if not g_n or not c_n:
        return None
    p = gap_p(grey, colour)
    if p is None:
        return ColourGap(split, grey, colour, None, False)
    weaker = "greyscale" if g_right / g_n < c_right / c_n else "colour"
    return ColourGap(split, grey, colour, weaker if p < COLOUR_P else None, p >= COLOUR_P)


def colour_words(summary: dict, split: str | None = None) -> str | None:
    """`colour_gap` in words: "On the test images the model gets 3 of 9 greyscale pictures right (33.3%) and 16 of
    18 colour ones (88.9%)." (no examples of what they are: night shots, scans and a microscope's pictures alike); a
    gap beyond luck names the weaker kind and how many such
    pictures training had (`train_greyscale`), one within luck says so (train.greyscale is not offered:
    benchmarks/greyscale.py measured no clear gain from it). None where `colour_gap` is."""
    gap = colour_gap(summary, split)
    if gap is None:
        return None
    (g_right, g_n), (c_right, c_n) = gap.grey, gap.colour
    said = (f"On the {SPLIT_WORDS.get(gap.split, gap.split)} images the model gets {g_right} of "
            f"{plural(g_n, 'greyscale picture')} right ({100 * g_right / g_n:.1f}%) and "
            f"{c_right} of {c_n} colour ones ({100 * c_right / c_n:.1f}%).")
    said += grey_classes_words(summary, gap.split)
    if gap.luck:
        return said + " A gap this size on so few pictures can be luck (more of each kind would tell)."
    if gap.weaker is None:
        return said
    train = summary.get("train_greyscale")
    had = ""
    if isinstance(train, list) and len(train) == 2:
        kind = int(train[0]) if gap.weaker == "greyscale" else int(train[1]) - int(train[0])
        had = f" (training had {kind} of {plural(int(train[1]), 'picture')})"
    return (said + f" It is weaker on {gap.weaker} pictures by more than luck: more training pictures of that kind"
            f"{had} usually help.")


SURE = 0.9  # an answer this confident or more is "sure": the band a user takes at its word
OVERSURE_P = 0.05  # sure answers right less often than their confidence says, beyond this chance of luck: said


@dataclass(frozen=True)
class Reliability:
    """What `reliability` read: the split ("test" or "val"), each band's (lower edge, right, images) with images,
    lowest first, the sure band's (right, images, mean confidence) or None, and whether those sure answers are
    right less often than their confidence says by more than luck (`oversure`)."""

    split: str
    bands: list[tuple[float, int, int]]
    sure: tuple[int, int, float] | None
    oversure: bool


def reliability(summary: dict, split: str | None = None) -> Reliability | None:
    """How often the run's answers on `split` (test where it has them, else validation) are right at each confidence
    (`{split}_confidence`, engine.evaluate.confidence_bands), and whether its sure answers (SURE or more) are right
    less often than their mean confidence by more than luck: a one-sided exact binomial test against that mean, p <
    OVERSURE_P. None without well-formed bands or when the run is at guessing (its own finding says that). An
    ecologist's badgers were called deer at 83-94%, with nothing to say how far such answers hold."""
    split = split or next((s for s in ("test", "val") if f"{s}_confidence" in summary), "test")
    band = summary.get(f"{split}_confidence")
    try:
        rows = list(zip(band["from"], band["right"], band["images"], band["confidence"]))
    except (KeyError, TypeError):
        return None
    if not rows or findings_at_guessing(summary, split):
        return None
    bands = [(float(lo), int(r), int(n)) for lo, r, n, _ in rows if int(n)]
    top = [(int(r), int(n), float(c)) for lo, r, n, c in rows if float(lo) >= SURE and int(n)]
    sure = top[0] if top else None
    oversure = sure is not None and sure[0] < sure[1] * sure[2] and \
        1.0 - binomial_tail(sure[0] + 1, sure[1], min(sure[2], 1.0)) < OVERSURE_P
    return Reliability(split, bands, sure, oversure)


def reliability_words(summary: dict, split: str | None = None, rel: Reliability | None = None) -> str | None:
    """`reliability` in words: "How often its answers on the test images are right, by how sure it was: 90% sure or
    more, 30 of 32 (93.8%); 70-90%, 3 of 5; under 50%, 0 of 1." and, for sure answers right less often than their
    confidence beyond luck, that a high confidence is not to be taken at its word; None where `reliability` is.
    `rel`: `reliability(summary, split)` where the caller has it already."""
    rel = rel or reliability(summary, split)
    if rel is None or not rel.bands:
        return None

    def band_name(lo: float) -> str:
        higher = [e for e in (0.5, 0.7, SURE, 1.0) if e > lo]
        if lo >= SURE:
            return f"{100 * lo:.0f}% sure or more"
        return f"under {100 * higher[0]:.0f}%" if lo == 0 else f"{100 * lo:.0f}-{100 * higher[0]:.0f}%"

    parts = [f"{band_name(lo)}, {r} of {n}" + (f" ({100 * r / n:.1f}%)" if lo >= SURE else "")
             for lo, r, n in sorted(rel.bands, key=lambda b: -b[0])]
    said = (f"How often its answers on the {SPLIT_WORDS.get(rel.split, rel.split)} images are right, by how sure it "
            f"was: {'; '.join(parts)}.")
    if rel.oversure and rel.sure is not None:
        right, n, conf = rel.sure
        said += (f" Its sure answers were right less often than it was sure ({100 * right / n:.1f}% against a mean "
                 f"confidence of {100 * conf:.1f}%), by more than luck on {plural(n, 'answer')}: do not take a high "
                 f"confidence at its word.")
    return said


def oversure_words(summary: dict) -> str | None:
    """`reliability_words` where the run's sure answers were right less often than it was sure beyond luck
    (`reliability`'s oversure), for a warning: the card, `train` and `predict` say it; None otherwise."""
    rel = reliability(summary)
    return reliability_words(summary, rel=rel) if rel is not None and rel.oversure else None


def grey_classes_words(summary: dict, split: str) -> str:
    """" The greyscale ones: deer 2 of 4, empty 5 of 5 right; no greyscale picture of fox." from `{split}_by_colour`'s
    "greyscale_by_class" (engine.evaluate.colour_groups), with a space before it; "" without well-formed counts. A
    greyscale figure is also its classes': an ecologist's night pictures held no fox, unsaid."""
    classes = summary.get("classes") or []
    rows = (summary.get(f"{split}_by_colour") or {}).get("greyscale_by_class")
    if not isinstance(rows, list) or len(rows) != len(classes) or any(
            not isinstance(r, list) or len(r) != 2 for r in rows):
        return ""
    held = [f"{c} {int(r)} of {int(n)}" for c, (r, n) in zip(classes, rows) if int(n)]
    counts = ((summary.get("data_report") or {}).get("split_counts") or {}).get(split) or {}
    sizes = {str(c): int(n or 0) for c, n in counts.items()}
    none = [str(c) for c, (_, n) in zip(classes, rows) if not int(n) and sizes.get(str(c), 1)]  # in the split
    if not held:
        return ""
    return (f" The greyscale ones: {', '.join(held)} right" + (f"; no greyscale picture of {and_words(none)}"
                                                               if none else "") + ".")


def picture_kind_words(summary: dict, greyscale: bool) -> str | None:
    """For one new picture (`greyscale`: engine.data.is_greyscale of it) of the kind the run's model is weaker on
    by more than luck (`colour_gap`), a caution with the figures: "A greyscale picture: the model got 3 of 12 such
    test pictures right (25.0%), against 40 of 44 colour ones (90.9%)." None otherwise. A field biologist's night
    shot was answered at 77%, wrong, with no word beside it."""
    return pictures_kind_words(summary, [greyscale])


def pictures_kind_words(summary: dict, greyscale: Sequence[bool]) -> str | None:
    """`picture_kind_words` for several new pictures (`greyscale`: each one's engine.data.is_greyscale): "3 of your
    10 pictures are greyscale: the model got 3 of 12 such test pictures right (25.0%), against 40 of 44 colour ones
    (90.9%)." (for one picture, "A greyscale picture: ..."), where some are of the kind the run's model is weaker on
    by more than luck (`colour_gap`); None otherwise. `predict` says it of a batch as Try it says it of a picture."""
    gap = colour_gap(summary)
    if gap is None or gap.weaker is None:
        return None
    grey = gap.weaker == "greyscale"
    count = sum(bool(g) == grey for g in greyscale)
    if not count:
        return None
    (right, n), (o_right, o_n) = (gap.grey, gap.colour) if grey else (gap.colour, gap.grey)
    kind, other = ("greyscale", "colour") if grey else ("colour", "greyscale")
    head = f"A {kind} picture" if len(greyscale) == 1 else f"{count} of your {len(greyscale)} pictures are {kind}"
    return (f"{head}: the model got {right} of {n} such {SPLIT_WORDS.get(gap.split, gap.split)} pictures right "
            f"({100 * right / n:.1f}%), against {o_right} of {o_n} {other} ones ({100 * o_right / o_n:.1f}%).")


def split_at_guessing(summary: dict, split: str) -> str | None:
    """A finding when the model's accuracy on `split` ("val", "test" or "ood_user": the user's OOD set),
    from its `{split}_confusion` (rows: true class, columns: answer; image counts), is at, below or
    within luck of guessing (`chance_finding` on those counts; on imbalanced classes a balanced accuracy beyond luck
    clears it, as it clears the run's), with the answer it gives most often, and for the
    user's OOD set what it means (conditions beyond what it learnt; within luck: too few pictures to tell); None
    otherwise or without a well-formed matrix. A new user's OOD set of darker pictures was answered
    "square" for every image, and the page named two of three classes as weak, advising more images."""
    classes, rows = summary.get("classes") or [], confusion_rows(summary, split)
    if len(classes) < 2 or rows is None:
        return None
    n = sum(map(sum, rows))
    if n == 0:
        return None
    counts = {"test": {str(c): sum(r) for c, r in zip(classes, rows)}}
    imbalance = (summary.get("data_report") or {}).get("imbalance")  # balanced accuracy may clear it, as the run's
    found = chance_finding({"classes": classes, "test_acc": sum(rows[i][i] for i in range(len(rows))) / n,
                            "test_confusion": rows, "data_report": {"split_counts": counts, "imbalance": imbalance}},
                           whose="The model's")
    if found is None:
        return None
    right, guess = sum(rows[i][i] for i in range(len(rows))), 1 / len(classes)
    answers = [sum(r[j] for r in rows) for j in range(len(classes))]
    top = max(range(len(classes)), key=lambda j: answers[j])
    where = "your OOD set" if split == "ood_user" else f"the {SPLIT_WORDS.get(split, split)} images"
    sizes = [sum(r) for r in rows]
    big = max(range(len(classes)), key=lambda i: sizes[i])
    if found.kind == "largest":  # above 1 / classes, but an unbalanced split: the fair bar is its largest class
        level = (f"no better than always answering its largest class, {classes[big]} ({sizes[big]} of {n}, "
                 f"{100 * sizes[big] / n:.1f}%)")
    elif found.kind == "luck":
        null = max(guess, sizes[big] / n)
        p = binomial_tail(right, n, null)
        largest = "" if null == guess else f"; {100 * null:.1f}% always answering its largest class"
        level = (f"above the level of guessing among {len(classes)} classes ({100 * guess:.1f}%{largest}), but not "
                 f"clearly: a model that learnt nothing gets that many or more right {100 * p:.0f}% of the time")
    else:
        level = (f"{'below' if found.kind == 'below' else 'at'} the level of guessing among {len(classes)} classes "
                 f"({100 * guess:.1f}%)")
    said = f"On {where} the model gets {right} of {plural(n, 'image')} right ({100 * right / n:.1f}%), {level}."
    most = "" if answers[top] <= n / 2 else f" It answers {classes[top]} for " + (
        "all of them." if answers[top] == n else f"{answers[top]} of them.")
    if split != "ood_user":
        return said + most
    too_few = binomial_tail(n, n, max(guess, max(sizes) / n)) >= LUCK_P  # even all right would be luck
    if found.kind == "luck" or too_few:  # not shown to fail there: too few pictures to tell (a 2-class model got 4
        # of 4 right and was told the conditions were beyond it; 1 of 2 right is no proof either)
        return said + most + (" Too few pictures to tell whether it holds up in these conditions: more pictures in "
                              "your OOD set would.")
    return said + most + (" These pictures' conditions are beyond what it learnt: training images taken in such "
                          "conditions help more than more of the same.")


def weak_class_words(summary: dict, split: str | None = None) -> str | None:
    """`weak_classes` in one finding, with their numbers: "Weaker than the other classes on the test
    images, by more than luck on that many images: zigzagged, 1 of 8 right (12%, against 61% for the
    others), most often taken for striped (5 of 8). ..."; when the split as a whole is at guessing while
    the run is not (the user's OOD set), `split_at_guessing`'s finding instead; None when there are none."""
    split = split or findings_split(summary)
    # the run's held-out split cleared by validation is no finding either (validation_clears off); the OOD set's is
    at_guess = split_at_guessing(summary, split) \
        if chance_finding(summary, validation_clears=split == "ood_user") is None else None
    if at_guess:  # the split as a whole (the user's OOD set) at guessing: no class is weaker than the rest
        return at_guess
    weak = weak_classes(summary, split)
    if not weak:
        return None
    parts = [f"{w.name}, {w.right} of {w.images} right ({percent_half_up(w.acc)}, against "
             f"{percent_half_up(w.others)} for the others)"
             + (f", most often taken for {and_words(w.taken_for)} ({w.taken} of {w.images}"
                + (" each)" if len(w.taken_for) > 1 else ")") if w.taken else "")
             for w in weak]
    where = "your OOD set's images" if split == "ood_user" else f"the {SPLIT_WORDS[split]} images"
    return (f"Weaker than the other classes on {where}, by more than luck on that many "
            f"images: " + "; ".join(parts) + ". More training images of such a class, or clearer ones, usually "
            "help; look at what it is mistaken for.")
