"""Views shared by several pages: the sidebar status, a run's progress and its curves."""

from __future__ import annotations

import functools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import charts, layout, state, vega
from app.claims_view import at_chance
from engine.chance import by_class_words, largest_class_words
from engine.clock import fmt_duration
from engine.contract import shown_counters
from engine.jobs import INTERRUPTED_PREFIX, was_interrupted
from engine.methods.pruning import FINE_TUNE_STREAM, smaller_model_warning
from engine.store import process_alive
from engine.worker import Engine
from engine.words import ended_early_words, extra_epochs_words, plural

LIVE_REFRESH_S = 1.0  # how often live views poll the engine's snapshot, with a GPU or many CPU cores
SLOWEST_LIVE_REFRESH_S = 3.0  # on a 2-core CPU-only machine
REFRESH_ENV = "STUDIO_LIVE_REFRESH_S"  # seconds: the operator's choice over the automatic one


def refresh_override() -> float | None:
    """The live views' redraw interval set by the environment variable STUDIO_LIVE_REFRESH_S, in
    seconds, kept within 0.5-60; None when it is unset or not a number (then the automatic choice)."""
    import math
    import os

    try:
        value = float(os.environ.get(REFRESH_ENV, "").strip())
    except ValueError:
        return None
    return min(60.0, max(0.5, value)) if math.isfinite(value) else None


def cpu_count() -> int:
    """CPUs this process may run on: its affinity and a container's CPU quota counted
    (engine.devices.usable_cpus)."""
    from engine.devices import usable_cpus

    return usable_cpus()


def live_refresh_s(gpu: bool | None = None, cpus: int | None = None) -> float:
    """Seconds between redraws of the live views (the Train page's charts and the sidebar's status).

    With a GPU (CUDA or Apple's MPS), 1 s. Training on the CPU, the browser that draws the charts usually shares the
    machine's cores with the run, so the fewer the cores the longer the interval: 6 / cpus seconds,
    1 to 3 s. Measured on 2 cores by benchmarks/dashboard_refresh.py (a 6-epoch Quick demo started
    in the dashboard, headless Chromium on the same machine, 2 rounds): at 3 s the run's loop took
    0.95x the command line's, at 1 s 1.63x, the browser using 18-20 CPU seconds of the run's 37-40.
    `gpu` and `cpus` default to this machine's;
    STUDIO_LIVE_REFRESH_S overrides the choice (`refresh_override`)."""
    override = refresh_override()
    if override is not None:
        return override
    if gpu is None:
        import torch

        mps = getattr(torch.backends, "mps", None)
        gpu = torch.cuda.is_available() or (mps is not None and mps.is_available())
    if gpu:
        return LIVE_REFRESH_S
    cpus = cpu_count() if cpus is None else cpus
    return min(SLOWEST_LIVE_REFRESH_S, max(LIVE_REFRESH_S, 6.0 / max(cpus, 1)))


# ---- one run, live or from the store --------------------------------------------------------

@dataclass
class RunView:
    """A run as the pages draw it: its record's fields, live progress, per-epoch metrics and logged steps as frames,
    methods' streams, and whether it is live in this process or runs in another program."""

    id: str
    name: str
    status: str
    error: str | None
    config: dict
    run_dir: str
    progress: dict = field(default_factory=dict)
    epochs: pd.DataFrame = field(default_factory=pd.DataFrame)
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    live: bool = False  # read from this process's in-memory snapshot (else from the store)
    streams: dict = field(default_factory=dict)  # points methods publish while they compute (WiSE-FT curve)
    elsewhere: str = ""  # queued or running in another program (the command line): its process id


def read_summary(run_dir: str) -> dict:
    """A run's summary.json ({} while it has none or it cannot be read). Parsed once per version of
    the file (its inode, size and modification time in ns): pages that list many runs (Try it's
    "Compare with", the claim lines) re-read each run's summary on every rerun. The dict is shared
    between callers, so it is read-only."""
    path = Path(run_dir) / "summary.json"
    try:
        st_ = path.stat()
    except OSError:
        return {}
    return _parsed_summary(str(path), st_.st_ino, st_.st_size, st_.st_mtime_ns)


