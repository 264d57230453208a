"""`optim.lr_auto` against a grid of learning rates, on three datasets of different character.

Li et al. (ICLR 2020): the best effective learning rate lr / (1 - momentum) for fine-tuning depends
on how far the target data is from the pretraining data. The bundled backbone was pretrained on
fractal renders (tools/fractal.py), so the datasets are:

  textures   the bundled sample (assets/sample_textures.zip)
  fractals   new fractal classes (IFS systems from another seed than the pretraining's): close
  shapes     filled geometric shapes (polygons, stars, rings, crosses) on noisy backgrounds: far

For each dataset and seed: one run per grid value (the same recipe, effective rates `--grid`) and one
run with `optim.lr_auto` (the range test, then the run with its pick). The grid's best value is the
one with the best mean validation accuracy over the seeds (chosen on validation, as a user would);
the table compares test accuracy. Target (issue 19): auto within 2 test points of the grid's best.
The time share is the range test's seconds over the whole run's (range test + training).

    python benchmarks/auto_lr.py [--seeds 0 1 2] [--epochs 6] [--image-size 48] [--datasets textures fractals shapes]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFilter

from common import WORK, config, table

from engine.lr_find import lr_into_config
from engine.paths import SAMPLE_DATASET
from engine.run_data import prepare_data
from engine.train import train
from tools.fractal import make_fractal_dataset
from tools.textures import TEXTURE_CLASSES

FRACTAL_SEED = 1009  # not the pretraining's seed (0): classes the backbone has never seen
SHAPES = ("triangle", "square", "pentagon", "hexagon", "star", "ring", "cross", "ellipse")


def write_images(root: Path, images: torch.Tensor, labels: torch.Tensor, classes) -> Path:
    """uint8 [N, 3, S, S] images as PNG class folders under `root` (written once)."""
    if root.is_dir():
        return root
    tmp = root.with_suffix(".tmp")
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = tmp / classes[int(lab)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    tmp.rename(root)
    return root


def fractal_folder(per_class: int = 80, size: int = 64) -> Path:
    images, labels = make_fractal_dataset(len(TEXTURE_CLASSES), per_class, size, seed=FRACTAL_SEED)
    return write_images(WORK / f"fractals_{FRACTAL_SEED}", images, labels, [f"ifs{i}" for i in range(8)])


def _shape_points(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if kind == "star":
        return [(cx + (r if k % 2 == 0 else 0.45 * r) * math.cos(rot + k * math.pi / 5),
                 cy + (r if k % 2 == 0 else 0.45 * r) * math.sin(rot + k * math.pi / 5)) for k in range(10)]
    if kind == "cross":
        w = 0.32 * r
        pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r), (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    n = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[kind]
    return [(cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n)) for k in range(n)]


def shape_image(kind: str, size: int, gen: torch.Generator) -> Image.Image:
    """One filled shape of a random colour, size, position and rotation on a noisy two-colour background."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=gen))  # noqa: E731
    col = lambda: tuple(int(255 * float(v)) for v in torch.rand(3, generator=gen))  # noqa: E731
    img = Image.new("RGB", (size, size), col())
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, u(0, size), size, size], fill=col())  # a horizon: colour and layout carry no class
    r, cx, cy, rot = u(0.22, 0.4) * size, u(0.35, 0.65) * size, u(0.35, 0.65) * size, u(0, 2 * math.pi)
    fill = col()
    if kind == "ellipse":
        c, s = math.cos(rot), math.sin(rot)
        pts = [(r * math.cos(t), 0.6 * r * math.sin(t)) for t in (2 * math.pi * k / 48 for k in range(48))]
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=fill)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(0.3 * r)))
    else:
        draw.polygon(_shape_points(kind, cx, cy, r, rot), fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(u(0, 0.8)))
    noise = torch.randn(size, size, 3, generator=gen) * u(4, 16)
    arr = (torch.tensor(list(img.getdata()), dtype=torch.float32).view(size, size, 3) + noise).clamp(0, 255)
    return Image.fromarray(arr.to(torch.uint8).numpy())


