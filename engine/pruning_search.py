"""Auto mode of pruning: per-stage pruning fractions found by Bayesian optimisation.

Fine-Pruning (Tung et al. 2017) treats the per-layer pruning parameters as the input of a
black-box function, "accuracy after a short fine-tune plus lambda times compression", and
maximises it with a Gaussian process. Here Optuna proposes one fraction per stage (its TPE
or GP sampler, seeded), each trial is a short fine-tune through the same training loop from the
same starting weights (`train.epochs = trial_epochs`) scored on the validation split, and the
best setting is returned for the main run.

Objectives:
  score  maximise val_acc + lambda * sparsity
  floor  maximise sparsity while val_acc >= (dense reference accuracy - max_acc_drop);
         a trial under the floor scores its (negative) shortfall, so every feasible trial beats it.

Trial 1 is always the dense reference (all fractions 0): it defines the floor and shows what
pruning costs; trial 2 is the uniform target. Each finished trial is published live through
`reporter.stream("pruning_trials", {...})`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from engine.backbones import build_model
from engine.config import RunConfig, with_section
from engine.contract import Reporter, StopRequested, SubReporter
from engine.data import DataSplits
from engine.distributed import on_rank0
from engine.errors import StudioError
from engine.methods.pruning import prunable_layers
from engine.methods.registry import restructure_model
from engine.run_data import prepare_data
from engine.train import train

POST_HOC_METHODS = ("wise_ft",)  # methods that act after training: trials skip them


@dataclass
class SearchResult:
    """The Bayesian search of per-stage pruning fractions: the stages' names, the best fractions (0-1, one per
    stage) and the best trial's figures, every trial, the objective (score or floor), the accuracy floor when
    used, the sampler and the search's wall time (seconds)."""

    stages: list[str]
    best_fractions: list[float]
    best: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    objective: str = "score"
    floor: float | None = None
    sampler: str = "tpe"
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (summary.json's "pruning_search"). Raises nothing."""
        return {"stages": self.stages, "best_fractions": self.best_fractions, "best": self.best,
                "trials": self.trials, "objective": self.objective, "floor": self.floor, "sampler": self.sampler,
                "seconds": self.seconds}


def trial_config(cfg: RunConfig) -> RunConfig:
    """The run config for one trial: short, no extra evaluations, no search inside, no post-hoc methods."""
    pc = cfg.methods["pruning"]
    t = with_section(cfg, "train", epochs=pc.trial_epochs)
    t = with_section(t, "optim", linear_probe_epochs=min(cfg.optim.linear_probe_epochs, pc.trial_epochs - 1))
    # Robust accuracy is always measured when adversarial training is on: keep it to one cheap step.
    t = with_section(t, "eval", ood=False, ood_severity_each_epoch=0, robust=False, autoattack=False,
                     robust_steps=1, robust_subset=1)
    t = with_section(t, "data", ood_source="")
    t = with_section(t, "pruning", enabled=True, auto=False, structured=False)
    for name in POST_HOC_METHODS:
        if name in t.methods and getattr(t.methods[name], "enabled", False):
            t = with_section(t, name, enabled=False)
    return t


def _sampler(name: str, seed: int, n_startup: int):
    import optuna  # imported when a search runs: a plain run's startup does not pay for it

    if name == "gp":
        try:
            import scipy  # noqa: F401  (Optuna's GP sampler needs it)

            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup), "gp"
        except ImportError:
            pass  # fall back to TPE, and say so in the result
    with warnings.catch_warnings():  # multivariate TPE is marked experimental; it models stages jointly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, multivariate=True), "tpe"


def stage_names(cfg: RunConfig, num_classes: int) -> list[str]:
    """The prunable stages of `cfg`'s backbone (one searched fraction each)."""
    model, _ = build_model(cfg.backbone.name, num_classes, "none", initialise=False)  # its layers' names alone
    model = restructure_model(model, cfg)
    return prunable_layers(model, cfg.methods["pruning"].prune_head)[1]


