"""Page 3, Train (live): start and stop runs, watch the running one (progress, speed, ETA and
per-epoch charts, refreshed by a fragment that polls the engine's snapshot), see the queue.

The job runs in the engine's thread, not in this page: closing the tab does not stop it, and
a refresh or a second tab shows the same run."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import components, layout, state
from engine.errors import StudioError
from engine.jobs import was_interrupted
from engine.methods import METHODS
from engine.optim import frozen_words, setup_parts
from engine.resume import RESUME_FILE

SELECT_KEY = state.WATCH_SELECT_KEY
GPU_KEY = "gpus"
FOLLOW_TO_KEY = "follow_to"  # the queued run that started: the run picker takes it before it is drawn
RECENT_RUNS = 30


def _start() -> None:
    """Start-button callback: check the data, submit; the outcome is shown by the page."""
    engine = state.get_engine()
    gpus = tuple(st.session_state.get(GPU_KEY) or ())
    try:
        run_id = state.start_run(engine, gpus)  # one GPU: that GPU; several: torchrun
    except Exception as exc:  # StudioError: data or settings the engine refuses, with its message
        st.session_state["start_error"] = exc
        return
    st.session_state["start_ok"] = run_id
    st.session_state[SELECT_KEY] = st.session_state[state.WATCH_KEY]  # the new run, or the one it waits behind


def follow_queued_run(engine, shown: str, status: str) -> None:
    """Move the live view to the run this tab queued behind `shown` once `shown` has ended and the queued
    run trains (st.session_state[state.FOLLOW_KEY]); a run picked by hand since is left on screen."""
    follow = st.session_state.get(state.FOLLOW_KEY) or {}
    if follow.get("from") != shown or status in ("queued", "running"):
        return
    rec = engine.run_record(follow["to"])
    if rec is None or rec.status not in ("queued", "running"):  # cancelled or ended: nothing to follow
        st.session_state.pop(state.FOLLOW_KEY, None)
    elif rec.status == "running":
        st.session_state.pop(state.FOLLOW_KEY, None)
        st.session_state[FOLLOW_TO_KEY] = rec.id  # taken by the picker before it is drawn (the next full run)
        st.rerun(scope="app")


def lr_words(cfg) -> str:
    """The learning rate of the next run as the Model page sets it, with the effective rate (lr / (1 -
    momentum), Li et al. 2020) beside it in plain words where momentum makes them differ: the effective rate alone
    read as ten times the rate the Data page had just given."""
    if cfg.optim.lr_auto:
        return "learning rate found at the start"
    if abs(cfg.effective_lr - cfg.optim.lr) < 1e-12:
        return f"learning rate {cfg.optim.lr:.3g}"
    # plain words first, the field's term after them: "effective 0.04" alone was jargon to a new user
    return (f"learning rate {cfg.optim.lr:.3g} (momentum {cfg.optim.momentum:g} builds its steps up to "
            f"{cfg.effective_lr:.3g}, the effective learning rate)")


def next_run_glossary(cfg) -> list[str]:
    """The Next run line's terms in plain words, one markdown bullet each, for those the line uses: a new user
    read "batch 4 · seed 0 · learning rate ... momentum ... first 2 blocks frozen" as jargon."""
    b, epochs, scratch = cfg.train.batch_size, int(cfg.train.epochs), cfg.backbone.pretrained == "none"
    start = {"bundled": "the weights that ship with the studio (learnt offline from generated patterns)",
             "imagenet": "weights learnt from ImageNet's 1.2 million photos (downloaded once)"}.get(
        cfg.backbone.pretrained, state.weights_words(cfg))
    net = (f"**{state.backbone_title(cfg.backbone.name)}**: the network trained; it starts from random weights, so "
           "it learns from your images alone, which needs many more of them." if scratch else
           f"**{state.backbone_title(cfg.backbone.name)}**: the network fine-tuned; it starts from {start}, what it "
           "learnt before, so it needs far fewer of your images than learning from nothing.")
    rate = "**learning rate**: how big each update is; too high and training jumps about, too low and it barely moves."
    if cfg.optim.lr_auto:
        rate += " This run finds one itself in a short test at its start."
    elif abs(cfg.effective_lr - cfg.optim.lr) >= 1e-12:  # as lr_words: the line names the effective rate
        rate += (" Momentum carries part of each update into the next, so the steps grow to the effective learning "
                 "rate.")
    out = [net, f"**{state.plural(epochs, 'epoch')}**: the model sees every training image "
                f"{'once' if epochs == 1 else f'{epochs} times'}.",
           f"**{cfg.data.image_size} px**: each image is shrunk to {cfg.data.image_size} x {cfg.data.image_size} "
           "pixels first (larger is slower, and can see finer detail).",
           f"**batch {b}**: the model is updated after every {b} images (one optimiser step).",
           f"**seed {cfg.seed}**: fixes the luck (the split, the order of the images, the new head's start); "
           "another seed gives a second run to compare.", rate]
    if min(int(cfg.optim.linear_probe_epochs), epochs) > 0:
        out.append("**head kept**: the checkpoint's own last layer, already trained on these classes, so no epochs "
                   "train it alone." if state.kept_head(cfg) else
                   "**new head**: the last layer, made for your classes; " + (
                       "here it is trained alone first, though no layer is pretrained." if scratch else
                       "training it alone first keeps the pretrained layers from being disturbed by its random start."))
    if frozen_words(cfg.optim, cfg.backbone.pretrained):
        out.append("**blocks frozen**: the first layers are kept as they are; here they keep their random weights, so "
                   "only the later layers learn." if scratch else
                   "**blocks frozen**: the first layers, which see edges and textures, are kept as they are; "
                   "training is faster and needs fewer images.")
    if cfg.data.fit == "pad":  # the line's "whole pictures" (engine.words.fit_words)
        out.append("**whole pictures**: each picture is shrunk whole to fit the square, grey bars filling the rest, "
                   "instead of keeping its middle square (the Data page's *Wide and tall pictures*).")
    elif cfg.data.fit == "stretch":  # the line's "stretched pictures"
        out.append("**stretched pictures**: each whole picture is squeezed into the square, its longer side more than "
                   "its shorter one, instead of keeping its middle square (the Data page's *Wide and tall pictures*).")
    return [f"- {line}" for line in out]


def gpu_names() -> list[str]:
    """The CUDA devices' names, in index order ([] without a GPU)."""
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def gpu_selector(cfg) -> None:
    """Only on machines with several GPUs, for runs whose device may be a GPU: train on more than one
    with DistributedDataParallel."""
    names = gpu_names()
    if len(names) < 2 or cfg.train.device not in ("auto", "cuda"):
        return
    st.multiselect("GPUs", list(range(len(names))), default=[0], key=GPU_KEY,
                   format_func=lambda i: f"GPU {i}: {names[i]}",
                   help="One: the run trains on that GPU. Two or more: the run is launched with torchrun, one "
                        "process per GPU (DistributedDataParallel); the global batch size stays the same.")


