"""AdaFilter against standard fine-tuning on the sample dataset: same budget, several seeds.

Both methods get the identical run config (backbone, pretrained weights, data split, epochs, lr,
batch, augmentation, schedule); the only difference is `adafilter.enabled`. Per seed the two
runs are interleaved so that machine noise hits both alike. Prints markdown tables: accuracy
(mean ± std over seeds, and the paired per-seed difference), gate statistics, and the cost ratio
(measured training images/s, trainable parameters, stored values including the frozen copies).

Claim checked (Guo et al., AAAI 2020): AdaFilter at least matches standard fine-tuning (the
paper reports 2.54 points lower error on average over 7 datasets, ResNet-50, ImageNet weights).

    python benchmarks/adafilter.py                          # default: 3 seeds, 5 epochs, 64 px (CPU, minutes)
    python benchmarks/adafilter.py --epochs 30 --seeds 0 1 2 3 4 --image-size 96 --ood   # longer, on a GPU
    python benchmarks/adafilter.py --pretrained none --epochs 1 --image-size 32 --seeds 0   # smoke test
    python benchmarks/adafilter.py --pool w1/adafilter.json w2/adafilter.json   # runs side by side (STUDIO_BENCH_WORK=w1 ...), pooled

The settings are the dashboard's defaults (SGD, lr 0.01, momentum 0.9, cosine, batch 64) and
AdaFilter's defaults; they were not tuned for either method.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from common import WORK, config, mean_std, table

from engine.claims import adafilter_claim
from engine.config import apply_overrides, with_section
from engine.run_data import prepare_data
from engine.train import train


def both_rules(result, data) -> dict[str, dict[str, float]]:
    """The trained AdaFilter model's validation and test accuracy under each test-time gate rule
    ("hard": the paper's binary gates; "expected": the copies mixed by the gate probability), at the
    run's own precision (engine.evaluate.predict): the same model evaluated both ways. Fractions."""
    from engine.evaluate import predict

    ctx = result.context
    gates = next(m for m in ctx.model.modules() if hasattr(m, "eval_gates"))
    before, out = gates.eval_gates, {}
    with torch.no_grad():
        for rule in ("hard", "expected"):
            gates.eval_gates = rule
            out[rule] = {split: predict(ctx.model, getattr(data, split).images, getattr(data, split).labels,
                                        ctx.device, amp_dtype=ctx.amp_dtype).acc for split in ("val", "test")}
    gates.eval_gates = before
    return out


def run(cfg, data) -> dict:
    result = train(cfg, data=data, work_dir=WORK / "data")
    s = result.summary
    out = {k: s.get(k) for k in ("val_acc", "test_acc", "ood_acc", "train_images_per_sec", "num_params",
                                 "wall_time_s", "device")}
    if "adafilter" in s:
        out.update(gate_overall=s["adafilter_gate_mean_overall"], gate_per_layer=s["adafilter_gate_mean"],
                   gate_by_class=s["adafilter_gate_by_class"], cost=s["adafilter"],
                   gate_history=[h["adafilter_gate_mean"] for h in s["history"]],
                   gate_grad_history=s["adafilter_gate_grad_history"], gate_prob=s["adafilter_gate_prob_mean"])
        out["rules"] = both_rules(result, data)
    out["summary"] = {k: s.get(k) for k in ("test_acc", "val_acc", "adafilter_gate_mean", "adafilter_gate_by_class")}
    return out


def interval(d: list[float]) -> str:
    """"; standard error ..., 95% interval ... (Student's t); k of n seeds at or above -1 point" for
    paired differences `d` (fractions; three or more), else "": how far a mean is from the seeds'
    luck (on the sample one test image is 0.8 points)."""
    if len(d) < 3:
        return ""
    from scipy import stats

    mean, se = statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=mean, scale=se) if se > 0 else (mean, mean)
    return (f"; standard error {100 * se:.1f}, 95% interval {100 * lo:+.1f} to {100 * hi:+.1f} (Student's t); "
            f"{sum(x >= -0.01 for x in d)} of {len(d)} seeds at or above -1 point")


