"""Pretrain a bundled offline backbone on formula-driven images (FractalDB-style, no download).

    python -m tools.pretrain                        # the shipped recipe's settings (about 20 min, 2 CPU cores)
    python -m tools.pretrain --classes 1000 --instances 1000 --image-size 128 --epochs 40 \\
        --batch-size 512                            # the same command scaled up on a GPU

An asset builder, not part of the runtime engine: it reuses the engine's model (the registry's
`Classifier`), its training loop (engine.train: augmentation, SGD + Nesterov momentum, warm-up +
cosine schedule, label smoothing, bf16 and channels_last on CUDA) and its linear probe
(engine.methods.wise_ft). Phases: (1) render the fractal classes (train instances + a held-out
set of fresh instances of the same classes), (2) train through the engine's loop, scoring the
held-out renders each epoch, (3) a linear probe on the sample textures (pretrained trunk vs random
init), (4) write the trunk (classification head removed) as fp16 safetensors plus a JSON recipe
with everything needed to reproduce it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file

from engine.backbones import BACKBONES, build_model
from engine.config import RunConfig, with_section
from engine.contract import Reporter
from engine.data import DataReport, DataSplits, ImageSet
from engine.methods.wise_ft import fit_linear_probe, head_features
from engine.paths import ASSETS_DIR
from engine.train import train
from tools import fractal
from tools.textures import TEXTURE_CLASSES, make_texture_images

ARCHS = ("resnet18", "mobilenet_v3_small")
DEFAULT_OUT_DIR = ASSETS_DIR / "backbones"


def trunk_state_dict(model: torch.nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The torchvision state dict of the engine's `Classifier` without its head (keys without the
    wrapper's `net.`); floating tensors as fp16, integer buffers unchanged."""
    head = f"net.{BACKBONES[arch].head_attr}."
    return {key.removeprefix("net."): (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
            .contiguous() for key, v in model.state_dict().items() if not key.startswith(head)}


def probe_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Test accuracy of a linear probe (engine.methods.wise_ft.fit_linear_probe) on `model`'s head
    inputs: half of each class fits it, the other half tests it."""
    n_per_class = int(torch.bincount(labels).min())
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        rank[idx] = torch.arange(len(idx))
    fit = rank < n_per_class // 2
    feats = head_features(model, images, device)
    w, b = fit_linear_probe(feats[fit], labels[fit], int(labels.max()) + 1, 1e-3, 300)
    return float(((feats[~fit] @ w.T + b).argmax(1) == labels[~fit]).float().mean())


def probe_textures(model: torch.nn.Module, arch: str, device: torch.device, image_size: int = 64,
                   n_per_class: int = 80, seed: int = 0) -> dict:
    """Linear probe on the sample textures: this trunk vs the same architecture at random init."""
    images, labels = make_texture_images(n_per_class, image_size, seed)
    torch.manual_seed(seed)
    random_init = build_model(arch, len(TEXTURE_CLASSES), "none")[0].to(device)
    return {"dataset": f"textures {len(TEXTURE_CLASSES)} classes x {n_per_class}, {image_size} px, seed {seed}, "
                       "half train / half test",
            "pretrained": round(probe_accuracy(model, images, labels, device), 4),
            "random_init": round(probe_accuracy(random_init, images, labels, device), 4)}


def render(args: argparse.Namespace) -> tuple[DataSplits, dict]:
    """The fractal classes as engine data: training renders, and fresh held-out renders of the same
    classes as the validation split (what each epoch scores)."""
    t0 = time.perf_counter()
    systems = fractal.sample_ifs_classes(args.classes, args.seed)
    seeds = {"class_seed": args.seed, "train_instance_seed": args.seed * 7919 + 1,
             "heldout_instance_seed": args.seed * 7919 + 2}
    train_x, train_y = fractal.make_fractal_dataset(args.classes, args.instances, args.image_size, args.seed,
                                                    instance_seed=seeds["train_instance_seed"], systems=systems)
    val_x, val_y = fractal.make_fractal_dataset(args.classes, args.val_instances, args.image_size, args.seed,
                                                instance_seed=seeds["heldout_instance_seed"], systems=systems)
    classes = [f"ifs{i:04d}" for i in range(args.classes)]
    empty = ImageSet(val_x[:0], val_y[:0], classes)
    report = DataReport("formula-driven renders", classes, {}, [], {}, args.image_size)
    data = DataSplits(ImageSet(train_x, train_y, classes), ImageSet(val_x, val_y, classes), empty, classes, report)
    seeds["render_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"rendered {len(train_y)} train + {len(val_y)} held-out images ({args.classes} classes, "
          f"{args.image_size} px) in {seeds['render_seconds']:.1f} s", flush=True)
    return data, seeds


def run_config(args: argparse.Namespace) -> RunConfig:
    """The engine run that pretrains: from scratch, SGD + Nesterov, lr scaled per 256 images, warm-up
    then cosine, label smoothing, no OOD or robust evaluation (the held-out renders are scored)."""
    cfg = RunConfig(name=f"pretrain {args.arch}", seed=args.seed)
    cfg = with_section(cfg, "backbone", name=args.arch, pretrained="none")
    cfg = with_section(cfg, "data", image_size=args.image_size)
    cfg = with_section(cfg, "train", epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                       threads=args.threads)
    cfg = with_section(cfg, "optim", lr=args.lr * args.batch_size / 256, momentum=0.9, nesterov=True,
                       weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                       schedule="warmup_cosine", warmup_fraction=min(0.1, 1 / args.epochs))
    return with_section(cfg, "eval", ood=False, ood_severity_each_epoch=0, robust=False)


class EpochLog(Reporter):
    """A line per epoch on stdout (the pretraining runs for minutes, in a terminal)."""

    def epoch_metrics(self, epoch: int, step: int, values: dict[str, float]) -> None:
        print(f"epoch {epoch}: train loss {values['train_loss']:.3f}, held-out accuracy "
              f"{100 * values['val_acc']:.1f}%, {values['images_per_sec']:.0f} img/s", flush=True)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.pretrain",
        description="Pretrain a backbone on FractalDB-style formula-driven images (offline).")
    p.add_argument("--arch", choices=ARCHS, default="resnet18")
    p.add_argument("--classes", type=int, default=100, help="number of IFS classes")
    p.add_argument("--instances", type=int, default=100, help="training renders per class")
    p.add_argument("--val-instances", type=int, default=10,
                   help="held-out renders per class (fresh perturbations) for the final accuracy")
    p.add_argument("--image-size", type=int, default=64, help="pixels per side")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.2,
                   help="peak learning rate per 256 images (scaled linearly with the batch size)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (0: all cores)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the linear probe on the sample textures")
    args = p.parse_args(argv)
    for name in ("classes", "instances", "val_instances", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.image_size < 16:
        p.error("--image-size must be at least 16")
    return args


def recipe(args, argv, cfg: RunConfig, seeds: dict, summary: dict, probe, weights: Path, device) -> dict:
    """Everything needed to reproduce the bundle, and what it measured."""
    generator = {"maps_per_system": [fractal.MIN_MAPS, fractal.MAX_MAPS],
                 "coefficients": "uniform [-1, 1]; map probability proportional to |det|",
                 "max_singular_value": fractal.MAX_SINGULAR, "fill_grid": fractal.FILL_GRID,
                 "fill_threshold": fractal.FILL_THRESHOLD, "perturbation": fractal.PERTURBATION,
                 "jitter": fractal.JITTER, "chains": fractal.CHAINS, "burn_in": fractal.BURN_IN,
                 "points_per_image": fractal.POINTS_PER_PIXEL * args.image_size ** 2,
                 "render_augmentation": "random colour per map, rotation, h/v flips, scale [0.6, 1], random "
                                        "position; 2x supersampling",
                 "background": f"random two-colour gradient, black in {fractal.BLACK_BACKGROUND:.0%} of renders"}
    history = [{k: h[k] for k in ("epoch", "train_loss", "train_acc", "val_acc", "images_per_sec")}
               for h in summary["history"]]
    return {
        "name": weights.stem, "arch": args.arch, "weights_file": weights.name,
        "weights_dtype": "float16 (integer buffers as int64)", "head_removed": [BACKBONES[args.arch].head_attr + "."],
        "input": {"image_size": args.image_size, "mean": list(BACKBONES[args.arch].mean),
                  "std": list(BACKBONES[args.arch].std)},
        "dataset": {"kind": "FractalDB-style IFS renders (Kataoka et al., ACCV 2020)", "classes": args.classes,
                    "instances_per_class": args.instances, "heldout_instances_per_class": args.val_instances,
                    "image_size": args.image_size, **seeds, "generator": generator},
        "training": {"engine_config": cfg.to_dict(), "lr_per_256": args.lr, "history": history,
                     "loop": "engine.train (the studio's own loop: random resized crop + flip, warm-up + cosine)"},
        "final_train_accuracy": history[-1]["train_acc"], "final_heldout_accuracy": history[-1]["val_acc"],
        "linear_probe_textures": probe, "images_per_second": summary.get("train_images_per_sec"),
        "wall_seconds": summary.get("wall_time_s"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "torchvision": torchvision.__version__, "device": str(device), "device_name": _device_name(device)},
        "command": "python -m tools.pretrain " + shlex.join(argv),
    }


def main(argv: list[str] | None = None) -> int:
    """Render, pretrain through the engine's loop, probe, write the trunk and its recipe."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    data, seeds = render(args)
    cfg = run_config(args)
    result = train(cfg, EpochLog(), data=data)
    model, device = result.context.model, result.context.device
    probe = None
    if not args.no_probe:
        probe = probe_textures(model, args.arch, device)
        print(f"linear probe on the sample textures: pretrained {100 * probe['pretrained']:.1f}% "
              f"vs random init {100 * probe['random_init']:.1f}%", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = args.out_dir / f"{args.arch}_fractal.safetensors"
    info = recipe(args, argv, cfg, seeds, result.summary, probe, weights, device)
    save_file(trunk_state_dict(model, args.arch), str(weights), metadata={
        "arch": args.arch, "pretraining": "FractalDB-style formula-driven images", "recipe": weights.stem + ".json",
        "head": "removed", "mean": json.dumps(info["input"]["mean"]), "std": json.dumps(info["input"]["std"])})
    weights.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB) and its recipe; held-out accuracy "
          f"{100 * info['final_heldout_accuracy']:.1f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
