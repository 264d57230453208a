"""The fastest a training loop could go on this CPU: a bare ResNet-18 training step, nothing else.

Each variant (fp32; bf16 autocast + channels_last) has its own model and SGD optimiser, fed one
fixed random batch, so no data handling, evaluation or bookkeeping is timed: forward, backward and
the optimiser step alone. Rounds alternate the variants (a drifting machine slows both alike); each
round times `--steps` steps after 4 warm-up steps per variant. Prints images per second per round
and the bf16 / fp32 ratio; README (Benchmarks) compares it with the peers' loops to bound what any
loop can gain from bf16 at equal epochs.

    python benchmarks/bare_step.py [--image-size 64] [--batch-size 32] [--threads 2] [--rounds 3] [--steps 25]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torchvision
from common import table

from engine.devices import cpu_info

VARIANTS = {"fp32": (None, False), "bf16 + channels_last": (torch.bfloat16, True)}


def make_step(dtype, channels_last: bool, size: int, batch: int):
    """One variant's step function over a fixed batch (seeded: every variant starts from the same weights)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = torchvision.models.resnet18(num_classes=10).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), generator=g)

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = {name: make_step(dtype, cl, args.image_size, args.batch_size) for name, (dtype, cl) in VARIANTS.items()}
    for step in steps.values():
        for _ in range(4):
            step()
    ips: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            ips[name].append(args.batch_size * args.steps / (time.perf_counter() - t0))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f} img/s" for n, v in ips.items()), flush=True)
    fp32, bf16 = (statistics.median(ips[n]) for n in VARIANTS)
    print(f"\n{cpu_info()[0]}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.platform()}; "
          f"ResNet-18, {args.image_size} px, batch {args.batch_size}, {args.rounds} rounds of {args.steps} steps")
    print(table(["variant", "img/s (median of rounds)", "rounds", "vs fp32"],
                [[n, f"{statistics.median(v):.0f}", " / ".join(f"{x:.0f}" for x in v),
                  f"{statistics.median(v) / fp32:.2f}"] for n, v in ips.items()]))
    print(f"bf16 + channels_last / fp32: {bf16 / fp32:.2f}")


if __name__ == "__main__":
    main()