@functools.lru_cache(maxsize=128)
def _parsed_summary(path: str, inode: int, size: int, mtime_ns: int) -> dict:
    """summary.json at `path` parsed; the other arguments key the cache to this version of it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def load_run(engine: Engine, run_id: str) -> RunView | None:
    """The live snapshot when this process ran it; otherwise the store (runs from before a restart, and
    runs another program trains, such as the command line: their progress as it writes it there; one
    whose program has ended since is marked interrupted first)."""
    rec = state.record(engine, run_id)  # None for another user's run
    if rec is None:
        return None
    snap = engine.snapshot(run_id)
    if snap is None and rec.status in ("queued", "running"):
        if not process_alive(rec.process):
            engine.release_ended()
            rec = state.record(engine, run_id) or rec
        else:
            epochs, steps = charts.store_frames(engine.store.metrics(run_id))
            return RunView(rec.id, rec.name, rec.status, None, rec.config, rec.run_dir,
                           engine.store.progress(run_id), epochs, steps, False, elsewhere=rec.process.split()[1])
    if snap is not None:
        error = snap.error or rec.error
        error = state.message_words(error, state.config_names(rec.config)) if error else error  # the user's names
        return RunView(rec.id, rec.name, snap.status, error, rec.config, rec.run_dir,
                       dict(snap.progress), charts.epochs_frame(snap.epochs), charts.steps_frame(snap.steps), True,
                       snap.extra)
    epochs, steps = charts.store_frames(engine.store.metrics(run_id))
    error = state.message_words(rec.error, state.config_names(rec.config)) if rec.error else rec.error
    return RunView(rec.id, rec.name, rec.status, error, rec.config, rec.run_dir, {}, epochs, steps, False)


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt_number(v: float) -> str:
    """A measured figure for a reader, not a program: 3 significant digits under 100, whole numbers with
    thousands separators up to 100,000, and a very small or large one as "3.2 × 10⁻⁵" rather than
    Python's "3.2e-05" (infinities as "inf" and "-inf")."""
    if not math.isfinite(v):
        return f"{v:g}"
    if 100 <= abs(v) < 1e5:
        return f"{v:,.0f}"
    if v == 0 or 1e-3 <= abs(v) < 100:
        return f"{v:.3g}"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(SUPERSCRIPT)}"


def fmt_pct(v: Any) -> str:
    """A fraction as a percentage with one decimal ("87.5%"); "–" for None or NaN."""
    return f"{v:.1%}" if isinstance(v, (int, float)) and v == v else "–"


def _widest_at(seconds: float) -> float:
    """The duration whose words are the widest of `seconds`'s unit range (59 s, 59 min 59 s, 9 h 59 min), in
    seconds: the Time left tile keeps its width until the estimate crosses a minute or an hour."""
    return 59 if seconds < 59.5 else 3599 if seconds < 3599.5 else 35940