def next_methods_words(cfg) -> str:
    """The end of the next run's line: its methods ("no extra method"), then flip TTA, the head-only epochs, the
    frozen blocks, how imbalanced classes are treated and whole pictures (engine.optim.setup_parts), where they
    apply, each after " · "."""
    methods = ", ".join(METHODS[m].title for m in cfg.enabled_methods() if m in METHODS) or "no extra method"
    extras = ["flip TTA" if cfg.eval.tta_flip else "", state.head_only_words(cfg),
              *setup_parts(cfg)]
    return " · ".join([methods, *(e for e in extras if e)])


def start_section(engine, visible: list) -> None:
    """The next run in words, its warnings, and Start (with the note beside it); `visible`: state.runs."""
    cfg, ds = state.config(), state.dataset()
    methods = next_methods_words(cfg)
    with st.container(border=True):
        named = f"*{state.md_text(cfg.name)}*: " if cfg.name else ""  # the name typed on the Model page, if any
        st.markdown(f"**Next run:** {named}{state.backbone_title(cfg.backbone.name)} ({state.weights_words(cfg)}) on "
                    f"{ds.words} · {state.epochs_words(cfg.to_dict())} · {cfg.data.image_size} px · "
                    f"batch {cfg.train.batch_size} · seed {cfg.seed} · "
                    f"{lr_words(cfg)} · {methods}")
        with st.expander("What these words mean", icon=":material/help:"):
            st.markdown("\n".join(next_run_glossary(cfg)))
        problems = state.config_problems(cfg)
        if problems:
            st.warning(problems, icon=":material/warning:")
            st.page_link("app_pages/model.py", label="Fix the settings", icon=":material/tune:")
        else:
            components.few_steps_notice(cfg, "train")
        gpu_selector(cfg)
        busy = bool(engine.active_runs())
        twin = state.same_settings_active(engine, cfg) if busy else None
        done = None if twin else state.same_settings_finished(cfg, visible)
        paused = None if twin or done else state.same_settings_stopped(cfg, visible)  # Continue beats a restart
        seed = st.session_state.pop(state.SEED_CHANGED_KEY, None)
        if seed is not None:  # "Use seed N instead" was pressed: the note beside Start went with the old seed
            st.toast(f"Seed {seed}: the next run trains a second model worth comparing with the first (its "
                     "randomness and, unless your dataset comes split, its split differ).", icon=":material/casino:")
        # the button as wide as its words (a fixed first column cut "Start trai..." on a 1000 px window), the
        # note beside it in the rest of the line
        row = layout.button_row()
        # after a stop with these settings Continue is the primary button: Start would train from epoch 1 again
        row.button("Add to the queue" if busy else "Start training", type="secondary" if twin or paused else "primary",
                   icon=":material/play_arrow:", on_click=_start, key="start", disabled=problems is not None)
        beside = row.container(width="stretch")
        if twin and twin.id == st.session_state.get(state.STARTED_KEY):  # the run just started (or queued) here
            with beside:
                components.started_note(engine, twin)
        elif twin:
            beside.warning(f"**{state.md_text(twin.name)}** is already running or queued with exactly these settings: "
                           "adding them again trains a second copy. Change a setting first (another seed, say) "
                           "for a second run worth comparing.", icon=":material/content_copy:")
        elif done:
            test = components.read_summary(done.run_dir).get("test_acc")
            beside.caption(("A run already in progress: the new one waits in the queue. " if busy else "")
                           + f"**{state.md_text(done.name)}** finished with exactly these settings"
                           + (f" ({components.fmt_pct(test)} on test)" if test is not None else "")
                           + ": the same settings and seed train about the same model again. Another seed gives a "
                           "second run worth comparing.")
        elif paused:
            beside.caption(f"**{state.md_text(paused.name)}** was stopped with exactly these settings: Continue picks "
                           "it up where it stopped; Start trains these settings again from the first epoch.")
            continue_button(engine, paused.id, beside, key="start_continue", primary=True)
        elif not busy and (elsewhere := engine.runs_elsewhere(state.user())):
            beside.caption(f"**{state.md_text(elsewhere[0].name)}** is training in another program (such as the command "
                           "line): a run started here trains beside it, and both go slower on this computer's CPU.")
        else:
            beside.caption("A run already in progress: the new one waits in the queue and starts after it."
                           if busy else "Training runs on the server: you can close this tab and come back later.")
        if twin or done:
            beside.button(f"Use seed {state.another_seed(cfg.seed)} instead", key="another_seed",
                          icon=":material/casino:", on_click=state.use_another_seed,
                          help="The seed sets the training's randomness and, unless your dataset comes with its own "
                               "split folders, the split (Data page, 'Split and sampling settings'); another one gives "
                               "a second run worth comparing.")
    error = st.session_state.pop("start_error", None)
    if error is not None:
        state.show_error(error, "starting the run")
        st.caption("Nothing was started. Change the setting the message names (Data or Model and methods page), "
                   "then press Start again.")
    started = st.session_state.pop("start_ok", None)
    if started:
        st.toast("Run started." if engine.current_run == started else "Run queued.", icon=":material/play_arrow:")


