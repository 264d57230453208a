"""Learning-rate schedules as pure functions of progress: f(t) in [0, 1] scales the peak lr.

t = step / total_steps in [0, 1). Pure functions make the curve easy to plot in the UI and to
test for shape. Methods may register more (the adversarial method adds "slow start, fast decay").
A linear rise counts the step it is on (t + one step's width), as torch's LinearLR does: the first step
trains at 1/(rise steps) of the peak, not at 0, and the last step of the rise is at the peak.
"""

from __future__ import annotations

import math
from typing import Callable

# name -> (description, factory(optim_config, step_width) -> f(t)); step_width = 1 / total_steps
SCHEDULES: dict[str, tuple[str, Callable]] = {}
# name -> its short name in the UI (a schedule without one shows its name, "_" as spaces)
SCHEDULE_LABELS = {"cosine": "cosine", "warmup_cosine": "warm-up, then cosine", "step": "step decay",
                   "constant": "constant", "slow_start_fast_decay": "slow start, fast decay"}


def schedule_label(name: str) -> str:
    """The schedule's short name as the UI shows it ("slow_start_fast_decay" -> "slow start, fast decay");
    a name without a label (a schedule a method registered) with its "_" as spaces. Raises nothing."""
    return SCHEDULE_LABELS.get(name, name.replace("_", " "))


def register_schedule(name: str, description: str, factory: Callable) -> None:
    """Register a learning-rate schedule: `factory(optim_config, step_width)` returns f(t) -> multiplier of the peak
    rate for t = step / total_steps in [0, 1); step_width = 1 / total_steps (a linear rise adds it, so that no step
    trains at 0). Raises ValueError when the name is taken."""
    if name in SCHEDULES:
        raise ValueError(f"schedule {name!r} is already registered")
    SCHEDULES[name] = (description, factory)


def schedule_fn(optim_cfg, total_steps: int) -> Callable[[float], float]:
    """f(t) -> multiplier of the peak learning rate (0-1) for the schedule `optim_cfg` names, t = step / total_steps
    in [0, 1), over a run of `total_steps` optimizer steps. Raises KeyError for an unregistered schedule (configs
    are validated before)."""
    return SCHEDULES[optim_cfg.schedule][1](optim_cfg, 1.0 / max(int(total_steps), 1))


def _cosine(t: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))


def _warmup_cosine(cfg, step_width: float):
    w = cfg.warmup_fraction

    def f(t: float) -> float:
        if w > 0 and t < w:
            return min((t + step_width) / w, 1.0)
        return _cosine((t - w) / (1.0 - w)) if w < 1 else 1.0

    return f


def _step(cfg, step_width: float):
    every = max(cfg.step_every_fraction, 1e-6)
    return lambda t: cfg.step_gamma ** math.floor(t / every)


register_schedule("cosine", "Cosine decay from the peak to zero.", lambda cfg, step_width: _cosine)
register_schedule(
    "warmup_cosine", "A linear rise over the warm-up share of the steps, then cosine decay to zero.", _warmup_cosine
)
register_schedule("step", "Multiplied by the decay factor each time the given share of the steps has passed.", _step)
register_schedule("constant", "The same learning rate throughout.", lambda cfg, step_width: (lambda t: 1.0))


def _slow_start_fast_decay(cfg, step_width: float):
    """Jeddi et al. 2020: a slow linear rise to the peak, then a fast exponential decay.

    Defaults (slow_start_fraction 0.4, fast_decay_rate 6): the rise spans 40% of training, long
    enough that the adversarial loss does not wreck the pretrained features before the new head
    has settled; the decay then falls by e^-6 (to 0.25% of the peak) over the rest, since the
    paper found that robust overfitting sets in when the lr stays high late in training.
    """
    rise = cfg.slow_start_fraction
    rate = cfg.fast_decay_rate

    def f(t: float) -> float:
        if t < rise:
            return min((t + step_width) / rise, 1.0)
        return math.exp(-rate * (t - rise) / max(1.0 - rise, 1e-9))

    return f


register_schedule(
    "slow_start_fast_decay",
    "Jeddi et al. 2020: a linear rise over the slow-start share of the steps, then an exponential decay at the fast decay rate.",
    _slow_start_fast_decay,
)


def lr_curve(optim_cfg, total_steps: int) -> list[float]:
    """The learning rate of each of `total_steps` steps (floats, the peak `optim_cfg.lr` times the schedule's
    multiplier), for the Model page's plot. Raises KeyError for an unregistered schedule."""
    f = schedule_fn(optim_cfg, total_steps)
    return [optim_cfg.lr * f(s / max(total_steps, 1)) for s in range(total_steps)]
