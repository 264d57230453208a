"""Results page: one line per method saying whether this run showed its paper's claim.

The verdicts are computed by engine.claims from summaries, against the runs engine.baselines finds
among the user's finished runs (the command line judges with the same); this module shows the lines
and the run's warnings in the dashboard's words."""

from __future__ import annotations

import dataclasses
from typing import Callable

import streamlit as st

from app import state
from engine.baselines import (BASELINE_METHODS, config_value, near_standard, run_claims, standard_config,
                              stronger_standard, stronger_words)
from engine.chance import (LUCK_MARK, ChanceCause, answers_words, chance_cause, chance_finding, cut_ends_words,
                           finer_detail_words, labels_not_the_cause, luck_gap, memorised_fixes, memorised_words,
                           run_lr, small_split_words, small_splits, unstable_words, val_test_gap_words)
from engine.claims import ceiling_words, wise_ft_reading, wise_pruned_start, wise_user_ood_reading
from engine.config import ADVANCED_TITLE, RunConfig, smaller_batch, smaller_batch_advice
from engine.errors import StudioError
from engine.words import and_words, plural


def guess_warning(chance: str, what: str = "Its answers below") -> str:
    """`at_chance`'s words followed by what they mean for the answers shown (Try it, Explain): `what`
    (e.g. "Its answers below") "are" no better than guesses, or "may be" where the run is above
    guessing by no more than luck (LUCK_MARK)."""
    return f"{chance} {answers_words(LUCK_MARK in chance, what)}"


def at_chance(summary: dict, config: dict | None = None, margin: float = 0.02) -> str | None:
    """A warning when the run's test (else validation) accuracy is within `margin` of guessing
    (1 / number of classes), or below it: such a run learnt nothing; or above it by no more than luck
    on that many images (engine.chance.chance_finding). Its advice follows from the
    run's optimiser steps (the summary's `steps_per_epoch` and `train_images`, the config's epochs,
    batch size and automatic learning rate)."""
    found = chance_finding(summary, margin)
    if found is None:
        return None
    train = (config or {}).get("train") or {}
    cause = chance_cause(summary, int(train.get("epochs") or 0), int(train.get("batch_size") or 0))
    advice = chance_advice(config, cause)
    if found.kind == "below":  # worse than guessing: the labels, unless the run had too few steps to learn
        if apart := labels_not_the_cause(summary):  # validation from the same folders is fine: not the labels
            return f"{found.text} {apart}"
        labels = "Check on the Data page that each class folder holds the images of its class."
        few = cause.kind == "few_steps"  # then the steps are the likelier cause: say that first
        return (f"{found.text} " + (f"{advice} If it stays below guessing with more steps: {labels[0].lower()}{labels[1:]}"
                                    if few else f"{labels} {advice}"))
    if found.kind == "luck":
        more = f"{found.text} More {found.split} images per class would tell (the Data page)"
        # a diagnosis is a sentence of its own; a change to make follows on from "would tell"
        return f"{more}. {advice}" if cause.kind == "memorised" else f"{more}; {advice[:1].lower()}{advice[1:]}"
    return f"{found.text} {advice}"


def unstable_note(summary: dict, config: dict | None) -> str | None:
    """engine.chance.unstable_words with what to change in the dashboard's words (a quarter of the learning
    rate, on the Model page); None when training was stable, or for adversarial training (its training loss is
    on attacked images)."""
    if ((config or {}).get("adversarial") or {}).get("enabled"):
        return None
    lr, found = run_lr(summary, config)
    words = unstable_words(summary, lr)
    if words is None:
        return None
    lower = f"a quarter of it, {lr / 4:.2g}" if lr else "a quarter of it"
    how = f"switch off {LR_AUTO} and set" if found else "set"
    return f"{words} Train again at a lower learning rate: on the Model page, {how} {lower}."


def val_test_gap(summary: dict) -> str | None:
    """engine.chance.val_test_gap_words with what to try in the dashboard's words (another seed on
    the Data page, or the user's own split folders), or None."""
    gap = val_test_gap_words(summary)
    if gap is None:
        return None
    why = ("Your validation and test folders may hold different kinds of pictures (the split is yours, so "
           "another seed does not redraw it)." if (summary.get("data_report") or {}).get("split_given") else
           "The two splits are drawn at random from your images, so the same settings with another seed (Data "
           "page, split and sampling settings) show which of the two numbers is typical.")
    return f"{gap} {why}"


LR_AUTO = "*Find the learning rate automatically*"  # the Model page's label for optim.lr_auto


