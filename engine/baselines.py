"""Which finished runs a run's paper claims are judged against (engine.claims): standard fine-tuning with
the same data, backbone, size, split and sampling settings, seed, training recipe and augmentation (for
adversarial fine-tuning also the same robust evaluation), and, for adversarial fine-tuning from
pretrained weights, adversarial training from scratch with the same data, size, seed and attack. Run
records are the run store's (engine.store.RunRecord: id, status, config as saved, run_dir); the Results
page and the command line judge with the same runs."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Sequence

from engine.claims import CLAIMS, Claim, shown_points
from engine.config import RunConfig
from engine.methods import METHODS

SAME = (("data", "source"), ("data", "image_size"), ("backbone", "name"), ("backbone", "pretrained"),
        ("data", "drop_duplicates"), ("data", "val_fraction"), ("data", "test_fraction"), ("data", "train_per_class"),
        ("data", "class_balance"), ("data", "fit"), ("train", "epochs"), ("train", "batch_size"),
        ("optim", "optimizer"), ("optim", "lr"),
        ("optim", "momentum"), ("optim", "weight_decay"), ("optim", "schedule"),
        ("optim", "linear_probe_epochs"), ("train", "augment"), ("train", "flip"), ("eval", "tta_flip"), ("seed", None))


def config_value(config: dict, section: str, key: str | None):
    """config[section][key] (config[section] for key None); a key a saved config lacks (one written
    before the setting existed) reads as the setting's default, which that run used."""
    value = config.get(section)
    if key is None:
        return value
    if key in (value or {}):
        return value[key]
    return getattr(getattr(_defaults(), section, None), key, None)


@functools.cache
def _defaults() -> RunConfig:
    return RunConfig()


def methods_on(config: dict) -> set[str]:
    """The fine-tuning methods switched on in a saved run config (sections -> fields)."""
    return {n for n in METHODS if isinstance(config.get(n), dict) and config[n].get("enabled")}


# with adversarial training on, the standard run must have attacked alike: its robust accuracy is the claim's
# baseline. An adversarial run measures robust accuracy whatever its eval.robust says (engine.evaluate.robust_on),
# so the standard run's switch must be on, with this run's attack (eps, PGD steps).
SAME_ROBUST = (("eval", "robust_eps"), ("eval", "robust_steps"))


def _standard_alike(rec, runs, keys) -> list:
    """The finished runs of `runs` (newest first) other than `rec` with no fine-tuning method switched on and
    `rec`'s values of the settings `keys` ((section, key) pairs, as config_value reads them)."""
    return [other for other in runs if other.id != rec.id and other.status == "finished"
            and not methods_on(other.config)
            and all(config_value(other.config, s, k) == config_value(rec.config, s, k) for s, k in keys)]


def _standard_twins(rec, runs) -> list:
    """`_standard_alike` on SAME: `rec`'s data, backbone, image size, split and sampling settings, seed, recipe and
    augmentation."""
    return _standard_alike(rec, runs, SAME)


def _attacked_alike(other, rec) -> bool:
    """True when the standard run `other` measured robust accuracy under `rec`'s attack (eps, PGD steps)."""
    return bool(config_value(other.config, "eval", "robust")) and all(
        config_value(other.config, s, k) == config_value(rec.config, s, k) for s, k in SAME_ROBUST)


def comparison_run(rec, runs) -> object | None:
    """The newest finished run with this run's data, backbone, image size, split and sampling settings
    (shares, duplicates dropped, images per class, class balance), seed, recipe (epochs, batch size,
    optimiser, learning rate, momentum, weight decay, schedule, head-only epochs), augmentation (crops,
    mirroring, flip TTA), for adversarial training also robust accuracy measured under the same attack
    (eps, PGD steps), and no fine-tuning method switched on (standard fine-tuning), or None."""
    twins = _standard_twins(rec, runs)
    if "adversarial" in methods_on(rec.config):
        twins = [other for other in twins if _attacked_alike(other, rec)]
    return twins[0] if twins else None


def unattacked_twin(rec, runs) -> object | None:
    """For an adversarial run without a comparison run: the newest standard run that matches it in all but its
    robust evaluation (off, or another eps or number of PGD steps), which the claim line names so that the
    user can train it again with robust accuracy measured; None otherwise."""
    if "adversarial" not in methods_on(rec.config):
        return None
    twins = _standard_twins(rec, runs)  # once: comparison_run's twins, and those that measured alike among them
    return twins[0] if twins and not any(_attacked_alike(other, rec) for other in twins) else None


