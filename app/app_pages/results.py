"""Page 4, Results: one run in depth (summary metrics, curves, confusion matrix, per-class and
OOD accuracy, learning-rate curve, method-specific views, downloads), and runs compared.

Everything is read from the store and the run folders, so runs from before a server restart
show up just the same."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app import charts, components, datasets, layout, state, vega
from app.claims_view import (at_chance, claim_lines, compare_few_images_words, cut_ends_note, finer_detail_note,
                             guessing_runs_words, ood_off_note, small_split_note, unstable_note, val_test_gap)
from app.method_views import VIEWS
from engine.augment import augmentation_words, greyscale_copies_words
from engine.backbones import head_left_out
from engine.chance import (by_class_words, chance_finding, colour_gap, colour_words, confusion_rows, few_class_words,
                           findings_split, largest_class_words, overfit_words, reliability, reliability_words,
                           smaller_model_summary, split_at_guessing, weak_class_words)
from engine.config import OptimConfig, TrainConfig
from engine.jobs import STOPPED_BY_SERVER
from engine.methods import METHODS
from engine.methods.pruning import nonzero_params
from engine.metrics import class_errors
from engine.optim import frozen_words, head_lr_words, lowered_rate
from engine.resume import RESUME_FILE
from engine.schedules import schedule_label
from engine.words import (and_words, balance_words, data_extras, ended_early_words, epochs_ended_early, fit_words,
                          percent_half_up, plural, right_of_words)

RUN_KEY = "results_run"
SUMMARY_METRICS = {  # summary key -> (label, help)
    "val_acc": ("Validation accuracy", "Share of validation images classified correctly by the final model."),
    "test_acc": ("Test accuracy", "On images never used for training or for choosing settings: the honest score."),
    "ood_acc": ("OOD accuracy (corrupted)", "Out-of-distribution accuracy on the validation images made worse on "
                "purpose: the average over six corruptions (noise, blur, contrast, brightness, JPEG, pixelation) "
                "at severities 1-5."),
    "ood_user_acc": ("Your OOD set", "Accuracy on the out-of-distribution set you uploaded."),
    "robust_acc": ("Robust accuracy (attacked)", "Held-out images changed by an attack (each pixel moved a little "
                   "in the direction that most hurts the model): the share still classified correctly."),
}
# Shown beside accuracy when the run's classes were imbalanced (engine.data.class_imbalance).
IMBALANCE_METRICS = {
    "test_balanced_acc": ("Balanced accuracy (test)", "Mean of the per-class accuracies: a model that always "
                          "answers the largest class scores 1 / number of classes."),
    "test_macro_f1": ("Macro-F1 (test)", "Mean F1 over classes, each class counting the same whatever its size."),
    "val_balanced_acc": ("Balanced accuracy (validation)", "Mean of the per-class accuracies on the validation images."),
    "val_macro_f1": ("Macro-F1 (validation)", "Mean F1 over classes on the validation images."),
}

# the commands shown uncoloured: as bash, a run id's date was coloured as a number and the rest not, so a new user
# read one id as two things
COMMAND_LANGUAGE = "text"


def robust_words(summary: dict) -> str:
    """" Attack: PGD-10 at eps 4.0/255 (of 255 pixel levels), on the test images." from the summary's
    robust_eval, or "" when it has none."""
    ev = summary.get("robust_eval") or {}
    if not ev.get("attack"):
        return ""
    split = {"test": "test", "val": "validation"}.get(ev.get("split"), ev.get("split") or "held-out")
    eps = f" at eps {255 * ev['eps']:.1f}/255 (of 255 pixel levels)" if isinstance(ev.get("eps"), (int, float)) else ""
    text = f" Attack: {ev['attack']}{eps}, on the {split} images."
    trained = summary.get("adversarial") or {}  # adversarial fine-tuning's own attack, when the run used one
    if isinstance(trained.get("eps"), (int, float)) and trained.get("attack"):
        name = {"fgsm": "FGSM-RS" if trained.get("random_start", True) else "FGSM",
                "pgd": f"PGD-{trained.get('steps')}"}.get(trained["attack"], str(trained["attack"]).upper())
        stronger = (" (a stronger attack than training's, as robustness is checked)"
                    if isinstance(ev.get("eps"), (int, float)) and ev["eps"] > trained["eps"] + 1e-9 else "")
        text += f" Training attacked its images with {name} at eps {255 * trained['eps']:.1f}/255{stronger}."
    return text


def imbalanced(summary: dict) -> bool:
    """True when the run's data report flagged its classes as imbalanced."""
    return bool(summary.get("data_report", {}).get("imbalance", {}).get("imbalanced"))


def headline_metrics(summary: dict) -> dict:
    """SUMMARY_METRICS, plus balanced accuracy and macro-F1 right after accuracy for imbalanced classes."""
    if not imbalanced(summary):
        return SUMMARY_METRICS
    keys = list(SUMMARY_METRICS)
    at = keys.index("test_acc") + 1
    merged = keys[:at] + [k for k in IMBALANCE_METRICS if k.startswith("test_")] + keys[at:] \
        + [k for k in IMBALANCE_METRICS if k.startswith("val_")]
    return {k: SUMMARY_METRICS.get(k) or IMBALANCE_METRICS[k] for k in merged}


read_summary = components.read_summary


def enabled_methods(config: dict) -> list[str]:
    """Names of the methods switched on in a run's `config` (a dict, as stored), registered ones only."""
    return [n for n, section in config.items() if n in METHODS and isinstance(section, dict) and section.get("enabled")]


@st.cache_resource(max_entries=4, show_spinner=False)
def _file_bytes(path: str, mtime_ns: int) -> bytes:
    """A checkpoint's bytes, read once per file version and shared by all sessions (not copied)."""
    return Path(path).read_bytes()


def run_picker(runs) -> str:
    """The Results page's run choice; opens on the run looked at last (here, on Explain or Try it) or the newest
    finished one. Returns the chosen run's id."""
    ids = [r.id for r in runs]
    labels = state.run_labels(runs)
    if st.session_state.get(RUN_KEY) not in ids:
        finished = [r.id for r in runs if r.status == "finished"]
        preferred = [i for i in (st.session_state.get(state.FOCUS_KEY), st.session_state.get(state.WATCH_KEY))
                     if i in ids]
        st.session_state[RUN_KEY] = preferred[0] if preferred else (finished[0] if finished else ids[0])
    run_id = st.selectbox("Run", ids, key=RUN_KEY, format_func=lambda i: labels.get(i, i))
    state.set_focus(run_id)  # Explain and a refresh open on the run looked at here
    return run_id


def last_epoch_figures(run: components.RunView) -> dict:
    """The metrics of a run's last finished epoch (what a stopped run has instead of a summary)."""
    if run.epochs.empty:
        return {}
    last = run.epochs.iloc[-1]
    return {k: float(v) for k, v in last.items() if isinstance(v, (int, float)) and v == v}


def stopped_note(rec, run: components.RunView) -> None:
    """Why a stopped run shows what it shows: its finished epochs and the weights it kept."""
    summary = components.read_summary(rec.run_dir)
    ended, stopped_in = summary.get("ended_early"), summary.get("stopped_in")  # (a method had ended training)
    planned = int(ended["after_epoch"] if ended else rec.config.get("train", {}).get("epochs") or 0)
    done = len(run.epochs)
    if not done:
        st.warning("This run was stopped before it finished its first epoch, so it has no results or weights. "
                   "Start it again on the Train page.", icon=":material/stop_circle:")
        return
    kept = (Path(rec.run_dir) / "best.safetensors").is_file()
    why = f" {STOPPED_BY_SERVER}" if STOPPED_BY_SERVER in (rec.error or "") else ""
    after = (f"after {state.plural(done, 'epoch')} of {planned}" if done < planned else  # in the work after them
             f"after its {plural(planned, 'epoch')}, in {stopped_in or 'the work that follows them'}")
    st.warning(f"This run was stopped{why} {after}. The figures below are "
               f"from its last finished epoch" + ("; the weights of its best epoch can be downloaded below." if kept
                                                   else "."), icon=":material/stop_circle:")
    if (Path(rec.run_dir) / RESUME_FILE).is_file() and st.button(
            f"Continue it from epoch {done + 1} on the Train page" if done < planned else
            "Continue it on the Train page" + (f" ({stopped_in} again)" if stopped_in else ""),
            key=f"to_continue_{rec.id}",
            icon=":material/play_arrow:"):
        st.session_state[state.WATCH_KEY] = st.session_state[state.WATCH_SELECT_KEY] = rec.id  # shown on Train
        st.switch_page("app_pages/train.py")


def recipe_parts(config: dict, probe_epochs: int | None = None) -> list[str]:
    """What sets a run's recipe apart from the default, in words (`recipe_kinds`, in RECIPE_DEFAULTS' order): head-only
    (linear-probe) epochs and frozen blocks, augmentation other than the default crops and mirrors, greyscale copies,
    a learning-rate schedule other than cosine, flip TTA, imbalanced classes weighted or sampled evenly and whole
    pictures kept ([] when none; `config` as saved, keys it lacks at their defaults). `probe_epochs`: the head-only
    epochs the engine ran (the summary's; a kept head skips them), else the config's."""
    return list(recipe_kinds(config, probe_epochs).values())


def recipe_notes(config: dict, probe_epochs: int | None = None) -> str:
    """What the run's caption adds to its methods: `recipe_parts`, each after " · " ("" when none)."""
    return "".join(f" · {p}" for p in recipe_parts(config, probe_epochs))


def started_text(rec, summary: dict) -> str:
    """When the run started; for a continued run also when and from which epoch its last part ran."""
    first = components.short_time(rec.created or rec.started)
    if summary.get("continued_from_epoch"):  # against the epochs planned (a method's early end counts as planned)
        after = summary["continued_from_epoch"]
        epochs = int((summary.get("ended_early") or {}).get("after_epoch") or
                     (rec.config.get("train") or {}).get("epochs") or 0)
        return (f"started {first} · continued {components.short_time(rec.started)} "  # none left: the work after them
                + (f"from epoch {after + 1}" if after < epochs else f"after its {plural(after, 'epoch')}"))
    return f"started {components.short_time(rec.started or rec.created)}"