def queue_view(engine, watched: str | None) -> None:
    """The queue: the user's runs waiting behind the one training, by their names, each with a button to take it off
    the queue."""
    active = engine.active_runs()
    current = engine.current_run
    waiting = [r for r in active if r != current]
    if not waiting:
        return
    st.markdown(f"**Queue:** {len(waiting)} waiting")
    mine = set(engine.active_runs_of(state.user()))
    records = {r: engine.run_record(r) for r in waiting if r in mine}
    # named as the run pickers name runs: what tells two runs of one name apart (a seed, say), never the run id
    labels = state.run_labels([r for r in records.values() if r is not None], with_status=False)
    for run_id in waiting:
        rec = records.get(run_id)
        if rec is None:
            st.caption(":material/schedule: another user's run")
            continue
        row = layout.button_row()
        row.container(width="stretch").markdown(f":material/schedule: {state.md_text(labels[rec.id])}")
        row.button("Cancel", key=f"cancel_{run_id}", on_click=engine.stop, args=(run_id, state.user()))


def recent_table(visible: list) -> None:
    """The ten latest of `visible` (state.runs, read once per redraw) in a table under an expander, the id
    column as wide as the longest id (the command line's `--run` takes it; a new user saw it cut, "d76d5…")."""
    import pandas as pd

    from app.app_pages.results import text_width

    runs = visible[:10]
    if not runs:
        return
    rows = [{"run": r.name, "status": r.status,
             # as the run pickers and Results write it: a continued run keeps its first start
             "started": components.short_time(r.created or r.started), "id": r.id,
             "message": state.message_words(r.error, state.config_names(r.config)).splitlines()[0]
             if r.error else ""} for r in runs]
    id_px = text_width(pd.Series([r["id"] for r in rows]), 120, 260)  # as the Compare table sizes its columns
    with st.expander("Recent runs", icon=":material/history:", expanded=False):
        st.dataframe(rows, hide_index=True, width="stretch", column_config={
            "status": st.column_config.TextColumn("status", width=80),
            "started": st.column_config.TextColumn("started", width=108),
            "id": st.column_config.TextColumn("id", width=id_px)})


