"""Does the bundled (formula-driven) pretraining help? Fine-tune it against the same architecture
from scratch, with the same budget, on the sample dataset at 10, 25 and all training images per class.

Target (issue): the bundled backbone beats scratch by at least 10 points at 10 and 25 images per class.
The budget is a fixed number of optimiser steps for every training-set size (epochs are chosen to
match), so small sets are not simply given less compute. Test accuracy, mean ± std over seeds.

    python benchmarks/transfer_gain.py [--seeds 0 1 2] [--steps 150] [--image-size 64] [--sizes 10 25 0]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from common import WORK, config, mean_std, table

from engine.config import with_section
from engine.run_data import prepare_data
from engine.train import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 0], help="images per class (0 = all)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--scratch-lr", type=float, default=0.05, help="from scratch usually wants a larger lr")
    ap.add_argument("--backbone", default="resnet18")
    args = ap.parse_args()
    rows, gains = [], {}
    for size in args.sizes:
        acc = {"bundled": [], "none": []}
        for seed in args.seeds:
            for source in ("bundled", "none"):
                cfg = config(f"data.image_size={args.image_size}", f"backbone.name={args.backbone}",
                             f"backbone.pretrained={source}", f"train.batch_size={args.batch_size}",
                             f"optim.lr={args.lr if source == 'bundled' else args.scratch_lr}",
                             f"data.train_per_class={size}", "eval.ood=false", f"seed={seed}", "train.epochs=1")
                n_train = len(prepare_data(cfg, WORK / "data").train)
                steps_per_epoch = max(1, n_train // args.batch_size)
                epochs = max(1, math.ceil(args.steps / steps_per_epoch))
                cfg = with_section(cfg, "train", epochs=epochs)
                t0 = time.perf_counter()
                s = train(cfg, work_dir=WORK / "data").summary
                acc[source].append(s["test_acc"])
                print(f"{size or 'all'}/class seed {seed} {source:8s}: test {100 * s['test_acc']:.1f}% "
                      f"({epochs} epochs, {n_train} train images, {time.perf_counter() - t0:.0f} s)", flush=True)
        gain = statistics.mean(acc["bundled"]) - statistics.mean(acc["none"])
        gains[size] = gain
        rows.append([f"{size}" if size else "all", mean_std(acc["bundled"]), mean_std(acc["none"]),
                     f"{100 * gain:+.1f}"])
    print()
    print(table(["train images / class", "bundled (fractal) %", "from scratch %", "gain (points)"], rows))
    verdict = all(gains.get(k, 0) >= 0.10 for k in (10, 25) if k in gains)
    print(f"\ntarget (>= +10 points at 10 and 25 per class): {'met' if verdict else 'NOT met'}")


if __name__ == "__main__":
    main()