def progress_view(run: RunView) -> None:
    """Status line, progress bar, epoch/step, images/s and ETA."""
    p = run.progress
    if run.status == "queued":
        st.info("Waiting in the queue: this run starts as soon as the run before it ends.", icon=":material/schedule:")
        return
    if run.status == "running":
        phase = p.get("phase", "starting")
        shown = shown_counters(p, run.config.get("train", {}).get("epochs", 0))  # inner work's, or the run's own
        total, step, epoch, epochs = shown.total_steps, shown.step, shown.epoch, shown.epochs
        frac = min(step / total, 1.0) if total else 0.0
        if phase == "final evaluation" and p.get("parts"):  # its own bar: parts of the final evaluation
            frac = min(int(p.get("part_done") or 0) / int(p["parts"]), 1.0)
        texts = {
            "loading data": "Loading and decoding the images…",
            "training": f"Training: epoch {epoch} of {epochs}",
            "evaluating": f"Evaluating after epoch {epoch} of {epochs}…",
            "final evaluation": f"Final evaluation (test set, full corruption suite): {p.get('part') or 'starting'}"
                                + (f" · part {p.get('part_done')} of {p.get('parts')}"  # not "0 of 1" while it prepares
                                   if (p.get("parts") or 0) > 1 else ""),
        }
        st.progress(frac, text=texts.get(phase, phase[:1].upper() + phase[1:] + "…"))  # names keep their case (WiSE-FT)
        row = layout.tiles()
        run_epochs = p.get("epochs") or run.config.get("train", {}).get("epochs", 0)
        if shown.whose is not None and epochs:  # work inside the run (the smaller model's fine-tune, a search trial)
            row.metric(f"Epoch ({shown.whose})", f"{epoch} / {epochs}",
                       width=layout.tile_width(f"Epoch ({shown.whose})", f"{epochs} / {epochs}"),
                       help=f"The epochs of {shown.whose}: work the run does besides its own {plural(int(run_epochs), 'epoch')}.")
        else:  # the run's own (also beside work without epochs: the learning-rate finder's steps)
            row.metric("Epoch", f"{p.get('epoch') or 0} / {run_epochs}",
                       width=layout.tile_width("Epoch", f"{run_epochs} / {run_epochs}"))
        # each tile as wide as the widest value it can show: the row keeps its place as the numbers grow
        row.metric("Step", f"{step} / {total}" if total else "–",
                   width=layout.tile_width("Step", f"{total} / {total}"),
                   help=None if shown.whose is None else f"The steps of {shown.whose}, not the run's own.")
        ips = shown.images_per_sec
        row.metric("Speed", f"{ips:,.0f} img/s" if ips else "–", help="Training images per second in this epoch.",
                   width=layout.tile_width("Speed", "9" * len(f"{max(ips or 0, 999):,.0f}") + " img/s"))
        row.metric("Time left", fmt_duration(p.get("eta_s")) if p.get("eta_s") is not None else "–",
                   help="Estimated time until the run ends: the remaining training steps at the current speed, "
                        "then each epoch's evaluation and the final one, timed on the last evaluation.",
                   width=layout.tile_width("Time left", fmt_duration(_widest_at(p.get("eta_s") or 0))))
        loss = shown.loss
        row.metric("Last step's loss", f"{loss:.3f}" if isinstance(loss, (int, float)) else "–",
                   help="Training loss of the latest step, one batch: it jumps from step to step and sits apart from "
                        "the per-epoch chart's averages; over many steps it should trend down.",
                   width=layout.tile_width("Last step's loss", "00.000"))
        for note in ("cpu_threads_note", "head_lr_note"):  # the threads chosen; the head's rate kept stable
            if p.get(note):
                st.caption(state.message_words(p[note]))
        return
    if run.status == "finished":
        finished_view(run)
    elif run.status == "failed":
        error = run.error or ""
        if was_interrupted(run.status, error):  # its program ended (a restart, a kill): no failure of its own
            st.warning(f"This run was interrupted: {state.message_md(error.removeprefix(INTERRUPTED_PREFIX))}",
                       icon=":material/pause_circle:")
        else:
            st.error(f"This run failed: {state.message_md(error or 'no reason was recorded.')}", icon=":material/error:")
        st.caption(failed_advice(error))
    elif run.status == "stopped":
        st.warning(state.message_md(run.error or "Stopped."), icon=":material/stop_circle:")


def finished_view(run: RunView) -> None:
    """A finished run's line: its final model's validation and test accuracy (and the smaller model's, with
    structured pruning), or the warning that it is at guessing, with what to change."""
    summary = read_summary(run.run_dir)
    chance = at_chance(summary, run.config)
    if chance:
        st.warning(f"Finished, but: {chance[:1].lower()}{chance[1:]}", icon=":material/warning:")
        return
    # the final model's figures, as Results leads with them: the last epoch's can be another model's
    # (a method that rolled the weights back to an earlier epoch)
    val = summary.get("val_acc")
    if val is None and not run.epochs.empty:
        val = run.epochs.iloc[-1].get("val_acc")
    test = summary.get("test_acc")
    ended = ended_early_words(summary)
    small = summary.get("structured") or {}
    smaller = ""
    if small.get("val_acc") is not None:  # the run made two models: say which figures are which
        smaller = (" The smaller, channel-pruned model: " + (f"test {fmt_pct(small['test_acc'])}, "
                                                             if small.get("test_acc") is not None else "")
                   + f"validation {fmt_pct(small['val_acc'])}.")
    # on imbalanced classes, the accuracy to beat, and a balanced accuracy that clears guessing where accuracy does not
    baseline = " ".join(w for w in (largest_class_words(summary), by_class_words(summary)) if w)
    st.success(("Finished. " + (f"{ended} " if ended else "")
                + f"Validation accuracy of the {'full-size ' if smaller else ''}fine-tuned model: {fmt_pct(val)}")
               + (f"; test accuracy (images held out until the end): {fmt_pct(test)}" if test is not None else "")
               + "." + smaller + (f" {baseline}" if baseline else "")
               + " Open **Results** for the confusion matrix, per-class accuracy and downloads.",
               icon=":material/check_circle:")
    smaller = smaller_model_warning(summary)  # the full-size model learnt; the smaller one may not have
    if smaller:
        st.warning(state.message_md(state.message_words(smaller)), icon=":material/warning:")