def summary_metrics(run: components.RunView, summary: dict) -> None:
    """The headline tiles (validation, test, OOD, robust and balanced accuracy, methods' own figures) of a finished
    run, or of a stopped run's last epoch, with the data's warnings."""
    last = run.epochs.iloc[-1] if not run.epochs.empty else None
    if summary.get("status") != "finished" and last is not None:  # stopped: the last finished epoch speaks
        summary = {**last_epoch_figures(run), **summary}
    items = [(label, components.fmt_pct(summary.get(k)), help_ + (robust_words(summary) if k == "robust_acc" else ""))
             for k, (label, help_) in headline_metrics(summary).items() if isinstance(summary.get(k), (int, float))]
    if imbalanced(summary):
        imb = summary["data_report"]["imbalance"]
        st.caption(f"The classes are imbalanced ('{imb['largest']}' has {imb['ratio']}x the images of "
                   f"'{imb['smallest']}'): judge the model by balanced accuracy and macro-F1, not accuracy alone. "
                   + " ".join(w for w in (largest_class_words(summary), by_class_words(summary)) if w))
    for name in charts.method_metric_names(run.epochs):  # whatever the methods logged (sparsity ...)
        if name.startswith("train_"):  # a check on the training images (its own chart), never a headline figure
            continue
        value = summary.get(name, last.get(name) if last is not None else None)
        if isinstance(value, (int, float)) and value == value:
            shown = components.fmt_pct(value) if charts.is_fraction_metric(name) else components.fmt_number(value)
            label = charts.metric_label(name)  # the tile shows the name, its help the words in brackets
            items.append((label.split(" (")[0], shown, f"{label}: the final value logged by the method."))
    cost = []  # a row of their own: five or six tiles in one wrapped the last alone onto a line at 1280 px
    ips = summary.get("train_images_per_sec")
    if ips:
        threads = summary.get("cpu_threads")
        cost.append(("Training speed", f"{ips:,.0f} img/s", "Images per second over the run's epochs, the first "
                      "(warm-up) left out" + (f", on {state.plural(threads, 'CPU thread')}." if threads else ".")
                      + " The Train page's Speed is each epoch's own: it varies with the epoch's work (head-only "
                      "epochs are faster) and with what else the computer does."
                      + (f" {state.message_words(summary['cpu_threads_note'])}" if summary.get("cpu_threads_note") else "")
                      + components.threads_changes_text(summary.get("cpu_threads_changes"))))
    if summary.get("wall_time_s"):
        before = summary.get("wall_time_before_s")
        cost.append(("Run time", components.fmt_duration(summary["wall_time_s"]), "From start to the final evaluation"
                      + (f", its parts together (before it was continued: {components.fmt_duration(before)} of "
                         "finished epochs; an epoch cut short by the stop is not counted)." if before else ".")))
    if summary.get("num_params"):
        cost.append(("Parameters", f"{summary['num_params'] / 1e6:.1f} M", "Trainable and frozen, with the new head."))
        nonzero = nonzero_params(summary)
        if nonzero is not None:
            cost.append(("Non-zero parameters", f"{nonzero / 1e6:.2f} M", "The full-size model's weights pruning left "
                         "(the zeros cost nothing in a compressed or sparse file); the model keeps its shape, so its "
                         "dense size and speed are unchanged unless channels were removed (structured pruning, below)."))
    for tiles in (items, cost):  # what the model does (and how far to trust it), then what it cost and weighs
        if tiles:
            row = layout.tiles()
            for label, value, help_ in tiles:
                row.metric(label, value, help=help_, width="content")
        gap = val_test_gap(summary) if tiles is items else None
        if gap:
            st.caption(":material/info: " + gap)
        # the user's OOD set answered at guessing by a run that learnt: said beside its tile, not only under a
        # confusion matrix a user may never open (a new user saw 33.3% on 3 classes and nothing about it)
        own = split_at_guessing(summary, "ood_user") if tiles is items and not chance_finding(summary) else None
        if own:
            st.caption(":material/info: " + state.md_text(own))


def wise_tiles_note(summary: dict, alpha: float, chosen: bool, held_out: dict | None = None) -> str:
    """Which model a WiSE-FT run's headline figures describe (the fine-tuned end, alpha 1, as the summary's
    val_acc / test_acc / ood_acc are) and which one Explain, Try it and Export use: the mix at `alpha` (the
    user's choice when `chosen`, else the run's own pick), with its test and validation accuracy on the run's
    held-out images when measured (`held_out`: engine.runs.FinishedRun.wise_held_out) and its figures on the
    curve when it is one of the curve's points (summary["wise_curve"], fractions in [0, 1])."""
    from engine.methods.wise_ft import curve_point

    if alpha >= 1 - 1e-9:
        return (":material/info: These figures are the fine-tuned model's (WiSE-FT alpha 1), the model Explain, "
                "Try it and Export use for this run.")
    point = curve_point(summary.get("wise_curve") or [], alpha) or {}
    held = [f"{label} {100 * held_out[k]:.1f}%" for k, label in (("test_acc", "test"), ("val_acc", "validation"))
            if isinstance((held_out or {}).get(k), (int, float))]
    # validation once: the held-out figure where measured (every validation image), else the curve's
    curve = [f"{label} {100 * point[k]:.1f}%" + (" on the curve" if k == "val_acc" else "")
             for k, label in (("val_acc", "validation"), ("ood_acc", "corrupted images"))
             if isinstance(point.get(k), (int, float)) and not (k == "val_acc" and held)]
    figures = ", ".join(held + curve)
    whose = "your choice" if chosen else "the run's own pick"
    return (f":material/info: These figures are the fine-tuned model's (WiSE-FT alpha 1). Explain, Try it and Export "
            f"use the mix at alpha {alpha:.2f} ({whose})" + (f": {figures}" if figures else "")
            + "; see \"WiSE-FT weight ensemble\" below.")


def mix_held_out(engine, rec, alpha: float) -> dict | None:
    """The WiSE-FT mix at `alpha` on the run's held-out images (engine.runs.FinishedRun.wise_held_out: kept
    in the run folder once measured); None at alpha 1 (the tiles are that model's) or when it cannot be
    measured (its message is not shown: the line then says what it knows)."""
    if alpha >= 1 - 1e-9:
        return None
    from engine.runs import load_run

    with st.spinner(f"Measuring the mix at alpha {alpha:.2f} on the held-out images…"):
        got = state.attempt("measuring the WiSE-FT mix", lambda: load_run(Path(rec.run_dir), engine.datasets_dir)
                            .wise_held_out(alpha), show=False)
    return got.value if got.ok else None


CONFUSION_SPLITS = {"test": "test images", "val": "validation images", "ood_user": "your OOD set",
                    "smaller": "the smaller model", "smaller_val": "the smaller model, validation images"}
# "smaller": the channel-pruned model on its test images (validation without them); "smaller_val": on its
# validation images, as Explain's error analysis shows it, offered when it has both


def confusion_view(summary: dict, which: str) -> tuple[dict, str, str]:
    """(the summary whose `{split}_confusion` and `{split}_per_class_acc` to show, that split, its words) for
    the Results page's choice `which` (CONFUSION_SPLITS): the run's own, or for "smaller" the channel-pruned
    model's (engine.chance.smaller_model_summary with its own matrices, on test images where the run has
    them): a smaller model 25 points below the full-size one could not be inspected. A WiSE-FT run's words say its
    matrices are the fine-tuned model's (alpha 1): a teacher compared them with Explain's, of the chosen mix."""
    if which not in ("smaller", "smaller_val"):
        # a WiSE-FT run's matrices are its fine-tuned model's: said, since Explain shows the chosen mix's
        whose = "the fine-tuned model, alpha 1, " if summary.get("wise_curve") else ""  # no brackets in brackets
        return summary, which, whose + CONFUSION_SPLITS.get(which, which)
    view = smaller_model_summary(summary)
    split = "test" if view.get("test_confusion") and which == "smaller" else "val"
    return view, split, f"the smaller model, {CONFUSION_SPLITS[split]}"


def class_errors_frame(rows: list[list[int]], classes: list[str]) -> pd.DataFrame:
    """Each class's two kinds of error (engine.metrics.class_errors) from a confusion matrix `rows` (rows: true
    class; image counts), one row per class, in words: found of its images (recall) and what the missed ones were
    taken for; right of the model's answers of it (precision) and what its false alarms were. An inspector asked
    how many defects the model lets through and how many good parts it flags: the matrix held it, unsaid. Raises
    ValueError for a matrix not of `classes`."""
    def listed(pairs: list[tuple[str, int]]) -> str:
        return ", ".join(f"{name} ({n})" for name, n in pairs) or "none"

    return pd.DataFrame([{
        "class": e.name,
        "found (recall)": right_of_words(e.found, e.images) if e.images else "no images",
        "missed: taken for": listed(e.missed_as),
        "right when it says so (precision)": right_of_words(e.found, e.answered) if e.answered else "never said",
        "false alarms: were": listed(e.false_from)} for e in class_errors(rows, classes)])


CLASS_ERRORS_WORDS = ("Recall: of a class's images, the share the model found. Precision: of the model's answers of "
                      "a class, the share that were right. For a class you must not miss (a defect, a disease), watch "
                      "its misses; for one whose answer sets work going (a re-check, a recall), its false alarms.")


