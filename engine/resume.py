"""Continue a stopped or interrupted run from the end of its last finished epoch.

At each epoch's end the loop writes `resume.pt` in the run folder: the model's and the optimiser's
state, the loss scaler's, the data-order and augmentation generators, pruning masks, the epoch and
step reached, the history so far and the config, all as tensors, numbers, strings, lists and dicts
(torch.save), read back with `weights_only=True` (nothing in it can run code). The learning rate
is a function of the step (engine.schedules), so the schedule continues where it stopped. A
finished run deletes it: only an unfinished run needs it (it is about twice the model's size).

Not restored: a method's own in-memory state other than pruning masks (e.g. the adversarial
overfitting guard's best score) starts afresh; under torchrun each process's augmentation
generator starts from rank 0's saved state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from engine.config import RunConfig
from engine.contract import TrainContext
from engine.errors import StudioError

RESUME_FILE = "resume.pt"
FORMAT = 1


def save_resume(run_dir: Path, ctx: TrainContext, scaler: torch.amp.GradScaler, history: list[dict[str, Any]],
                elapsed_s: float = 0.0) -> Path:
    """Write `run_dir/resume.pt` for the end of epoch `ctx.epoch` (atomic: a stop mid-write leaves
    the previous one); `elapsed_s`: the run's training time so far in seconds, earlier parts
    included. Returns its path."""
    state = {
        "format": FORMAT, "epoch": ctx.epoch + 1, "step": ctx.step, "config": ctx.cfg.to_json(),
        "elapsed_s": float(elapsed_s),
        "history": json.dumps(history), "model": ctx.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
        "scaler": scaler.state_dict(), "generator": ctx.generator.get_state(),
        "device_generator": ctx.device_generator.get_state(), "masks": dict(ctx.masks),
    }
    path = run_dir / RESUME_FILE
    tmp = path.with_suffix(".part")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_resume(run_dir: Path, ctx: TrainContext, scaler: torch.amp.GradScaler) -> tuple[int, list[dict[str, Any]]]:
    """Restore the state `save_resume` wrote into a freshly set-up run (engine.train.setup_run with
    the same config). Returns (epochs already done, their history); sets `continued_from_epoch` and
    `wall_time_before_s` (seconds the earlier parts took) in `ctx.summary`. Raises StudioError when there is
    no resume point, or it belongs to other settings."""
    path = run_dir / RESUME_FILE
    if not path.is_file():
        raise StudioError("This run cannot be continued: it has no saved state to continue from (it stopped "
                          "before its first epoch ended, or it finished). Start it again instead.")
    try:
        state = torch.load(path, map_location=ctx.device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so, never a traceback
        raise StudioError(f"The run's saved state ({path.name}) cannot be read ({type(exc).__name__}); "
                          "start the run again instead.") from None
    saved = RunConfig.from_dict(json.loads(state["config"])) if state.get("format") == FORMAT else None
    if saved is None or saved != ctx.cfg:  # a field added since reads as its default on both sides
        raise StudioError("The run's settings differ from those it was saved with: a run continues with its "
                          "own settings. Start a new run to change them.")
    ctx.model.load_state_dict(state["model"])
    ctx.optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    ctx.generator.set_state(state["generator"].cpu())
    if ctx.world_size == 1:  # each process draws its own; only rank 0's was saved
        ctx.device_generator.set_state(state["device_generator"].to(ctx.device_generator.device)
                                       if ctx.device_generator.device.type != "cpu" else state["device_generator"].cpu())
    ctx.masks.update(state["masks"])
    ctx.step = int(state["step"])
    # what the summary reports about the earlier parts: where this one starts, and their time
    ctx.summary.update(continued_from_epoch=int(state["epoch"]),
                       wall_time_before_s=float(state.get("elapsed_s", 0.0)))
    return int(state["epoch"]), json.loads(state["history"])
