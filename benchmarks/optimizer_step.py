"""The SGD step alone: PyTorch's fused CPU kernel against the per-tensor step, with ResNet-18's weights
contiguous and channels_last (the layout of every bf16 run on the CPU, and of fp32 runs where it
measured faster).

Random gradients, momentum 0.9, weight decay 5e-4; milliseconds per step, the median of `--rounds`
rounds of 30 steps after 3 warm-up steps, the variants alternating round by round. `engine.optim.
build_optimizer` uses the fused kernel on the CPU only where the weights are contiguous.

    python benchmarks/optimizer_step.py [--threads 2] [--rounds 3]
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


def sgd(fmt: torch.memory_format, fused: bool):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).to(memory_format=fmt)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4, **({"fused": True} if fused else {}))
    for p in params:
        p.grad = torch.randn_like(p)
    for _ in range(3):
        opt.step()
    return opt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = {(layout, kind): sgd(fmt, kind == "fused")
                for layout, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last))
                for kind in ("fused", "per-tensor")}
    ms: dict = {k: [] for k in variants}
    for _ in range(args.rounds):
        for key, opt in variants.items():
            t0 = time.perf_counter()
            for _ in range(30):
                opt.step()
            ms[key].append(1000 * (time.perf_counter() - t0) / 30)
    print(f"{cpu_info()[0]}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.platform()}")
    print(table(["weights", "SGD step", "ms per step (median)", "rounds"],
                [[layout, kind, f"{statistics.median(v):.2f}", " / ".join(f"{x:.2f}" for x in v)]
                 for (layout, kind), v in ms.items()]))


if __name__ == "__main__":
    main()
