"""The first model a new user trains: the "Quick demo" preset on the bundled sample, from the CLI.

Whole-process wall time (start of `python -m engine train` to its summary, a fresh engine folder
each time, so decoding the sample is included) and test accuracy, for the preset as it is now and
for the preset as it shipped before issue 19 (ResNet-18, bundled weights, 64 px, 5 epochs, batch
64, lr 0.01, momentum 0.9, cosine, OOD evaluation at severity 3 every epoch). The two alternate
seed by seed, so a machine that gets busier slows both. Target (issue 19): at least 70% test
accuracy, mean of 3 seeds, in at most 60 s on a 2-core CPU with nothing else running; the 1-minute
load average is printed beside every time (above 1.0 on 2 cores, the times are inflated).

    python benchmarks/first_model.py [--seeds 0 1 2] [--only new|old]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, table

from engine.paths import SAMPLE_DATASET

OLD = ["--backbone", "resnet18", "--pretrained", "bundled", "--image-size", "64", "--epochs", "5",
       "--batch-size", "64", "--lr", "0.01"]  # every other field at its default, as the old preset had it
NEW = ["--preset", "quick_demo"]


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def one_run(recipe: list[str], seed: int, data: Path = SAMPLE_DATASET, keep: Path | None = None) -> dict:
    """One CLI process on `data`, on the CPU unless STUDIO_BENCH_DEVICE names another device (`cuda`,
    `cuda:1`); returns {"wall": seconds, "load": the 1-minute load average before and after, averaged,
    "test", "val", "robust": accuracies as fractions, "train_s": the run's own wall_time_s, "summary": its
    summary.json with the per-epoch `history`}. The run's folder is `keep` when given (kept), else a
    temporary one. Raises SystemExit with the run's last stderr when the process fails."""
    with tempfile.TemporaryDirectory() as tmp:
        out = keep or Path(tmp) / "run"
        cmd = [sys.executable, "-m", "engine", "train", *recipe, "--data", str(data), "--seed", str(seed),
               "--device", os.environ.get("STUDIO_BENCH_DEVICE") or "cpu", "--quiet", "--out", str(out),
               "--data-dir", str(Path(tmp) / "engine")]
        before, t0 = load(), time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"run failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
        s = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "load": (before + load()) / 2, "test": s["test_acc"], "val": s["val_acc"],
            "train_s": s.get("wall_time_s"), "robust": s.get("robust_acc", float("nan")), "summary": s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", choices=["new", "old"])
    args = ap.parse_args()
    recipes = {"quick demo now": NEW, "quick demo before (issue 19)": OLD}
    if args.only:
        recipes = {k: v for k, v in recipes.items() if (args.only == "new") == (v is NEW)}
    results: dict[str, list[dict]] = {k: [] for k in recipes}
    for seed in args.seeds:
        for name, recipe in recipes.items():
            r = one_run(recipe, seed)
            results[name].append(r)
            print(f"{name}, seed {seed}: test {100 * r['test']:.1f}% val {100 * r['val']:.1f}% wall {r['wall']:.1f} s "
                  f"(load {r['load']:.2f})", flush=True)
    rows = []
    for name, rs in results.items():
        mean = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
        rows.append([name, " / ".join(f"{100 * r['test']:.1f}" for r in rs), f"{100 * mean('test'):.1f}",
                     f"{100 * mean('val'):.1f}", " / ".join(f"{r['wall']:.0f}" for r in rs), f"{mean('wall'):.0f}",
                     " / ".join(f"{r['load']:.1f}" for r in rs)])
    print()
    print(table(["recipe", "test % per seed", "test % mean", "val % mean", "wall s per seed", "wall s mean",
                 "load (1 min) per run"], rows))


if __name__ == "__main__":
    main()
