"""Forward-pass images/s of a model answering images (no gradients) in the default NCHW layout and in
channels_last, in fp32 and in bf16 autocast, in one process: the layout `engine.predict.Predictor`
answers in (engine.devices.inference_channels_last).

The four variants alternate within each round, so a busy machine slows all alike; each cell is the
median over the rounds after a warm-up round. The input stays NCHW, as the predictor gets it; a
channels_last model turns its first convolution's output channels_last. bf16 rows are skipped on a
CPU without bfloat16 instructions (autocast there emulates it).

    python benchmarks/inference_layout.py [--backbone resnet18] [--sizes 32 64 224] [--rounds 9]
        [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import table

from engine.backbones import build_model
from engine.devices import autocast_ctx, cpu_has_bf16, cpu_info


@torch.no_grad()
def images_per_s(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> float:
    with autocast_ctx(torch.device("cpu"), dtype):
        t0 = time.perf_counter()
        model(x).float()
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = build_model(args.backbone, 10, "none")
    model.eval()
    dtypes = {"fp32": None, **({"bf16": torch.bfloat16} if cpu_has_bf16() else {})}
    rows = []
    for size in args.sizes:
        x = torch.rand(64 if size <= 96 else 16, 3, size, size)
        got: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds + 1):
            for dname, dtype in dtypes.items():
                for layout, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
                    model.to(memory_format=fmt)
                    ips = images_per_s(model, x, dtype)
                    if r:
                        got.setdefault((dname, layout), []).append(ips)
        for dname in dtypes:
            nchw, cl = (statistics.median(got[(dname, k)]) for k in ("NCHW", "channels_last"))
            rows.append([f"{size}", dname, f"{len(x)}", f"{nchw:.0f}", f"{cl:.0f}", f"{cl / nchw:.2f}"])
    print(f"{cpu_info()[0]}, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.backbone}, "
          f"{args.rounds} rounds, median images/s of a forward pass")
    print(table(["px", "precision", "batch", "NCHW img/s", "channels_last img/s", "channels_last / NCHW"], rows))
    worst = min(float(r[-1]) for r in rows)
    print(f"RATIO channels_last / NCHW, lowest of the rows = {worst:.2f}")


if __name__ == "__main__":
    main()
