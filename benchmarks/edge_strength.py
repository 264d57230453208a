"""How strong the edges of each kind of image are (`engine.predict.edge_step`: the S-th largest grey-level step
between neighbouring pixels of an S x S image), at several run sizes, as decoded for training: the figures behind
Try it's "no strong edges" check (flagged under half of every training image's).

Images: drawn shapes like a new user's (3 classes x 20, a filled circle, square or triangle on white, 48 px, JPEG;
generated here, seed 0), the bundled sample's textures, 200 of scikit-learn's 8 x 8 digits (skipped without
scikit-learn, a benchmark-only dependency; enlarged bilinearly as in benchmarks/unfamiliar.py), and a
black-to-white gradient drawn at 48 px.

    python benchmarks/edge_strength.py [--sizes 32 64 128 224]
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from pathlib import Path

import torch
from common import table
from PIL import Image, ImageDraw

from engine.predict import decode_bytes, edge_step
from unfamiliar import digit_images

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "sample_textures.zip"


def drawn_shapes() -> list[bytes]:
    """60 JPEG files: a filled circle, square or triangle of a random dark colour on white, 48 px (seed 0)."""
    rng, files = random.Random(0), []
    for cls in ("circle", "square", "triangle"):
        for _ in range(20):
            im = Image.new("RGB", (48, 48), (255, 255, 255))
            pen, colour = ImageDraw.Draw(im), tuple(rng.randint(0, 200) for _ in range(3))
            x, y, r = rng.randint(14, 34), rng.randint(14, 34), rng.randint(8, 13)
            if cls == "circle":
                pen.ellipse([x - r, y - r, x + r, y + r], fill=colour)
            elif cls == "square":
                pen.rectangle([x - r, y - r, x + r, y + r], fill=colour)
            else:
                pen.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
            buf = io.BytesIO()
            im.save(buf, "JPEG")
            files.append(buf.getvalue())
    return files


def gradient() -> bytes:
    """A black-to-white gradient across 48 px (grey level 5 x column), as PNG."""
    im = Image.new("RGB", (48, 48))
    im.putdata([(5 * x,) * 3 for _ in range(48) for x in range(48)])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def decoded(files: list[bytes], size: int) -> torch.Tensor:
    """uint8 [N, 3, size, size], decoded as the studio decodes an upload."""
    return torch.stack([decode_bytes(f, "image", size)[0] for f in files])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    args = ap.parse_args()
    with zipfile.ZipFile(SAMPLE) as z:
        textures = [z.read(n) for n in z.namelist() if n.lower().endswith((".png", ".jpg", ".jpeg"))]
    sets = {"drawn shapes (60)": drawn_shapes(), f"sample textures ({len(textures)})": textures}
    rows = []
    for size in args.sizes:
        for name, files in sets.items():
            e = edge_step(decoded(files, size))
            rows.append([size, name, f"{e.min():.1f}", f"{e.quantile(0.05):.1f}", f"{e.median():.1f}"])
        digits = digit_images(size)
        if digits is not None:
            e = edge_step(digits)
            rows.append([size, "scikit-learn digits (200)", f"{e.min():.1f}", f"{e.quantile(0.05):.1f}",
                         f"{e.median():.1f}"])
        rows.append([size, "gradient (1)", *[f"{float(edge_step(decoded([gradient()], size))):.1f}"] * 3])
    print("edge_step, grey levels (0-255); an image under half of every training image's has no strong edges")
    print(table(["px", "images", "lowest", "5th percentile", "median"], rows))


if __name__ == "__main__":
    main()
