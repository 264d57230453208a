"""How right is the "time left" the dashboard shows? The quick-demo run on the bundled sample,
with every progress report recorded: at the end of the first epoch and at each quarter of the run
(after the first epoch), the ETA shown then against the time the run really still took. Target:
within 25% after the first epoch.

    python benchmarks/eta.py [--seeds 0 1] [--robust] [--preset adversarial_demo]

The ETA counts the remaining training steps at the current speed, each remaining epoch's
evaluation and the final evaluation (engine.train.time_left), timed on the last evaluation.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import WORK, config, table

from engine.config import apply_overrides
from engine.presets import get_preset
from engine.contract import Reporter
from engine.train import train


class EtaLog(Reporter):
    """(seconds since start, ETA shown, phase, epoch) for every progress report that carries an ETA."""

    def __init__(self):
        self.t0, self.rows, self.first_epoch_done = time.perf_counter(), [], None

    def progress(self, **f) -> None:
        now = time.perf_counter() - self.t0
        if f.get("phase") == "evaluating" and self.first_epoch_done is None:
            self.first_epoch_done = now
        if f.get("eta_s") is not None:
            self.rows.append((now, float(f["eta_s"]), f.get("phase"), f.get("epoch")))


def errors_at_quarters(log: EtaLog, end: float) -> list[tuple[str, float, float, float]]:
    """(quarter, ETA shown, real time left, relative error) at 25/50/75% of the run, each taken from the
    last report at or before that moment and after the first epoch's evaluation began."""
    out = []
    for q in (0.25, 0.5, 0.75):
        moment = q * end
        seen = [r for r in log.rows if r[0] <= moment and log.first_epoch_done is not None
                and r[0] >= log.first_epoch_done]
        if not seen:
            out.append((f"{q:.0%}", float("nan"), end - moment, float("nan")))
            continue
        t, eta, _, _ = seen[-1]
        real = end - t
        out.append((f"{q:.0%}", eta, real, abs(eta - real) / max(real, 1e-9)))
    return out


def error_in_first_epoch(log: EtaLog, end: float) -> tuple[float, float, float] | None:
    """(ETA shown, real time left, relative error) at the first epoch's last report (with LP-FT a head-only
    epoch, whose speed says little about the whole network's), or None without a report then."""
    if log.first_epoch_done is None:
        return None
    seen = [r for r in log.rows if r[0] < log.first_epoch_done]
    if not seen:
        return None
    t, eta = seen[-1][:2]
    return eta, end - t, abs(eta - (end - t)) / max(end - t, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--robust", action="store_true", help="also measure robust accuracy (PGD) each epoch")
    ap.add_argument("--preset", default="quick_demo", help="the preset whose run is timed (default quick_demo)")
    args = ap.parse_args()
    rows, worst = [], 0.0
    print(f"preset: {args.preset}")
    for seed in args.seeds:
        cfg = get_preset(args.preset).apply(config(f"seed={seed}"))  # a preset sets its whole recipe, so the
        cfg = apply_overrides(cfg, [f"train.threads={torch.get_num_threads()}",  # pinned threads come after it
                                    *(["eval.robust=true"] if args.robust else [])])
        log = EtaLog()
        train(cfg, log, work_dir=WORK / "data")
        end = time.perf_counter() - log.t0
        first = error_in_first_epoch(log, end)
        if first is not None:
            rows.append([seed, "first epoch", f"{first[0]:.1f}", f"{first[1]:.1f}", f"{100 * first[2]:.0f}%"])
        for quarter, eta, real, err in errors_at_quarters(log, end):
            rows.append([seed, quarter, f"{eta:.1f}", f"{real:.1f}", f"{100 * err:.0f}%"])
            worst = max(worst, err)
        print(f"seed {seed}: run took {end:.1f} s", flush=True)
    print(table(["seed", "at", "ETA shown (s)", "real time left (s)", "error"], rows))
    print(f"worst error after the first epoch: {100 * worst:.0f}% (target <= 25%)")


if __name__ == "__main__":
    main()