# the same test images: the data, its split and sampling settings and the seed that drew the split (not the recipe)
SAME_SPLIT = (("data", "source"), ("data", "image_size"), ("data", "drop_duplicates"), ("data", "val_fraction"),
              ("data", "test_fraction"), ("data", "train_per_class"), ("data", "class_balance"), ("seed", None))
STRONGER_BY = 0.05  # a standard run this much above (test accuracy, a fraction) is worth naming beside the claim


def stronger_standard(rec, runs, read_summary: Callable[[str], dict], summary: dict) -> tuple[object, float] | None:
    """For a WiSE-FT run (`rec`, `summary`), whose claim compares its own mixes and no other run: the finished
    standard fine-tuning run (no method on) with the highest test accuracy on the same test images (SAME_SPLIT:
    same data, split settings and seed; any backbone or recipe), with that accuracy (a fraction), when it is at
    least STRONGER_BY above this run's fine-tuned model's (summary["test_acc"]); None otherwise, or without test
    accuracy on either side. A teacher read "claim shown" on a WiSE-FT demo 16 test points below the Standard demo
    trained beside it and took the mix for the better model."""
    ours = summary.get("test_acc")
    if "wise_ft" not in methods_on(rec.config) or not isinstance(ours, (int, float)):
        return None
    best = None
    for other in _standard_alike(rec, runs, SAME_SPLIT):
        acc = read_summary(other.run_dir).get("test_acc")
        if isinstance(acc, (int, float)) and (best is None or acc > best[1]):
            best = (other, float(acc))
    return best if best is not None and best[1] - ours >= STRONGER_BY - 1e-9 else None


def stronger_words(label: str, theirs: float, ours: float, constant: bool = False, shown: bool | None = True) -> str:
    """Under a WiSE-FT claim line: the stronger standard run (`stronger_standard`) named by `label` (quoted by
    the caller: "'Standard demo'"), its test accuracy `theirs` against this run's fine-tuned model's `ours`
    (fractions); `constant`: this run trained at a constant learning rate (the WiSE-FT demo's), whose usual price
    is said; `shown`: the claim line's verdict (what a shown claim does not mean is said only then). The
    dashboard's Results page and the command line say the same."""
    return (f"WiSE-FT's claim compares this run's own models, its mixes with its two ends. On the same test images "
            f"{label}, standard fine-tuning with its own settings, reached {100 * theirs:.1f}%, "
            f"{shown_points(theirs, ours):.1f} points above this run's fine-tuned model ({100 * ours:.1f}%)"
            + (": a mix that beats both ends here can still be a weaker model than that one." if shown else ".")
            + (" On the sample the WiSE-FT demo's constant learning rate accounts for about 4 points of such a gap; "
               "its card says why it is used." if constant else ""))


BASELINE_METHODS = frozenset({"adafilter", "pruning", "adversarial"})  # claims judged against standard fine-tuning
NEAR = (("data", "source"), ("data", "image_size"), ("backbone", "name"), ("backbone", "pretrained"))


def near_standard(rec, runs) -> tuple[object, list[str]] | None:
    """For a run whose claim needs standard fine-tuning with its settings and has none (`comparison_run` None):
    the finished standard run (no method on) on the same data, image size and backbone that differs from it in the
    fewest of the settings a comparison needs (SAME; the newest among ties), with each difference in words
    ("Epochs (train.epochs): 6 there, 4 here"); None when there is no such run, or when the nearest differs in
    none of them (an adversarial run's standard twin that measured no robust accuracy: `unattacked_twin` says
    what that one lacks; `train` crashed on the empty list of differences). A teacher's Standard demo at 6
    epochs beside a 4-epoch Pruning demo read "run the same settings without pruning to compare" with no word on
    why it did not count."""
    from engine.config import setting_name
    from engine.words import value_words

    best = None
    for other in _standard_alike(rec, runs, NEAR):
        differ = [(s, k) for s, k in SAME if config_value(other.config, s, k) != config_value(rec.config, s, k)]
        if best is None or len(differ) < len(best[1]):
            best = (other, differ)
    if best is None or not best[1]:
        return None

    def words(section: str, key: str | None) -> str:  # a switch as on / off, a rate as 0.02
        name = "Seed (seed)" if key is None else setting_name(section, key)
        return (f"{name}: {value_words(config_value(best[0].config, section, key))} there, "
                f"{value_words(config_value(rec.config, section, key))} here")

    return best[0], [words(s, k) for s, k in best[1]]


