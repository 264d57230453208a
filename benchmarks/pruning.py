"""Pruning benchmark: accuracy at 0/50/70/90 percent sparsity, and what structured pruning buys on a CPU.

Unstructured rows: the same fine-tune (backbone, epochs, lr, seed, data split) with gradual magnitude
pruning to each target (cubic schedule, per layer; 0 = the dense fine-tune). Structured row: the
dense fine-tuned model with `--channel-fraction` of every layer's channels removed (Torch-Pruning),
fine-tuned for `--structured-epochs`, then measured against the dense model in this one process:
parameters, multiply-accumulates (forward hooks), safetensors size, and CPU latency at batch 1 and
32 (interleaved rounds, median of the per-round ratios). Targets (issue 21, engine.claims): 70 percent
sparsity within 2 test points of dense, and the channel-pruned model (about half the FLOPs) within
3 validation points of the model it was cut from; about half the FLOPs at least 1.5x faster on the CPU.

    python benchmarks/pruning.py                                   # the default, a few minutes on 2 cores
    python benchmarks/pruning.py --epochs 15 --seeds 0,1,2         # longer, averaged over seeds
    python benchmarks/pruning.py --auto-trials 8                   # adds a row found by the Bayesian search
    python benchmarks/pruning.py --pretrained none --epochs 2 --image-size 32   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backbones import BACKBONES  # noqa: E402
from engine.claims import PRUNING_MAX_DROP, STRUCTURED_MAX_DROP, pruning_claim  # noqa: E402
from engine.config import RunConfig, apply_overrides  # noqa: E402
from engine.structured import latency_pair  # noqa: E402
from engine.run_data import prepare_data  # noqa: E402
from engine.train import train  # noqa: E402


def base_config(args, seed: int) -> RunConfig:
    return apply_overrides(RunConfig(), [
        f"data.source={args.data}", f"data.image_size={args.image_size}", f"backbone.name={args.backbone}",
        f"backbone.pretrained={args.pretrained}", f"backbone.checkpoint={args.checkpoint}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
        f"optim.lr={args.lr}", "optim.schedule=cosine", "eval.ood=false", f"train.device={args.device}",
        f"train.threads={args.threads}", f"seed={seed}", *args.set,
    ])


def run(cfg: RunConfig, data, *overrides: str, latency: tuple[int, int] | None = None) -> dict:
    """One fine-tune; with `latency` = (threads, rounds) the structured pair is timed again, longer."""
    cfg = apply_overrides(cfg, list(overrides))
    t0 = time.perf_counter()
    result = train(cfg, data=data)
    seconds = time.perf_counter() - t0
    s = result.summary
    structured = s.get("structured")
    if structured and latency:
        threads, rounds = latency
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        ctx = result.context
        structured["latency_ms"] = latency_pair(ctx.model, ctx.artifacts["structured_model"], cfg.data.image_size, rounds=rounds)
        structured["latency_threads"] = threads
        torch.set_num_threads(before)
    return {"val_acc": s["val_acc"], "test_acc": s["test_acc"], "sparsity": s.get("sparsity", 0.0),
            "seconds": seconds, "structured": structured, "search": s.get("pruning_search"), "summary": s}


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else float("nan")


def seed_claims(seed: int, rows: dict[str, list[dict]], targets: list[float]) -> list[tuple[int, str, object]]:
    """This seed's claim lines, by the function the Results page uses: each sparse run against the
    dense run of the same seed, and the channel-pruned model against the model it was cut from."""
    if 0.0 not in targets:
        return []
    dense = rows[f"{0:.0%}"][-1]["summary"]
    out = [(seed, f"{t:.0%} sparsity", pruning_claim(rows[f"{t:.0%}"][-1]["summary"], dense)) for t in targets if t > 0]
    if dense.get("structured"):
        out.append((seed, "structured", pruning_claim({"structured": dense["structured"]})))
    return out


def print_claims(claims: list[tuple[int, str, object]]) -> None:
    """Each run's claim line, then per kind of run on how many seeds the claim was shown."""
    if not claims:
        return
    print(f"\nClaim lines (the Results page's function, against this benchmark's dense run: pruning on at 0%; "
          f"issue 21's targets: unstructured within {100 * PRUNING_MAX_DROP:.0f} test points of dense, structured "
          f"within {100 * STRUCTURED_MAX_DROP:.0f} test points of the model it was cut from, validation points where "
          "a split has no test images):")
    for seed, what, claim in claims:
        print(f"  seed {seed}, {what}: {claim.text}")
    for what in dict.fromkeys(w for _, w, _ in claims):
        verdicts = [c.shown for _, w, c in claims if w == what]
        undecided = sum(v is None for v in verdicts)
        print(f"Claim ({what}): shown on {sum(v is True for v in verdicts)} of {len(verdicts)} seed"
              f"{'s' * (len(verdicts) != 1)}" + (f" ({undecided} undecided: a number was missing)" if undecided else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="assets/sample_textures.zip")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--pretrained", default="bundled", help="bundled | imagenet | none | checkpoint")
    ap.add_argument("--checkpoint", default="", help="weights file for --pretrained checkpoint")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--sparsities", default="0,0.5,0.7,0.9")
    ap.add_argument("--scope", default="layer", choices=["layer", "global"])
    ap.add_argument("--end-fraction", type=float, default=0.75,
                    help="share of the run at which the cubic ramp reaches the target (the rest recovers)")
    ap.add_argument("--channel-fraction", type=float, default=0.3)
    ap.add_argument("--structured-epochs", type=int, default=2)
    ap.add_argument("--auto-trials", type=int, default=0, help="add a row found by the Bayesian search (0 = off)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", nargs="*", default=[], help="extra section.field=value overrides for every run "
                                                          "(e.g. optim.linear_probe_epochs=2)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training")
    ap.add_argument("--latency-threads", type=int, default=1, help="torch threads for the CPU latency")
    ap.add_argument("--latency-rounds", type=int, default=7)
    ap.add_argument("--device", default="cpu", help="training device; latency is always measured on the CPU")
    ap.add_argument("--json", default="", help="also write the raw results here")
    args = ap.parse_args()
    if args.pretrained == "bundled" and not BACKBONES[args.backbone].has_bundled():
        sys.exit(f"No bundled weights for {args.backbone} yet: pass --pretrained none (or imagenet).")
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = [float(s) for s in args.sparsities.split(",")]
    t_start = time.perf_counter()

    rows: dict[str, list[dict]] = {}
    structured: list[dict] = []
    claims: list[tuple[int, str, object]] = []  # (seed, what, engine.claims.Claim): the Results page's line
    for seed in seeds:
        cfg = base_config(args, seed)
        data = prepare_data(cfg, Path("runs/benchmarks/data"))
        for target in targets:
            label = f"{target:.0%}"
            overrides = ["pruning.enabled=true", f"pruning.target_sparsity={target}", f"pruning.scope={args.scope}",
                         f"pruning.end_fraction={args.end_fraction}"]
            if target == 0:  # the dense fine-tune; the structured model is cut from it at the end
                overrides += ["pruning.structured=true", f"pruning.channel_fraction={args.channel_fraction}",
                              f"pruning.structured_epochs={args.structured_epochs}"]
            r = run(cfg, data, *overrides, latency=(args.latency_threads, args.latency_rounds))
            rows.setdefault(label, []).append(r)
            if r["structured"]:
                structured.append(r["structured"])
            print(f"seed {seed} sparsity {label}: val {r['val_acc']:.3f} test {r['test_acc']:.3f} "
                  f"({r['sparsity']:.3f} zero, {r['seconds']:.0f} s)", file=sys.stderr, flush=True)
        claims += seed_claims(seed, rows, targets)
        if args.auto_trials:
            r = run(cfg, data, "pruning.enabled=true", "pruning.auto=true", f"pruning.trials={args.auto_trials}")
            rows.setdefault(f"auto ({args.auto_trials} trials)", []).append(r)
            print(f"seed {seed} auto: val {r['val_acc']:.3f} test {r['test_acc']:.3f} ({r['sparsity']:.3f} zero, "
                  f"{r['seconds']:.0f} s) fractions {r['search']['best_fractions']}", file=sys.stderr, flush=True)

    dense_test = mean([r["test_acc"] for r in rows[f"{0:.0%}"]]) if 0.0 in targets else float("nan")
    dense_val = mean([r["val_acc"] for r in rows[f"{0:.0%}"]]) if 0.0 in targets else float("nan")
    print(f"\n{args.backbone} ({args.pretrained}), {args.image_size} px, {args.epochs} epochs, lr {args.lr}, "
          f"batch {args.batch_size}, {args.scope} scope, cubic schedule, seeds {args.seeds}; "
          f"{len(data.train)} train / {len(data.val)} val / {len(data.test)} test images\n")
    print("| target sparsity | measured sparsity | val acc | test acc | test vs dense (points) | val vs dense (points) |")
    print("|---|---|---|---|---|---|")
    for label, rs in rows.items():
        sp, va, te = mean([r["sparsity"] for r in rs]), mean([r["val_acc"] for r in rs]), mean([r["test_acc"] for r in rs])
        print(f"| {label} | {sp:.1%} | {va:.1%} | {te:.1%} | {100 * (te - dense_test):+.1f} | {100 * (va - dense_val):+.1f} |")
    if structured:
        agg = lambda f: mean([f(x) for x in structured])  # noqa: E731
        b1 = lambda x: x["latency_ms"]["batch_1"]  # noqa: E731
        b32 = lambda x: x["latency_ms"]["batch_32"]  # noqa: E731
        print(f"\nStructured: {args.channel_fraction:.0%} of channels removed per layer (L1, Torch-Pruning), "
              f"then {args.structured_epochs} fine-tune epochs; CPU latency with {args.latency_threads} "
              f"thread(s), {args.image_size} px, {args.latency_rounds} interleaved rounds (speedup: median of per-round ratios; times: best round)\n")
        print("| | dense | structured | ratio |")
        print("|---|---|---|---|")
        pb, pa = agg(lambda x: x["params_before"]), agg(lambda x: x["params_after"])
        mb, ma = agg(lambda x: x["macs_before"]), agg(lambda x: x["macs_after"])
        fb, fa = agg(lambda x: x["file_bytes_before"]), agg(lambda x: x["file_bytes_after"])
        print(f"| parameters | {pb / 1e6:.2f} M | {pa / 1e6:.2f} M | {pa / pb:.2f} |")
        print(f"| MACs per image | {mb / 1e6:.1f} M | {ma / 1e6:.1f} M | {ma / mb:.2f} |")
        print(f"| file (safetensors) | {fb / 2**20:.1f} MiB | {fa / 2**20:.1f} MiB | {fa / fb:.2f} |")
        for name, f in (("batch 1", b1), ("batch 32", b32)):
            before, after = agg(lambda x: f(x)["before_ms"]), agg(lambda x: f(x)["after_ms"])
            print(f"| CPU latency, {name} | {before:.1f} ms | {after:.1f} ms | **{agg(lambda x: f(x)['speedup']):.2f}x faster** |")
        print(f"| val acc (after shrinking, before fine-tune) | {agg(lambda x: x['val_acc_before']):.1%} | "
              f"{agg(lambda x: x['val_acc_shrunk']):.1%} | |")
        print(f"| val acc | {agg(lambda x: x['val_acc_before']):.1%} | {agg(lambda x: x['val_acc']):.1%} | |")
        print(f"| test acc | {dense_test:.1%} | {agg(lambda x: x['test_acc']):.1%} | |")
    print_claims(claims)
    print(f"\nTotal time: {time.perf_counter() - t_start:.0f} s (torch {torch.__version__}, {args.threads} threads)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "structured": structured},
                                              indent=2, default=str))


if __name__ == "__main__":
    main()
