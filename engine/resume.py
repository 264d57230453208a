"""Continue a stopped or interrupted run from the end of its last finished epoch.

At each epoch's end the loop writes `resume.pt` in the run folder: the model's and the optimiser's
state, the loss scaler's, the data-order and augmentation generators, pruning masks, each method's
own state (`MethodHook.state_dict`: AdaFilter's gate optimiser, pruning's schedule position, the
adversarial overfitting guard's best epoch, WiSE-FT's theta_0), the epoch and step reached, the
history so far and the config, all as tensors, numbers, strings, lists and dicts (torch.save),
read back with `weights_only=True` (nothing in it can run code). The learning rate is a function
of the step (engine.schedules), so the schedule continues where it stopped. A finished run deletes
it: only an unfinished run needs it (about twice the model's size; more with a method that keeps
a copy of the weights).

The command line continues a run in one process (engine.cli refuses `--resume` under torchrun).
Continued under DDP from the library (`engine.train.train(world=..., resume=True)`), each process
gets new augmentation and global streams for the epochs left (only rank 0's are saved; the data
order, shared by all, is restored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from engine.checkpoints import write_json
from engine.config import RunConfig
from engine.contract import MethodHook, TrainContext
from engine.distributed import EPOCH_STREAM_OFFSET, process_random_stream
from engine.errors import StudioError

RESUME_FILE = "resume.pt"
ENDED_FILE = "ended_early.json"  # beside it when a method ended training early (ended_early)
FORMAT = 1


def save_resume(run_dir: Path, ctx: TrainContext, scaler: torch.amp.GradScaler, history: list[dict[str, Any]],
                elapsed_s: float = 0.0, hooks: list[MethodHook] = ()) -> Path:
    """Write `run_dir/resume.pt` for the end of epoch `ctx.epoch` (atomic: a stop mid-write leaves
    the previous one); `elapsed_s`: the run's time so far in seconds from its job's start (the CLI: the
    process's, imports and data reading included), earlier parts included; `hooks`: the run's methods, whose
    `state_dict` is saved under their names. Returns its path."""
    state = {
        "format": FORMAT, "epoch": ctx.epoch + 1, "step": ctx.step, "config": ctx.cfg.to_json(),
        "elapsed_s": float(elapsed_s),
        "history": json.dumps(history), "model": ctx.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
        "scaler": scaler.state_dict(), "generator": ctx.generator.get_state(),
        "device_generator": ctx.device_generator.get_state(), "masks": dict(ctx.masks),
        "methods": {h.name: h.state_dict() for h in hooks},
        # the global random stream: dropout and stochastic depth, AdaFilter's gate noise
        "global_rng": torch.get_rng_state(), "device_global_rng": _device_rng(ctx.device),
    }
    path = run_dir / RESUME_FILE
    if ctx.stop_training:  # a method ended training here (a rollback): Continue trains no further epoch, it
        # finishes the run with what the method wrote into the summary (the rollback's figures); written first,
        # and read without loading the resume point (the words of an interruption: planned_epochs)
        write_json(run_dir / ENDED_FILE, {"after_epoch": ctx.epoch + 1, "reason": ctx.stop_reason,
                                          "weights_epoch": ctx.weights_epoch, "summary": ctx.summary})
    tmp = path.with_suffix(".part")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def ended_early(run_dir: Path) -> dict[str, Any] | None:
    """The run's ENDED_FILE (after_epoch, reason, weights_epoch, summary) when a method ended its training
    early, else None (also when it cannot be read)."""
    try:
        ended = json.loads((Path(run_dir) / ENDED_FILE).read_text())
        return ended if isinstance(ended, dict) and isinstance(ended.get("after_epoch"), int) else None
    except (OSError, ValueError):
        return None


def planned_epochs(run_dir: Path, planned: int) -> int:
    """The epochs the run in `run_dir` trains: `planned`, or fewer when a method ended its training early
    (`ended_early`), for the words of a run stopped or interrupted after that."""
    ended = ended_early(run_dir)
    return ended["after_epoch"] if ended else planned


def epochs_done_of(run_dir: Path, summary: dict, planned: int) -> tuple[int, int]:
    """(epochs a stopped run finished, epochs it trains): the finished ones from its summary's history (or its
    "epochs" count), of `planned` or fewer when a method ended its training early (`planned_epochs`)."""
    done = len(summary.get("history") or []) or int(summary.get("epochs") or 0)
    return done, planned_epochs(run_dir, planned)


def check_resumable(run_dir: Path, status: str | None = None) -> None:
    """Raise StudioError when the run in `run_dir` has no resume point to continue from, saying why
    for its store `status` ("finished": nothing left; otherwise it stopped before its first epoch
    ended) and what to do instead; nothing is read or written but the file's existence."""
    if status != "finished" and (Path(run_dir) / RESUME_FILE).is_file():
        return
    if status == "finished":  # a resume point left beside a finished run is no reason to train it again
        raise StudioError("This run finished: there is nothing left to continue, and its results stay as they are. "
                          "To train longer, start a new run with its settings and more epochs.")
    why = ("it stopped before its first epoch ended" if status in ("stopped", "failed")
           else "it stopped before its first epoch ended, or it finished")  # a folder no store lists: either
    raise StudioError(f"This run cannot be continued: it has no saved state to continue from ({why}). "
                      "Start it again instead.")


