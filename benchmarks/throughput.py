"""Images/s of the engine's training loop against a bare reference loop with identical settings.

Same model, same synthetic data resident on the device, same batch, same batched augmentation,
same precision and memory layout (what the engine picks: bf16 autocast + channels_last on CUDA; on the
CPU bf16 + channels_last where engine.devices measured it faster, else fp32), in one process; warm-up
epochs excluded. Target ratio (engine / bare) >= 0.95. Runs on the CPU always and on the GPU when
there is one.

On the CPU the two loops alternate step by step (a bare step runs inside the engine's per-step
progress report; see `Interleaved`): a shared machine's speed drifts over seconds, which made
whole-epoch alternation swing the ratio by +-10% from round to round. On the GPU whole epochs
alternate, since the engine queues GPU steps without waiting and reports only every tenth.

    python benchmarks/throughput.py [--backbones resnet18 resnet50] [--image-size 224] [--images 128]
        [--rounds 2] [--epochs 2] [--devices cpu cuda] [--gpu-images 4096] [--gpu-batch-size 256]
        [--data assets/sample_textures.zip] [--compile] [--threads 1]

On the GPU the batch and the epoch are larger (a CPU-sized epoch of four steps would time
launch latency, not training); both loops then see exactly the same settings.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import WORK, config, table

from engine.augment import augment_batch
from engine.backbones import build_model
from engine.data import DataReport, DataSplits, ImageSet
from engine.contract import Reporter
from engine.devices import autocast_ctx, pick_amp, use_channels_last
from engine.run_data import prepare_data
from engine.train import train


def synthetic_splits(n: int, size: int, classes: int = 10) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    names = [f"c{i}" for i in range(classes)]

    def split(m):
        return ImageSet(torch.randint(0, 256, (m, 3, size, size), dtype=torch.uint8, generator=g),
                        torch.arange(m) % classes, names)

    report = DataReport("synthetic", names, {c: n // classes for c in names}, [], {}, size)
    return DataSplits(split(n), split(classes * 2), split(0), names, report)


def bare_step(model, opt, images, labels, gen, device, amp_dtype) -> None:
    """The reference: the minimum a correct training step does, with the engine's settings."""
    x = augment_batch(images, gen)
    if use_channels_last(True, device, amp_dtype, images.shape[-1]):
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast_ctx(device, amp_dtype):
        loss = F.cross_entropy(model(x).float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bare_epoch(model, opt, images, labels, bs, gen, device, amp_dtype) -> float:
    """Wall-clock images/s of one epoch of bare steps."""
    model.train()
    order = torch.randperm(len(images), device=gen.device, generator=gen)
    steps = len(images) // bs
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        idx = order[i * bs:(i + 1) * bs]
        bare_step(model, opt, images[idx], labels[idx], gen, device, amp_dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


class Interleaved(Reporter):
    """CPU rows: one bare step runs inside the engine's progress report after each engine step, so the
    two loops alternate step by step and a drift in machine speed (seconds long on a shared machine)
    hits both alike. The engine's own clock gives its step boundaries: it reports images/s since its
    epoch started, so `images / images_per_sec` is the time since then; the time spent in this
    report is taken back out. Epoch 1 is warm-up for both and not timed."""

    def __init__(self, model, opt, images, labels, bs, gen, amp_dtype):
        self.model, self.opt, self.images, self.labels, self.bs, self.gen = model, opt, images, labels, bs, gen
        self.amp_dtype = amp_dtype
        self.engine_s = self.bare_s = 0.0
        self.engine_images = self.bare_images = 0
        self.engine_laps: list[float] = []  # seconds of each timed step, engine and bare, in order
        self.bare_laps: list[float] = []
        self.epoch, self.in_reports, self.done = 0, 0.0, 0.0

    def progress(self, **fields) -> None:
        if fields.get("phase") != "training" or fields["epoch"] < 2:
            return
        t_in = time.perf_counter()
        if fields["epoch"] != self.epoch:  # a new timed epoch: the engine's clock restarted
            self.epoch, self.in_reports, self.done = fields["epoch"], 0.0, 0.0
            self.bare_order = torch.randperm(len(self.images), generator=self.gen)
            self.bare_i = 0
        steps_done = fields["step"] - (self.epoch - 1) * (len(self.images) // self.bs)
        engine_elapsed = steps_done * self.bs / fields["images_per_sec"] - self.in_reports
        self.engine_s += engine_elapsed - self.done
        self.engine_laps.append(engine_elapsed - self.done)
        self.engine_images += self.bs
        self.done = engine_elapsed
        t0 = time.perf_counter()
        self.model.train()
        i = self.bare_i
        idx = self.bare_order[i * self.bs:(i + 1) * self.bs]
        bare_step(self.model, self.opt, self.images[idx], self.labels[idx], self.gen, self.images.device,
                  self.amp_dtype)
        self.bare_laps.append(time.perf_counter() - t0)
        self.bare_s += self.bare_laps[-1]
        self.bare_images += self.bs
        self.bare_i += 1
        self.in_reports += time.perf_counter() - t_in


def measure(backbone: str, device: torch.device, args) -> tuple[float, float, list[float]]:
    """Engine and bare images/s over all timed steps, and the per-round ratios."""
    gpu = device.type == "cuda"
    n_images, bs = (args.gpu_images, args.gpu_batch_size) if gpu else (args.images, args.batch_size)
    if args.data:  # a real dataset's training split instead of synthetic images
        data = prepare_data(config(f"data.source={args.data}", f"data.image_size={args.image_size}"), WORK / "data")
        n_images = len(data.train)
    else:
        data = synthetic_splits(n_images, args.image_size)
    cfg = config(f"backbone.name={backbone}", "backbone.pretrained=none", f"data.image_size={args.image_size}",
                 f"train.epochs={1 + (1 if gpu else args.epochs)}", f"train.batch_size={bs}", "eval.ood=false",
                 f"train.device={device.type}", "optim.weight_decay=0", f"train.compile={str(args.compile).lower()}")
    amp = pick_amp("auto", device, args.image_size)  # the engine's own choice: both loops in the same precision
    model, _ = build_model(backbone, len(data.classes), "none")
    model.to(device)
    if use_channels_last(True, device, amp, args.image_size):
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if args.compile:
        model = torch.compile(model)
    imgs, labels = data.train.images.to(device), data.train.labels.to(device)
    gen = torch.Generator(device=device).manual_seed(0)  # the engine also draws augmentation on the device
    bare_epoch(model, opt, imgs, labels, bs, gen, device, amp)  # warm-up
    eng_s = bare_s = 0.0
    eng_n = bare_n = 0
    ratios = []
    for r in range(args.rounds):
        if gpu:  # whole epochs, alternating order: a GPU step is queued, not waited for, so no report per step
            first_engine = r % 2 == 0
            if not first_engine:
                b_ips = bare_epoch(model, opt, imgs, labels, bs, gen, device, amp)
            e_ips = train(cfg, Reporter(), data=data).summary["history"][-1]["images_per_sec"]
            if first_engine:
                b_ips = bare_epoch(model, opt, imgs, labels, bs, gen, device, amp)
            n = n_images // bs * bs
            eng_s, eng_n, bare_s, bare_n = eng_s + n / e_ips, eng_n + n, bare_s + n / b_ips, bare_n + n
        else:
            rep = Interleaved(model, opt, imgs, labels, bs, gen, amp)
            train(cfg, rep, data=data)
            e_ips, b_ips = rep.engine_images / rep.engine_s, rep.bare_images / rep.bare_s
            eng_s, eng_n, bare_s, bare_n = eng_s + rep.engine_s, eng_n + rep.engine_images, \
                bare_s + rep.bare_s, bare_n + rep.bare_images
        ratios.append(e_ips / b_ips)
        print(f"  round {r + 1}: engine {e_ips:.1f} img/s, bare {b_ips:.1f} img/s, ratio {ratios[-1]:.3f}", flush=True)
    return eng_n / eng_s, bare_n / bare_s, ratios


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=128, help="synthetic training images")
    ap.add_argument("--data", default="", help="a dataset (folder or zip) to train on instead of synthetic images")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="engine runs (fresh model each), each with --epochs timed")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per engine run on the CPU (after one warm-up)")
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
        amp = pick_amp("auto", device, args.image_size)
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        name += f", {str(amp).removeprefix('torch.') if amp else 'fp32'}"
        for bb in args.backbones:
            e, b, ratios = measure(bb, device, args)
            bs = args.gpu_batch_size if device.type == "cuda" else args.batch_size
            rows.append([name + (" + compile" if args.compile else ""), bb, f"{args.image_size}", str(bs), f"{e:.1f}",
                         f"{b:.1f}", f"{e / b:.3f}", f"{min(ratios):.3f}-{max(ratios):.3f}"])
            print(" | ".join(rows[-1]), flush=True)
    print(table(["device", "backbone", "px", "batch", "engine img/s", "bare img/s", "ratio (target >= 0.95)",
                 "rounds' ratios"], rows))


if __name__ == "__main__":
    main()
