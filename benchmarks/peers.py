"""The studio against the loops people would otherwise write, in one process, on the same data.

Every tool trains the same decoded split (the studio's own, from `prepare_data`), from the same
bundled ResNet-18 weights (the same head initialisation, seeded), with the same recipe: SGD lr
0.01, momentum 0.9, weight decay 5e-4 (not on biases and norms), cosine per step, batch 32,
`--epochs` epochs, random resized crop + horizontal flip. Each tool is timed from building its
model to its test accuracy, its validation accuracy is measured after every epoch (for the time
to `--threshold`), and the test accuracy once at the end.

- studio: `engine.train.train` with the CLI's defaults (its precision choice, per-epoch
  evaluation on the OOD subset, the end-of-run suite); `--studio-no-ood` adds a row without OOD,
  `--studio-set` a row with settings on top of the matched recipe, `--studio-preset` a preset's own
  recipe (e.g. `fastest`) at the benchmark's image size.
- loop, N workers: a torchvision-style loop: a Dataset with per-image transforms.v2
  (RandomResizedCrop + RandomHorizontalFlip), DataLoader(num_workers=N), fp32 (num_workers 0 and 2);
  `--loop-preset NAME` adds the same loop at a preset's epochs, learning rate, augmentation and frozen
  blocks (what the shorter recipe alone gives a plain loop; not one of the matched peers in the ratios).
- timm: when `timm` is installed (a benchmark-only dependency, not in requirements.txt): timm's
  optimiser and scheduler factories (create_optimizer_v2 "momentum", CosineLRScheduler stepped per
  update) in the same loop with num_workers 0.

Import time is shared by all tools in this process and not in any row; the studio's first-run
CPU precision measurement is made (and cached) before the clock starts.

    python benchmarks/peers.py [--data assets/sample_textures.zip] [--image-size 64] [--epochs 5]
        [--seeds 0] [--threshold 0.8] [--threads 0] [--studio-no-ood] [--studio-set KEY=VALUE ...]
        [--studio-preset NAME [KEY=VALUE ...]] [--loop-preset NAME]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import WORK, config, table
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from engine.backbones import build_model
from engine.config import apply_overrides
from engine.contract import Reporter
from engine.data import DataSplits, ImageSet
from engine.devices import cpu_info, pick_amp
from engine.optim import build_optimizer
from engine.presets import fit_to_data, get_preset
from engine.run_data import prepare_data
from engine.train import train

LR, MOMENTUM, WD, BATCH = 0.01, 0.9, 5e-4, 32


class Images(Dataset):
    """uint8 [N,3,S,S] images -> (float [3,S,S] in [0,1], label), with per-image transforms."""

    def __init__(self, split: ImageSet, size: int, augment: bool = True):
        self.split = split
        crop_flip = [v2.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
                     v2.RandomHorizontalFlip()] if augment else []
        self.tf = v2.Compose([*crop_flip, v2.ToDtype(torch.float32, scale=True)])

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i):
        return self.tf(self.split.images[i]), int(self.split.labels[i])


@torch.no_grad()
def accuracy(model, split: ImageSet) -> float:
    model.eval()
    right = sum(int((model(split.images[i:i + 256].float() / 255).argmax(1) == split.labels[i:i + 256]).sum())
                for i in range(0, len(split), 256))
    return right / max(len(split), 1)


class EpochClock(Reporter):
    """The studio's validation accuracy and the time at the end of each epoch."""

    def __init__(self, t0: float):
        self.t0, self.points = t0, []

    def epoch_metrics(self, epoch, step, values):
        self.points.append((time.perf_counter() - self.t0, values["val_acc"]))


def run_studio(data: DataSplits, args, seed: int, ood: bool, extra: tuple[str, ...] = ()) -> dict:
    """One studio run of the matched recipe; `extra` overrides (KEY=VALUE) come last and win."""
    cfg = config(f"data.source={args.data}", f"data.image_size={args.image_size}", "backbone.name=resnet18",
                 "backbone.pretrained=bundled", f"train.epochs={args.epochs}", f"train.batch_size={BATCH}",
                 f"optim.lr={LR}", f"optim.momentum={MOMENTUM}", f"optim.weight_decay={WD}", f"seed={seed}",
                 f"eval.ood={str(ood).lower()}", "train.device=cpu", *extra)  # common.config: the same threads as every tool
    t0 = time.perf_counter()
    clock = EpochClock(t0)
    s = train(cfg, clock, data=data).summary
    return {"wall": time.perf_counter() - t0, "ips": s["train_images_per_sec"], "points": clock.points,
            "test": s["test_acc"], "precision": s["precision"] + (" + channels_last" if s["channels_last"] else "")}