def detail_charts(run: components.RunView, summary: dict) -> None:
    """Confusion matrix (per split, the smaller model's too), per-class accuracy and accuracy per corruption, side
    by side."""
    classes = summary.get("classes") or []
    left, right = st.columns(2)
    with left:
        which = findings_split(summary)
        small = summary.get("structured") or {}
        splits = [s for s in CONFUSION_SPLITS if summary.get(f"{s}_confusion")] + (
            ["smaller"] if any(k.endswith("_confusion") for k in small) else []) + (
            ["smaller_val"] if small.get("test_confusion") and small.get("val_confusion") else [])
        if len(splits) > 1:
            state.seed_choice("confusion_split")  # a refresh keeps the user's choice
            if st.session_state.get("confusion_split") not in splits:  # kept from a run that had another split
                st.session_state.pop("confusion_split", None)
            both = "smaller_val" in splits  # then "the smaller model" is its test images: said
            which = st.radio("Confusion matrix of", splits, horizontal=True, key="confusion_split",
                             format_func=lambda k: "the smaller model, test images" if both and k == "smaller"
                             else CONFUSION_SPLITS.get(k, k))
            state.remember_choice("confusion_split", which, default="test")
        view, split, words = confusion_view(summary, which)
        matrix = view.get(f"{split}_confusion")
        if matrix and classes:
            vega.altair_chart(charts.confusion_chart(charts.confusion_frame(matrix, classes),
                                                     f"Confusion matrix ({words})"),
                              width=charts.confusion_px(len(classes), classes=classes))
            st.caption("Rows are the true classes, columns what the model said. Off-diagonal cells are the mix-ups "
                       "worth looking at: similar-looking classes, or a class with too few images."
                       + (" On your OOD set (your images of other conditions), a mix-up the test images do not show "
                          "is what the change of conditions costs." if which == "ood_user" else ""))
    with right:
        per_class = view.get(f"{split}_per_class_acc") or view.get("val_per_class_acc")
        if per_class:
            counted = view.get(f"{split}_confusion") if view.get(f"{split}_per_class_acc") else None
            images = {c: sum(row) for c, row in zip(classes, counted)} if counted and classes and \
                len(counted) == len(classes) else None  # each bar's images: "100% (1 of 1)"
            vega.altair_chart(charts.per_class_chart(charts.per_class_frame(per_class, images),
                                                     f"Accuracy per class ({words.removesuffix(' images')})"),
                              width="stretch")
        weak = weak_class_words(view, split)
        if weak:  # the user's class names, as text
            st.info(state.md_text(weak), icon=":material/troubleshoot:")
        if colour := colour_words(view, split):  # night shots beside day ones: one accuracy hid the difference
            if colour_gap(view, split).weaker:  # weaker beyond luck: a finding, as a weak class is
                st.info(colour, icon=":material/contrast:")
            else:
                st.caption(colour)
        if few := few_class_words(view):  # a rare class's 100% on 2 images read as a finding
            st.info(state.md_text(few), icon=":material/straighten:")
        if summary.get("ood_acc_by_corruption"):
            ood = charts.ood_frame(summary["ood_acc_by_corruption"])
            vega.altair_chart(charts.ood_chart(ood, summary.get("val_acc")), width="stretch")
            st.caption(("The full-size model's, not the smaller one's (not measured on corrupted images). "
                        if which.startswith("smaller") else "")
                       + "The dashed line is the clean validation accuracy: the gap to each bar is what that "
                       "corruption costs (a bar past the line: no cost these images can show).")
    if classes and (rows := confusion_rows({**view, "classes": classes}, split)) is not None:  # well formed
        st.dataframe(class_errors_frame(rows, classes), hide_index=True, width="stretch")  # the page's width: 5 columns
        st.caption(f"Each class's misses and false alarms ({words}). {CLASS_ERRORS_WORDS}")
    rel = reliability(view, split)
    if (sure := reliability_words(view, split, rel)) is not None:  # how far the model's confidence holds
        whose = "The fine-tuned model (alpha 1). " if which not in ("smaller", "smaller_val") and \
            summary.get("wise_curve") else ""  # as the matrix's words say: Explain shows the chosen mix
        if rel is not None and rel.oversure:
            st.info(whose + sure, icon=":material/speed:")
        else:
            st.caption(whose + sure)
    if not run.steps.empty and "lr" in run.steps:
        vega.altair_chart(charts.lr_chart(run.steps), width="stretch")
        if cap := summary.get("head_lr_capped"):  # the chart is the trunk's (the optimiser's first group)
            st.caption(f"The layers below the new head. The head's own rate follows the same curve from "
                       f"{lowered_rate(cap['to'], cap['lr'])} (above).")
    if summary.get("lr_find"):
        from engine.lr_find import lr_find_sentence

        with st.expander(lr_find_sentence(summary["lr_find"]), icon=":material/query_stats:"):
            vega.altair_chart(charts.lr_find_chart(summary["lr_find"]), width="stretch")


def data_warnings(rec, summary: dict, names: bool = False) -> list[str]:
    """The warnings the Data page gave about the run's data (a picture under two classes, copies across
    given splits, a class missing from a split), as the run kept them, in the user's names; with `names`, instead
    the one on file names read in a guessed code page (engine.data.is_names_warning), which says nothing of the
    figures and is said with the run's data, not beside them."""
    from engine.data import is_names_warning

    report = summary.get("data_report") or {}
    return [state.user_words(str(w), names_of(rec)) for w in report.get("warnings") or []
            if is_names_warning(w) == names]


def names_of(rec) -> dict[str, str]:
    """A run's upload references mapped to the user's file names (dataset, OOD set, checkpoint)."""
    names = state.config_names(rec.config)
    ckpt = rec.config.get("backbone", {}).get("checkpoint") or ""
    sha = state.upload_sha(ckpt)
    if sha:
        engine = state.get_engine()
        known = {u["sha256"]: u["name"] for u in engine.store.list_uploads(rec.owner, "checkpoint")}
        names[ckpt] = known.get(sha, "your checkpoint")
    return names


def run_weights_words(rec) -> str:
    """What a run started from, for its line on Results: "bundled weights", or "your checkpoint my_leaf_model.ckpt"
    with the user's file name where it is known (a new user's line read only "your checkpoint")."""
    b = rec.config.get("backbone", {})
    return state.start_words(b.get("pretrained"), b.get("checkpoint") or "", rec.owner)


def details(rec, summary: dict) -> None:
    """The run's details: the data it used (classes, split, source, warnings) and the pretrained weights
    it loaded."""
    report = summary.get("data_report")
    if report:
        warned = data_warnings(rec, summary)
        with st.expander("The data this run used" + (f" ({state.plural(len(warned), 'warning')})" if warned else ""),
                         icon=":material/warning:" if warned else ":material/dataset:"):
            if warned:
                st.caption("Its warnings are under the headline figures above.")
            per_class = int(rec.config.get("data", {}).get("train_per_class") or 0)
            split, capped = datasets.capped_split(report.get("split_counts", {}), per_class)  # as trained on
            st.markdown(f"{len(report.get('classes', []))} classes, "
                        + ", ".join(f"{k}: {sum(v.values())}" for k, v in split.items())
                        + f" images at {report.get('image_size')} px. Source: **{state.dataset_name(rec.config)}**"
                        + (f". Training used at most {per_class} images per class, {sum(split['train'].values())} "
                           f"of the split's {capped}." if capped else ""))
            dropped = report.get("duplicates_dropped") or []
            if dropped:  # said here as on the model card (a new user's run did not say it had dropped copies)
                st.caption(f"{state.plural(len(dropped), 'duplicate copy', 'duplicate copies')} of other images "
                           "dropped before the split, as *Drop duplicate copies* asked: "
                           + ", ".join(state.md_text(str(p)) for p in dropped[:3])
                           + (", ..." if len(dropped) > 3 else "") + ".")
            for said in data_warnings(rec, summary, names=True):  # the names, not the figures
                st.caption(f":material/translate: {state.md_text(said)}")
            if report.get("skipped"):
                st.dataframe([{"file": s.get("path"), "reason": s.get("reason")} for s in report["skipped"]],
                             hide_index=True, width="stretch")
    load = summary.get("load_report")
    if load:
        with st.expander("Pretrained weights loaded", icon=":material/download_done:"):
            raw = str(load.get("source"))
            source = state.WEIGHTS_TEXT.get(raw) or state.user_words(raw, names_of(rec))  # "bundled weights", a file name
            # the user's file only (ImageNet's 1000-class head goes without saying), once (a studio file's note says it)
            dropped = head_left_out(load)
            replaced = (f" The file's own classification head ({dropped}) was replaced by a new one for your classes."
                        if dropped else "")
            st.markdown(f"Started from **{state.md_text(source)}**: {loaded_words(load)}." + replaced)
            if load.get("note"):
                st.caption(load["note"])


def loaded_words(load: dict) -> str:
    """What a run's load_report (engine.backbones.LoadReport.to_dict) loaded, in plain words: "120 weight tensors
    (the layers' learnt numbers) loaded, none missing or of another shape" when none was, else the three counts with
    what became of the rest (a new user read "120 weight tensors loaded, 0 missing, 0 of another shape" as jargon)."""
    if "matched" not in load:  # a report from before the counts were kept
        return "its weight tensors (the layers' learnt numbers) loaded"
    kept = 50  # engine.backbones.LoadReport.to_dict keeps the first 50 names of each list
    matched, missing, other = (int(load.get("matched") or 0), len(load.get("missing") or []),
                               len(load.get("shape_mismatch") or []))
    if not missing and not other:
        return f"{matched} weight tensors (the layers' learnt numbers) loaded, none missing or of another shape"
    count = lambda n: f"{n} or more" if n >= kept else str(n)  # noqa: E731
    return (f"{matched} weight tensors (the layers' learnt numbers) loaded, {count(missing)} missing (these start at "
            f"random) and {count(other)} of another shape (skipped: they start at random too)")


def downloads(engine, rec, summary: dict) -> None:
    """Download buttons for the run's weights (final or best epoch, safetensors), its summary, metrics and config."""
    run_dir = Path(rec.run_dir)
    st.markdown("**Downloads**")
    safe_name = state.file_stem(rec.name)  # as the exports' names
    checkpoints = {"last": ("final weights", "The model at the end of the run, after every method finished "
                                             "(e.g. pruning made permanent). This is the fine-tuned model."),
                   "best": ("best validation epoch", "The weights of the epoch with the best validation accuracy.")}
    available = [k for k in checkpoints if (run_dir / f"{k}.safetensors").is_file()]
    which = None
    if available:
        # keyed by what is available: a page drawn while the run was finishing (best weights only) must not
        # keep "best" selected once the final weights exist
        key = f"ckpt_{rec.id}_{'_'.join(available)}"
        state.seed_choice(key)  # a refresh keeps the weights picked
        which = st.radio("Model weights", available, horizontal=True, key=key,
                         format_func=lambda k: checkpoints[k][0], help=" ".join(checkpoints[k][1] for k in available))
        state.remember_choice(key, which, default=available[0])
    c = layout.cells(3)  # the buttons' own row: beside the radio they were cut at 1280 px ("Fine-tuned mo…")
    if which is not None:
        path = run_dir / f"{which}.safetensors"
        data = _file_bytes(str(path), path.stat().st_mtime_ns)
        c[0].download_button("Fine-tuned model", data, file_name=f"{safe_name}-{rec.id}-{which}.safetensors",
                             mime="application/octet-stream", icon=":material/download:", key=f"dl_model_{rec.id}",
                             help=f"A safetensors state dict ({len(data) / 1e6:.0f} MB) with the run's config in "
                                  "its metadata; load it with safetensors.torch.load_file.")
    cfg_file = run_dir / "config.yaml"
    if cfg_file.is_file():
        c[1].download_button("Config (YAML)", cfg_file.read_text(), file_name=f"{safe_name}-{rec.id}-config.yaml",
                             mime="text/yaml", icon=":material/description:",
                             help="Repeat this run from the command line with it.")
    if summary:  # with the user's file names where the engine recorded its own paths
        shown = json.loads(state.user_words(json.dumps(summary), names_of(rec)))
        c[2].download_button("Summary (JSON)", json.dumps(shown, indent=2), file_name=f"{safe_name}-{rec.id}-summary.json",
                             mime="application/json", icon=":material/data_object:")
    if rec.status == "finished" and st.button(  # Explain and export takes finished runs only
            "Model card and TorchScript / ONNX files", icon=":material/arrow_forward:", key=f"to_export_{rec.id}",
            help="Opens Explain and export on its Export tab, for this run."):
        from app.app_pages import explain  # its keys: this run, the Export tab

        st.session_state[explain.RUN_KEY], st.session_state[explain.TAB_KEY] = rec.id, explain.TABS[-1]
        st.switch_page("app_pages/explain.py")
    if cfg_file.is_file():
        repeat_command(engine, cfg_file, f"{safe_name}-{rec.id}-config.yaml", rec.id, best=which == "best")


