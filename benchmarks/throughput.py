"""Images/s of the engine's training loop against a bare reference loop with identical settings.

Same model, same synthetic data resident on the device, same batch, same batched augmentation,
same precision (bf16 autocast + channels_last on CUDA, fp32 on the CPU); interleaved rounds in
one process; warm-up epochs excluded. Target ratio (engine / bare) >= 0.95. Runs on the CPU
always and on the GPU when there is one.

    python benchmarks/throughput.py [--backbones resnet18 resnet50] [--image-size 224] [--images 128]
        [--devices cpu cuda] [--gpu-images 4096] [--gpu-batch-size 256]

On the GPU the batch and the epoch are larger (a CPU-sized epoch of four steps would time
launch latency, not training); both loops then see exactly the same settings.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import config, table

from engine.augment import augment_batch
from engine.backbones import build_model
from engine.data import DataReport, DataSplits, ImageSet
from engine.evaluate import autocast_ctx
from engine.train import Reporter, pick_amp, train


def synthetic_splits(n: int, size: int, classes: int = 10) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    names = [f"c{i}" for i in range(classes)]

    def split(m):
        return ImageSet(torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8, generator=g),
                        torch.arange(m) % classes, names)

    report = DataReport("synthetic", names, {c: n // classes for c in names}, [], {}, size)
    return DataSplits(split(n), split(classes * 2), split(0), names, report)


def bare_epoch(model, opt, images, labels, bs, gen, device, amp_dtype, cpu_clock: list | None = None) -> float:
    """Wall-clock images/s of one epoch; with `cpu_clock`, also appends the process CPU time after
    every step (the CPU rows' steadier measure: time this process was not running is left out)."""
    model.train()
    order = torch.randperm(len(images), device=gen.device, generator=gen)
    steps = len(images) // bs
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        idx = order[i * bs:(i + 1) * bs]
        x = augment_batch(images[idx], gen)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_ctx(device, amp_dtype):
            loss = F.cross_entropy(model(x).float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cpu_clock is not None:
            cpu_clock.append(time.process_time())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


class StepClock(Reporter):
    """Process CPU time after every training step of the engine's loop (it reports each step on the CPU)."""

    def __init__(self):
        self.stamps: dict[int, list[float]] = {}

    def progress(self, **fields) -> None:
        if fields.get("phase") == "training":
            self.stamps.setdefault(fields["epoch"], []).append(time.process_time())


def cpu_rate(stamps: list[float], bs: int) -> float:
    """Images per CPU-second over steps 2..N (step 1 of an epoch has no stamp before it)."""
    return (len(stamps) - 1) * bs / (stamps[-1] - stamps[0])


def measure(backbone: str, device: torch.device, args) -> tuple[float, float, float | None, float | None]:
    gpu = device.type == "cuda"
    n_images, bs = (args.gpu_images, args.gpu_batch_size) if gpu else (args.images, args.batch_size)
    data = synthetic_splits(n_images, args.image_size)
    cfg = config(f"backbone.name={backbone}", "backbone.pretrained=none", f"data.image_size={args.image_size}",
                 "train.epochs=2", f"train.batch_size={bs}", "eval.ood=false",
                 f"train.device={device.type}", "optim.weight_decay=0", f"train.compile={str(args.compile).lower()}")
    amp = pick_amp("auto", device)
    model, _ = build_model(backbone, len(data.classes), "none")
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if args.compile:
        model = torch.compile(model)
    imgs, labels = data.train.images.to(device), data.train.labels.to(device)
    gen = torch.Generator(device=device).manual_seed(0)  # the engine also draws augmentation on the device
    bare_epoch(model, opt, imgs, labels, bs, gen, device, amp)  # warm-up
    eng, bare, eng_cpu, bare_cpu = [], [], [], []

    def run_bare():
        stamps = [] if not gpu else None
        bare.append(bare_epoch(model, opt, imgs, labels, bs, gen, device, amp, stamps))
        if stamps:
            bare_cpu.append(cpu_rate(stamps, bs))

    for r in range(args.rounds):  # the order alternates, so a drift in machine speed favours neither loop
        first_engine = r % 2 == 0
        if not first_engine:
            run_bare()
        clock = StepClock()
        eng.append(train(cfg, clock, data=data).summary["history"][-1]["images_per_sec"])
        if not gpu:
            eng_cpu.append(cpu_rate(clock.stamps[2], bs))
        if first_engine:
            run_bare()
        print(f"  round {r + 1}: engine {eng[-1]:.1f} img/s, bare {bare[-1]:.1f} img/s"
              + (f"; per CPU-second: engine {eng_cpu[-1]:.2f}, bare {bare_cpu[-1]:.2f}" if not gpu else ""), flush=True)
    med = statistics.median
    return med(eng), med(bare), (med(eng_cpu) if eng_cpu else None), (med(bare_cpu) if bare_cpu else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cuda is skipped when there is none")
    ap.add_argument("--gpu-images", type=int, default=4096)
    ap.add_argument("--gpu-batch-size", type=int, default=256)
    ap.add_argument("--compile", action="store_true", help="torch.compile in both loops (train.compile)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    rows = []
    for device in devices:
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        for bb in args.backbones:
            e, b, ec, bc = measure(bb, device, args)
            bs = args.gpu_batch_size if device.type == "cuda" else args.batch_size
            rows.append([name + (" + compile" if args.compile else ""), bb, f"{args.image_size}", str(bs), f"{e:.1f}",
                         f"{b:.1f}", f"{e / b:.3f}", f"{ec / bc:.3f}" if ec else "-"])
            print(" | ".join(rows[-1]), flush=True)
    print(table(["device", "backbone", "px", "batch", "engine img/s", "bare img/s", "ratio (target >= 0.95)",
                 "ratio per CPU-second (CPU rows)"], rows))


if __name__ == "__main__":
    main()