def continue_button(engine, run_id: str, container, key: str | None = None, primary: bool = False) -> None:
    """Continue a stopped or interrupted run from the end of its last finished epoch (the button's widget `key`:
    by default one per run; `primary`: the page's main button)."""
    if container.button("Continue", key=key or f"continue_{run_id}", icon=":material/play_arrow:",
                        type="primary" if primary else "secondary",
                        help="Continue from the end of its last finished epoch, with the same settings, "
                             "optimiser state and learning-rate schedule."):
        try:
            engine.resume(run_id, state.user())
        except StudioError as exc:
            st.error(state.message_words(str(exc)), icon=":material/error:")
        else:
            st.rerun()  # the whole page: the live view's timer starts again


def elsewhere_running(engine, run_id: str) -> bool:
    """Whether `run_id` is queued or running in another, live program (a command-line run beside the dashboard)."""
    return any(r.id == run_id for r in engine.runs_elsewhere(state.user()))


def live_section(engine, visible: list) -> None:
    """The run picker over `visible` (state.runs, read once per redraw) and the picked run's live view."""
    runs = visible[:RECENT_RUNS]
    if not runs:
        st.info("No run yet. Press **Start training** above (the line above it says what the run will do): its "
                "progress, the time left and its live curves then show here.", icon=":material/info:")
        return
    active = set(engine.active_runs())  # once: the live page redraws often
    for extra in [r for r in visible[RECENT_RUNS:] if r.id in active]:
        runs.insert(0, extra)  # an active run is always offered, however many runs came after it
    ids = [r.id for r in runs]
    labels = state.run_labels(runs, with_status=False, among=visible)  # the status shows below, live
    follow_to = st.session_state.pop(FOLLOW_TO_KEY, None)
    if follow_to in ids:
        st.session_state[SELECT_KEY] = follow_to
    if st.session_state.get(SELECT_KEY) not in ids:
        st.session_state[SELECT_KEY] = state.watched_run(engine) if state.watched_run(engine) in ids else ids[0]
    run_id = st.selectbox("Run shown", ids, key=SELECT_KEY, format_func=lambda i: labels.get(i, i),
                          help="The running run is shown by default; pick any earlier one to see its curves.")
    st.session_state[state.WATCH_KEY] = run_id
    # a run another program trains (the command line) redraws too: its progress comes through the store
    active_now = bool(engine.active_runs()) or elsewhere_running(engine, run_id)

    refresh_s = components.live_refresh_s()

    @st.fragment(run_every=refresh_s if active_now else None)
    def live(run_id: str) -> None:
        if active_now and not engine.active_runs() and not elsewhere_running(engine, run_id):
            st.rerun()  # everything ended: redraw the whole page at once, without the timer (drawn here first, the
            # run read "Finished" for seconds beside the start line's "is training" and a Stop button)
        run = components.load_run(engine, run_id)
        if run is None:
            st.info("This run was deleted.")
            return
        follow_queued_run(engine, run_id, run.status)
        # the name in the rest of the line, the button as wide as its words (a sixth of a narrow page cut them)
        row = layout.button_row()
        icon = ":material/pause_circle:" if was_interrupted(run.status, run.error) else \
            state.STATUS_ICONS.get(run.status, "")  # an interruption: as its banner says
        title = f"#### {icon} {state.md_text(run.name)}"
        row.container(width="stretch").markdown(title)
        if run.status == "running" and engine.stopping(run_id):  # said at once: the run ends a moment later
            row.button("Stopping…", key=f"stop_{run_id}", icon=":material/hourglass_top:", disabled=True,
                       help="The run ends after the current step or evaluation batch and keeps its finished "
                            "epochs; Continue then picks up after the last of them.")
        elif run.elsewhere:  # the command line, say: this server cannot stop it
            row.container(width="content").caption(
                f":material/terminal: Trained by another program (process {run.elsewhere}, such as the command "
                "line): stop it there (Ctrl+C).")
        elif run.status in ("queued", "running"):
            row.button("Stop", key=f"stop_{run_id}", icon=":material/stop:", on_click=engine.stop,
                       args=(run_id, state.user()),
                       help="Stops after the current step; the run is kept as stopped.")
        elif run.status in ("stopped", "failed") and (Path(run.run_dir) / RESUME_FILE).is_file():
            continue_button(engine, run_id, row)
        components.progress_view(run)
        components.curves_view(run, live=run.status in ("queued", "running"), streams=True)
        if run.status in ("queued", "running") and components.refresh_override() is not None:
            st.caption(f":material/timer: The charts redraw every {refresh_s:g} s, as this server is set up.")
        elif run.status in ("queued", "running") and refresh_s > components.LIVE_REFRESH_S:
            st.caption(f":material/timer: The charts redraw every {refresh_s:g} s: this computer trains on "
                       f"{components.cpu_count()} CPU cores, which the dashboard (and a browser on this computer, "
                       "drawing them) shares, so a faster redraw would slow the training.")
        queue_view(engine, run_id)
        if run.status == "finished":
            st.page_link("app_pages/results.py", label="See the results", icon=":material/leaderboard:")

    live(run_id)


def render() -> None:
    """Draw the Train page (3): Start (and Continue), the live view of the run watched, and the recent runs; while a
    run trains, its live view comes first (on a 1024 x 768 projector it began below the fold, under the next run's
    box, and a 15 s run ended before anyone scrolled)."""
    engine = state.get_engine()
    st.title("3 · Train (live)")
    visible = state.runs(engine)  # once a redraw; Start's callback ran before it, so a run it queued is listed
    if engine.active_runs():
        live_section(engine, visible)
        start_section(engine, visible)
    else:
        start_section(engine, visible)
        live_section(engine, visible)
    recent_table(visible)


if __name__ == "__main__":  # run as a page (st.Page executes it as __main__); importable for tests
    render()
