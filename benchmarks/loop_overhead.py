"""The engine's training loop against a bare PyTorch loop: same model, data, batch, augmentation.

Both run interleaved in this one process (engine epoch, bare epoch, engine epoch, ...) so that
machine noise hits both alike; the first epoch of each is warm-up and not timed. Prints the
ratio of images/s (engine / bare). Target: >= 0.95.

    python benchmarks/loop_overhead.py [--rounds 3] [--image-size 32] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.augment import augment_batch  # noqa: E402
from engine.backbones import build_model  # noqa: E402
from engine.config import RunConfig, apply_overrides  # noqa: E402
from engine.train import prepare_data, train  # noqa: E402


def bare_epoch(model, opt, images, labels, bs, gen) -> float:
    """The reference: the minimum a correct loop must do per step. Returns images/s."""
    model.train()
    order = torch.randperm(len(images), generator=gen)
    steps = len(images) // bs
    t0 = time.perf_counter()
    for i in range(steps):
        idx = order[i * bs:(i + 1) * bs]
        x = augment_batch(images[idx], gen)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * bs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data", default="assets/sample_textures.zip")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = apply_overrides(RunConfig(), [
        f"data.source={args.data}", f"data.image_size={args.image_size}", f"backbone.name={args.backbone}",
        "backbone.pretrained=none", "train.epochs=2", f"train.batch_size={args.batch_size}", "eval.ood=false",
        "optim.weight_decay=0", "train.device=cpu",
    ])
    data = prepare_data(cfg, Path("runs/benchmarks/data"))
    images, labels = data.train.images, data.train.labels
    model, _ = build_model(args.backbone, len(data.classes), "none")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    bare_epoch(model, opt, images, labels, args.batch_size, gen)  # warm-up
    engine_ips, bare_ips = [], []
    for r in range(args.rounds):
        s = train(cfg, data=data).summary
        engine_ips.append(s["history"][-1]["images_per_sec"])  # epoch 2: warm-up excluded
        bare_ips.append(bare_epoch(model, opt, images, labels, args.batch_size, gen))
        print(f"round {r + 1}: engine {engine_ips[-1]:.1f} img/s, bare {bare_ips[-1]:.1f} img/s", flush=True)
    ratio = statistics.median(engine_ips) / statistics.median(bare_ips)
    print(f"{args.backbone} {args.image_size}px batch {args.batch_size}, {len(images)} train images, "
          f"{torch.get_num_threads()} threads")
    print(f"loop_overhead ratio (engine / bare images/s, median of {args.rounds}): {ratio:.3f}  target >= 0.95")


if __name__ == "__main__":
    main()
