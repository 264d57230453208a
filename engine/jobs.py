"""One run from start to finish around the training loop: folder, status, summary, errors.

Shared by the CLI (foreground) and the engine thread (background), so both leave the same
records: `config.yaml`, checkpoints and `summary.json` in the run folder, status and metrics
in the store. A failure of any kind marks the run failed with a readable message and never
propagates: the caller goes on serving the next job.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import StudioError
from engine.checkpoints import write_json
from engine.store import RunStore
from engine.contract import Reporter, StopRequested
from engine.distributed import world
from engine.lr_find import lr_into_config
from engine.pruning_search import search_into_config
from engine.resume import RESUME_FILE, planned_epochs
from engine.train import train
from engine.words import and_words, plural


STOPPED_BY_USER = "on request"
STOPPED_BY_SERVER = "when the server stopped"  # the engine shut down (dashboard stopped) while the run trained


def stopped_message(done: int | None, planned: int, can_continue: bool = False, why: str = STOPPED_BY_USER,
                    during: str = "", end_work: list[str] | tuple[str, ...] = ()) -> str:
    """What a stopped run tells its user: why (`why`: STOPPED_BY_USER or STOPPED_BY_SERVER), the
    epochs it finished and where Continue picks up. `can_continue`: a resume point exists although this
    part finished no epoch (a continued run stopped again before its next epoch ended). `during`: after
    the epochs, the work it stopped in ("the smaller model's fine-tune"; engine.train's `stopped_in`);
    `end_work`: all the run's work after its epochs that Continue does again (engine.train's `end_work`)."""
    if done and done >= planned:  # its epochs were over: stopped in the work after them
        redo = and_words([*end_work, "the final evaluation"]) if end_work else (
            "the final evaluation" if during == "the final evaluation" else
            f"{during or 'that work'} and the final evaluation")
        return (f"Stopped {why} after its {plural(planned, 'epoch')}, in {during or 'the work that follows them'}. "
                f"Continue does {redo} again; until then the results are those of epoch {done}.")
    if done:
        return (f"Stopped {why} after epoch {done} of {planned}. Continue picks up at epoch {done + 1} with "
                f"the same schedule; until then the results are those of epoch {done}.")
    if can_continue:
        return f"Stopped {why} before the next epoch ended. Continue picks up after the last finished epoch."
    return (f"Stopped {why} before the first epoch ended: there is nothing to continue from, so start "
            "the run again.")


INTERRUPTED_PREFIX = "Interrupted: "  # engine.store.INTERRUPTED and interrupted_message start so


def was_interrupted(status: str, error: str | None) -> bool:
    """Whether a run's record (`status`, `error`) is an interruption (its program ended: RunStore.mark_interrupted),
    not a failure of its own."""
    return status == "failed" and (error or "").startswith(INTERRUPTED_PREFIX)


def interrupted_message(store: RunStore, rec) -> str:
    """The error of a run (`rec`, an engine.store.RunRecord) whose program ended while it was queued or
    running (RunStore.mark_interrupted): what happened, the epochs it finished, and whether Continue
    picks up from there (a resume point exists) or the run must start again."""
    what = "ended (a restart, a crash or a kill)"
    if rec.status == "queued":
        return f"Interrupted: the program it was queued in {what} before it started. Start it again."
    done = store.epochs_logged(rec.id)
    planned = planned_epochs(rec.run_dir, int(((rec.config or {}).get("train") or {}).get("epochs") or 0))
    if (Path(rec.run_dir) / RESUME_FILE).is_file() and planned and done >= planned:  # in the work after them
        return (f"Interrupted: the program training it {what} after its {plural(planned, 'epoch')}, in the work "
                "that follows them. Continue does that work and the final evaluation again.")
    if (Path(rec.run_dir) / RESUME_FILE).is_file():
        return (f"Interrupted: the program training it {what} "
                + (f"after epoch {done}. Continue picks up at epoch {done + 1}" if done else
                   "before its next epoch ended. Continue picks up after the last finished epoch")
                + " with the same schedule.")
    return f"Interrupted: the program training it {what} before the first epoch ended. Start it again."


def execute_run(store: RunStore, run_id: str, cfg: RunConfig, run_dir: Path, datasets_dir: Path,
                reporter: Reporter, limits=None, resume: bool = False, data=None, start=None) -> dict[str, Any]:
    """Run `cfg` (with `resume`: continue the stopped run in `run_dir`); returns the summary written
    to summary.json (also for failed/stopped runs). `data`: the run's splits when the caller has read
    them already (engine.run_data.prepare_data of this `cfg`), so that they are not split again; `start`
    likewise its model (engine.train.build_start), so that its weights are not read again."""
    started_at = reporter.started_at or time.time()  # the CLI: the process's start; the dashboard: now
    reporter.started_at = started_at  # the time a continued run saves counts from here too (engine.train)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    store.set_status(run_id, "running")
    summary: dict[str, Any]
    try:
        cfg, found = lr_into_config(cfg, datasets_dir, reporter, limits)  # before the search: its trials use it
        cfg, searched = search_into_config(cfg, datasets_dir, reporter, limits)
        searched = {**found, **searched}
        if searched:  # the saved config reproduces the run: the search's result replaces auto mode
            (run_dir / "config.yaml").write_text(cfg.to_yaml())
        result = train(cfg, reporter, run_dir=run_dir, work_dir=datasets_dir, data=data, limits=limits,
                       world=world(), resume=resume, start=start)
        before = result.summary.get("wall_time_before_s", 0.0)  # a continued run: its earlier parts
        summary = {**searched, **result.summary, "loop_wall_time_s": result.summary.get("wall_time_s"),
                   "wall_time_s": before + time.time() - started_at}  # the whole job (or process), not just the loop
        status, error = "finished", None
    except StopRequested as stop:
        summary, status = getattr(stop, "summary", {}), "stopped"
        ended = summary.get("ended_early")  # a method had ended training: its epochs were over
        error = stopped_message(summary.get("epochs"), ended["after_epoch"] if ended else cfg.train.epochs,
                                (run_dir / RESUME_FILE).is_file(),
                                getattr(reporter, "stop_reason", STOPPED_BY_USER), summary.get("stopped_in") or "",
                                summary.get("end_work") or ())
    except StudioError as exc:
        summary, status, error = {}, "failed", str(exc)
    except MemoryError:
        summary, status, error = {}, "failed", "Out of memory: use a smaller image size, batch size or backbone."
    except Exception as exc:  # a bug or a method's crash must not take the engine down
        (run_dir / "error.log").write_text(traceback.format_exc())
        msg = str(exc).splitlines()[0] if str(exc) else ""
        if "out of memory" in msg.lower():
            error = "The GPU ran out of memory: use a smaller batch size, image size or backbone."
        else:
            error = f"The run crashed ({type(exc).__name__}: {msg[:300]}). Details are in {run_dir / 'error.log'}."
        summary, status = {}, "failed"
    summary = {**summary, "status": status, "run_id": run_id}
    if error:
        summary["error"] = error
    write_json(run_dir / "summary.json", summary)
    store.set_status(run_id, status, error)
    return summary
