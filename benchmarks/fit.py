"""How a wide picture becomes the model's square (data.fit: crop, the middle square, the default; pad, the whole
picture on grey bars; stretch, the whole picture squeezed to the square), on two kinds of generated wide pictures:

- `--kind photos`: 160 x 96 pictures of 4 classes (a small coloured shape of the class on a cluttered gradient,
  placed at a random height and anywhere across the width, so that about 40% of subjects lie partly or wholly
  outside the middle square), 24 per class;
- `--kind spectrograms`: 256 x 64 grey spectrogram-like pictures (time across, pitch up) of 4 call types (a
  rising, a falling, a steady and a trilled whistle with a harmonic, 28-44 px long, at a random pitch and anywhere
  in time, over background noise and a few short clicks), 24 per class: the middle square keeps a quarter of the
  time axis, whole pictures on grey bars keep a quarter of the square.

Each run is a CLI process (the Quick demo preset, at 64 px unless --image-size says otherwise), seeds alternating
between the ways. Prints each run and a table of means (test and validation accuracy, the run's wall time).

    python benchmarks/fit.py [--kind photos|spectrograms] [--fits crop pad stretch] [--seeds 0 1 2]
        [--per-class 24] [--preset quick_demo] [--image-size 64]
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


CALLS = ("rising", "falling", "steady", "trill")
SPEC_WIDTH, SPEC_HEIGHT = 256, 64  # px; time across, pitch up: the middle square keeps x 96-160 of 256


def spectrogram(kind: str, rng: np.random.Generator) -> tuple[Image.Image, bool]:
    """One grey spectrogram-like picture (SPEC_WIDTH x SPEC_HEIGHT) of a `kind` call (CALLS) and whether the call
    lies wholly inside the middle square. The call: a 2 px whistle and a fainter harmonic above it, its pitch
    rising, falling, steady or trilled, 28-44 px long, anywhere in time; background noise and 0-3 clicks."""
    arr = rng.gamma(2.0, 12.0, (SPEC_HEIGHT, SPEC_WIDTH))  # background noise, darker at high pitch
    arr *= np.linspace(0.6, 1.2, SPEC_HEIGHT)[:, None]
    for _ in range(rng.integers(0, 4)):  # a click: a short broadband stripe
        x = int(rng.integers(0, SPEC_WIDTH - 2))
        arr[:, x:x + 2] += rng.uniform(40, 90)
    length = int(rng.integers(28, 45))
    x0 = int(rng.integers(0, SPEC_WIDTH - length))
    base, span = rng.uniform(14, 40), rng.uniform(8, 14)  # rows from the bottom
    t = np.linspace(0, 1, length)
    pitch = {"rising": base + span * t, "falling": base + span * (1 - t), "steady": base + 0 * t,
             "trill": base + 0.5 * span * (1 + np.sin(2 * np.pi * 3 * t))}[kind]
    loud = rng.uniform(120, 200)
    for k, (factor, gain) in enumerate(((1.0, 1.0), (1.5, 0.5))):  # the whistle and a fainter harmonic
        rows = SPEC_HEIGHT - 1 - np.clip(np.round(pitch * factor + 2 * k), 0, SPEC_HEIGHT - 2).astype(int)
        for dx, row in enumerate(rows):
            arr[row - 1:row + 1, x0 + dx] += loud * gain
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")
    side = SPEC_HEIGHT
    inside = x0 >= (SPEC_WIDTH - side) // 2 and x0 + length <= (SPEC_WIDTH + side) // 2
    return img, inside


def write_zip(path: Path, per_class: int, seed: int = 0, kind: str = "photos") -> float:
    """The dataset (`kind` photos or spectrograms) as a zip of class folders of PNGs at `path`; returns the share
    of subjects (calls) wholly inside the middle square."""
    rng, inside = np.random.default_rng(seed), []
    draw = spectrogram if kind == "spectrograms" else picture
    with zipfile.ZipFile(path, "w") as zf:
        for cls in (CALLS if kind == "spectrograms" else CLASSES):
            for i in range(per_class):
                img, ok = draw(cls, rng)
                inside.append(ok)
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                zf.writestr(f"{cls}/{i:03d}.png", buf.getvalue())
    return float(np.mean(inside))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=24)
    ap.add_argument("--preset", default="quick_demo")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--kind", choices=["photos", "spectrograms"], default="photos")
    ap.add_argument("--fits", nargs="+", choices=["crop", "pad", "stretch"], default=["crop", "pad", "stretch"])
    args = ap.parse_args()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "wide.zip"
        share = write_zip(data, args.per_class, kind=args.kind)
        size = f"{SPEC_WIDTH} x {SPEC_HEIGHT}" if args.kind == "spectrograms" else f"{WIDTH} x {HEIGHT}"
        print(f"4 classes x {args.per_class} {args.kind} of {size} px; {100 * share:.0f}% of "
              f"subjects wholly inside the middle square; {args.preset} at {args.image_size} px", flush=True)
        for seed in args.seeds:
            for fit in args.fits:
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
