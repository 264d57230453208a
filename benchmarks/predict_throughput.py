"""Images/s of `engine.predict` against a bare batched forward pass of the same model, in one process.

The engine side is `predict_folder` on a zip of image files: safe extraction, scanning, decoding as
in training (threads, running ahead of the model), batched forward on the device, softmax, top-k,
the low-confidence checks (probability, the k-NN feature distance to the training images, the
flat-colour share) and the own-image lookups (same pixels, then a resized or re-saved copy), with the
stats of a run whose images are the zip's others, so that every predicted image is new to it and
every lookup runs in full; and one result row per image. A second engine row times `Predictor.predict` alone on the decoded tensors. The bare side
is `model(x)` under `torch.no_grad()` in batches of the same size over the same decoded tensors
(already in memory: decoding is not counted for it). Each round times the three back to back on
`--images` images (the order alternates between rounds), so the ratio of a round compares passes a
few seconds apart: a shared machine's speed drifts over minutes. The ratio reported is the median
of the per-round ratios. Target: engine / bare >= 0.8, on the same decoded tensors (the issue's
definition); the zip row shows what extraction and decoding add on top.

It also times one image at the run's size through `Predictor.predict` once loaded (the Try it page's
answer time): median over 50 calls.

    python benchmarks/predict_throughput.py [--data assets/sample_textures.zip] [--backbone resnet18]
        [--image-size 64] [--batch-size 64] [--images 256] [--rounds 9] [--device cpu|cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import shutil
import tempfile
import zipfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from common import ROOT, config, table

from engine.augment import to_float
from engine.backbones import build_model
from engine.data import decode_image, safe_extract_zip
from engine.devices import autocast_ctx
from engine.data import image_files
from engine.predict import Predictor, feature_stats, predict_folder


class _Sized(SimpleNamespace):
    """A split as `feature_stats` reads it: images, labels and a length."""

    def __init__(self, images: torch.Tensor):
        super().__init__(images=images, labels=torch.zeros(len(images), dtype=torch.long))

    def __len__(self) -> int:
        return len(self.images)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def bare(model, images: torch.Tensor, batch: int, device: torch.device, amp_dtype) -> float:
    """Seconds for a bare batched forward pass over uint8 `images` (moved per batch, as the engine does)."""
    sync(device)
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        with autocast_ctx(device, amp_dtype):
            out = model(to_float(images[i:i + batch].to(device, non_blocking=True)))
        out.float().cpu()  # the engine copies its answers to the host too
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "assets" / "sample_textures.zip"))
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=256, help="images per round (the first of the zip)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    cfg = config(f"backbone.name={args.backbone}", f"data.image_size={args.image_size}", f"train.device={args.device}")
    work = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    root = safe_extract_zip(args.data, work / "x")
    every, _ = image_files(root)
    items = every[::max(1, len(every) // args.images)][:args.images]  # every class, not the first few
    images = torch.stack([decode_image(p, args.image_size) for _, p in items])
    chosen = {rel for rel, _ in items}
    others = [p for rel, p in every if rel not in chosen]  # the run's images: the predicted ones are new to it
    if len(others) <= 64:  # 64 validation images for the bar and training images beside them
        raise SystemExit(f"{args.data} has {len(others)} images besides the {len(items)} predicted: the run here "
                         "needs more than 64 of its own (use fewer --images)")
    own = torch.stack([decode_image(p, args.image_size) for p in others])
    subset = work / "subset.zip"
    with zipfile.ZipFile(subset, "w") as zf:
        for rel, path in items:
            zf.write(path, rel)
    classes = sorted({rel.split("/")[-2] for rel, _ in items}) or ["a", "b"]
    torch.manual_seed(0)
    model, _ = build_model(args.backbone, len(classes), "none")
    p = Predictor(model, cfg, classes, "fine_tuned", None, device)
    # the checks as a run has them: the run's images (the zip's others) in the feature bank and the own-image
    # lookups, a bar; the predicted images are none of them, so every lookup runs in full (the copy search too)
    p.stats = feature_stats(p, SimpleNamespace(train=_Sized(own[64:]), val=_Sized(own[:64]), test=_Sized(own[:0]),
                                               classes=list(classes)))  # each image's class: the own-image labels
    n = len(images)

    # warm-up: allocator, cuDNN autotuning, thread pools
    bare(p.model, images[:args.batch_size * 2], args.batch_size, device, p.amp_dtype)
    p.predict(images[:args.batch_size * 2], batch_size=args.batch_size)

    rows = {"engine (zip -> rows)": [], "engine (tensors -> rows)": [], "bare forward": []}
    def engine_zip() -> float:
        t0 = time.perf_counter()
        result = predict_folder(p, subset, work, 3, args.batch_size)
        assert len(result.rows) == n
        return n / (time.perf_counter() - t0)

    def engine_tensors() -> float:
        sync(device)
        t0 = time.perf_counter()
        p.predict(images, 3, args.batch_size)
        sync(device)
        return n / (time.perf_counter() - t0)

    passes = {"engine (zip -> rows)": engine_zip, "engine (tensors -> rows)": engine_tensors,
              "bare forward": lambda: n / bare(p.model, images, args.batch_size, device, p.amp_dtype)}
    for r in range(args.rounds):
        for label in (list(passes) if r % 2 == 0 else list(reversed(passes))):
            rows[label].append(passes[label]())
    shutil.rmtree(work, ignore_errors=True)

    one = images[:1]
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        p.predict(one)
        times.append(time.perf_counter() - t0)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; {args.backbone} at {args.image_size} px; {n} images of {Path(args.data).name} per pass; "
          f"batch {args.batch_size}; {args.rounds} rounds")
    out = []
    for label, xs in rows.items():
        ratios = [x / b for x, b in zip(xs, rows["bare forward"])]
        out.append([label, f"{statistics.median(xs):.0f}", f"{statistics.median(ratios):.3f}",
                    f"{min(ratios):.3f}-{max(ratios):.3f}"])
    print(table(["path", "images/s (median)", "ratio to bare (median of rounds)", "ratio per round"], out))
    print(f"one {args.image_size} px image through Predictor.predict: median {1000 * statistics.median(times):.1f} ms "
          f"(p90 {1000 * sorted(times)[44]:.1f} ms)")
    for label in ("engine (tensors -> rows)", "engine (zip -> rows)"):
        ratio = statistics.median([x / b for x, b in zip(rows[label], rows["bare forward"])])
        print(f"RATIO {label} / bare forward = {ratio:.3f}  (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")


if __name__ == "__main__":
    main()