def chance_advice(config: dict | None, cause: ChanceCause) -> str:
    """What to change for a run that stayed at guessing, in the dashboard's words, from its
    engine.chance.chance_cause: when its validation accuracy clearly peaked and fell, the learning rate; when it
    learnt its training images by heart, more images (and augmentation where it was off); else from its optimiser
    steps (`config`: the run's, for its automatic learning rate and batch)."""
    if cause.kind == "peaked":
        return (f"Its validation accuracy reached {100 * cause.best['val_acc']:.1f}% in epoch "
                f"{cause.best.get('epoch', '?')} and fell to {100 * cause.last:.1f}% by the end: the learning rate "
                "was likely too high for these images. Lower it (Model and methods page), or use the weights of "
                "the best validation epoch (Results page, Model weights).")
    if cause.kind == "memorised":
        train, optim = (config or {}).get("train") or {}, (config or {}).get("optim") or {}
        words = {"augment": f"*Augment images* on (Model and methods page, under '{ADVANCED_TITLE}'; this run had "
                            "it off)",
                 "frozen": f"every layer trained: *Frozen blocks* at 0 (Model and methods page, under 'Freezing, "
                           f"linear probing, ...'; this run kept its first "
                           f"{plural(int(optim.get('freeze_blocks') or 0), 'block')} as they were)",
                 "short": f"a longer run (this one had {plural(int(train.get('epochs') or 0), 'epoch')})"}
        fixes = ["more images per class (Data page)"] + [words[k] for k in memorised_fixes(config)]
        return (f"{memorised_words(cause)} What may help: {'; '.join(fixes)}. And check that the classes differ in "
                "what they show, not only in their background, lighting or size.")
    auto = bool(((config or {}).get("optim") or {}).get("lr_auto"))
    rate = ("lower the learning rate (it was found automatically: set one by hand)" if auto
            else f"lower the learning rate or switch on {LR_AUTO}")
    if cause.kind == "unknown":
        return f"Give it more epochs, or {rate} (Model and methods page)."
    steps, epochs, per_epoch, batch, n_train = cause.steps, cause.epochs, cause.per_epoch, cause.batch, cause.n_train
    if cause.kind == "many_steps":
        return (f"It took {plural(steps, 'optimiser step')}: {rate}, and check on the Data page that the classes look "
                "different from each other.")
    more = "" if auto else f", or switch on {LR_AUTO}"
    smaller = _smaller_batch_words(config, n_train)  # the Model page's batch size and learning rate, when known
    if cause.one_step_epochs:
        return (f"It took only {plural(steps, 'optimiser step')}: the batch size ({batch}) is not smaller than your "
                f"{n_train} training images, so each epoch is a single step. "
                + (f"{smaller} Give it more epochs too" if smaller else
                   f"Choose a batch size well below {n_train} and more epochs")
                + f" (Model and methods page){more}.")
    return (f"It took only {plural(steps, 'optimiser step')} ({plural(epochs, 'epoch')} of "
            f"{plural(per_epoch, 'batch', 'batches')} of {batch}): give it more steps with more epochs or a "
            f"smaller batch size (Model and methods page){more}." + (f" {smaller}" if smaller else ""))


def _smaller_batch_words(config: dict | None, n_train) -> str:
    """engine.config.smaller_batch_advice for a finished run's config (a dict) and training images, or ""
    when the config does not give its learning rate or the run's images are unknown."""
    if not isinstance(n_train, int) or "lr" not in ((config or {}).get("optim") or {}):
        return ""
    try:
        cfg = RunConfig.from_dict(config, validated=False)
    except StudioError:
        return ""
    return smaller_batch_advice(cfg, n_train) if smaller_batch(cfg, n_train) is not None else ""


def finer_detail_note(config: dict | None, summary: dict) -> str:
    """engine.chance.finer_detail_words for a finished run (`config`: its config dict) in the Model page's words,
    under an info icon, or "" (also for a backbone of one fixed image size)."""
    words = finer_detail_words(summary, config, "a larger *Image size* (Model and methods page; {size} px, say)")
    return f":material/info: {words}" if words else ""


def cut_ends_note(config: dict | None, summary: dict) -> str:
    """engine.chance.cut_ends_words for a finished run (`config`: its config dict) in the Data page's words, under an
    info icon, or ""."""
    words = cut_ends_words(summary, config, "*Keep the whole picture* or *Stretch the whole picture* (Data page, "
                           "*Wide and tall pictures*)")
    return f":material/info: {words}" if words else ""


def ood_off_note(config: dict | None, summary: dict) -> str:
    """For a finished run whose OOD evaluation was off (`config`'s eval.ood false, no ood_acc in `summary`): that its
    robustness to corrupted images was not measured, and where the switch is, under an info icon; "" otherwise. A
    field biologist's Fastest model run showed no robustness figure and no word why."""
    if summary.get("ood_acc") is not None or ((config or {}).get("eval") or {}).get("ood", True):
        return ""
    return (":material/info: Robustness to corrupted images (OOD accuracy) was not measured in this run: *Measure "
            f"OOD accuracy* was off (Model and methods page, under '{ADVANCED_TITLE}'; the Fastest model preset "
            "turns it off to save time).")