def repeat_command(engine, cfg_file: Path, download_name: str, run_id: str, best: bool = False) -> None:
    """The command line that repeats a run. A studio that listens on this computer alone: the run's
    own config and this studio's folder, so that its uploads are found (paths of the user's own
    computer), and, for a finished run or a stopped one's best epoch so far (a failed one has no model), the
    command that predicts with it (its id; `best`: with the best validation epoch's weights, the ones picked
    above it); on a server others reach, the downloaded config, whose uploaded files then need replacing by their paths
    (no server paths are shown)."""
    import os
    import shlex

    from app.auth import LOCAL_HOSTS

    if os.environ.get("STUDIO_HOST", "127.0.0.1") in LOCAL_HOSTS:
        st.caption("To repeat this run without the dashboard, on the computer that runs the studio, in the studio's folder:")
        # one option per line, with the shell's line continuations: a narrow page wraps inside a path only
        st.code(f"python -m engine train \\\n    --config {shlex.quote(str(cfg_file))} \\\n    --data-dir "
                f"{shlex.quote(str(engine.data_dir))}", language=COMMAND_LANGUAGE, wrap_lines=True)
        rec = engine.run_record(run_id)
        from engine.runs import stopped_with_best

        stopped = rec is not None and rec.status == "stopped" and stopped_with_best(Path(rec.run_dir))
        from engine.resume import RESUME_FILE

        if rec is not None and rec.status != "finished" and (Path(rec.run_dir) / RESUME_FILE).is_file():
            st.caption("To continue it from where it stopped, as the Continue button does, from there:")
            st.code(f"python -m engine train --resume {run_id} \\\n    --data-dir {shlex.quote(str(engine.data_dir))}",
                    language=COMMAND_LANGUAGE, wrap_lines=True)
        if rec is None or rec.status != "finished" and not stopped:  # a failed run has no model to answer with
            return
        weights, variant = (", with the best validation epoch's weights picked above", ["--variant best"]) if best \
            else ("", [])
        from app.app_pages.explain import uses_wise

        if stopped:  # its only model; Try it answers with it too
            weights, variant = ", its best epoch so far (it was stopped; Try it answers with it too)", []
        elif not best and uses_wise(rec):  # the model Try it, Explain and Export use
            alpha, _ = state.wise_alpha(engine, rec)
            if alpha != 1.0:
                weights, variant = f" (the WiSE-FT mix at alpha {alpha:.2f}, as Try it uses)", [
                    "--variant wise", f"--alpha {alpha:.2f}"]
        st.caption(f"To answer for new images (a zip, a folder, or image files: `*.jpg`) with this run's "
                   f"model{weights}, from there:")
        options = [f"--run {run_id}", *variant,
                   f"--data-dir {shlex.quote(str(engine.data_dir))}", "--out predictions.csv", "new_photos.zip"]
        st.code(" \\\n    ".join(["python -m engine predict", *options]), language=COMMAND_LANGUAGE, wrap_lines=True)
        if (Path(rec.run_dir) / "structured.safetensors").is_file():
            st.caption("With the smaller, channel-pruned model instead: add `--variant structured` (the same to "
                       "`python -m engine export --run ...` for its files).")
        return
    st.caption("To repeat this run without the dashboard: download its config (above), replace an uploaded "
               "dataset's `upload:` reference in it by the file's path, then")
    st.code(f"python -m engine train --config {shlex.quote(download_name)}", language=COMMAND_LANGUAGE, wrap_lines=True)


def method_views(engine, rec, summary: dict) -> None:
    """Each enabled method's own view (gates, sparsity, robust accuracy, the WiSE-FT slider), a failing one replaced
    by a message."""
    for name in enabled_methods(rec.config):
        view = VIEWS.get(name)
        if view is None:
            continue
        st.subheader(METHODS[name].title)
        with state.guarded(f"drawing the {METHODS[name].title} view"):
            view(engine, rec, summary)


def keep_section(engine, rec) -> None:
    """Keep a run from the disk clean-up (pinned) and, on a shared server, share it read-only with everyone
    signed in (shared): the run store's two flags, changed through the engine, which checks that the user
    owns the run (engine.worker.Engine.set_flag)."""
    may_change = state.attempt("checking your access to this run", engine.authorize, rec.id, state.user(),
                               write=True, show=False).ok
    title = "Keep or share this run" if engine.access_control else "Keep this run"
    now = [word for word, on in (("kept", rec.pinned), ("shared", engine.access_control and rec.shared)) if on]
    title += f" · {' and '.join(now)}" if now else ""  # its state seen closed (a keyed expander stays open)
    with st.expander(title, icon=":material/push_pin:", key=f"keep_box_{rec.id}"):
        def flip(flag: str) -> None:
            value = bool(st.session_state.get(f"{flag}_{rec.id}"))
            state.attempt("changing the run", engine.set_flag, rec.id, state.user(), flag, value)

        st.toggle("Keep it: never deleted to free disk space", value=bool(rec.pinned), key=f"pinned_{rec.id}",
                  disabled=not may_change, on_change=flip, args=("pinned",),
                  help="When the runs fill the disk space this studio may use, the oldest finished runs are deleted "
                       "first; a kept run never is.")
        if engine.access_control:
            st.toggle("Share it: everyone signed in here can see it", value=bool(rec.shared), key=f"shared_{rec.id}",
                      disabled=not may_change, on_change=flip, args=("shared",),
                      help="They can look at its results, explanations and exports and try it on their images; "
                           "only you can stop, change or delete it.")
        if not may_change:
            st.caption(f"Only {rec.owner or 'its owner'} can change this: the run was shared with you to look at.")


def delete_section(engine, rec) -> None:
    """The "Delete this run" expander: a confirmation box, then the run's files and records removed (not while it is
    queued or running)."""
    with st.expander("Delete this run", icon=":material/delete:"):
        if rec.status in ("queued", "running"):
            st.caption("Stop the run on the Train page before deleting it.")
            return
        sure = st.checkbox("Yes, delete its files and metrics for good", key=f"sure_{rec.id}")
        if st.button("Delete run", disabled=not sure, key=f"delete_{rec.id}"):
            if state.attempt("deleting the run", engine.delete_run, rec.id, state.user()).ok:
                st.session_state.pop(RUN_KEY, None)
                st.rerun()


def one_run(engine, runs) -> None:
    """The one-run tab: the run picked, its state, claims, headline figures, curves, charts, methods' views,
    downloads and deletion."""
    run_id = run_picker(runs)
    rec = state.record(engine, run_id)
    run = components.load_run(engine, run_id)
    if rec is None or run is None:
        st.info("This run no longer exists.")
        return
    summary = read_summary(rec.run_dir)
    methods = ", ".join(METHODS[m].title for m in enabled_methods(rec.config)) or "no extra method"
    methods += recipe_notes(rec.config, summary.get("probe_epochs"))
    b = rec.config.get("backbone", {})
    st.caption(f"{state.backbone_title(b.get('name'))} ({run_weights_words(rec)}) · "
               f"{state.epochs_words(rec.config, summary)} · "
               f"{rec.config.get('data', {}).get('image_size')} px · {methods} · seed {rec.config.get('seed', 0)} · "
               + started_text(rec, summary))  # the seed: two runs of one recipe read alike without it
    if rec.status in ("queued", "running"):
        st.info("This run is still training. The live view is on the Train page; final results appear here when "
                "it ends.", icon=":material/hourglass_top:")
        st.page_link("app_pages/train.py", label="Watch it live", icon=":material/monitoring:")
    elif rec.status == "failed":
        reason = state.message_words(rec.error or "no reason was recorded.", names_of(rec))
        st.error(f"This run failed: {reason}", icon=":material/error:")
    elif rec.status == "stopped":
        stopped_note(rec, run)
    chance = at_chance(summary, rec.config) if summary.get("status") == "finished" else None
    if chance:
        st.warning(chance, icon=":material/warning:")
    unstable = unstable_note(summary, rec.config) if summary.get("status") == "finished" else None
    if unstable:
        st.warning(unstable, icon=":material/warning:")
    if head_lr := head_lr_words(summary, (rec.config.get("data") or {}).get("image_size")):
        st.caption(head_lr)  # the rate the head trained at is not the one set: said where its figures are
    if ended := ended_early_words(summary):  # the figures below are the kept weights', not the last epoch's
        st.info(f"{ended} The figures below are that model's.", icon=":material/history:")
    if rec.status not in ("queued", "running"):
        reuse(rec)
    summary_metrics(run, summary)
    if summary.get("wise_curve") and summary.get("status") == "finished":
        alpha, chosen = state.wise_alpha(engine, rec)
        note = wise_tiles_note(summary, alpha, chosen, mix_held_out(engine, rec, alpha))
        if alpha < 1 - 1e-9:  # the model the other pages use is not the one these tiles give: said in a box, not in
            st.info(note.removeprefix(":material/info: "), icon=":material/info:")  # grey (a teacher missed it)
        else:
            st.caption(note)
    if summary.get("status") == "finished":  # what the figures rest on, and what the run left out
        overfit = overfit_words(summary, rec.config)  # the gap that stays to the end, not only the probe's
        for note in (small_split_note(summary), ood_off_note(rec.config, summary), cut_ends_note(rec.config, summary),
                     finer_detail_note(rec.config, summary), f":material/school: {overfit}" if overfit else ""):
            if note:
                st.caption(note)
    warned = data_warnings(rec, summary)
    if warned:  # next to the figures they qualify (a duplicate across given splits inflates validation accuracy)
        st.warning(f"These figures come from data with {state.plural(len(warned), 'warning')}: " + " ".join(warned),
                   icon=":material/warning:")
    components.curves_view(run, overshoot_said=bool(unstable))  # one word on an overshoot, as `train` prints
    if summary.get("status") == "finished":
        claim_lines(rec, runs, read_summary, summary, chance)
        detail_charts(run, summary)
        method_views(engine, rec, summary)
        details(rec, summary)
    downloads(engine, rec, summary)
    keep_section(engine, rec)
    delete_section(engine, rec)