def failed_advice(error: str) -> str:
    """What to do about a failed run, by its error: an interruption says itself what Continue does; a
    crash (a bug, not a setting) or running out of memory names no setting to fix, unlike a refused setting."""
    if was_interrupted("failed", error):
        return "Nothing was wrong with its settings. The studio keeps working."
    if error.startswith("The run crashed"):
        return ("This is a fault in the studio, not in your settings or data: starting the run again may get past "
                "it, and the details file helps whoever maintains this studio. The studio keeps working.")
    if "out of memory" in error.lower():
        return "Start a new run with a smaller setting, as the message says. The studio keeps working."
    return ("Fix the setting the message names on the **Data** or **Model and methods** page, then start a new "
            "run. The studio keeps working.")


def few_steps_notice(cfg, key: str, text: str | None = None) -> None:
    """The few-optimiser-steps warning for `cfg` on the chosen dataset (or `text`, a warning shown in its
    place), with a button that sets the batch size it suggests; `key` tells the pages' buttons apart."""
    warning = state.few_steps_warning(cfg)
    text = text or warning
    if not text:
        return
    st.warning(text, icon=":material/warning:")
    fix = state.batch_size_fix(cfg) if text == warning else None  # its button goes with its own warning
    if fix is not None:
        batch, lr = fix
        st.button(f"Use batch size {batch}" + (f", learning rate {lr:g}" if lr != cfg.optim.lr else ""),
                  key=f"batch_fix_{key}", icon=":material/build:", on_click=state.use_batch_size, args=fix,
                  help="Sets the batch size and the learning rate on the Model page to the ones suggested above.")


MANY_LAYERS = 24  # more layers than this: the per-layer bars fold away (16 px a row: taller than a screen)


def recorded_probe_epochs(progress: dict, summary: dict) -> int | None:
    """The head-only (linear-probe) epochs the engine recorded running (`probe_epochs`: live `progress`,
    then the `summary`); None for a run from before the record."""
    probe = progress.get("probe_epochs", summary.get("probe_epochs"))
    return probe if isinstance(probe, int) else None


def run_probe_jolt(epochs: pd.DataFrame, progress: dict, summary: dict):
    """(jolt, head-only epochs) when validation accuracy fell in a run's first whole-network epoch after
    its head-only epochs (engine.chance.probe_jolt) in its per-epoch frame `epochs`, else None; None
    too for a run that did not record how many head-only epochs it ran (`probe_epochs`: live
    `progress`, then `summary`)."""
    from engine.chance import probe_jolt
    from engine.claims import split_sizes

    probe = recorded_probe_epochs(progress, summary)
    if "val_acc" not in epochs.columns or probe is None:
        return None
    jolt = probe_jolt(epochs.to_dict("records"), probe, sum(split_sizes(summary, "val")))
    return (jolt, probe) if jolt is not None else None


def probe_jolt_note(run: RunView) -> str | None:
    """Why validation accuracy fell in the first whole-network epoch after the head-only epochs
    (`run_probe_jolt`), in words for the accuracy chart; None when it did not fall so far."""
    from engine.chance import probe_jolt_words
    from engine.config import RunConfig

    found = run_probe_jolt(run.epochs, run.progress, read_summary(run.run_dir))
    if found is None:
        return None
    try:
        cfg = RunConfig.from_dict(run.config or {}, validated=False)
    except Exception:  # a config this version cannot read: no note rather than no charts
        return None
    return probe_jolt_words(*found, cfg.effective_lr, running=run.status in ("queued", "running"),
                            trunk_lr_mult=cfg.optim.trunk_lr_mult)


def loss_spike_note(run: RunView) -> str | None:
    """Why validation loss jumped in one epoch (engine.chance.loss_spike), in words for the loss chart, with the
    learning rate the run's logged steps used in that epoch (the mean over them); None when no epoch jumped."""
    from engine.chance import loss_spike, loss_spike_words
    from engine.claims import split_sizes

    if "val_loss" not in run.epochs.columns:
        return None
    summary = read_summary(run.run_dir)
    probe = recorded_probe_epochs(run.progress, summary) or 0
    spike = loss_spike(run.epochs.to_dict("records"), probe, sum(split_sizes(summary, "val")))
    if spike is None:
        return None
    lr = None
    if {"epoch", "lr"} <= set(run.steps.columns):
        rates = run.steps.loc[run.steps["epoch"] == spike.epoch, "lr"].dropna()
        lr = float(rates.mean()) if not rates.empty else None
    return loss_spike_words(spike, running=run.status in ("queued", "running"), lr=lr)