def search_pruning(cfg: RunConfig, data, trials: int | None = None, reporter=None) -> SearchResult:
    """Find per-stage pruning fractions for `cfg` on `data` (its validation split scores the trials).
    Raises StudioError for fewer than 2 trials, StopRequested when the user stops the run."""
    import optuna  # imported when a search runs: a plain run's startup does not pay for it

    pc = cfg.methods["pruning"]
    n_trials = trials or pc.trials
    if n_trials < 2:
        raise StudioError("Auto pruning needs at least 2 trials: the first one is the unpruned reference.")
    t0 = time.perf_counter()
    stages = stage_names(cfg, len(data.classes))
    base = trial_config(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_startup = max(2, n_trials // 3)  # random proposals before the model of the objective takes over
    sampler, sampler_name = _sampler(pc.sampler, cfg.seed, n_startup)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({f"f{i}": 0.0 for i in range(len(stages))})  # the dense reference
    study.enqueue_trial({f"f{i}": min(pc.target_sparsity, pc.max_fraction) for i in range(len(stages))})
    records: list[dict[str, Any]] = []
    floor = None
    best: dict[str, Any] | None = None
    for i in range(n_trials):
        trial = study.ask()
        fractions = [round(trial.suggest_float(f"f{j}", 0.0, pc.max_fraction), 4) for j in range(len(stages))]
        tcfg = with_section(base, "pruning", stage_fractions=tuple(fractions))
        started = time.perf_counter()
        # under torchrun the search runs in one process: its trials are local, not distributed
        try:
            result = train(tcfg, SubReporter(reporter, f"pruning search: trial {i + 1}/{n_trials}"), data=data)
        except StopRequested:  # the run is stopped before its first epoch: the trial's epochs are not the run's
            raise StopRequested() from None
        acc, sparsity = float(result.summary["val_acc"]), float(result.summary["sparsity"])
        del result
        if i == 0 and pc.objective == "floor":
            floor = acc - pc.max_acc_drop
        if pc.objective == "floor":
            feasible = acc >= floor - 1e-9
            score = sparsity if feasible else acc - floor  # negative: below every feasible trial
        else:
            feasible, score = True, acc + pc.lam * sparsity
        study.tell(trial, score)
        record = {"trial": i + 1, "fractions": dict(zip(stages, fractions)), "val_acc": acc, "sparsity": sparsity,
                  "score": score, "feasible": feasible, "seconds": time.perf_counter() - started}
        if best is None or score > best["score"]:
            best = record
        record["best_so_far"] = best["trial"]
        records.append(record)
        if reporter is not None:
            reporter.stream("pruning_trials", record)
    assert best is not None
    return SearchResult(stages=stages, best_fractions=list(best["fractions"].values()), best=best, trials=records,
                        objective=pc.objective, floor=floor, sampler=sampler_name,
                        seconds=time.perf_counter() - t0)


def search_into_config(cfg: RunConfig, datasets_dir, reporter: Reporter | None = None, limits=None,
                       data: DataSplits | None = None) -> tuple[RunConfig, dict[str, Any]]:
    """Job-level decisions made before the loop starts, written into the config so that the saved
    config reproduces the run: with `pruning.auto`, the search's best per-stage fractions become
    `pruning.stage_fractions` (and auto is switched off). Returns (config, summary entries).
    Under torchrun every process calls it; rank 0 searches and the others receive its result."""
    pc = cfg.methods.get("pruning")
    if pc is None or not (pc.enabled and pc.auto):
        return cfg, {}
    result = on_rank0(lambda: search_pruning(cfg, data if data is not None else prepare_data(cfg, datasets_dir, limits),
                                             reporter=reporter))
    resolved = with_section(cfg, "pruning", auto=False, stage_fractions=tuple(result.best_fractions))
    return resolved, {"pruning_search": result.to_dict()}


__all__ = ["SearchResult", "search_pruning", "search_into_config", "trial_config", "stage_names"]
