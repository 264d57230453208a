"""Greyscale copies (train.greyscale=0.25) against none (the default) on day and night pictures: generated
128 x 96 pictures of 3 classes (a coloured shape of the class, its own shape and colour, on a cluttered
background), one in six of them a night shot (greyscale, darker, grainier, as an infrared camera trap's), 48 per
class (`--night grey`: night shots only greyscale). Each run is a CLI process (the Quick demo preset at 64 px), seeds alternating between the two settings.
Accuracy on greyscale and on colour pictures is counted over the validation and test images together
(summary.json's val_by_colour and test_by_colour). Prints each run and a table of means.

    python benchmarks/greyscale.py [--seeds 0 1 2] [--per-class 48] [--night-every 6] [--shares 0 0.25]
                                   [--night ir|grey]
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

CLASSES = {"heron": ((200, 70, 50), "disc"), "kingfisher": ((40, 100, 210), "square"),
           "warbler": ((70, 170, 60), "triangle")}
WIDTH, HEIGHT, SUBJECT = 128, 96, 30  # px; the subject anywhere inside the middle square


def picture(kind: str, night: str | None, rng: np.random.Generator) -> Image.Image:
    """One picture of `kind`; a night shot (`night` "ir") is greyscale, darker and grainier, or (`night` "grey")
    only greyscale; None: a day shot."""
    arr = rng.integers(70, 160, 3) + rng.normal(0, 14, (HEIGHT, WIDTH, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(img)
    scribble(pen, rng, (WIDTH, HEIGHT), lines=5, reach=25, width=2)
    colour, shape = CLASSES[kind]
    x = int(rng.integers((WIDTH - HEIGHT) // 2, (WIDTH + HEIGHT) // 2 - SUBJECT))
    y = int(rng.integers(0, HEIGHT - SUBJECT))
    fill = tuple(int(c) for c in np.clip(np.array(colour) + rng.integers(-25, 25, 3), 0, 255))
    draw_shape(pen, shape, x, y, SUBJECT, fill)
    if night is None:
        return img
    if night == "grey":
        return img.convert("L").convert("RGB")
    grey = np.asarray(img.convert("L"), dtype=np.float64) * 0.6 + 20 + rng.normal(0, 10, (HEIGHT, WIDTH))
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")


def write_zip(path: Path, per_class: int, night_every: int, night: str = "ir", seed: int = 0) -> None:
    """The dataset as a zip of class folders of JPEGs at `path`, one in `night_every` a night shot of kind `night`
    (`picture`)."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as zf:
        for kind in CLASSES:
            for i in range(per_class):
                dark = i % night_every == 0
                buf = io.BytesIO()
                picture(kind, night if dark else None, rng).save(buf, format="JPEG", quality=88)
                zf.writestr(f"{kind}/{'night' if dark else 'day'}_{i:03d}.jpg", buf.getvalue())


def held_out(summary: dict, kind: str) -> tuple[int, int]:
    """(right, images) of `kind` ("greyscale" or "colour") over the validation and test images."""
    counts = [summary.get(f"{split}_by_colour", {}).get(kind, [0, 0]) for split in ("val", "test")]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=48)
    ap.add_argument("--night-every", type=int, default=6)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25])
    ap.add_argument("--night", choices=["ir", "grey"], default="ir", help="ir: greyscale, darker, grainier")
    args = ap.parse_args()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "day_and_night.zip"
        write_zip(data, args.per_class, args.night_every, args.night)
        print(f"{len(CLASSES)} classes x {args.per_class} pictures of {WIDTH} x {HEIGHT} px, one in "
              f"{args.night_every} a night shot ({args.night}); quick_demo at 64 px", flush=True)
        for seed in args.seeds:
            for share in args.shares:
                r = one_run(["--preset", "quick_demo", "--set", f"train.greyscale={share:g}"], seed, data)
                (g_right, g_n), (c_right, c_n) = held_out(r["summary"], "greyscale"), held_out(r["summary"], "colour")
                r.update(grey=g_right / g_n if g_n else float("nan"), colour=c_right / c_n if c_n else float("nan"),
                         g_n=g_n, c_n=c_n)
                results.setdefault(f"{share:g}", []).append(r)
                print(f"greyscale {share:g} | seed {seed}: greyscale {g_right}/{g_n} colour {c_right}/{c_n} "
                      f"test {100 * r['test']:.1f}% val {100 * r['val']:.1f}% wall {r['wall']:.0f} s", flush=True)
    rows = [[share, " / ".join(f"{100 * r['grey']:.1f}" for r in rs), mean_std([r["grey"] for r in rs]),
             mean_std([r["colour"] for r in rs]), mean_std([r["test"] for r in rs]),
             f"{statistics.mean(r['wall'] for r in rs):.0f}"]
            for share, rs in results.items()]
    print()
    print(table(["train.greyscale", "greyscale % per seed", "greyscale % (mean ± sd)", "colour % (mean ± sd)",
                 "test % (mean ± sd)", "wall s mean"], rows))


if __name__ == "__main__":
    main()