def probe_gap_note(run: RunView) -> str | None:
    """Why training accuracy lies far above validation in the run's head-only epochs
    (engine.chance.probe_gap_words), for the accuracy chart; None when it does not, or the run did not
    record its head-only epochs."""
    from engine.chance import probe_gap_words
    from engine.claims import split_sizes

    summary = read_summary(run.run_dir)
    probe = recorded_probe_epochs(run.progress, summary)
    if probe is None or "train_acc" not in run.epochs.columns:
        return None
    wise = bool((run.config.get("wise_ft") or {}).get("enabled"))
    return probe_gap_words(run.epochs.to_dict("records"), probe, wise, sum(split_sizes(summary, "train")))


def gate_probe_note(run: RunView) -> str | None:
    """Under AdaFilter's fine-tuned-filters chart of a run with head-only (linear-probe) epochs: that the gates
    stay near their start in those epochs (a teacher read 73% at epoch 1 as filters fine-tuned while only the head
    trained); None without head-only epochs or the gates' share."""
    from engine.words import percent_half_up

    probe = recorded_probe_epochs(run.progress, read_summary(run.run_dir))
    column = "adafilter_gate_mean"
    if not probe or column not in run.epochs.columns:
        return None
    shares = run.epochs[run.epochs["epoch"] <= probe][column].dropna()
    if shares.empty:
        return None
    head = "epoch 1" if probe == 1 else f"epochs 1-{probe}"
    share = percent_half_up(float(shares.iloc[-1]))
    return (f"In {head} only the new head trains: the gates stay near where they start ({share} "
            "of the filters on their fine-tuned copy, which still equals the pretrained one) and almost no gradient "
            "reaches them. They adapt once the whole network trains.")


def curves_view(run: RunView, *, live: bool = False, streams: bool = False, overshoot_said: bool = False) -> None:
    """Per-epoch charts (accuracy, loss, OOD, and whatever the enabled methods log); with `streams`,
    also the points methods publish as they compute (the Train page; Results has full views): the smaller
    model's fine-tune above the run's charts while it runs (they stand still meanwhile), below them after. With
    `overshoot_said` (the page warns above that training was unstable) the loss chart's note on a jump is left
    out: the warning says the steps overshot, as `train` prints the one and not the other."""
    from app.method_views.pruning import fine_tune_live_view

    epochs, steps = run.epochs, run.steps
    if epochs.empty or len(epochs.columns) <= 1:
        if not steps.empty and "loss" in steps:
            vega.altair_chart(charts.step_loss_chart(steps), width="stretch")
        if live or run.status in ("queued", "running"):
            st.caption("The per-epoch charts appear when the first epoch ends.")
        else:
            st.caption("This run recorded no per-epoch metrics.")
        return
    fine_tune = (run.streams.get(FINE_TUNE_STREAM) or []) if streams else []
    if fine_tune and run.status == "running":  # the smaller model's fine-tune: what moves now, first
        fine_tune_live_view(fine_tune)
    left, right = st.columns(2)
    with left:
        vega.altair_chart(charts.accuracy_chart(epochs), width="stretch")
        note = charts.epoch_subset_caption(run.config, run.progress.get("epoch_eval")
                                           or read_summary(run.run_dir).get("epoch_eval"))
        if note and ({"ood_acc", "robust_acc"} & set(epochs.columns)):
            st.caption(note)
        for why in (probe_gap_note(run), probe_jolt_note(run)):  # the head-only epochs, then the first after them
            if why:
                st.caption(why)
    with right:
        vega.altair_chart(charts.loss_chart(epochs), width="stretch")
        if not overshoot_said and (why := loss_spike_note(run)):
            st.caption(why)
    extra = charts.method_metric_names(epochs)
    if extra:
        cols = st.columns(min(len(extra), 2))
        for i, name in enumerate(extra):
            with cols[i % len(cols)]:
                vega.altair_chart(charts.method_metric_chart(epochs, name), width="stretch")
                if name == "adafilter_gate_mean" and (why := gate_probe_note(run)):
                    st.caption(why)
    groups = charts.layer_groups(epochs)
    if groups:
        cols = st.columns(min(len(groups), 2))
        for i, (group, names) in enumerate(groups.items()):
            with cols[i % len(cols)]:
                epoch, values = charts.latest_layer_values(epochs, names)
                title = f"**{charts.group_title(group)} per layer (epoch {epoch})**"
                finite = [v for v in values if v == v]
                lo, hi = (charts.layer_value_text(group, f(finite)) for f in (min, max)) if finite else ("", "")
                # within a point (a share) or 0.1% (anything else): a chart of equal bars says one number
                alike = len(names) > 1 and len(finite) == len(values) and max(finite) - min(finite) <= (
                    0.01 if charts.is_fraction_metric(group) else 1e-3 * max(abs(v) for v in finite))
                if any(v != 0 for v in finite) and alike:
                    st.markdown(title)
                    st.caption(f"{lo if lo == hi else f'{lo} to {hi}'} in every one of the {len(names)} layers.")
                elif any(v != 0 for v in finite) and len(names) > MANY_LAYERS:  # a tall chart: on request
                    st.markdown(title)
                    st.caption(f"From {lo} to {hi} across {len(names)} layers.")
                    with st.expander(f"Each of the {len(names)} layers", icon=":material/bar_chart:"):
                        vega.altair_chart(charts.layer_bar_chart(epochs, group, names), width="stretch")
                elif any(v != 0 for v in finite):
                    vega.altair_chart(charts.layer_bar_chart(epochs, group, names), width="stretch")
                else:  # an empty chart with one "0" tick looks broken
                    st.markdown(f"**{charts.group_title(group)} per layer (epoch {epoch})**")
                    st.caption("0 in every layer so far: nothing has reached them yet (in the first, head-only "
                               "epochs only the new last layer trains).")
    wise_points = (run.streams.get("wise_ft") or []) if streams else []
    if wise_points:
        wise_live_view(run, wise_points)
    if fine_tune and run.status != "running":  # while it runs, it is drawn above the run's charts (which stand still)
        fine_tune_live_view(fine_tune)
    if not steps.empty and "loss" in steps:
        with st.expander("Loss at every step", expanded=False):
            vega.altair_chart(charts.step_loss_chart(steps), width="stretch")


