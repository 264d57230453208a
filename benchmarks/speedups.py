"""Fewer steps, or cheaper steps, to the same accuracy? Well-known techniques against the Quick demo
as it ships (issue 22), on the bundled sample, from the CLI, over several seeds:

- progressive resizing (`train.progressive_start`): early epochs on smaller images;
- an exponential moving average of the weights (`train.ema_decay`);
- test-time augmentation with a horizontal flip: the baseline run's final weights evaluated on the
  test split with the softmax of each image and of its mirror averaged (no retraining, so it is
  measured here before it becomes a switch; it doubles the cost of every prediction);
- the fused optimiser step (`optim.fused`, on by default) against the classic per-tensor loop.

Each variant runs as a whole `python -m engine train` process; variants alternate seed by seed so a
machine that gets busier slows them alike. Prints per variant: test and validation accuracy (mean
over seeds, and the difference from the baseline seed by seed), whole-process wall time and its
ratio to the baseline's. A technique pays when its wall ratio is below 1 at no test cost beyond
noise (the seeds' spread), or it adds accuracy at a small cost.

    python benchmarks/speedups.py [--seeds 0 1 2] [--variants baseline progressive ema fused_off]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT, table

from engine.augment import to_float
from engine.paths import SAMPLE_DATASET
from engine.predict import load_variant
from engine.run_data import prepare_data

VARIANTS = {
    "baseline": [],
    "progressive": ["--set", "train.progressive_start=0.5"],
    "ema": ["--set", "train.ema_decay=0.98"],
    "fused_off": ["--set", "optim.fused=false"],
}


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def flip_tta_test_acc(run_dir: Path, datasets_dir: Path) -> tuple[float, float]:
    """(test accuracy, test accuracy with flip TTA) of a finished run's final weights, both in fp32
    on the CPU: the mean of the softmax of each test image and of its horizontal mirror."""
    model, cfg, _ = load_variant(run_dir, "fine_tuned", datasets_dir=datasets_dir)
    test = prepare_data(cfg, datasets_dir).test
    probs = []
    with torch.no_grad():
        for images in (test.images, test.images.flip(-1)):
            probs.append(torch.cat([model(to_float(images[i:i + 256])).softmax(1) for i in range(0, len(images), 256)]))
    acc = lambda p: float((p.argmax(1) == test.labels).float().mean())  # noqa: E731
    return acc(probs[0]), acc(probs[0] + probs[1])


def one_run(extra: list[str], seed: int, tta: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out, data_dir = Path(tmp) / "run", Path(tmp) / "engine"
        cmd = [sys.executable, "-m", "engine", "train", "--preset", "quick_demo", *extra, "--data", str(SAMPLE_DATASET),
               "--seed", str(seed), "--device", "cpu", "--quiet", "--out", str(out), "--data-dir", str(data_dir)]
        before, t0 = load(), time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"run failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
        s = json.loads((out / "summary.json").read_text())
        r = {"wall": wall, "load": (before + load()) / 2, "test": s["test_acc"], "val": s["val_acc"],
             "ood": s.get("ood_acc")}
        if tta:
            r["test_plain"], r["test_tta"] = flip_tta_test_acc(out, data_dir)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    names = ["baseline"] + [v for v in args.variants if v != "baseline"]
    res: dict[str, list[dict]] = {n: [] for n in names}
    for seed in args.seeds:
        for name in names:
            r = one_run(VARIANTS[name], seed, tta=name == "baseline")
            res[name].append(r)
            extra = f" flip-TTA test {100 * r['test_tta']:.1f}%" if "test_tta" in r else ""
            print(f"{name}, seed {seed}: test {100 * r['test']:.1f}% val {100 * r['val']:.1f}% wall {r['wall']:.1f} s"
                  f"{extra} (load {r['load']:.2f})", flush=True)
    base = res["baseline"]
    rows = []

    def row(label: str, tests: list[float], vals: list[float], walls: list[float], loads: list[float],
            against: list[float] | None = None) -> list[str]:
        diffs = [t - b for t, b in zip(tests, against or [b["test"] for b in base])]
        ratios = [w / b["wall"] for w, b in zip(walls, base)]
        return [label, f"{100 * statistics.mean(tests):.1f}", " / ".join(f"{100 * d:+.1f}" for d in diffs),
                f"{100 * statistics.mean(vals):.1f}", f"{statistics.mean(walls):.1f}",
                f"{statistics.mean(ratios):.2f}", " / ".join(f"{x:.1f}" for x in loads)]

    for name in names:
        rs = res[name]
        rows.append(row(name, [r["test"] for r in rs], [r["val"] for r in rs], [r["wall"] for r in rs],
                        [r["load"] for r in rs]))
    rows.append(row("baseline + flip TTA (evaluation only)", [r["test_tta"] for r in base], [r["val"] for r in base],
                    [r["wall"] for r in base], [r["load"] for r in base], against=[r["test_plain"] for r in base]))
    print()
    print(table(["variant", "test % mean", "test vs baseline per seed (points)", "val % mean", "wall s mean",
                 "wall / baseline", "load per run"], rows))
    print("\n(flip TTA: both accuracies in fp32, its differences against the same weights without TTA; it doubles "
          "each prediction's cost, and its row's wall time is the baseline's training run)")


if __name__ == "__main__":
    main()