def guessing_runs_words(summaries: dict[str, dict]) -> str:
    """For Compare: the runs (`summaries`: summary by the run's label) whose own Results page says they may have
    learnt nothing (engine.chance.chance_finding), named, with what that means for their figures here; "" when
    none. A field biologist compared two runs at guessing (35.3% against 17.6% on 17 test images) and read that
    the one had doubled the other's accuracy."""
    names = [f"'{label}'" for label, summary in summaries.items() if summary and chance_finding(summary) is not None]
    if not names:
        return ""
    one = len(names) == 1
    whose = "its" if one else "their"
    return (f"{and_words(names)} {'is' if one else 'are'} not clearly better than guessing on {whose} own Results "
            f"page (see the warning there): {whose} figures below, and the differences between the runs, may be luck.")


def compare_few_images_words(summaries: dict[str, dict]) -> str:
    """For Compare: when any run compared (`summaries`: summary by the run's label) was measured on a small held-out
    split (engine.chance.small_splits), what one image weighs on the smallest of them and how far apart two runs'
    figures can be by an image or two; "" otherwise. The single-run page says it, and Compare did not (a field
    biologist's runs on 17 test images)."""
    sizes = [n for summary in summaries.values() if summary for n in small_splits(summary).values()]
    if not sizes:
        return ""
    n = min(sizes)
    gap, images = luck_gap(n)
    return (f"Measured on few images (down to {plural(n, 'held-out image')} a split: one image is {100 / n:.1f} "
            f"points of accuracy): figures up to {gap:.0f} points apart between these runs can be {images} apart.")


def small_split_note(summary: dict) -> str:
    """engine.chance.small_split_words under an info icon (Results, under the figures), or ""."""
    words = small_split_words(summary)
    return f":material/info: {words}" if words else ""


def claim_lines(rec, runs, read_summary: Callable[[str], dict], summary: dict, chance: str | None = None) -> None:
    """Write one line per enabled method with a claim (st.success when shown, st.info instead on a run at
    guessing (`chance`) or for a verdict an image or two could turn (Claim.narrow), st.warning when not,
    st.info when a comparison run is missing)."""
    claims, other, scratch, twin = run_claims(rec, runs, read_summary, summary)
    if not claims:
        return
    methods = [c.method for c in claims]
    if chance:  # `at_chance`'s warning, computed by the page and shown at its top
        maybe, one = LUCK_MARK in chance, len(methods) == 1
        verb = "may compare" if maybe else ("compares" if one else "compare")
        st.caption(f"This run {LUCK_MARK if maybe else 'learnt nothing yet'} (see the warning at the top): "
                   f"{'the line below' if one else 'the lines below'} {verb} noise.")
    for claim in claims:
        # on a run at guessing (the caption above) a shown claim is no success: it compares noise
        # nor is a verdict an image or two could turn (Claim.narrow): a hint, in blue
        hint = claim.narrow or (chance and claim.shown)
        show = st.info if hint else {True: st.success, False: st.warning}.get(claim.shown, st.info)
        show(state.md_text(state.message_words(claim.text)) + plain_words(claim.method, summary), icon=":material/science:")
    ceiling = ceiling_words(summary, claims)
    if ceiling:
        st.caption(f":material/info: {ceiling}")
    if twin is not None:
        attack_again_button(rec, twin)
    elif other is None and set(methods) & BASELINE_METHODS:
        standard_button(rec, runs)
    stronger = stronger_standard(rec, runs, read_summary, summary) if "wise_ft" in methods else None
    if stronger is not None:
        label = state.run_labels([stronger[0]], with_status=False, among=runs)[stronger[0].id]
        constant = config_value(rec.config, "optim", "schedule") == "constant"
        shown = next(c.shown for c in claims if c.method == "wise_ft")
        st.caption(":material/info: " + stronger_words(f"'{state.md_text(label)}'", stronger[1], summary["test_acc"],
                                                       constant, shown))
    labels = state.run_labels([r for r in (other, scratch) if r is not None], with_status=False, among=runs)
    said = compared_with(methods, other, scratch, {k: state.md_text(v) for k, v in labels.items()})
    if said:
        st.caption(said)