def reuse(rec) -> None:
    """"Use these settings again" (on the data chosen now) and, when the run's data is other than that,
    "Use them on <the run's data>"."""
    data = state.dataset_name(rec.config)
    # buttons as wide as their words, wrapping onto a second line on a narrow window (columns cut them)
    row = st.container(horizontal=True, wrap=True, vertical_alignment="center")
    again = row.button("Use these settings again", icon=":material/replay:", key=f"reuse_{rec.id}",
                        help="The next run gets this run's model, methods and training settings, on the dataset "
                             f"chosen now ({state.dataset().label}).")
    run_data, now = rec.config.get("data") or {}, state.config().data
    on_data = False
    if (run_data.get("source"), run_data.get("ood_source") or "") != (now.source, now.ood_source):  # else the same
        gone = not state.source_exists(run_data.get("source") or "")  # a button that could only fail: said why
        fix = state.bring_back_words(state.dataset_of_config(rec.config))
        on_data = row.button(f"Use them on {data}", icon=":material/dataset:", key=f"reuse_data_{rec.id}",
                              disabled=gone, help=f"{data} is no longer on this server: {fix} to train on it." if gone
                              else "The next run gets this run's settings and its dataset (and OOD set).")
    if again or on_data:
        if state.attempt("taking over the run's settings", state.reuse_run, rec, on_data).ok:
            st.session_state["reuse_note"] = rec.id
    if st.session_state.get("reuse_note") == rec.id:
        st.success(f"The next run now has these settings, on **{state.dataset().label}**.",
                   icon=":material/check_circle:")
        st.page_link("app_pages/train.py", label="Start it on the Train page", icon=":material/arrow_forward:")


COMPARE_METRICS = {"val_acc": "val acc", "test_acc": "test acc", "robust_acc": "robust acc", "ood_acc": "OOD acc",
                   "ood_user_acc": "your OOD"}  # summary key -> short column name (the table fits the page)
COMPARE_HELP = {
    "dataset": "The data the run trained on: accuracies on different data are not comparable.",
    "val acc": SUMMARY_METRICS["val_acc"][1], "test acc": SUMMARY_METRICS["test_acc"][1],
    "robust acc": "Accuracy under a PGD attack at the run's evaluation budget.",
    "OOD acc": SUMMARY_METRICS["ood_acc"][1], "your OOD": SUMMARY_METRICS["ood_user_acc"][1],
    "balanced acc": "Mean of the per-class accuracies (test images, else validation): every class counts equally.",
    "sparsity": "Share of weights pruned to zero.",
    "greyscale acc": "Accuracy on the greyscale pictures (night shots from an infrared camera, scans) among the test "
                     "images (validation where a run has none), where they sit beside colour ones; Results says "
                     "which classes they hold.",
    "smaller acc": "The smaller, channel-pruned model's accuracy (structured pruning), on the test images (validation "
                   "where the run has none); its size and speed are on Results.",
}


def greyscale_accuracy(summary: dict) -> float | None:
    """The share of the greyscale pictures (night shots, scans) the run got right, on the test images where the run
    has them, else validation (its `{split}_by_colour`, engine.evaluate.colour_groups), as a fraction; None where
    that split holds no greyscale beside colour pictures. An ecologist's runs had a night figure on Results each,
    and none side by side."""
    split = "test" if summary.get("test_acc") is not None else "val"
    grey = (summary.get(f"{split}_by_colour") or {}).get("greyscale")
    if not isinstance(grey, list) or len(grey) != 2 or not grey[1]:
        return None
    return int(grey[0]) / int(grey[1])


def compare_row(engine, rec, label: str, recipe: str) -> tuple[dict, pd.DataFrame]:
    """One row of the comparison table (the key columns first; None where a run has no value; `recipe`: its
    `recipe_cells` cell) and the run's per-epoch frame."""
    summary = read_summary(rec.run_dir)
    view = components.load_run(engine, rec.id)
    epochs = view.epochs if view is not None else pd.DataFrame()
    if summary.get("status") != "finished" and not epochs.empty:
        summary = {**last_epoch_figures(view), **summary}
    cfg = rec.config
    report = summary.get("data_report") or {}
    n_images = report.get("num_images") or (sum(report.get("counts", {}).values()) or None)
    per_class = summary.get("test_per_class_acc") or summary.get("val_per_class_acc")
    values = [v for v in (per_class.values() if isinstance(per_class, dict) else per_class or [])
              if isinstance(v, (int, float))]
    row = {"run": label, "dataset": state.dataset_name(cfg),  # one dataset by its content, however it was given
           "_source": cfg.get("data", {}).get("source"), "_content": report.get("content_sha256") or None,
           "classes": len(report.get("classes") or summary.get("classes") or []) or None,
           "images": n_images, "image px": cfg.get("data", {}).get("image_size"),
           "methods": ", ".join(METHODS[m].short for m in enabled_methods(cfg)) or "plain fine-tuning"}
    for key, name in COMPARE_METRICS.items():
        row[name] = summary.get(key)
    row["balanced acc"] = sum(values) / len(values) if values else None
    row["greyscale acc"] = greyscale_accuracy(summary)
    row["sparsity"] = summary.get("sparsity")
    small = summary.get("structured") or {}  # its smaller model, on the split the test column uses
    row["smaller acc"] = small.get("test_acc") if summary.get("test_acc") is not None else small.get("val_acc")
    row["_pruned"] = "pruning" in enabled_methods(cfg)  # a run without pruning is 0% sparse (compare())
    b = cfg.get("backbone", {})
    row.update({"model": f"{state.backbone_title(b.get('name'))}, {state.WEIGHTS_TEXT.get(b.get('pretrained'), b.get('pretrained'))}",
                "epochs": epochs_cell(cfg, summary), "batch": cfg.get("train", {}).get("batch_size"),
                "lr": cfg.get("optim", {}).get("lr"), "seed": cfg.get("seed"),
                "recipe": recipe,
                "img/s": summary.get("train_images_per_sec"),
                "time": components.fmt_duration(summary.get("wall_time_s")) if summary.get("wall_time_s") else None})
    return row, epochs


def percent_cells(fractions: pd.DataFrame) -> pd.DataFrame:
    """Fractions (float, NaN where not measured) as percentages rounded to one decimal as the pages' own
    words round them (Python's format, components.fmt_pct): the grid's "%.1f%%" rounds an exact half up,
    and a robust accuracy of 1/16 read 6.3% in Compare beside 6.2% on Results."""
    return fractions.astype(float).map(lambda v: float(f"{100 * v:.1f}") if v == v else v)


def epochs_cell(cfg: dict, summary: dict) -> str | None:
    """Compare's epochs cell: "20", "3 of 20" for a run a method ended early, "5 + 2" for a run whose
    structured pruning fine-tuned its smaller model for 2 epochs after its 5 (the column's help says so: "5 + 2
    (smaller model)" was cut to "5 + 2 (smalle" in its 60 px; text: one column holds all)."""
    planned = (cfg.get("train") or {}).get("epochs")
    if planned is None:
        return None
    done = epochs_ended_early(summary, int(planned))
    pruning = cfg.get("pruning") or {}
    extra = int(pruning.get("structured_epochs") or 0) if pruning.get("enabled") and pruning.get("structured") else 0
    return (f"{done} of {planned}" if done else str(planned)) + (f" + {extra}" if extra else "")


# What Compare's recipe column names, in this order, with each kind's words at the default: "layers" (head-only
# epochs, frozen blocks) and "augment" in every row; the others wherever a compared run departs from the default
RECIPE_DEFAULTS = {"augment": "crops and mirrors", "layers": "every layer trained", "greyscale": "no greyscale copies",
                   "schedule": "learning rate: cosine", "tta": "no flip TTA", "balance": "classes as they are",
                   "fit": "middle square"}
ALWAYS_NAMED = ("augment", "layers")


def recipe_kinds(cfg: dict, probe_epochs: int | None = None) -> dict[str, str]:
    """What of `cfg`'s recipe (a saved config dict, keys it lacks at their defaults) departs from the default, by
    kind (RECIPE_DEFAULTS' keys) in words: {"layers": "first 2 epochs head only (a linear probe)", "tta": "flip
    TTA"}; {} for the default recipe. `probe_epochs`: the head-only epochs the engine ran (the summary's), else the
    config's."""
    train = TrainConfig(**{k: v for k, v in (cfg.get("train") or {}).items() if k in ("augment", "flip", "greyscale")})
    optim, data = cfg.get("optim") or {}, cfg.get("data") or {}
    probe = probe_epochs if isinstance(probe_epochs, int) else int(optim.get("linear_probe_epochs") or 0)
    frozen = frozen_words(optim, (cfg.get("backbone") or {}).get("pretrained"))
    layers = [f"first {plural(probe, 'epoch')} head only (a linear probe)"] * bool(probe) + [frozen] * bool(frozen)
    schedule = optim.get("schedule") or OptimConfig().schedule
    plain = TrainConfig(augment=train.augment, flip=train.flip)  # the greyscale share: a kind of its own
    out = {"augment": augmentation_words(plain) if not (train.augment and train.flip) else "",
           "layers": ", ".join(layers), "greyscale": greyscale_copies_words(train),
           "schedule": f"learning rate: {schedule_label(schedule)}" if schedule != OptimConfig().schedule else "",
           "tta": "flip TTA (each prediction averaged with the mirror image)" if (cfg.get("eval") or {}).get("tta_flip")
           else "",
           "balance": balance_words(data.get("class_balance")), "fit": fit_words(data.get("fit"))}
    return {k: v for k, v in out.items() if v}


def _recipe_words(runs: list[tuple[dict, int | None]]) -> list[dict[str, str]]:
    """Each of `runs`' recipe by kind in words (`recipe_kinds`): augmentation and the layers trained always, and each
    other kind where any of the runs departs from the default, the others then saying their default ("middle square"
    beside "whole pictures"): a run's setting showed in its own row only, and the other row read as if it had none."""
    kinds = [recipe_kinds(cfg, probe) for cfg, probe in runs]
    named = set(ALWAYS_NAMED) | {k for row in kinds for k in row}
    return [{k: row.get(k, RECIPE_DEFAULTS[k]) for k in RECIPE_DEFAULTS if k in named} for row in kinds]


