"""WiSE-FT's theta_0 under different linear-probe weight penalties (`wise_ft.probe_l2`).

The claim needs a starting model that is robust for its accuracy (the paper's zero-shot CLIP). This
builds theta_0 exactly as the WiSE-FT demo preset does (bundled trunk, batch-norm statistics of the
training images, a temperature-calibrated L-BFGS probe) for several penalties and prints its
validation accuracy, its OOD accuracy on every corrupted validation image at the curve's severity,
and their ratio; the fine-tuned end of the demo reads 0.78 (README, WiSE-FT). No fine-tuning: a
few seconds per seed.

    python benchmarks/wise_ft_probe.py [--seeds 0 1 2] [--l2 1e-4 1e-3 1e-2 3e-2 0.1 0.3] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform

import torch
from common import WORK, table

from engine.backbones import build_model
from engine.config import RunConfig, apply_overrides
from engine.devices import cpu_info
from engine.evaluate import evaluate
from engine.methods.wise_ft import calibrated_probe, curve_sets, head_features, recalibrate_bn
from engine.presets import wise_ft_demo
from engine.run_data import prepare_data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--l2", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    rows = []
    for seed in args.seeds:
        cfg = apply_overrides(wise_ft_demo(RunConfig(seed=seed)), ["wise_ft.ood_subset=0", "train.device=cpu"])
        data = prepare_data(cfg, WORK / "data")
        sets = curve_sets(cfg, data, None)  # the curve's corruptions, on all validation images
        torch.manual_seed(seed)
        model, _ = build_model(cfg.backbone.name, len(data.classes), cfg.backbone.pretrained)
        recalibrate_bn(model, data.train.images, cpu, cfg.eval.eval_batch_size)
        feats = head_features(model, data.train.images, cpu, cfg.eval.eval_batch_size)
        for l2 in args.l2:
            w, b, temperature = calibrated_probe(feats, data.train.labels, len(data.classes), l2,
                                                 cfg.methods["wise_ft"].probe_epochs, seed)
            with torch.no_grad():
                model.head.weight.copy_(w)
                model.head.bias.copy_(b)
            m = evaluate(model, sets, cpu, cfg.eval.eval_batch_size)
            rows.append([str(seed), f"{l2:g}", f"{temperature:.2f}", f"{100 * m['val_acc']:.1f}",
                         f"{100 * m['ood_acc']:.1f}", f"{m['ood_acc'] / max(m['val_acc'], 1e-9):.2f}"])
            print(" | ".join(rows[-1]), flush=True)
    print(f"\n{cpu_info()[0]}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.platform()}")
    print(table(["seed", "probe_l2", "temperature", "theta_0 val %", "theta_0 OOD %", "OOD / val"], rows))


if __name__ == "__main__":
    main()