def standard_button(rec, runs) -> None:
    """Under claim lines that lack their standard fine-tuning run: which standard run comes nearest and the
    settings it differs in (engine.baselines.near_standard), and a button that queues standard fine-tuning with
    this run's settings (engine.baselines.standard_config); once it finishes, the lines compare."""
    near = near_standard(rec, runs)
    if near is not None:
        label = state.run_labels([near[0]], with_status=False, among=runs)[near[0].id]
        differ = state.message_words(and_words(near[1]))
        st.caption(f"'{state.md_text(label)}' is standard fine-tuning on the same data but does not count as this "
                   f"run's comparison: {state.md_text(differ)}.")
    engine = state.get_engine()
    made = state.attempt("reading this run's settings", standard_config, rec)
    if not made.ok:
        return
    queued = state.same_settings_active(engine, made.value)  # pressed before: no second copy
    if queued is not None:
        st.caption(f"'{state.md_text(queued.name)}' is queued or training: these lines compare once it finishes.")
        return
    if st.button("Train standard fine-tuning with this run's settings", key=f"standard_twin_{rec.id}",
                 icon=":material/replay:", help="The same data, split, backbone, recipe and seed, with no method "
                                                "switched on: the run the lines above compare with."):
        if state.attempt("queueing the run", engine.submit, made.value, owner=state.user()).ok:
            st.success("Queued: it trains on the Train page, and these lines compare once it finishes.",
                       icon=":material/check_circle:")


def attacked_config(rec, twin) -> RunConfig:
    """The settings of the standard run `twin` (a store record) with robust accuracy measured under the
    adversarial run `rec`'s attack (eps, PGD steps at the end and per epoch, images attacked per epoch), named after `twin`: the
    comparison `rec`'s claim line needs (engine.baselines.comparison_run). Raises StudioError for a saved
    config that no longer reads."""
    from engine.config import with_section

    ev = rec.config.get("eval") or {}
    keep = {k: ev[k] for k in ("robust_eps", "robust_steps", "robust_steps_each_epoch", "robust_subset") if k in ev}
    cfg = with_section(RunConfig.from_dict(twin.config), "eval", robust=True, **keep)
    suffix = ", robust accuracy measured"
    return dataclasses.replace(cfg, name=twin.name if twin.name.endswith(suffix) else twin.name + suffix)


def attack_again_button(rec, twin) -> None:
    """A button under the adversarial claim line: train the standard run `twin` again with robust accuracy
    measured under `rec`'s attack, queued at once (the line then compares, once it finishes); the outcome
    is said under it."""
    engine = state.get_engine()
    made = state.attempt("reading that run's settings", attacked_config, rec, twin)
    if not made.ok:
        return
    queued = state.same_settings_active(engine, made.value)  # pressed before: no second copy
    if queued is not None:
        st.caption(f"'{state.md_text(queued.name)}' is queued or training: this line compares the two once it "
                   "finishes.")
        return
    if st.button(f"Train '{state.md_text(twin.name)}' again, measuring robust accuracy", key=f"attack_twin_{rec.id}",
                 icon=":material/replay:", help="The same settings, with robust accuracy measured under this run's "
                                                "attack, so this line can compare the two runs."):
        if state.attempt("queueing the run", engine.submit, made.value, owner=state.user()).ok:
            st.success("Queued: it trains on the Train page, and this line compares the two once it finishes.",
                       icon=":material/check_circle:")


def plain_words(method: str, summary: dict) -> str:
    """What follows a claim line that speaks the paper's terms: for WiSE-FT the curve's plain reading
    (engine.claims.wise_ft_reading of `summary["wise_curve"]` and the number of `summary["classes"]`) as a
    paragraph "In plain words: ..." with the curve on the user's OOD set (engine.claims.wise_user_ood_reading),
    and with pruning in the run why the curve's low end is weak (engine.claims.wise_pruned_start); ""
    otherwise."""
    if method != "wise_ft":
        return ""
    plain = wise_ft_reading(summary.get("wise_curve") or [], len(summary.get("classes") or []))
    own = wise_user_ood_reading(summary.get("wise_curve") or [])  # the user's own pictures, beside the suite's
    pruned = wise_pruned_start(summary)  # the curve's low end at guessing because of the masks, not of WiSE-FT
    return (f"\n\nIn plain words: {plain}" if plain else "") + (f" {own}" if own and plain else
                                                                  f"\n\n{own}" if own else "") \
        + (f"\n\n{pruned}" if pruned else "")


def compared_with(methods: list[str], other, scratch, labels: dict[str, str]) -> str:
    """The caption under the claim lines naming the runs they compared with (`labels`: run id -> the
    run pickers' label): the standard fine-tuning run, for the methods whose claim is against it, and
    adversarial training from scratch; "" when neither was used."""
    parts = []
    if other is not None and set(methods) & BASELINE_METHODS:
        parts.append(f"'{labels.get(other.id, other.name)}' (standard fine-tuning with the same data, split, "
                     "backbone, image size, seed, training recipe and augmentation)")
    if scratch is not None and "adversarial" in methods:
        parts.append(f"'{labels.get(scratch.id, scratch.name)}' (adversarial training from scratch, same attack)")
    return ("Compared with " + " and ".join(parts) + ".") if parts else ""