def recipe_columns(runs: list[tuple[dict, int | None]]) -> tuple[list[str], str]:
    """Compare's recipe cell for each of `runs` ((config dict, head-only epochs the engine ran or None),
    `_recipe_words`), and what their recipes share, in words, read once. Where the recipes differ, a cell gives only
    the kinds that differ ("loss weighted by class" beside "classes as they are") and the shared words what the
    others have alike ("crops and mirrors, first 2 epochs head only (a linear probe)"; "" where no kind is alike):
    both rows began with the same "crops and mirrors, first 2 epochs head only (a li..." and cut the difference
    out of sight. Recipes alike (and one run) give each cell whole and no shared words: the column, the same in
    every row, is then said once as every run's setting."""
    words = _recipe_words(runs)
    differ = {k for k in (words[0] if words else {}) if len({w[k] for w in words}) > 1}
    cells = [", ".join(v for k, v in w.items() if k in differ or not differ) for w in words]
    return cells, ", ".join(v for k, v in words[0].items() if k not in differ) if differ else ""


def recipe_cells(runs: list[tuple[dict, int | None]]) -> list[str]:
    """`recipe_columns`' cells alone."""
    return recipe_columns(runs)[0]


def shared_recipe(runs: list[tuple[dict, int | None]]) -> str:
    """`recipe_columns`' shared words alone."""
    return recipe_columns(runs)[1]


DATA_COLUMNS = ("dataset", "classes", "images", "image px")
WISE_ROW_NOTE = ("A WiSE-FT run's row gives its fine-tuned model's figures (alpha 1), measured on every image at "
                 "the end of the run; the mix at the alpha chosen for it is on its own Results page (One run), "
                 "on the curve's images.")


def shared_columns_note(table: pd.DataFrame) -> pd.DataFrame:
    """Columns with the same value in every row of the Compare table say nothing about the runs: a
    caption names them once and the table drops them, so that the columns that compare fit the page.
    The data columns go when every run trained on the same data at the same size, the image size
    alone when only it is shared, the methods when two or more runs used the same ones."""
    def same(c: str) -> bool:
        return c in table.columns and table[c].nunique(dropna=False) == 1

    first, words, drop = table.iloc[0], [], []
    cols = [c for c in DATA_COLUMNS if c in table.columns]
    if cols and all(same(c) for c in cols):
        parts = [f"{int(first[c]):,} {c}" if c != "image px" else f"{int(first[c])} px"
                 for c in cols[1:] if pd.notna(first[c])]
        words.append(f"on **{state.md_text(first['dataset'])}**" + (f" ({', '.join(parts)})" if parts else ""))
        drop += cols
    elif same("image px") and pd.notna(first["image px"]):
        words.append(f"at {int(first['image px'])} px")
        drop.append("image px")
    if len(table) > 1 and same("methods"):
        words.append(f"with {' + '.join(str(first['methods']).split(', '))}")
        drop.append("methods")
    if words:
        text = ", ".join(words)
        st.caption(f"All {text}." if len(table) > 1 else f"{text[:1].upper()}{text[1:]}.")
    return table.drop(columns=drop)


def held_out_key(path: str) -> tuple[str, str]:
    """An image of a run's held-out split as (class folder, file name): one image whatever folders wrap
    it. The same images packed two ways (a zip of class folders, and one of train/ and val/ folders, which
    Compare shows as one dataset: the same content) listed "Fruit/apple/1.jpg" and "val/apple/1.jpg", and
    the note said the runs had none in common."""
    parts = str(path).replace("\\", "/").split("/")
    return (parts[-2] if len(parts) > 1 else "", parts[-1])


def other_test_images(table: pd.DataFrame, summaries: dict[str, dict]) -> str | None:
    """A warning when runs of one dataset in the Compare table (`table`: its "run" and "dataset" columns)
    were tested on different images: their summaries' (`summaries`, by run label) data reports list each
    split's files, and another seed draws another split. None when every dataset's runs share their test
    images (validation images for runs without a test split), or nothing says which they were."""
    parts = []
    for dataset, runs in table.groupby("dataset", sort=False)["run"]:
        held_out = {}
        for run in runs:
            files = ((summaries.get(run) or {}).get("data_report") or {}).get("split_files") or {}
            split = "test" if files.get("test") else "val"
            if files.get(split):
                held_out[run] = (split, frozenset(map(held_out_key, files[split])))
        if len({images for _, images in held_out.values()}) < 2:
            continue
        sizes = sorted({len(f) for _, f in held_out.values()})
        shared = len(frozenset.intersection(*(f for _, f in held_out.values())))
        count = " or ".join([*map(str, sizes[:-1]), plural(sizes[-1], "image")])  # "7 images", "6 or 7 images"
        common = f"{shared} in common" if shared else "none in common"
        points = " or ".join(f"{100 / n:.1f}" for n in sizes)  # one image's worth on each size
        no_test = [run for run, (split, _) in held_out.items() if split == "val"]
        val_words = (f"; {and_words(no_test)} {'has' if len(no_test) == 1 else 'have'} no test images, so "
                     "validation images stand in" if no_test and len(no_test) < len(held_out) else "")
        parts.append(f"on **{state.md_text(dataset)}** the runs drew different splits, so each was tested on other "
                     f"images ({count} each, {common}; one image is {points} points of accuracy{val_words})")
    if not parts:
        return None
    return ("Different test images: " + "; ".join(parts) + ". Part of a gap between such runs is which images each "
            "split drew, not how each trained. The seed draws the split (unless your dataset comes with its own "
            "split folders); runs with one seed share it.")


def compare_labels(labels: dict[str, str], recs: list) -> tuple[dict[str, str], dict[str, str]]:
    """(the Compare table's run labels, the curves' legend labels) by run id: both without a backbone
    every run shares; the table's without the dataset too (it has a column for it, or names it above),
    the legend's only when every run trained on the same data (the chart has no dataset column)."""
    backbones = {r.id: state.backbone_title((r.config.get("backbone") or {}).get("name")) for r in recs}
    datasets = {r.id: state.dataset_name(r.config) for r in recs}
    extras = {r.id: "".join(f", {w}" for w in data_extras(r.config.get("data") or {})) for r in recs}
    short = state.without_backbone(state.without_dataset(labels, datasets, extras), backbones)
    return short, (short if len(set(datasets.values())) == 1 else state.without_backbone(labels, backbones))


SHORT_HEADERS = {"balanced acc": "balanced", "greyscale acc": "greyscale"}  # the column's heading, where shorter
# headers whole at 13 px ("robust ac…" at 64)
WIDE_HEADERS = {"balanced acc": 72, "robust acc": 76, "smaller acc": 80, "greyscale acc": 76}
SETUP_RUN_PX = 230  # "08:03 · Weather icons - adversarial try" whole (it was cut at 120 px)
NOT_MEASURED = "–"  # a figure a run did not measure (robust accuracy of a run without an attack), as in the tiles
COMPARE_FIT_PX = 816  # the Compare table's width in a 1280 px window with the sidebar open (818 px measured), less 2
EXPANDER_PADDING_PX = 34  # a table in an expander is this much narrower (measured: 784 px against 818)


TEXT_PX_PER_CHAR = 7.5  # the tables' font, measured on "L2-SP, Adversarial" (cut at 112 px)


def text_width(column: pd.Series | None, least: int, most: int) -> int:
    """A text column's width in px for its longest cell (TEXT_PX_PER_CHAR and the cell's padding), between
    `least` and `most`: a new user saw "L2-SP, Adversarial" cut in a fixed 112 px."""
    longest = int(column.astype(str).str.len().max()) if column is not None and len(column) else 0
    return int(max(least, min(most, longest * TEXT_PX_PER_CHAR + 18)))


def run_width(table: pd.DataFrame, config: dict, fit: int = COMPARE_FIT_PX) -> int:
    """The run column's width: the room the other columns leave in `fit` px, between RUN_PREFERRED_PX (the start
    time and the run's first words) and 300, so that the table fits a 1280 px window where it can; where the other
    columns leave less, the run column (pinned at the left) keeps RUN_PREFERRED_PX and the table scrolls sideways:
    with many metric columns it cut "08:21 · Small model" to "08:21 · Small mode"."""
    room = room_left(table, config, fit)
    return RUN_PREFERRED_PX if room < RUN_PREFERRED_PX else min(300, room)


def room_left(table: pd.DataFrame, config: dict, fit: int = COMPARE_FIT_PX) -> int:
    """What `fit` px leave the run column beside the other columns of `table` with a width in `config` (px; below
    zero where they overflow it)."""
    return fit - sum(int(config[c]["width"]) for c in table.columns
                     if c != "run" and isinstance(config.get(c, {}).get("width"), int))


def setup_that_differs(table: pd.DataFrame, setup: list[str]) -> list[str]:
    """The setup columns the Compare table keeps beside the figures (the others fold away under it):
    epochs, recipe, batch size, learning rate and seed where the runs differ in them (runs of the same data and
    methods are named alike; a student's runs with and without a class-weighted loss differed only in the folded
    recipe, under "Every run: ..."), and the data's size where runs of one dataset differ in it (fewer images
    per class, say; different datasets are told apart by their own column)."""
    differ = [c for c in ("epochs", "recipe", "batch", "lr", "seed")
              if c in setup and table[c].nunique(dropna=False) > 1]
    return differ + [c for c in ("classes", "images") if c in setup and
                     table.groupby("dataset")[c].nunique(dropna=False).gt(1).any()]


def shared_setup(table: pd.DataFrame, setup: list[str]) -> tuple[list[str], str]:
    """(the setup columns every run of two or more in `table` has the same value in, a caption that gives
    them: "Every run: ResNet-18, bundled weights · 4 epochs · batch 4 · learning rate 0.0025 · seed 0";
    "" when none). Speed and time are measured, never shared; a column without any value is left out."""
    if len(table) < 2:
        return [], ""
    shared = [c for c in setup if c not in ("img/s", "time") and table[c].nunique(dropna=False) == 1
              and pd.notna(table[c].iloc[0])]
    def words(c: str, v) -> str:
        counted = {"classes": ("class", "classes"), "images": ("image", "images"), "epochs": ("epoch", "epochs")}
        if c == "epochs" and " + " in str(v):  # "20 + 10": the smaller model's fine-tune after the run's epochs
            run_epochs, extra = str(v).split(" + ", 1)
            return f"{run_epochs} {'epoch' if run_epochs.strip() == '1' else 'epochs'} + {extra} of the smaller model"
        if c == "epochs" and not str(v).isdigit():  # "3 of 20": a run a method ended early
            return f"{v} epochs"
        if c in counted:
            return plural(int(v), *counted[c])
        if c == "lr":
            return f"learning rate {float(v):g}"
        return f"{c} {v}" if c in ("batch", "seed") else str(v)
    return shared, ("Every run: " + " · ".join(words(c, table[c].iloc[0]) for c in shared)) if shared else ""