def shapes_folder(per_class: int = 80, size: int = 64) -> Path:
    root = WORK / "shapes"
    if root.is_dir():
        return root
    gen, tmp = torch.Generator().manual_seed(2020), root.with_suffix(".tmp")
    for kind in SHAPES:
        (tmp / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(kind, size, gen).save(tmp / kind / f"{i}.png")
    tmp.rename(root)
    return root


def run(cfg, auto: bool) -> dict:
    """One run (after the range test when `auto`): test and validation accuracy, lr, seconds."""
    t0 = time.perf_counter()
    found = {}
    if auto:
        cfg, found = lr_into_config(cfg, WORK / "data", data=prepare_data(cfg, WORK / "data"))
    s = train(cfg, work_dir=WORK / "data").summary
    total = time.perf_counter() - t0
    lf = found.get("lr_find", {})
    return {"val": s["val_acc"], "test": s["test_acc"], "lr": cfg.optim.lr, "eff": cfg.effective_lr,
            "seconds": total, "search_s": lf.get("seconds", 0.0), "steps": lf.get("steps", 0),
            "kept": any("kept" in n for n in lf.get("notes", []))}


CACHE = WORK / "auto_lr_grid.json"  # grid runs do not depend on lr_find's code: a rerun reuses them


def cached_grid_run(key: str, cfg) -> dict:
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    if key not in cache:
        cache[key] = run(cfg, auto=False)
        CACHE.write_text(json.dumps(cache, indent=1))
    return cache[key]


def bench_dataset(name: str, source: Path, args) -> list[str]:
    grid = {e: [] for e in args.grid}
    autos = []
    for seed in args.seeds:
        base = [f"data.source={source}", f"data.image_size={args.image_size}", "backbone.name=resnet18",
                "backbone.pretrained=bundled", f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
                "optim.momentum=0.9", "eval.ood=false", f"seed={seed}"]
        for eff in args.grid:
            key = f"{name}|seed {seed}|eff {eff:g}|{args.image_size} px|{args.epochs} ep|batch {args.batch_size}"
            r = cached_grid_run(key, config(*base, f"optim.lr={eff * 0.1:g}"))
            grid[eff].append(r)
            print(f"{name} seed {seed} eff {eff:g}: val {100 * r['val']:.1f} test {100 * r['test']:.1f} "
                  f"({r['seconds']:.0f} s)", flush=True)
        r = run(config(*base, "optim.lr_auto=true"), auto=True)
        autos.append(r)
        print(f"{name} seed {seed} auto: eff {r['eff']:.3g} val {100 * r['val']:.1f} test {100 * r['test']:.1f} "
              f"(search {r['search_s']:.1f} s of {r['seconds']:.0f} s, {r['steps']} steps"
              f"{'; inconclusive: the default rate kept' if r['kept'] else ''})", flush=True)
    mean = lambda rs, k: statistics.mean(x[k] for x in rs)  # noqa: E731
    best = max(grid, key=lambda e: mean(grid[e], "val"))
    gap = 100 * (mean(autos, "test") - mean(grid[best], "test"))
    share = statistics.mean(r["search_s"] / r["seconds"] for r in autos)
    per_value = " / ".join(f"{100 * mean(grid[e], 'test'):.1f}" for e in args.grid)
    return [name, per_value, f"{best:g}", f"{100 * mean(grid[best], 'test'):.1f}",
            ", ".join(f"{r['eff']:.2g}" + (" (kept)" if r["kept"] else "") for r in autos), f"{100 * mean(autos, 'test'):.1f}", f"{gap:+.1f}",
            f"{100 * share:.0f}%", "yes" if gap >= -2.0 else "no"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--datasets", nargs="+", default=["textures", "fractals", "shapes"])
    ap.add_argument("--grid", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 1.0],
                    help="effective learning rates lr / (1 - momentum); momentum 0.9")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=48)
    args = ap.parse_args()
    sources = {"textures": lambda: Path(SAMPLE_DATASET), "fractals": fractal_folder, "shapes": shapes_folder}
    rows = [bench_dataset(name, sources[name](), args) for name in args.datasets]
    print()
    print(f"ResNet-18 (bundled), {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, "
          f"momentum 0.9, seeds {args.seeds}; test accuracy %, mean over seeds; load {open('/proc/loadavg').read().split()[0]}")
    print(table(["dataset", "grid test % (eff " + " / ".join(f"{e:g}" for e in args.grid) + ")", "grid best (by val)",
                 "its test %", "auto picks (eff)", "auto test %", "auto - best", "search share", "within 2"], rows))


if __name__ == "__main__":
    main()
