"""WiSE-FT with and without re-estimating batch-norm statistics per alpha (`wise_ft.recalibrate_bn`).

BN running statistics are interpolated like the weights; re-estimating them on the training images
for every mixed model (as SWA does for averaged weights) is the option's alternative. This reads the
theta_0 and theta_1 that `benchmarks/wise_ft.py` saved (run it first, same --tag) and prints
validation and OOD accuracy (all corrupted validation images) at a few alphas both ways.

    python benchmarks/wise_ft_bn.py [--seeds 0 1 2] [--tag ""] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch
from common import WORK, table

from engine.backbones import build_model
from engine.checkpoints import load_checkpoint
from engine.config import RunConfig, apply_overrides
from engine.methods.wise_ft import curve_sets, evaluate_alpha
from engine.presets import wise_ft_demo
from engine.run_data import prepare_data

ALPHAS = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tag", default="")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for seed in args.seeds:
        run_dir = WORK / f"wise_ft{args.tag}_seed{seed}"
        cfg = apply_overrides(wise_ft_demo(RunConfig(seed=seed)), [f"seed={seed}", "wise_ft.ood_subset=0"])
        data = prepare_data(cfg, WORK / "data")
        model, _ = build_model(cfg.backbone.name, len(data.classes), "none")
        theta_0, _ = load_checkpoint(run_dir / "theta0.safetensors")
        theta_1, _ = load_checkpoint(run_dir / "last.safetensors")
        sets = curve_sets(cfg, data, None)
        rows = []
        for alpha in ALPHAS:
            kept = evaluate_alpha(model, theta_0, theta_1, alpha, sets, torch.device("cpu"))
            fresh = evaluate_alpha(model, theta_0, theta_1, alpha, sets, torch.device("cpu"), None, data.train.images)
            rows.append([f"{alpha:.2f}", f"{100 * kept['val_acc']:.1f}", f"{100 * fresh['val_acc']:.1f}",
                         f"{100 * kept['ood_acc']:.1f}", f"{100 * fresh['ood_acc']:.1f}"])
        print(f"seed {seed} ({run_dir.name}), accuracy in %:")
        print(table(["alpha", "val, BN interpolated", "val, BN re-estimated", "OOD, BN interpolated",
                     "OOD, BN re-estimated"], rows), flush=True)


if __name__ == "__main__":
    main()