def wise_leads(rows: list[dict], wise: list[bool]) -> bool:
    """True when a WiSE-FT run among the compared ones (`rows`: compare_row's, `wise`: which are WiSE-FT runs, in
    the same order) has a higher validation accuracy than every other run: the lead its linear-probe head may
    explain. False without both kinds or without their figures. Raises nothing."""
    def best(of_wise: bool) -> float | None:
        vals = [r.get("val acc") for r, w in zip(rows, wise) if w == of_wise and isinstance(r.get("val acc"), float)]
        return max(vals) if vals else None

    ours, theirs = best(True), best(False)
    return ours is not None and theirs is not None and ours > theirs


def compare_picker(candidates: list, labels: dict[str, str]) -> list[str]:
    """The runs to compare (ids): at first the newest three finished ones, with the standard fine-tuning run the
    newest of them with a method is judged against (engine.baselines.comparison_run) when it is older (a teacher's
    fourth run dropped the Standard demo from the picker); the user's pick after that, kept across a refresh
    (those still there)."""
    from engine.baselines import comparison_run, methods_on

    finished = [r for r in candidates if r.status == "finished"]
    default = [r.id for r in finished[:3]]
    judged = next((r for r in finished[:3] if methods_on(r.config)), None)
    baseline = comparison_run(judged, finished) if judged is not None else None
    if baseline is not None and baseline.id not in default:
        default.append(baseline.id)
    state.seed_choice("compare_runs")
    if st.session_state.get("compare_runs"):  # the runs picked that are still there; none left: the newest again
        kept = [i for i in st.session_state["compare_runs"] if i in labels]
        if kept:
            st.session_state["compare_runs"] = kept
        else:
            del st.session_state["compare_runs"]
    chosen = st.multiselect("Runs to compare", [r.id for r in candidates], key="compare_runs",
                            default=None if "compare_runs" in st.session_state else default,
                            format_func=labels.get, help="Finished runs are picked by default; add or remove any.")
    state.remember_choice("compare_runs", list(chosen), default=default)
    words = left_out_words([r.id for r in finished], list(chosen), default, labels)
    if words:
        st.caption(words)
    return list(chosen)


def left_out_words(finished: list[str], chosen: list[str], default: list[str], labels: dict[str, str]) -> str:
    """Under the compare picker while it holds its first pick (`default`): the `finished` runs (ids) it left out,
    named by `labels`, the first three; "" when none is, or the user picked (a new user's fourth run was left out
    without a word)."""
    left = [i for i in finished if i not in chosen]
    if chosen != default or not left:
        return ""
    names = ", ".join(state.md_text(labels.get(i, i)) for i in left[:3]) + (", ..." if len(left) > 3 else "")
    return (f"Picked at first: the newest finished runs; {state.plural(len(left), 'other finished run')} "
            f"({names}) can be added in the box above.")


def compare(engine, runs) -> None:
    """The Compare tab: pick runs, then one table of their figures and settings that differ, and a chosen metric's
    curves on one chart."""
    candidates = [r for r in runs if r.status in ("finished", "stopped", "failed")]
    if len(candidates) < 1:
        st.info("Finish a run or two to compare them here.")
        return
    labels = state.run_labels(candidates, compact=True, among=runs)  # the start first: the run column is narrow
    chosen = compare_picker(candidates, labels)
    if not chosen:
        st.caption("Pick at least one run.")
        return
    rows = []
    by_id = {r.id: r for r in candidates}
    short, legend = compare_labels({i: labels[i] for i in chosen}, [by_id[i] for i in chosen])
    by_run = {}
    # each kind of setting that differs among the runs named in every row
    recipes = [(by_id[i].config, read_summary(by_id[i].run_dir).get("probe_epochs")) for i in chosen]
    cells, common = recipe_columns(recipes)
    for run_id, cell in zip(chosen, cells):
        row, by_run[run_id] = compare_row(engine, by_id[run_id], short[run_id], cell)
        rows.append(row)
    table = charts.compare_table(rows)
    if "sparsity" in table.columns:  # beside a pruned run, one without pruning keeps all its weights
        table.loc[~table["_pruned"].astype(bool), "sparsity"] = 0.0
    table = table.drop(columns="_pruned")
    curves = {legend[i]: c for i, c in by_run.items()}
    summaries = {short[i]: read_summary(by_id[i].run_dir) for i in chosen}
    compare_warnings(table, summaries)
    table = shared_columns_note(table)  # what every run shares is said once: the table keeps its width
    wise = ["wise_ft" in enabled_methods(by_id[r].config) for r in chosen]
    if wise_leads(rows, wise):  # said only where there is a lead (a teacher read it beside a WiSE-FT run 4 points behind)
        st.caption(":material/info: WiSE-FT runs start fine-tuning from their starting model (theta_0): the "
                   "pretrained network with a new last layer (head) fitted to convergence on the training images (a linear probe) before the first "
                   "epoch. On a small dataset that head alone can score far above what a plain run reaches in a "
                   "few epochs, so part of their lead is that head, not the weight mix.")
    if any(wise):
        st.caption(":material/info: " + WISE_ROW_NOTE)
    fractions = [c for c in table.columns if c in set(COMPARE_METRICS.values()) | {"balanced acc", "sparsity",
                                                                                    "smaller acc", "greyscale acc"}]
    table[fractions] = percent_cells(table[fractions])
    config = {c: st.column_config.NumberColumn(SHORT_HEADERS.get(c, c), format="%.1f%%",
                                               help=COMPARE_HELP.get(c), width=WIDE_HEADERS.get(c, 64))
              for c in fractions}
    config |= {"dataset": st.column_config.TextColumn("dataset", help=COMPARE_HELP["dataset"], width=120),
               "methods": st.column_config.TextColumn("methods", width=text_width(table.get("methods"), 112, 220)),
               "classes": st.column_config.NumberColumn("classes", format="%d", width=58),
               "images": st.column_config.NumberColumn("images", format="%d", width=58),
               "image px": st.column_config.NumberColumn("px", format="%d", width=40),
               "epochs": st.column_config.TextColumn("epochs", width=60, alignment="right", help=(  # as numbers
                   "Epochs trained: \"3 of 20\" when a method ended training early (Results says why); \"20 + 10\" "
                   "when structured pruning then fine-tuned the smaller model for 10.")),
               "batch": st.column_config.NumberColumn("batch", format="%d", width=60,
                                                      help="Images per optimiser step."),
               "img/s": st.column_config.NumberColumn("img/s", format="%.0f", width=60),
               # as wide as its longest cell: the differences alone are often short, the run column gets the rest
               "recipe": st.column_config.TextColumn("recipe", width=text_width(table.get("recipe"), RECIPE_LEAST_PX,
                                                                                RECIPE_PX), help=(
                   "Head-only (linear-probe) epochs, augmentation, flip TTA and frozen blocks, where a run has them.")),
               "seed": st.column_config.NumberColumn(
                   "seed", format="%d", width=50, help="Sets the training's randomness and, unless the dataset "
                                                       "comes with its own split folders, its split."),
               "model": st.column_config.TextColumn("model", width=260),  # "MobileNetV3-Small, bundled weights"
               "time": st.column_config.TextColumn("time", width=90),  # "12 min 34 s"
               "lr": st.column_config.NumberColumn(
                   "lr", format="%.4g", width=64,
                   help="The learning rate as set. The Model and Train pages show the effective learning rate, "
                        "lr / (1 - momentum): 10 times this at the usual momentum of 0.9.")}
    # the data's size with the setup: the dataset column names the data, and the run column gets the room
    setup = [c for c in ("classes", "images", "model", "epochs", "recipe", "batch", "lr", "seed", "img/s", "time")
             if c in table.columns]
    differ = setup_that_differs(table, setup)
    main = table.drop(columns=[c for c in setup if c not in differ])
    give_run_room(main, config)
    config["run"] = st.column_config.TextColumn("run", width=run_width(main, config), pinned=True)
    figures_table(main, config, common)
    per_class_compare(summaries)
    if setup:
        setup_details(table, setup, config, common)
    compare_curves(curves, {legend[i]: by_id[i] for i in chosen}, [r.id for r in reversed(candidates)])


def compare_warnings(table: pd.DataFrame, summaries: dict[str, dict]) -> None:
    """Above the Compare table: runs on different datasets, on other test images (`other_test_images`), and runs
    at guessing on their own Results page (`claims_view.guessing_runs_words`); `summaries`: each run's summary by
    its label in the table."""
    datasets_used = list(dict.fromkeys(table["dataset"]))
    if len(datasets_used) > 1:
        st.warning(f"These runs trained on {len(datasets_used)} different datasets ({', '.join(datasets_used)}): "
                   "accuracies on different data say nothing about which method is better. The rows are sorted "
                   "by dataset; compare runs on the same one.", icon=":material/warning:")
    split_note = other_test_images(table, summaries)
    if split_note:
        st.warning(split_note, icon=":material/shuffle:")
    guessing = guessing_runs_words(summaries)
    if guessing:
        st.warning(guessing, icon=":material/casino:")
    few = compare_few_images_words(summaries)
    if few:
        st.caption(f":material/info: {few}")


def per_class_frame(summaries: dict[str, dict]) -> tuple[pd.DataFrame, str] | None:
    """Each class's accuracy in each run (`summaries`: summary by the run's label in the table) on the test images
    where every run has them, else the validation images: a frame of a "class" column and one text column per run
    ("50.0% (1 of 2)", from `{split}_confusion`), and the split; None for fewer than two runs, runs of different
    classes, or a run without a well-formed matrix of that split."""
    if len(summaries) < 2:
        return None
    classes = [list(map(str, s.get("classes") or [])) for s in summaries.values()]
    if not classes[0] or any(c != classes[0] for c in classes):
        return None
    split = next((sp for sp in ("test", "val") if all(s.get(f"{sp}_confusion") for s in summaries.values())), None)
    matrices = [confusion_rows(s, split) for s in summaries.values()] if split else []
    if not matrices or any(m is None for m in matrices):
        return None
    frame = {"class": classes[0]}
    for label, rows in zip(summaries, matrices):
        frame[label] = [right_of_words(r[i], sum(r)) if sum(r) else NOT_MEASURED
                        for i, r in enumerate(rows)]
    return pd.DataFrame(frame), split


