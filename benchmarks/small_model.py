"""The "Small model" preset (MobileNetV3-Small, pruning on) against other recipes on MobileNetV3-Small, on
the bundled sample and on a small cut of it (the first --per-class images of each class: about the size of
a dataset a user brings to try the studio). Each run is a CLI process (a preset plus `--set` overrides; the
CLI fits a preset's batch to a small dataset as the dashboard does), seeds alternating across
recipes so a machine that gets busier slows all of them. Recipes are compared on validation accuracy (the
test split is printed, not chosen on). Prints per seed and a table of means.

    python benchmarks/small_model.py [--seeds 0 1 2] [--per-class 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import table
from first_model import one_run

from engine.paths import SAMPLE_DATASET
from tools.textures import cut_zip

QUICK = ["--preset", "quick_demo", "--backbone", "mobilenet_v3_small"]  # the Quick demo's recipe on MobileNetV3-Small
PRUNE = ["--set", "pruning.enabled=true", "--set", "pruning.scope=global", "--set", "pruning.end_fraction=0.5"]
RECIPES = {  # each a CLI preset plus overrides: the CLI fits a preset's batch to a small dataset
    "small_model preset": ["--preset", "small_model"],
    "Quick demo recipe, pruning 50% global": QUICK + PRUNE + ["--set", "pruning.target_sparsity=0.5"],
    "Quick demo recipe, pruning 70% global": QUICK + PRUNE + ["--set", "pruning.target_sparsity=0.7"],
    "Quick demo recipe, dense": QUICK,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=10, help="images per class in the small cut")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {"sample": SAMPLE_DATASET,
                    f"sample, {args.per_class} per class": cut_zip(SAMPLE_DATASET, Path(tmp) / "small.zip", args.per_class)}
        results: dict[tuple[str, str], list[dict]] = {}
        for seed in args.seeds:
            for data_name, data in datasets.items():
                for name, extra in RECIPES.items():
                    r = one_run(extra, seed, data)
                    results.setdefault((data_name, name), []).append(r)
                    s = r["summary"]
                    print(f"{data_name} | {name} | seed {seed}: val {100 * r['val']:.1f}% test {100 * r['test']:.1f}% "
                          f"sparsity {100 * (s.get('sparsity') or 0):.0f}%, {s.get('train_images')} training images in "
                          f"{s.get('steps_per_epoch')} steps/epoch, wall {r['wall']:.0f} s (load {r['load']:.1f})",
                          flush=True)
    rows = []
    for (data_name, name), rs in results.items():
        mean = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
        rows.append([data_name, name, " / ".join(f"{100 * r['val']:.1f}" for r in rs), f"{100 * mean('val'):.1f}",
                     f"{100 * mean('test'):.1f}", f"{mean('wall'):.0f}"])
    print()
    print(table(["data", "recipe", "val % per seed", "val % mean", "test % mean", "wall s mean"], rows))


if __name__ == "__main__":
    main()
