"""Keeping whole pictures (data.fit=pad) against the middle square (data.fit=crop, the default) on wide photos
whose subject sits anywhere along the width, often near an end: generated 160 x 96 pictures of 4 classes (a small
coloured shape of the class on a cluttered gradient, placed at a random height and anywhere across the width, so
that about 40% of subjects lie partly or wholly outside the middle square), 24 per class. Each run is a CLI
process (the Quick demo preset, at 64 px unless --image-size says otherwise), seeds alternating between the two
ways. Prints each run and a table of
means (test and validation accuracy, the run's wall time).

    python benchmarks/fit.py [--seeds 0 1 2] [--per-class 24] [--preset quick_demo] [--image-size 64]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common import mean_std, table
from drawn import draw_shape, scribble
from first_model import one_run

CLASSES = {"disc": (220, 60, 40), "square": (40, 170, 60), "triangle": (50, 80, 220), "bar": (230, 200, 40)}
WIDTH, HEIGHT, SUBJECT = 160, 96, 22  # px; the middle square keeps x 32-128 of 160


def picture(kind: str, rng: np.random.Generator) -> tuple[Image.Image, bool]:
    """One wide picture of `kind` and whether its subject lies wholly inside the middle square."""
    top, bottom = rng.integers(40, 200, 3), rng.integers(40, 200, 3)
    ramp = np.linspace(0, 1, HEIGHT)[:, None, None]
    arr = (top * (1 - ramp) + bottom * ramp).repeat(WIDTH, axis=1) + rng.normal(0, 12, (HEIGHT, WIDTH, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(img)
    scribble(pen, rng, (WIDTH, HEIGHT), lines=6, reach=20, width=1)
    x, y = int(rng.integers(0, WIDTH - SUBJECT)), int(rng.integers(4, HEIGHT - SUBJECT - 4))
    draw_shape(pen, kind, x, y, SUBJECT, CLASSES[kind])
    inside = x >= (WIDTH - HEIGHT) // 2 and x + SUBJECT <= (WIDTH + HEIGHT) // 2
    return img, inside


def write_zip(path: Path, per_class: int, seed: int = 0) -> float:
    """The dataset as a zip of class folders of PNGs at `path`; returns the share of subjects wholly inside the
    middle square."""
    rng, inside = np.random.default_rng(seed), []
    with zipfile.ZipFile(path, "w") as zf:
        for kind in CLASSES:
            for i in range(per_class):
                img, ok = picture(kind, rng)
                inside.append(ok)
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                zf.writestr(f"{kind}/{i:03d}.png", buf.getvalue())
    return float(np.mean(inside))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--preset", default="quick_demo")
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "wide.zip"
        share = write_zip(data, args.per_class)
        print(f"{len(CLASSES)} classes x {args.per_class} pictures of {WIDTH} x {HEIGHT} px; {100 * share:.0f}% of "
              f"subjects wholly inside the middle square; {args.preset} at {args.image_size} px", flush=True)
        for seed in args.seeds:
            for fit in ("crop", "pad"):
                r = one_run(["--preset", args.preset, "--image-size", str(args.image_size), "--set", f"data.fit={fit}"],
                           seed, data)
                results.setdefault(fit, []).append(r)
                print(f"{fit} | seed {seed}: test {100 * r['test']:.1f}% val {100 * r['val']:.1f}% "
                      f"wall {r['wall']:.0f} s (load {r['load']:.1f})", flush=True)
    rows = [[fit, " / ".join(f"{100 * r['test']:.1f}" for r in rs), mean_std([r["test"] for r in rs]),
             mean_std([r["val"] for r in rs]), f"{statistics.mean(r['wall'] for r in rs):.0f}"]
            for fit, rs in results.items()]
    print()
    print(table(["data.fit", "test % per seed", "test % (mean ± sd)", "val % (mean ± sd)", "wall s mean"], rows))


if __name__ == "__main__":
    main()