def few_on(summaries: dict[str, dict], split: str, classes: list[str]) -> list[str]:
    """The classes (in `classes`' order) that some run compared (`summaries`) holds fewer than
    engine.chance.FEW_PER_CLASS images of on `split` ("val" or "test") beside larger ones (few_image_classes): the
    split the per-class table shows, not the other."""
    from engine.chance import FEW_PER_CLASS, few_image_classes

    few = {c for s in summaries.values() for c, sizes in few_image_classes(s).items()
           if sizes.get(split, 0) < FEW_PER_CLASS}
    return [c for c in classes if c in few]


def per_class_compare(summaries: dict[str, dict]) -> None:
    """Under the Compare table, runs of the same classes side by side per class (`per_class_frame`), with the
    classes measured on few images named (engine.chance.few_image_classes). A clinician who weighted the loss to
    help a rare class could not see whether it did."""
    from engine.chance import SPLIT_WORDS

    got = per_class_frame(summaries)
    if got is None:
        return
    frame, split = got
    with st.expander(f"Accuracy per class ({SPLIT_WORDS[split]} images)", icon=":material/table_rows:",
                     expanded=len(frame) <= 8):
        st.dataframe(frame, hide_index=True, width="stretch",
                     column_config={"class": st.column_config.TextColumn("class", pinned=True)})
        few = few_on(summaries, split, list(frame["class"]))
        if few:
            st.caption(f":material/straighten: {and_words(few)}: few {SPLIT_WORDS[split]} images, so one image moves "
                       "such a class's figure by many points; a difference between runs there can be luck.")


def figures_table(main: pd.DataFrame, config: dict, common: str = "") -> None:
    """The Compare tab's table of figures, with what its cells cannot say under it (`common`: what every run's
    recipe shares, `shared_recipe`, said where the recipe column gives only the differences)."""
    st.dataframe(main, hide_index=True, width="stretch", placeholder=NOT_MEASURED,
                 column_config={k: v for k, v in config.items() if k in main.columns})
    if common and "recipe" in main.columns:
        st.caption(f"{COMMON_RECIPE}{common}; the recipe column gives what differs.")
    full = recipes_in_full(main, config["recipe"]["width"]) if "recipe" in main.columns else ""
    if full:
        st.caption(state.md_text(full))
    given = {run for run, _ in cut_recipes(main, config["recipe"]["width"])} if "recipe" in main.columns else set()
    if names := names_in_full(main[~main["run"].isin(given)], config["run"]["width"]):  # each label said once
        st.caption(state.md_text(names))
    if "balanced acc" in main.columns and main["balanced acc"].notna().any():  # said under the table, not only on hover
        st.caption("balanced: the mean of the per-class accuracies on the test images (validation images where a "
                   "run has no test split), so every class counts equally.")


RECIPE_CELL_CHARS = 38  # about what the 260-px recipe column shows before it cuts the words
RECIPE_PX = 260  # the recipe column at its widest
RECIPE_LEAST_PX = 112  # and at its narrowest, where the run column needs the room
RUN_PREFERRED_PX = 200  # a run column of 120 px cut "08:21 · Small model, ..." to "08:21 · Small mode" at 1366 px


def give_run_room(table: pd.DataFrame, config: dict) -> None:
    """Narrow the Compare table's recipe column (`config`'s, in place; down to RECIPE_LEAST_PX) where the run column
    would otherwise get less than RUN_PREFERRED_PX of COMPARE_FIT_PX (`room_left`): the run's name says which run a
    row is, and the recipe cells are given in full under the table (`recipes_in_full`)."""
    if "recipe" not in table.columns or "recipe" not in config:
        return
    short = RUN_PREFERRED_PX - room_left(table, config)
    if short > 0:
        config["recipe"]["width"] = max(RECIPE_LEAST_PX, int(config["recipe"]["width"]) - short)


def recipes_in_full(table: pd.DataFrame, width: int = RECIPE_PX) -> str:
    """The recipe cells the Compare table's recipe column, `width` px wide, cuts ("first 2 epochs head only (a
    linear probe), lea..."; only what differs among the runs' recipes where something does: `recipe_cells`), each
    after its run's label, for a caption under the table; "" when every one fits."""
    long = cut_recipes(table, width)
    if not long:
        return ""
    return "The recipe column in full: " + "; ".join(f"{run}: {recipe}" for run, recipe in long) + "."


def cut_recipes(table: pd.DataFrame, width: int = RECIPE_PX) -> list[tuple[str, str]]:
    """(run label, recipe cell) of the rows whose recipe a recipe column `width` px wide cuts (`recipes_in_full`)."""
    chars = RECIPE_CELL_CHARS * int(width) // RECIPE_PX
    return [(run, recipe) for run, recipe in zip(table["run"], table["recipe"])
            if isinstance(recipe, str) and len(recipe) > chars]


def names_in_full(table: pd.DataFrame, width: int) -> str:
    """The Compare table's run labels (its "run" column: start time and the run's name, as the user gave it) that a
    run column `width` px wide cuts (TEXT_PX_PER_CHAR and the cell's padding, as `text_width` counts), for a caption
    under the table; "" when every one fits. The grid cuts a long label at the column's edge, and a cut name may
    be all that tells two runs apart. Raises KeyError for a table without a "run" column."""
    chars = int((int(width) - 18) // TEXT_PX_PER_CHAR)
    long = [str(run) for run in table["run"] if len(str(run)) > chars]
    return "The run column in full: " + "; ".join(long) + "." if long else ""


COMMON_RECIPE = "Every run's recipe: "  # what the recipes share, before the differences the recipe column gives


def setup_details(table: pd.DataFrame, setup: list[str], config: dict, common: str = "") -> None:
    """The Compare tab's folded "How each run was set up" table: the `setup` columns of `table` with their
    column `config` (what every run shares said once above it, shared_setup, with `common`, what the recipes
    share where the recipe column gives only their differences)."""
    words = {"classes": "classes", "images": "images", "model": "model", "epochs": "epochs", "recipe": "recipe",
             "batch": "batch size", "lr": "learning rate", "seed": "seed", "img/s": "speed", "time": "time"}
    with st.expander(f"How each run was set up ({', '.join(words[c] for c in setup)})",
                     icon=":material/settings:"):
        # what every run shares said once (ten columns scrolled speed and time out of sight at 1280 px)
        shared, text = shared_setup(table, setup)
        if text:
            st.caption(text)
        if common and "recipe" in setup and "recipe" not in shared:
            st.caption(f"{COMMON_RECIPE}{common}.")
        shown = [c for c in setup if c not in shared]
        # the run's name whole, the table scrolling sideways beside it (the column is pinned)
        config["run"] = st.column_config.TextColumn("run", pinned=True, width=max(SETUP_RUN_PX, run_width(
            table[["run", *shown]], config, COMPARE_FIT_PX - EXPANDER_PADDING_PX)))
        st.dataframe(table[["run", *shown]], hide_index=True, width="stretch", placeholder=NOT_MEASURED,
                     column_config={k: v for k, v in config.items() if k in ("run", *shown)})


def compare_curves(curves: dict, recs: dict, order: list[str] | None = None) -> None:
    """One metric's curves of the compared runs ({run label: per-epoch frame}; `recs`: {run label: its
    record}), the metric picked by the user (kept across a refresh); validation accuracy first; each run in its
    own colour (`order`: the ids of every run that can be compared, oldest first: charts.run_colours; default:
    the compared runs in `recs`' order). Under a
    validation curve, the runs whose first whole-network epoch fell after head-only epochs, and by how much."""
    metrics = sorted({c for df in curves.values() for c in df.columns
                      if c != "epoch" and "/" not in str(c)},  # per-corruption and per-layer curves: too many
                     key=lambda m: (m != "val_acc", m))
    if not metrics:
        return
    state.seed_choice("compare_metric")
    if st.session_state.get("compare_metric", metrics[0]) not in metrics:
        st.session_state.pop("compare_metric")
    metric = st.selectbox("Curve to compare", metrics, format_func=charts.metric_label, key="compare_metric")
    state.remember_choice("compare_metric", metric, default=metrics[0])
    by_id = charts.run_colours(order or [rec.id for rec in recs.values()], [rec.id for rec in recs.values()])
    colours = {label: by_id[rec.id] for label, rec in recs.items() if label in curves}
    vega.altair_chart(charts.compare_chart(charts.compare_frame(curves, metric), metric, colours), width="stretch")
    falls = {label: components.run_probe_jolt(curves[label], {}, read_summary(rec.run_dir))
             for label, rec in recs.items()} if metric in ("val_acc", "val_loss") else {}
    lines = [f"{label}: validation accuracy fell from {percent_half_up(j.before)} to {percent_half_up(j.after)} in "
             f"epoch {j.epoch}, the first in which the whole network learnt after {plural(probe, 'head-only epoch')}"
             for label, (j, probe) in ((k, v) for k, v in falls.items() if v)]
    if lines:
        st.caption("; ".join(lines) + ". The run's One run view says why.")


def unowned_note(engine) -> None:
    """On a studio with sign-in: how many runs belong to no one (made before sign-in was turned on, or from
    the command line) and how whoever runs the studio gives them to a name; nothing otherwise."""
    if not engine.access_control:
        return
    n = len(engine.store.unowned_runs())
    if n:
        st.caption(f"{state.plural(n, 'run')} on this studio {'was' if n == 1 else 'were'} made before sign-in was "
                   "turned on (or from the command line) and belong to no one, so nobody sees them here. Whoever runs "
                   "the studio can give them to a name: `python -m engine runs --give-to NAME`.")


TAB_KEY = "results_tab"
TABS = ("One run", "Compare runs")


def render() -> None:
    """Draw the Results page (4): one run, or Compare."""
    engine = state.get_engine()
    st.title("4 · Results")
    unowned_note(engine)
    runs = state.runs(engine)
    if not runs:
        st.info("No runs yet. Start one on the Train page; its results appear here.", icon=":material/info:")
        st.page_link("app_pages/train.py", label="Go to training", icon=":material/arrow_forward:")
        return
    state.seed_choice(TAB_KEY)  # a refresh keeps the tab the user had open
    tab_one, tab_compare = st.tabs(list(TABS), key=TAB_KEY, on_change="rerun")
    state.remember_choice(TAB_KEY, st.session_state.get(TAB_KEY) or TABS[0], default=TABS[0])
    with tab_one:
        one_run(engine, runs)
    with tab_compare:
        compare(engine, runs)


if __name__ == "__main__":  # run as a page (st.Page executes it as __main__); importable for tests
    render()