# ---- the sidebar ----------------------------------------------------------------------------

def threads_changes_text(changes: list[dict] | None) -> str:
    """The sentence on a run's `cpu_threads_changes` ("Threads followed the load on the CPUs: 2 threads
    from 2 s into epoch 1, 1 thread after epoch 3."), then that another count rounds differently, with a
    leading space; "" when there were none."""
    if not changes:
        return ""
    from engine import devices

    return " Threads followed the load on the CPUs: " + ", ".join(
        state.plural(c["threads"], "thread")
        + (f" from {devices.EARLY_THREADS_CHECK_S:g} s into epoch {c['after_epoch'] + 1}" if c.get("early")
           else f" after epoch {c['after_epoch']}") for c in changes) + (
        ". Another thread count rounds sums in another order: the same settings and seed can end a few points apart.")


def _device_text() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "Apple GPU (MPS)"
    from engine.devices import default_cpu_threads

    return f"CPU, up to {state.plural(default_cpu_threads(), 'thread')}"


def sidebar(engine: Engine, live_page: bool = False) -> None:
    """The studio's sidebar: the device, the engine's state (the running run's progress, the queue), the runs
    stored and the next run in words. With `live_page` (the Train page, which shows the running run's progress
    itself) the run is named without a progress bar of its own: two redraw timers out of step showed "epoch
    13/20" beside the page's "epoch 16 of 20"."""
    st.markdown("### :material/tune: Fine-tuning studio")
    st.caption(f"Trains on: {_device_text()}")
    active_now = bool(engine.active_runs())

    @st.fragment(run_every=live_refresh_s() if active_now else None)  # text only: as often as the charts
    def engine_status() -> None:
        active = engine.active_runs()
        if active_now and not active:
            st.rerun()  # the last run just ended: redraw the page at once, which also stops this timer
        current = engine.current_run
        mine = set(engine.active_runs_of(state.user()))
        if current and current not in mine:
            st.markdown("**Training:** another user's run")
        elif current:
            snap = engine.snapshot(current)
            if snap is not None and live_page:
                st.markdown(f"**Training:** {state.md_text(snap.name)}")
                st.caption("Follow it under **Run shown** on this page.")
            elif snap is not None:
                p = snap.progress
                c = shown_counters(p)  # the smaller model's fine-tune: its own epoch and step, not the run's
                st.markdown(f"**Training:** {state.md_text(snap.name)}")
                st.progress(min(c.step / c.total_steps, 1.0) if c.total_steps else 0.0,
                            text=(f"epoch {c.epoch}/{c.epochs or '?'} · " if c.whose is None else "")
                            + p.get("phase", "starting"))
        waiting = [r for r in active if r != current]
        if waiting:
            st.markdown(f"**Queue:** {len(waiting)} run{'s' if len(waiting) > 1 else ''} waiting")
            for run_id in waiting:
                rec = engine.run_record(run_id) if run_id in mine else None
                st.caption(f":material/schedule: {state.md_text(rec.name) if rec else 'another user' + chr(39) + 's run'}")
        elsewhere = engine.runs_elsewhere(state.user())  # the command line's, say: the same CPU
        for rec in elsewhere:
            st.markdown(f"**Training elsewhere:** {state.md_text(rec.name)}")
            st.caption("In another program (such as the command line); a run started here would share the CPU with it.")
        if not active:
            st.caption("Engine idle: ready for a run." if not elsewhere else "This server's engine is idle.")

    engine_status()
    runs = state.runs(engine)
    done = sum(r.status == "finished" for r in runs)
    st.caption(f"{state.plural(len(runs), 'run')} stored, {done} finished.")
    ds = state.dataset()
    cfg = state.config()
    from engine.methods import METHODS
    from engine.optim import setup_extras

    methods = ", ".join(METHODS[m].title for m in cfg.enabled_methods() if m in METHODS) or "plain fine-tuning"
    start = {"checkpoint": f" ({state.weights_words(cfg)})", "none": " (from scratch)"}.get(cfg.backbone.pretrained, "")
    head = state.head_only_words(cfg)
    head = f" ({head})" if head else ""
    epochs = state.plural(cfg.train.epochs, "epoch")  # the head-only words belong to these, before what follows
    st.caption(f"Next run: **{state.backbone_title(cfg.backbone.name)}**{start} on {ds.words}, "
               f"{epochs}{head}{extra_epochs_words(cfg.to_dict())}, {methods}{setup_extras(cfg)}.")


