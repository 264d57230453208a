"""The same short run twice in one process: how much faster is the second (warm) one?

Prints each epoch's train images/s (`images_per_sec`) and each run's wall time. The peers benchmark
saw the studio's first run in a process train far slower than its second; this isolates the part of
that which comes from the process (kernel and allocator warm-up), not the machine.

    python benchmarks/digits.py && python benchmarks/warm_run.py [--data runs/benchmarks/digits.zip]
        [--image-size 32] [--epochs 3] [--runs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, config

from engine.contract import Reporter
from engine.train import train


class EpochSpeed(Reporter):
    def __init__(self):
        self.ips: list[float] = []

    def epoch_metrics(self, epoch, step, values):
        if "images_per_sec" in values:
            self.ips.append(values["images_per_sec"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT / "runs" / "benchmarks" / "digits.zip")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "run").mkdir()
            cfg = config(f"data.source={args.data}", f"data.image_size={args.image_size}", f"train.epochs={args.epochs}",
                         "train.batch_size=32", "optim.lr=0.01", "eval.ood=false", "train.device=cpu")
            rep, t0 = EpochSpeed(), time.perf_counter()
            s = train(cfg, rep, run_dir=Path(tmp) / "run", work_dir=Path(tmp) / "work").summary
            print(f"run {i + 1}: {time.perf_counter() - t0:.1f} s, {s.get('precision')}, img/s per epoch "
                  f"{' / '.join(f'{v:.0f}' for v in rep.ips)}", flush=True)


if __name__ == "__main__":
    main()
