"""The WiSE-FT grid of a finished run evaluated in the default NCHW layout and in channels_last, in one
process: what `engine.devices.eval_layout` gains on this CPU in float32, and that the answers agree.

The two layouts alternate round by round (a busy machine slows both alike); each round evaluates every
alpha of the run's grid on the curve's own images (`engine.runs.FinishedRun.wise_point`: BN statistics
re-estimated per alpha where the run asks, validation and corrupted images). The layout is forced both
ways (`engine.devices.cpu_eval_channels_last` patched), whatever this CPU's cached measurement says.

    python benchmarks/eval_layout.py [--run runs/benchmarks/wise_ft_seed0] [--rounds 2] [--threads 2]

The run comes from `benchmarks/wise_ft.py` (its folder under runs/benchmarks/, its data under
runs/benchmarks/data/).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import WORK

from engine import devices
from engine.devices import cpu_info
from engine.runs import FinishedRun


def grid(run: FinishedRun, alphas: list[float]) -> tuple[float, list[dict]]:
    """Seconds for the whole grid and its points."""
    t0 = time.perf_counter()
    points = [run.wise_point(a) for a in alphas]
    return time.perf_counter() - t0, points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(WORK / "wise_ft_seed0"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = FinishedRun(Path(args.run), WORK / "data")
    alphas = list(run.cfg.methods["wise_ft"].alphas)
    print(f"{cpu_info()[0]}, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.run}: "
          f"{len(alphas)} alphas, {run.curve_sets.ood_images} corrupted and {len(run.curve_sets.val)} validation "
          f"images per alpha", flush=True)
    run.wise_point(0.5)  # warm-up: the data, the probe model, oneDNN's kernels
    times: dict[str, list[float]] = {"nchw": [], "channels_last": []}
    points: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        for layout in times:
            devices.cpu_eval_channels_last = lambda backbone, size, _cl=layout == "channels_last": _cl
            seconds, points[layout] = grid(run, alphas)
            times[layout].append(seconds)
            print(f"round {r + 1}: {layout} {seconds:.1f} s", flush=True)
    diff = max(abs(a[k] - b[k]) for a, b in zip(points["nchw"], points["channels_last"])
               for k in ("val_acc", "ood_acc") if a.get(k) is not None)
    best = {k: min(v) for k, v in times.items()}
    print(f"grid: NCHW {best['nchw']:.1f} s, channels_last {best['channels_last']:.1f} s (best of {args.rounds}); "
          f"largest accuracy difference between the layouts {100 * diff:.2f} points")
    print(f"RATIO NCHW / channels_last grid time = {best['nchw'] / best['channels_last']:.2f}")


if __name__ == "__main__":
    main()
