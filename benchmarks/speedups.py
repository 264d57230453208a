"""Fewer steps, or cheaper steps, to the same accuracy? Well-known techniques against the Quick demo
as it ships (issue 22), on the bundled sample, from the CLI, over several seeds:

- test-time augmentation with a horizontal flip (`eval.tta_flip`): every prediction averages the
  image's and its mirror's probabilities. Training is unchanged (same weights seed by seed), so its
  test difference is the averaging's alone and its wall ratio the evaluation's extra cost;
- the fused optimiser step (`optim.fused`, on by default) against the classic per-tensor loop.

Tried and removed because they did not pay (measured with this script at commit 2bd594f, where
they were switches; benchmarks/results/speedups.txt): progressive resizing (early epochs at half
the image size: 0.87x the wall time, 23 test points lost on the textures) and an exponential moving
average of the weights (decay 0.98: +0.0 test points, 1.07x the wall time; with a cosine schedule
to zero the average and the last weights nearly agree).

Each variant runs as a whole `python -m engine train` process; variants alternate seed by seed so a
machine that gets busier slows them alike. Prints per variant: test and validation accuracy (mean
over seeds, and the difference from the baseline seed by seed), whole-process wall time and its
ratio to the baseline's. A technique pays when its wall ratio is below 1 at no test cost beyond
noise (the seeds' spread), or it adds accuracy at a small cost.

    python benchmarks/speedups.py [--seeds 0 1 2] [--variants baseline tta fused_off]
"""

from __future__ import annotations

import argparse
import statistics

from common import table
from first_model import NEW, one_run

VARIANTS = {
    "baseline": [],
    "tta": ["--set", "eval.tta_flip=true"],
    "fused_off": ["--set", "optim.fused=false"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    names = ["baseline"] + [v for v in args.variants if v != "baseline"]
    res: dict[str, list[dict]] = {n: [] for n in names}
    for seed in args.seeds:
        for name in names:
            r = one_run([*NEW, *VARIANTS[name]], seed)  # the quick demo, one CLI process
            res[name].append(r)
            print(f"{name}, seed {seed}: test {100 * r['test']:.1f}% val {100 * r['val']:.1f}% wall {r['wall']:.1f} s"
                  f" (load {r['load']:.2f})", flush=True)
    base = res["baseline"]
    rows = []

    def row(label: str, tests: list[float], vals: list[float], walls: list[float], loads: list[float]) -> list[str]:
        diffs = [t - b["test"] for t, b in zip(tests, base)]
        ratios = [w / b["wall"] for w, b in zip(walls, base)]
        return [label, f"{100 * statistics.mean(tests):.1f}", " / ".join(f"{100 * d:+.1f}" for d in diffs),
                f"{100 * statistics.mean(vals):.1f}", f"{statistics.mean(walls):.1f}",
                f"{statistics.mean(ratios):.2f}", " / ".join(f"{x:.1f}" for x in loads)]

    for name in names:
        rs = res[name]
        rows.append(row(name, [r["test"] for r in rs], [r["val"] for r in rs], [r["wall"] for r in rs],
                        [r["load"] for r in rs]))
    print()
    print(table(["variant", "test % mean", "test vs baseline per seed (points)", "val % mean", "wall s mean",
                 "wall / baseline", "load per run"], rows))

if __name__ == "__main__":
    main()