def smaller_headings(md: str, levels: int = 2) -> str:
    """Markdown `md` with each ATX heading (`# Title` .. `###### Title`) `levels` deeper, at most level 6,
    for a document shown inside a page (a model card's `# Model card` would be the page's largest text);
    lines inside ``` or ~~~ fences are left as they are. CommonMark's heading rule: up to 3 spaces, 1-6
    `#`, then a space or the line's end."""
    out, fence = [], ""
    for line in md.split("\n"):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if indent <= 3 and stripped[:3] in ("```", "~~~"):
            marker = stripped[:3]
            fence = "" if fence == marker else (fence or marker)
        elif not fence and indent <= 3 and (m := re.match(r"(#{1,6})(?=\s|$)", stripped)):
            line = " " * indent + "#" * min(6, len(m.group(1)) + levels) + stripped[len(m.group(1)):]
        out.append(line)
    return "\n".join(out)


def short_time(ts: float | None) -> str:
    """A time (seconds since the epoch) as local "05 Dec 19:20"; "–" for None."""
    return time.strftime("%d %b %H:%M", time.localtime(ts)) if ts else "–"


def wise_live_view(run: RunView, points: list[dict]) -> None:
    """WiSE-FT's curve as its points arrive (ends first, then ever finer)."""
    from app.method_views.wise_ft import curve_chart, curve_frame, subset_note
    from engine.methods.wise_ft import curve_alphas

    alphas = (run.config.get("wise_ft") or {}).get("alphas")
    total = len(curve_alphas(alphas)) if alphas else len(points)  # as the run computes them: each once, both ends
    done = len({p.get("alpha") for p in points})  # a continued run streams its points again: each alpha once
    title = (f"WiSE-FT curve: {done} of {total} mixing weights evaluated" if done < total
             else f"WiSE-FT curve: all {total} mixing weights evaluated")
    st.markdown(f"**{title}**")
    ordered = sorted(points, key=lambda p: p["alpha"])
    vega.altair_chart(curve_chart(curve_frame(ordered), None, title=None), width="stretch")  # the heading says it
    from engine.claims import split_sizes

    note = subset_note(run.config, sum(split_sizes(read_summary(str(run.run_dir)), "val")) or None)
    if note:  # (while the run trains its split is not known here: "up to" the subset)
        st.caption(note)
    if done == total and run.status == "finished":
        st.caption("Slide alpha and export a mixed model on the Results page.")