def keep_saved_head_rate(optimizer: torch.optim.Optimizer, summary: dict[str, Any]) -> None:
    """A continued run trains at the rates its saved optimiser state holds: one saved before the new head's rate
    was kept under its stability bound (engine.optim.cap_head_lr) goes on at its own head rate, so `summary`
    loses the cap's record ("head_lr_capped"), which would be untrue of it (engine.train.say_head_lr says it after
    this)."""
    cap = summary.get("head_lr_capped")
    heads = [g["base_lr"] for g in optimizer.param_groups if g.get("name", "").startswith("head") and "base_lr" in g]
    if cap and heads and max(heads) > cap["to"] * (1 + 1e-6):
        summary.pop("head_lr_capped")


def load_resume(run_dir: Path, ctx: TrainContext, scaler: torch.amp.GradScaler,
                hooks: list[MethodHook] = ()) -> tuple[int, list[dict[str, Any]]]:
    """Restore the state `save_resume` wrote into a freshly set-up run (engine.train.setup_run with
    the same config and its `hooks`). Returns (epochs already done, their history); sets
    `continued_from_epoch` and `wall_time_before_s` (seconds the earlier parts took) in `ctx.summary`.
    Raises StudioError when there is no resume point, it belongs to other settings, or its saved
    state does not fit the run."""
    check_resumable(run_dir)
    path = run_dir / RESUME_FILE
    try:
        state = torch.load(path, map_location=ctx.device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so, never a traceback
        raise StudioError(f"The run's saved state ({path.name}) cannot be read ({type(exc).__name__}); "
                          "start the run again instead.") from None
    saved = RunConfig.from_dict(json.loads(state["config"])) if state.get("format") == FORMAT else None
    if saved is None or saved != ctx.cfg:  # a field added since reads as its default on both sides
        raise StudioError("The run's settings differ from those it was saved with: a run continues with its "
                          "own settings. Start a new run to change them.")
    methods = state.get("methods") or {}
    try:
        ctx.model.load_state_dict(state["model"])
        for h in hooks:  # before the optimiser: a method may regroup its parameters (AdaFilter)
            h.load_state_dict(ctx, methods.get(h.name) or {})
        ctx.optimizer.load_state_dict(state["optimizer"])
        keep_saved_head_rate(ctx.optimizer, ctx.summary)
    except (KeyError, RuntimeError, ValueError):  # written by another version of the studio or a method
        raise StudioError(f"The run's saved state ({path.name}) was written by another version of the studio "
                          "and does not fit this run: start the run again instead.") from None
    scaler.load_state_dict(state["scaler"])
    ctx.generator.set_state(state["generator"].cpu())
    if ctx.world_size == 1:
        ctx.device_generator.set_state(state["device_generator"].cpu())  # a CPU byte tensor, for a GPU's too
        if state.get("global_rng") is not None:
            torch.set_rng_state(state["global_rng"].cpu())
            _set_device_rng(ctx.device, state.get("device_global_rng"))
    else:  # each process draws its own and only rank 0's streams were saved: each process continues with
        # streams of its own for the epochs left, rather than replaying the first epochs' crops and noise
        ctx.device_generator.manual_seed(ctx.device_generator.initial_seed() + EPOCH_STREAM_OFFSET * int(state["epoch"]))
        process_random_stream(ctx.cfg.seed, ctx.rank, int(state["epoch"]))
    ctx.masks.update(state["masks"])
    ctx.step = int(state["step"])
    ctx.epoch = max(int(state["epoch"]) - 1, 0)  # the last one trained, until the loop moves on (if any is left)
    ended = ended_early(run_dir)
    if ended and ended["after_epoch"] == int(state["epoch"]):  # training had ended early: engine.train reads
        ctx.stop_training, ctx.stop_reason = True, ended.get("reason", "")  # stop_training before each epoch
        ctx.weights_epoch = ended.get("weights_epoch")
        ctx.summary.update(ended.get("summary") or {})
    # what the summary reports about the earlier parts: where this one starts, and their time
    ctx.summary.update(continued_from_epoch=int(state["epoch"]),
                       wall_time_before_s=float(state.get("elapsed_s", 0.0)))
    return int(state["epoch"]), json.loads(state["history"])


def _device_rng(device: torch.device) -> torch.Tensor | None:
    """The accelerator's own global random state (CUDA, MPS); None on a CPU."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def _set_device_rng(device: torch.device, state: torch.Tensor | None) -> None:
    if state is None:
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state.cpu(), device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state.cpu())
