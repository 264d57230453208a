"""Pretrain the bundled offline backbone on formula-driven images (FractalDB-style, no download).

    python -m engine.pretrain                       # the shipped recipe (about 20 min, 2 CPU cores)
    python -m engine.pretrain --classes 1000 --instances 1000 --image-size 128 --epochs 40 \\
        --batch-size 512                            # the same command scaled up on a GPU

Phases: (1) render the fractal classes (train instances + a held-out set of fresh instances of
the same classes), (2) train a torchvision model on them with SGD + Nesterov momentum, warm-up +
cosine lr, label smoothing and batched augmentation in torch, (3) measure held-out accuracy and
a linear probe on the sample textures (pretrained trunk vs random init), (4) write the trunk
(classification head removed) as fp16 safetensors plus a JSON recipe with everything needed to
reproduce it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from engine import fractal
from engine.textures import TEXTURE_CLASSES, make_texture_images

ARCHS = ("resnet18", "mobilenet_v3_small")
# State-dict key prefixes of each architecture's classification head (left out of the file).
HEAD_PREFIXES = {"resnet18": ("fc.",), "mobilenet_v3_small": ("classifier.3.",)}
# Inputs are normalised like every torchvision backbone, so the bundled one is a drop-in.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "assets" / "backbones"


def build_model(arch: str, num_classes: int) -> torch.nn.Module:
    if arch == "resnet18":
        return torchvision.models.resnet18(num_classes=num_classes)
    if arch == "mobilenet_v3_small":
        return torchvision.models.mobilenet_v3_small(num_classes=num_classes)
    raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")


def drop_head(model: torch.nn.Module, arch: str) -> torch.nn.Module:
    """Replace the classification head by Identity: the model then returns pooled features."""
    if arch == "resnet18":
        model.fc = torch.nn.Identity()
    else:  # mobilenet_v3_small: keep the 576 -> 1024 layer's input, i.e. the pooled features
        model.classifier = torch.nn.Identity()
    return model


def trunk_state_dict(model: torch.nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """The state dict without the head; floating tensors as fp16, integer buffers unchanged."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith(HEAD_PREFIXES[arch]):
            continue
        value = value.detach().to("cpu")
        out[key] = (value.half() if value.is_floating_point() else value).contiguous()
    return out


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float, normalised with MEAN/STD."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 6) -> torch.Tensor:
    """Batched random translation (zero padding matches the black background) and h-flip.

    x uint8 [B, 3, S, S] on any device; ``gen`` is a CPU generator (so the run is seeded).
    """
    b, _, s, _ = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    ar = torch.arange(s, device=x.device)
    rows = (dy[:, None] + ar[None])[:, None, :, None]  # [B, 1, S, 1]
    cols = (dx[:, None] + ar[None])[:, None, None, :]  # [B, 1, 1, S]
    idx_b = torch.arange(b, device=x.device)[:, None, None, None]
    idx_c = torch.arange(3, device=x.device)[None, :, None, None]
    out = padded[idx_b, idx_c, rows, cols]
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def predict_features(model: torch.nn.Module, images: torch.Tensor, device: torch.device,
                     batch_size: int = 256) -> torch.Tensor:
    """Run ``model`` (eval mode) over uint8 images in batches; returns float32 outputs on CPU."""
    model.eval()
    outs = []
    for start in range(0, images.shape[0], batch_size):
        x = normalise(images[start:start + batch_size].to(device))
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                outs.append(model(x).float().cpu())
        else:
            outs.append(model(x).float().cpu())
    return torch.cat(outs)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, weight_decay: float = 1e-3, iters: int = 300) -> float:
    """Multinomial logistic regression (full-batch L-BFGS) on standardised features; test acc."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    tx, vx = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    w = torch.zeros(tx.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(tx @ w + b, train_y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((vx @ w + b).argmax(1) == test_y).float().mean())


def probe_textures(trunk: torch.nn.Module, arch: str, device: torch.device, image_size: int = 64,
                   n_per_class: int = 80, seed: int = 0) -> dict:
    """Linear probe on the sample textures: this trunk vs the same architecture at random init.

    Half of each class trains the probe, the other half tests it.
    """
    images, labels = make_texture_images(n_per_class, image_size, seed)
    half = torch.arange(labels.numel()) % n_per_class < n_per_class // 2
    torch.manual_seed(seed)
    random_trunk = drop_head(build_model(arch, 10), arch).to(device)
    result = {"dataset": f"textures {len(TEXTURE_CLASSES)} classes x {n_per_class}, "
                         f"{image_size} px, seed {seed}, half train / half test"}
    for name, model in (("pretrained", trunk), ("random_init", random_trunk)):
        feats = predict_features(model, images, device)
        result[name] = round(linear_probe(feats[half], labels[half], feats[~half],
                                          labels[~half]), 4)
    return result


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
        prog="python -m engine.pretrain",
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(args.seed)

    # ---- 1. data: train instances and fresh held-out instances of the same IFS classes ----
    t0 = time.perf_counter()
    systems = fractal.sample_ifs_classes(args.classes, args.seed)
    train_seed, val_seed = args.seed * 7919 + 1, args.seed * 7919 + 2
    train_x, train_y = fractal.make_fractal_dataset(
        args.classes, args.instances, args.image_size, args.seed, instance_seed=train_seed,
        systems=systems)
    val_x, val_y = fractal.make_fractal_dataset(
        args.classes, args.val_instances, args.image_size, args.seed, instance_seed=val_seed,
        systems=systems)
    data_seconds = time.perf_counter() - t0
    print(f"rendered {train_x.shape[0]} train + {val_x.shape[0]} held-out images "
          f"({args.classes} classes, {args.image_size} px) in {data_seconds:.1f} s", flush=True)
    train_x, train_y = train_x.to(device), train_y.to(device)

    # ---- 2. model and optimiser ----
    model = build_model(args.arch, args.classes).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # BN and biases
    peak_lr = args.lr * args.batch_size / 256  # linear scaling rule
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=peak_lr, momentum=0.9, nesterov=True)
    steps_per_epoch = train_x.shape[0] // args.batch_size  # drop the ragged last batch
    total_steps = steps_per_epoch * args.epochs
    warmup = min(total_steps // 10, steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"training {args.arch} on {device} ({_device_name(device)}), "
          f"{torch.get_num_threads()} threads: {args.epochs} epochs x {steps_per_epoch} steps, "
          f"batch {args.batch_size}, peak lr {peak_lr:.4g}", flush=True)

    # ---- 3. training loop ----
    history = []
    step = 0
    train_start = time.perf_counter()
    timed_images, timed_seconds = 0, 0.0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(train_x.shape[0], generator=gen).to(device)
        epoch_start = time.perf_counter()
        seen, correct, loss_sum = 0, 0, 0.0
        for i in range(steps_per_epoch):
            step_start = time.perf_counter()
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            x = normalise(augment_batch(train_x[idx], gen))
            y = train_y[idx]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, peak_lr, warmup)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(x)
            else:
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += y.numel()
            loss_sum += float(loss.detach()) * y.numel()
            correct += int((logits.argmax(1) == y).sum())
            if step > 5:  # warm-up steps (allocator, kernels) excluded from the speed
                timed_images += y.numel()
                timed_seconds += time.perf_counter() - step_start
            if (i + 1) % 25 == 0 or i + 1 == steps_per_epoch:
                ips = timed_images / timed_seconds if timed_seconds else float("nan")
                eta = (total_steps - step) * args.batch_size / ips if timed_seconds else 0
                print(f"epoch {epoch + 1}/{args.epochs} step {i + 1}/{steps_per_epoch} "
                      f"loss {loss_sum / seen:.3f} acc {100 * correct / seen:.1f}% "
                      f"lr {opt.param_groups[0]['lr']:.4f} {ips:.0f} img/s "
                      f"eta {eta / 60:.1f} min", flush=True)
        logits = predict_features(model, val_x, device)
        val_acc = float((logits.argmax(1) == val_y).float().mean())
        history.append({"epoch": epoch + 1, "train_loss": round(loss_sum / seen, 4),
                        "train_acc": round(correct / seen, 4), "heldout_acc": round(val_acc, 4),
                        "seconds": round(time.perf_counter() - epoch_start, 1)})
        print(f"epoch {epoch + 1} done: held-out accuracy {100 * val_acc:.1f}% "
              f"({history[-1]['seconds']:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - train_start

    # ---- 4. probe, then write the trunk and its recipe ----
    state = trunk_state_dict(model, args.arch)
    probe = None
    if not args.no_probe:
        probe = probe_textures(drop_head(model, args.arch), args.arch, device)
        print(f"linear probe on the sample textures: pretrained {100 * probe['pretrained']:.1f}% "
              f"vs random init {100 * probe['random_init']:.1f}%", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{args.arch}_fractal"
    weights_path = args.out_dir / f"{stem}.safetensors"
    recipe_path = args.out_dir / f"{stem}.json"
    from safetensors.torch import save_file

    save_file(state, str(weights_path), metadata={
        "arch": args.arch, "pretraining": "FractalDB-style formula-driven images",
        "recipe": recipe_path.name, "head": "removed", "mean": json.dumps(MEAN),
        "std": json.dumps(STD)})
    recipe = {
        "name": stem,
        "arch": args.arch,
        "weights_file": weights_path.name,
        "weights_dtype": "float16 (integer buffers as int64)",
        "head_removed": list(HEAD_PREFIXES[args.arch]),
        "input": {"image_size": args.image_size, "mean": MEAN, "std": STD},
        "dataset": {
            "kind": "FractalDB-style IFS renders (Kataoka et al., ACCV 2020)",
            "classes": args.classes,
            "instances_per_class": args.instances,
            "heldout_instances_per_class": args.val_instances,
            "image_size": args.image_size,
            "class_seed": args.seed,
            "train_instance_seed": train_seed,
            "heldout_instance_seed": val_seed,
            "generator": {
                "maps_per_system": [fractal.MIN_MAPS, fractal.MAX_MAPS],
                "coefficients": "uniform [-1, 1]; map probability proportional to |det|",
                "max_singular_value": fractal.MAX_SINGULAR,
                "fill_grid": fractal.FILL_GRID,
                "fill_threshold": fractal.FILL_THRESHOLD,
                "perturbation": fractal.PERTURBATION,
                "jitter": fractal.JITTER,
                "chains": fractal.CHAINS,
                "burn_in": fractal.BURN_IN,
                "points_per_image": fractal.POINTS_PER_PIXEL * args.image_size ** 2,
                "render_augmentation": "random colour per map, rotation, h/v flips, "
                                       "scale [0.6, 1], random position; 2x supersampling",
                "background": f"random two-colour gradient, black in "
                              f"{fractal.BLACK_BACKGROUND:.0%} of renders",
            },
            "render_seconds": round(data_seconds, 1),
        },
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr_per_256": args.lr,
            "peak_lr": peak_lr,
            "schedule": f"linear warm-up {warmup} steps, cosine to 0 over {total_steps} steps",
            "optimizer": "SGD momentum 0.9 nesterov",
            "weight_decay": args.weight_decay,
            "label_smoothing": args.label_smoothing,
            "augmentation": "random translation (zero pad 6) + horizontal flip, batched",
            "precision": "bf16 autocast, channels_last" if cuda else "fp32",
            "seed": args.seed,
            "history": history,
        },
        "final_train_accuracy": history[-1]["train_acc"],
        "final_heldout_accuracy": history[-1]["heldout_acc"],
        "linear_probe_textures": probe,
        "train_seconds": round(train_seconds, 1),
        "images_per_second": round(timed_images / timed_seconds, 1) if timed_seconds else None,
        "wall_seconds": round(time.perf_counter() - wall_start, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "device": str(device),
            "device_name": _device_name(device),
        },
        "command": "python -m engine.pretrain " + shlex.join(argv),
    }
    recipe_path.write_text(json.dumps(recipe, indent=2) + "\n")
    size_mb = weights_path.stat().st_size / 1e6
    print(f"wrote {weights_path} ({size_mb:.1f} MB) and {recipe_path}; "
          f"held-out accuracy {100 * history[-1]['heldout_acc']:.1f}%, "
          f"wall time {recipe['wall_seconds'] / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