def standard_config(rec) -> RunConfig:
    """The settings of the run `rec` (a store record) with every fine-tuning method switched off, robust accuracy
    measured under its attack when it trained adversarially, and named after it: the standard fine-tuning run its
    claim line compares with (`comparison_run` finds it once it has finished). Raises StudioError for a saved
    config that no longer reads."""
    import dataclasses

    from engine.config import with_section

    cfg = RunConfig.from_dict(rec.config)
    adversarial = "adversarial" in cfg.enabled_methods()
    for method in cfg.enabled_methods():
        cfg = with_section(cfg, method, enabled=False)
    if adversarial:  # its comparison measured robust accuracy under the same attack (SAME_ROBUST)
        cfg = with_section(cfg, "eval", robust=True)
    return dataclasses.replace(cfg, name=f"Standard fine-tuning with the settings of {rec.name}")  # quoted where shown


SAME_ATTACK = (("data", "source"), ("data", "image_size"), ("data", "fit"), ("backbone", "name"), ("seed", None),
               ("adversarial", "attack"), ("adversarial", "eps"), ("adversarial", "steps"), ("eval", "robust_eps"),
               ("eval", "robust_subset"), ("eval", "robust_steps_each_epoch"))


def scratch_run(rec, runs) -> object | None:
    """For a run that fine-tunes adversarially from pretrained weights: the newest finished run that
    trains the same backbone adversarially from scratch (`backbone.pretrained` none) on the same data,
    size and seed, with the same attack and the same per-epoch robust evaluation, or None."""
    if config_value(rec.config, "backbone", "pretrained") == "none" or "adversarial" not in methods_on(rec.config):
        return None
    for other in runs:
        if (other.id != rec.id and other.status == "finished" and "adversarial" in methods_on(other.config)
                and config_value(other.config, "backbone", "pretrained") == "none"
                and all(config_value(other.config, s, k) == config_value(rec.config, s, k) for s, k in SAME_ATTACK)):
            return other
    return None


class Judged(NamedTuple):
    """What `run_claims` found: one engine.claims.Claim per method with a claim, the standard fine-tuning run
    compared with (or None), the adversarial-from-scratch run (or None), and `unattacked_twin`'s run (or None)."""

    claims: list[Claim]
    other: object | None
    scratch: object | None
    unattacked: object | None = None


def run_claims(rec, runs: Sequence, read_summary: Callable[[str], dict], summary: dict) -> Judged:
    """The claims of the finished run `rec` (a store record) with `summary`, among `runs` (the store's records,
    newest first), in CLAIMS order, with the runs they were judged against; `read_summary(run_dir)` reads
    another run's summary. An adversarial run's line names the standard run that lacks only its robust
    evaluation (`unattacked_twin`)."""
    methods = [m for m in CLAIMS if m in methods_on(rec.config)]
    if not methods:
        return Judged([], None, None)
    other = comparison_run(rec, runs)
    baseline = read_summary(other.run_dir) if other is not None else None
    scratch = scratch_run(rec, runs) if "adversarial" in methods else None
    twin = unattacked_twin(rec, runs) if summary.get("robust_acc") is not None else None  # the line names it
    claims = [CLAIMS[m](summary, baseline, read_summary(scratch.run_dir) if scratch else None,
                        unattacked=twin.name if twin is not None else None) if m == "adversarial"
              else CLAIMS[m](summary, baseline) for m in methods]
    return Judged([on_few_images(c, summary) for c in claims], other, scratch, twin)


def on_few_images(claim: Claim, summary: dict) -> Claim:
    """`claim`, a verdict (shown True or False) of a run whose held-out splits are small (engine.chance.small_splits
    of its `summary`), marked narrow with what one image weighs there: a teacher read a green "claim shown" on 12
    validation images beside the caution that figures there can be an image or two apart. Unchanged without a
    verdict, when already narrow (its own words say why) or when the splits are large enough. Raises nothing."""
    from engine.chance import one_image_words, small_splits

    few = small_splits(summary)
    if claim.shown is None or claim.narrow or not few:
        return claim
    return dataclasses.replace(claim, narrow=True, text=f"{claim.text} Measured on {one_image_words(few)}: read the "
                                                        "verdict as a hint; more images per class make it firmer.")
