"""The new head's learning rate kept under its stability bound (engine.optim.head_lr_bound): a preset
(the Quick demo) at several image sizes on the sample, with the cap (the default) and without it
(`optim.head_lr_cap=false`), over seeds.

    python benchmarks/head_lr_cap.py [--sizes 32 64 96] [--seeds 0 1 2] [--preset quick_demo]
        [--epochs N] [--threads 2]

Per size and seed: the head's input features' curvature (the largest eigenvalue of their second moment),
the head's rate with the cap, the mean training loss of the first two epochs (LP-FT's head-only ones in
the Quick demo; a guess scores ln 8 = 2.08 on the sample's 8 classes) and the final validation and test
accuracy, capped against uncapped. Where the bound is above the preset's rate nothing is capped and the
two runs would be the same run: it is trained once. OOD accuracy is not measured (it does not enter).
"""

from __future__ import annotations

import argparse
import statistics

from common import config, table

import torch

from engine import presets
from engine.config import apply_overrides
from engine.train import train


def one_run(preset: str, size: int, seed: int, epochs: int | None, cap: bool) -> dict:
    """The summary of one run of `preset` at `size` px."""
    cfg = getattr(presets, preset)(config(f"seed={seed}"))
    cfg = apply_overrides(cfg, [f"data.image_size={size}", "eval.ood=false", f"optim.head_lr_cap={str(cap).lower()}"]
                          + ([f"train.epochs={epochs}"] if epochs else []))
    return train(cfg).summary


def early_loss(summary: dict) -> float:
    """The mean training loss of the run's first two epochs."""
    return statistics.mean(h["train_loss"] for h in summary["history"][:2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="quick_demo")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, gains = [], {}
    for size in args.sizes:
        for seed in args.seeds:
            on = one_run(args.preset, size, seed, args.epochs, True)
            capped = on.get("head_lr_capped")
            off = one_run(args.preset, size, seed, args.epochs, False) if capped else on
            lr = f"{capped['to']:.4f} (set {capped['lr']:g})" if capped else "as set (not capped)"
            rows.append([size, seed, f"{on['head_curvature']:.0f}", lr,
                         f"{early_loss(on):.2f} / {early_loss(off):.2f}",
                         f"{100 * on['val_acc']:.1f} / {100 * off['val_acc']:.1f}",
                         f"{100 * on['test_acc']:.1f} / {100 * off['test_acc']:.1f}"])
            gains.setdefault(size, []).append((on["val_acc"] - off["val_acc"], on["test_acc"] - off["test_acc"]))
            print(" | ".join(map(str, rows[-1])), flush=True)
    print(f"\n{args.preset}, {args.threads} threads; each pair: with the cap / without it")
    print(table(["px", "seed", "curvature", "head's rate", "epochs 1-2 loss", "validation %", "test %"], rows))
    for size, g in gains.items():
        print(f"{size} px: the cap's mean gain {100 * statistics.mean(v for v, _ in g):+.1f} validation and "
              f"{100 * statistics.mean(t for _, t in g):+.1f} test points over {len(g)} seeds")


if __name__ == "__main__":
    main()