def run_preset(data: DataSplits, args, seed: int, name: str, extra: tuple[str, ...] = ()) -> dict:
    """One studio run of preset `name` as the dashboard and `train --preset` give it (its batch fitted to the
    data as they fit it), at the benchmark's image size; `extra` overrides (KEY=VALUE) come last and win."""
    recipe = get_preset(name).apply(config(f"data.source={args.data}", f"seed={seed}"))
    recipe = fit_to_data(recipe, len(data.train))[0]
    # a preset starts from the defaults: the device and the threads pinned again, as in every row
    cfg = apply_overrides(recipe, [f"data.image_size={args.image_size}", "train.device=cpu",
                                   f"train.threads={torch.get_num_threads()}", *extra])
    t0 = time.perf_counter()
    clock = EpochClock(t0)
    s = train(cfg, clock, data=data).summary
    return {"wall": time.perf_counter() - t0, "ips": s["train_images_per_sec"], "points": clock.points,
            "test": s["test_acc"], "precision": s["precision"] + (" + channels_last" if s["channels_last"] else "")}


def run_loop(data: DataSplits, args, seed: int, workers: int, use_timm: bool = False,
             recipe: dict | None = None) -> dict:
    """A hand-written loop at the matched recipe, or at `recipe` (epochs, lr, augment, frozen: the leading trunk
    blocks kept as pretrained, requires_grad off and their batch norm in eval mode, as the studio freezes)."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model, _ = build_model("resnet18", len(data.classes), "bundled")
    epochs, lr = (recipe["epochs"], recipe["lr"]) if recipe else (args.epochs, LR)
    frozen = model.trunk_blocks()[: recipe["frozen"]] if recipe else []
    for block in frozen:
        block.requires_grad_(False)
    steps_per_epoch = len(data.train) // BATCH
    total = steps_per_epoch * epochs
    if use_timm:
        import timm.optim
        import timm.scheduler

        opt = timm.optim.create_optimizer_v2(model, opt="momentum", lr=lr, weight_decay=WD, momentum=MOMENTUM)
        sched = timm.scheduler.CosineLRScheduler(opt, t_initial=total, lr_min=0.0, t_in_epochs=False)
    else:  # the studio's own parameter groups (no decay on biases and norms) and the textbook cosine
        opt = build_optimizer(model, config(f"optim.lr={lr}", f"optim.momentum={MOMENTUM}", f"optim.weight_decay={WD}"))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    loader = DataLoader(Images(data.train, args.image_size, recipe["augment"] if recipe else True), batch_size=BATCH, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    points, trained, train_s, step = [], 0, 0.0, 0
    for epoch in range(epochs):
        model.train()
        for block in frozen:
            block.eval()
        te = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            sched.step_update(step) if use_timm else sched.step()
            trained += len(y) if epoch else 0  # the first epoch is warm-up, as in the studio's figure
        train_s += time.perf_counter() - te if epoch or epochs == 1 else 0.0
        points.append((time.perf_counter() - t0, accuracy(model, data.val)))
    trained = trained or len(data.train) // BATCH * BATCH
    test = accuracy(model, data.test)
    return {"wall": time.perf_counter() - t0, "ips": trained / max(train_s, 1e-9), "points": points,
            "test": test, "precision": "float32"}


def to_threshold(points: list[tuple[float, float]], threshold: float) -> float | None:
    return next((t for t, acc in points if acc >= threshold), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="assets/sample_textures.zip")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threshold", type=float, default=0.8, help="validation accuracy for the time-to-threshold column")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--studio-no-ood", action="store_true", help="also the studio with eval.ood=false")
    ap.add_argument("--studio-set", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                    help="another studio row without OOD, with these settings on top of the matched recipe "
                         "(repeatable: one row each), e.g. --studio-set train.epochs=3 eval.tta_flip=true")
    ap.add_argument("--studio-preset", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE]",
                    help="another studio row: the preset NAME as the dashboard gives it, at --image-size, these "
                         "settings on top (repeatable), e.g. --studio-preset fastest train.flip=false")
    ap.add_argument("--loop-preset", action="append", default=[], metavar="NAME",
                    help="another loop row (0 workers) at preset NAME's epochs, learning rate, augmentation and "
                         "frozen blocks: what the recipe alone gives a plain loop (not counted as a matched peer)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = prepare_data(config(f"data.source={args.data}", f"data.image_size={args.image_size}"), WORK / "data")
    pick_amp("auto", torch.device("cpu"), args.image_size)  # the first-run precision measurement, outside every clock
    tools = {"studio (defaults)": lambda s: run_studio(data, args, s, True)}
    if args.studio_no_ood:
        tools["studio, eval.ood=false"] = lambda s: run_studio(data, args, s, False)
    for extra in args.studio_set:
        tools["studio, eval.ood=false, " + " ".join(extra)] = lambda s, e=tuple(extra): run_studio(data, args, s, False, e)
    for name, *extra in args.studio_preset:
        tools[f"studio, preset {name}" + "".join(f" {e}" for e in extra)] = \
            lambda s, n=name, e=tuple(extra): run_preset(data, args, s, n, e)
    tools["torchvision-style loop, 0 workers"] = lambda s: run_loop(data, args, s, 0)
    tools["torchvision-style loop, 2 workers"] = lambda s: run_loop(data, args, s, 2)
    for name in args.loop_preset:
        p = get_preset(name).apply(config())
        recipe = {"epochs": p.train.epochs, "lr": p.optim.lr, "augment": p.train.augment, "frozen": p.optim.freeze_blocks}
        tools[f"loop, 0 workers, preset {name}'s epochs, lr, augmentation, frozen blocks"] = lambda s, r=recipe: run_loop(data, args, s, 0, recipe=r)
    try:
        import timm  # noqa: F401

        tools[f"timm {timm.__version__} optimiser + scheduler, 0 workers"] = lambda s: run_loop(data, args, s, 0, True)
    except ImportError:
        print("timm is not installed: its row is left out (pip install timm)")
    results: dict[str, list[dict]] = {k: [] for k in tools}
    for seed in args.seeds:
        for name, fn in tools.items():  # the tools take turns, seed by seed: a drifting machine hits all alike
            load = os.getloadavg()[0]
            results[name].append({**fn(seed), "load": load})
            r = results[name][-1]
            print(f"seed {seed} {name}: wall {r['wall']:.1f} s, {r['ips']:.1f} img/s, test {r['test']:.3f}, "
                  f"load {load:.2f}", flush=True)
    rows, mean = [], (lambda xs: sum(xs) / len(xs) if xs and None not in xs else None)
    summary = {name: {"wall": mean([r["wall"] for r in rs]), "ips": mean([r["ips"] for r in rs]),
                      "test": mean([r["test"] for r in rs]),
                      "thr": mean([to_threshold(r["points"], args.threshold) for r in rs]),
                      "precision": rs[0]["precision"], "load": max(r["load"] for r in rs)}
               for name, rs in results.items()}
    peers = [v for n, v in summary.items() if not n.startswith("studio") and "preset" not in n]  # matched recipe
    best_wall = min(v["wall"] for v in peers)
    best_thr = min((v["thr"] for v in peers if v["thr"] is not None), default=None)
    loop0_ips = summary["torchvision-style loop, 0 workers"]["ips"]
    for name, v in summary.items():
        rows.append([name, v["precision"], f"{v['wall']:.1f}", f"{v['ips']:.1f}",
                     f"{v['thr']:.1f}" if v["thr"] is not None else "not reached", f"{100 * v['test']:.1f}",
                     f"{v['wall'] / best_wall:.2f}",
                     f"{v['thr'] / best_thr:.2f}" if v["thr"] is not None and best_thr else "n/a",
                     f"{v['ips'] / loop0_ips:.2f}", f"{v['load']:.1f}"])
    print(f"\n{cpu_info()[0]}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.platform()}; "
          f"{Path(args.data).name} at {args.image_size} px ({len(data.train)} train / {len(data.val)} val / "
          f"{len(data.test)} test), {args.epochs} epochs, seeds {args.seeds}")
    print(table(["tool", "precision", "wall s", "train img/s", f"s to val {args.threshold:.2f}", "test acc %",
                 "wall / best peer", "to val / best peer", "img/s / loop 0 workers", "load avg (max)"], rows))


if __name__ == "__main__":
    main()