def fmt_points(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{100 * xs[0]:+.1f}"
    return f"{100 * statistics.mean(xs):+.1f} ± {100 * statistics.stdev(xs):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--pretrained", default="bundled", help="bundled | imagenet | none")
    ap.add_argument("--data", default="assets/sample_textures.zip")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    ap.add_argument("--ood", action="store_true", help="also measure accuracy on the corruption suite (slower)")
    ap.add_argument("--set", nargs="*", default=[], help="extra section.field=value overrides for both runs")
    ap.add_argument("--adafilter-set", nargs="*", default=[],
                    help="adafilter.field=value overrides for the AdaFilter run only (e.g. adafilter.gated_lr_mult=2)")
    ap.add_argument("--pool", nargs="+", metavar="JSON",
                    help="train nothing: report the seeds of these adafilter.json files together")
    args = ap.parse_args()
    if args.pool:
        return pool(args.pool)

    t_all = time.perf_counter()
    results: dict[str, list[dict]] = {"standard": [], "adafilter": []}
    for seed in args.seeds:
        base = config(f"data.source={args.data}", f"data.image_size={args.image_size}",
                      f"backbone.name={args.backbone}", f"backbone.pretrained={args.pretrained}",
                      f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", f"optim.lr={args.lr}",
                      f"train.threads={args.threads}", f"eval.ood={args.ood}", f"seed={seed}", *args.set)
        data = prepare_data(base, WORK / "data")  # one split per seed, shared by both methods
        ada_cfg = apply_overrides(with_section(base, "adafilter", enabled=True), args.adafilter_set)
        for method, cfg in (("standard", base), ("adafilter", ada_cfg)):
            r = run(cfg, data)
            results[method].append(r)
            gate = f", fine-tuned filters {100 * r['gate_overall']:.1f}%" if "gate_overall" in r else ""
            print(f"seed {seed} {method:9s}: val {100 * r['val_acc']:.1f}, test {100 * r['test_acc']:.1f}"
                  f"{gate}, {r['train_images_per_sec']:.0f} img/s, {r['wall_time_s']:.0f} s", flush=True)
        ada = results["adafilter"][-1]
        grads = [sum(g.values()) / len(g) for g in ada["gate_grad_history"]]
        print(f"  gate gradient norm per epoch (mean over layers): {', '.join(f'{g:.1e}' for g in grads)}")
        print("  the same model under each test-time gate rule: " + "; ".join(
            f"{rule} val {100 * a['val']:.1f} test {100 * a['test']:.1f}" for rule, a in ada["rules"].items()))
        print("  " + adafilter_claim(ada["summary"], results["standard"][-1]["summary"]).text, flush=True)
        WORK.mkdir(parents=True, exist_ok=True)  # after every seed: a process stopped early keeps its seeds
        (WORK / "adafilter.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    report(args, results)
    print(f"Total benchmark time: {time.perf_counter() - t_all:.0f} s")


def pool(paths: list[str]) -> None:
    """The tables of several runs' adafilter.json files (same settings, different seeds: for example
    processes run side by side, each with its own STUDIO_BENCH_WORK) as one run over all their seeds."""
    runs = [json.loads(open(p).read()) for p in paths]
    args = argparse.Namespace(**runs[0]["args"])
    results = {m: [r for run in runs for r in run["results"][m][:len(run["results"]["adafilter"])]]
               for m in ("standard", "adafilter")}
    args.seeds = [s for run in runs for s in run["args"]["seeds"][:len(run["results"]["adafilter"])]]
    devices = sorted({str(r.get("device")) for m in results.values() for r in m})
    print(f"Pooled {len(paths)} files: {len(args.seeds)} seeds, trained on {', '.join(devices)}")
    report(args, results)


def report(args, results: dict[str, list[dict]]) -> None:
    """Print the tables and the claim for `results` (per method, one dict per seed, as run() returns)."""
    std, ada = results["standard"], results["adafilter"]
    print(f"\n{args.backbone}, pretrained={args.pretrained}, {args.data}, {args.image_size} px, {args.epochs} epochs, "
          f"batch {args.batch_size}, lr {args.lr}, seeds {args.seeds}; accuracy in %\n")
    cols = ["val_acc", "test_acc"] + (["ood_acc"] if args.ood else [])
    header = ["method", "val acc", "test acc"] + (["OOD acc (corruptions)"] if args.ood else []) + \
             ["train img/s", "trainable params", "stored values"]
    rows = []
    for name, rs in (("standard fine-tuning", std), ("AdaFilter", ada)):
        stored = [r["num_params"] + (r["cost"]["frozen_filter_values"] if "cost" in r else 0) for r in rs]
        rows.append([name, *[mean_std([r[c] for r in rs]) for c in cols],
                     f"{statistics.mean(r['train_images_per_sec'] for r in rs):.0f}",
                     f"{rs[0]['num_params'] / 1e6:.2f} M", f"{stored[0] / 1e6:.2f} M"])
    print(table(header, rows))
    diffs = {c: [a[c] - s[c] for a, s in zip(ada, std)] for c in cols}
    print("\nAdaFilter minus standard, paired by seed (points): "
          + ", ".join(f"{c.replace('_acc', '')} {fmt_points(d)}" for c, d in diffs.items()))

    ips_ratio = statistics.mean(s["train_images_per_sec"] for s in std) / statistics.mean(
        a["train_images_per_sec"] for a in ada)
    param_ratio = ada[0]["num_params"] / std[0]["num_params"]
    stored_ratio = (ada[0]["num_params"] + ada[0]["cost"]["frozen_filter_values"]) / std[0]["num_params"]
    print(f"\nCompute cost: AdaFilter trains {ips_ratio:.2f}x slower per image (measured images/s, standard / "
          f"AdaFilter); trainable parameters x{param_ratio:.2f}; stored values x{stored_ratio:.2f} "
          f"(frozen pretrained copies + gate network, {ada[0]['cost']['gate_network_params'] / 1e6:.2f} M "
          f"gate-network parameters).")

    layers = list(ada[0]["gate_per_layer"])
    per_layer = {name: [r["gate_per_layer"][name] for r in ada] for name in layers}
    print("\nGates (validation split, eval mode): fraction of filters using the fine-tuned copy")
    g_rows = [["overall (filter-weighted)", mean_std([r["gate_overall"] for r in ada])]]
    lo = min(layers, key=lambda n: statistics.mean(per_layer[n]))
    hi = max(layers, key=lambda n: statistics.mean(per_layer[n]))
    g_rows += [[f"lowest layer ({lo})", mean_std(per_layer[lo])], [f"highest layer ({hi})", mean_std(per_layer[hi])]]
    by_class = [{c: sum(v.values()) / len(v) for c, v in r["gate_by_class"].items()} for r in ada]
    spread = [max(d.values()) - min(d.values()) for d in by_class]
    g_rows.append(["spread across classes (max - min class mean)", mean_std(spread)])
    layer_spread = [max(r["gate_per_layer"].values()) - min(r["gate_per_layer"].values()) for r in ada]
    g_rows.append(["spread across layers (max - min layer)", mean_std(layer_spread)])
    prob_spread = [max(r["gate_prob"].values()) - min(r["gate_prob"].values()) for r in ada]
    g_rows.append(["spread of the noise-free gate probability across layers", mean_std(prob_spread)])
    moved = [max(r["gate_history"]) - min(r["gate_history"]) for r in ada]
    g_rows.append(["change of the overall mean across epochs (max - min)", mean_std(moved)])
    print(table(["gate statistic", "% (mean ± std over seeds)"], g_rows))

    for rule in ("hard", "expected"):
        d = [a["rules"][rule]["test"] - s["test_acc"] for a, s in zip(ada, std)]
        print(f"Test-time gates '{rule}' on the same models: test minus standard, per seed "
              f"{' / '.join(f'{100 * x:+.1f}' for x in d)} (mean {100 * statistics.mean(d):+.1f} points)"
              f"{interval(d)}")
    verdict = statistics.mean(diffs["test_acc"]) >= -0.01 and statistics.mean(layer_spread) >= 0.10
    print(f"\nClaim (issue 21's target: test accuracy >= standard fine-tuning's - 1 point and per-layer spread of "
          f"the fine-tuned share >= 10 points, means over {len(args.seeds)} seeds): "
          f"{'shown' if verdict else 'not shown'} here.")


if __name__ == "__main__":
    main()