def stopped_note(run_dir: Path, summary: dict, config: dict, what: str = "answers") -> str:
    """What a stopped run's model is on Try it and Explain: its best epoch so far with its validation accuracy, of
    the epochs it finished and those it trains (engine.resume.epochs_done_of; `config`, the run's config as a
    dict), and how to get its final model. `what` the best epoch does there ("answers", "is explained")."""
    from engine.predict import best_epoch, epoch_entry
    from engine.resume import epochs_done_of

    done, planned = epochs_done_of(run_dir, summary, int((config.get("train") or {}).get("epochs") or 0))
    history = summary.get("history") or []
    best = best_epoch(history)
    val = epoch_entry(history, best[0] if best else None).get("val_acc")
    which = (f"epoch {best[0]}, its best so far" + (f" (validation {100 * val:.1f}%)" if val is not None else "")
             if best else "its best epoch so far")
    return (f"This run was stopped after {state.plural(int(done), 'epoch')}" + (f" of {planned}" if planned else "")
            + f", so {which} {what}. Continue it on the Train page for its final model.")


def finished_run_picker(engine: Engine, key: str, help_: str, on_none, stopped: bool = False) -> Any:
    """The finished run a page works on (its record), chosen in a select box that opens on the run
    the user last looked at (Results, Explain) or started; `on_none(all_runs)` draws the page's
    message when there is no finished run (then None is returned). The choice becomes the focus. With
    `stopped`, stopped runs that kept a best epoch (engine.runs.stopped_with_best) are offered too, labelled so."""
    from engine.runs import stopped_with_best

    all_runs = state.runs(engine)
    runs = [r for r in all_runs if r.status == "finished" or stopped and r.status == "stopped" and r.run_dir
            and stopped_with_best(Path(r.run_dir))]
    if not runs:
        on_none(all_runs)
        return None
    ids = [r.id for r in runs]
    labels = state.run_labels(runs, with_status=False, among=all_runs)
    for r in runs:
        if r.status == "stopped":
            labels[r.id] = f"{labels.get(r.id, r.name)} (stopped: its best epoch so far)"
    if st.session_state.get(key) not in ids:
        focus = (st.session_state.get(state.FOCUS_KEY), st.session_state.get(state.WATCH_KEY))
        st.session_state[key] = next((c for c in focus if c in ids), ids[0])
    run_id = st.selectbox("Run" if stopped else "Finished run", ids, key=key, format_func=lambda i: labels.get(i, i),
                          help=help_)
    state.set_focus(run_id)
    rec = state.record(engine, run_id)
    if rec is None:
        st.info("This run no longer exists.")
    return rec


def started_note(engine, twin) -> None:
    """What became of the run just started with the settings shown (`twin`, its record): training, or
    waiting in the queue, redrawn with the live charts while it waits, so it never says "waits in the
    queue" of a run that has started since."""
    @st.fragment(run_every=live_refresh_s() if twin.status == "queued" else None)
    def note() -> None:
        rec = engine.run_record(twin.id)
        if rec is None or rec.status not in ("queued", "running"):  # ended (or deleted) since: the run list says
            return
        doing = "waits in the queue" if rec.status == "queued" else "is training"
        follow = st.session_state.get(state.FOLLOW_KEY) or {}
        later = (" The charts below show the run it waits for, and move to it when it starts."
                 if rec.status == "queued" and follow.get("to") == rec.id
                 and follow.get("from") == st.session_state.get(state.WATCH_KEY) else "")  # not after a hand pick
        st.info(f"**{state.md_text(rec.name)}** {doing} with these settings.{later} Pressing the button again would "
                "train a second copy: change a setting first (another seed, say) for a second run worth comparing.",
                icon=":material/check:")

    note()


def imbalance_words(imbalance: dict, class_balance: str) -> str:
    """The Data page's warning on imbalanced classes (`imbalance`: engine.data.class_imbalance's dict), in markdown,
    ending with what to set, or, once *Imbalanced classes* is set (`class_balance`, data.class_balance), what the
    next run does about it: a student who had set it was still told to set it."""
    from engine.words import balance_words

    largest, smallest = state.md_text(imbalance["largest"]), state.md_text(imbalance["smallest"])
    head = (f"The classes are imbalanced: '{largest}' has {imbalance['ratio']}x the images of '{smallest}'. Accuracy "
            "alone flatters a model that favours the large class: the results show balanced accuracy and macro-F1 "
            "beside it.")
    done = balance_words(class_balance)
    if done:
        return f"{head} The next run compensates: {done} (*Imbalanced classes* in the split settings)."
    return f"{head} To compensate, set *Imbalanced classes* in the split settings."
