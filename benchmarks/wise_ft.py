"""WiSE-FT on the sample dataset: the alpha curve and the paper's claim, plus slider latency.

Claim checked (Wortsman et al. 2021): some alpha in (0, 1) has OOD accuracy (corruption suite)
at least that of both endpoints while in-distribution accuracy stays within 1 point of theta_1.
Latency: a cached slider value (lookup in the computed grid) and an uncached one (computed on
demand), and the full grid's wall time for the quick-demo preset.

    python benchmarks/wise_ft.py [--seeds 0 1 2] [--backbone resnet18] [--pretrained bundled]
        [--threads N] [--set section.field=value ...] [--tag NAME]

The run uses the dashboard's "WiSE-FT demo" preset (ResNet-18, 64 px, 20 epochs of batch 32 behind a
2-epoch linear probe, the Quick demo's recipe); its curve measures OOD accuracy on 64 corrupted images
per corruption. `--set` changes the recipe (for example `optim.lr=0.04`); `--tag` keeps those runs in
their own folders. In the same process the
grid is then recomputed on every corrupted validation image, for its time and for the claim at
full precision.
"""

from __future__ import annotations

import argparse
import json
import time

from common import WORK, mean_std, table

import torch

from engine.presets import wise_ft_demo
from engine.config import RunConfig, apply_overrides
from engine.checkpoints import load_checkpoint
from engine.methods.wise_ft import curve_sets, evaluate_alpha
from engine.runs import load_run
from engine.train import train


def claim(curve) -> list[dict]:
    """The alphas in (0, 1) where the paper's claim holds."""
    end0, end1 = curve[0], curve[-1]
    return [p for p in curve if 0 < p["alpha"] < 1 and p["ood_acc"] >= max(end0["ood_acc"], end1["ood_acc"]) - 1e-9
            and p["val_acc"] >= end1["val_acc"] - 0.01]


def margin(curve) -> str:
    """The best interior alpha within 1 validation point of theta_1: its OOD gain over the better end
    and its validation difference from theta_1, in points (negative gain: the claim fails)."""
    end0, end1 = curve[0], curve[-1]
    ok = [p for p in curve if 0 < p["alpha"] < 1 and p["val_acc"] >= end1["val_acc"] - 0.01]
    if not ok:
        return "no interior alpha within 1 validation point of theta_1"
    best = max(ok, key=lambda p: p["ood_acc"])
    return (f"best alpha {best['alpha']:g}: OOD {100 * (best['ood_acc'] - max(end0['ood_acc'], end1['ood_acc'])):+.1f} "
            f"points over the better end, validation {100 * (best['val_acc'] - end1['val_acc']):+.1f} from theta_1 "
            f"(theta_1 val {100 * end1['val_acc']:.1f}, OOD {100 * end1['ood_acc']:.1f})")


def full_grid(res, run_dir, cfg):
    """The same grid with the OOD accuracy on all corrupted validation images: (curve, seconds)."""
    ctx = res.context
    theta_0, _ = load_checkpoint(run_dir / "theta0.safetensors")
    theta_1 = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
    full_cfg = apply_overrides(cfg, ["wise_ft.ood_subset=0"])
    sets = curve_sets(full_cfg, ctx.data, ctx.eval_sets.ood_user)
    t0 = time.perf_counter()
    curve = [evaluate_alpha(ctx.model, theta_0, theta_1, float(a), sets, ctx.device, ctx.masks)
             for a in cfg.methods["wise_ft"].alphas]
    return curve, time.perf_counter() - t0, sets.ood_images


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--pretrained", default="bundled")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    ap.add_argument("--set", nargs="*", default=[], help="extra section.field=value overrides of the preset")
    ap.add_argument("--tag", default="", help="suffix of the run folders (runs/benchmarks/wise_ft<tag>_seed<N>)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.set:
        print("recipe changes:", " ".join(args.set), flush=True)
    claims, claims_full, rows_all = [], [], []
    for seed in args.seeds:
        run_dir = WORK / f"wise_ft{args.tag}_seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = apply_overrides(wise_ft_demo(RunConfig(seed=seed)), [f"backbone.name={args.backbone}",
                              f"backbone.pretrained={args.pretrained}", f"seed={seed}",
                              f"train.threads={torch.get_num_threads()}", *args.set])  # a fixed thread count
        res = train(cfg, run_dir=run_dir, work_dir=WORK / "data")
        s = res.summary
        (run_dir / "summary.json").write_text(json.dumps({"classes": s["classes"]}))
        curve = s["wise_curve"]
        inner = [p for p in curve if 0 < p["alpha"] < 1]
        ok = claim(curve)
        best = max(inner, key=lambda p: p["ood_acc"])
        claims.append(bool(ok))
        print(f"seed {seed}: grid of {len(curve)} alphas in {s['wise_curve_seconds']:.1f} s "
              f"({s['wise_curve_ood_images']} corrupted images per alpha); claim holds: {bool(ok)}"
              + (f" (alphas {', '.join(str(p['alpha']) for p in ok)})" if ok else ""), flush=True)
        print(f"  {margin(curve)}", flush=True)
        full, full_s, full_images = full_grid(res, run_dir, cfg)
        ok_full = claim(full)
        print(f"  full precision (all {full_images} "
              f"corrupted images per alpha): grid in {full_s:.1f} s, quick / full time "
              f"{s['wise_curve_seconds'] / full_s:.2f}; claim holds: {bool(ok_full)}"
              + (f" (alphas {', '.join(str(p['alpha']) for p in ok_full)})" if ok_full else ""), flush=True)
        print(f"  {margin(full)}", flush=True)
        claims_full.append(bool(ok_full))
        rows_all.append((seed, curve, best, s["wise_curve_seconds"], full))
        # slider latency: cached = lookup in the grid; uncached = computed on demand
        t0 = time.perf_counter()
        _ = min(curve, key=lambda p: abs(p["alpha"] - 0.35))
        cached_s = time.perf_counter() - t0
        load_run(run_dir, WORK / "data").wise_point(0.37)  # warm the run cache (first load reads data)
        t0 = time.perf_counter()
        load_run(run_dir, WORK / "data").wise_point(0.33)
        uncached_s = time.perf_counter() - t0
        print(f"  slider latency: cached {1000 * cached_s:.3f} ms, uncached {uncached_s:.2f} s", flush=True)

    print("\nCurve (mean over seeds), accuracy in %:")
    alphas = [p["alpha"] for p in rows_all[0][1]]
    rows = []
    for i, a in enumerate(alphas):
        rows.append([f"{a:.2f}", mean_std([r[1][i]["val_acc"] for r in rows_all]),
                     mean_std([r[1][i]["ood_acc"] for r in rows_all]), mean_std([r[4][i]["ood_acc"] for r in rows_all])])
    print(table(["alpha", "val acc", "OOD acc (64 per corruption)", "OOD acc (all)"], rows))
    print(f"\nclaim holds for {sum(claims)}/{len(claims)} seeds on the live curve's subset, "
          f"{sum(claims_full)}/{len(claims_full)} on all corrupted images; full grid time (quick demo): "
          f"{max(r[3] for r in rows_all):.1f} s max (target <= 30 s)")


if __name__ == "__main__":
    main()
