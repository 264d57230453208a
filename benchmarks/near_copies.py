"""Try it's "copy of the run's own image" note: how many re-saved copies it recognises, and whether
it ever takes one image for another (engine.predict.NearCopies).

Every image of a dataset (the bundled sample by default) is decoded at the run size, as a run
holds it; then each is saved again the ways a user's copy comes about (resized up or down, JPEG at
quality 85 and 50, PNG, WebP), decoded as Try it decodes an upload, and looked up among all of the
dataset's images. Printed per kind of copy: the share found as its own image, and the share taken
for another image (a false match). Also the fewest bits between two different images' hashes.

    python benchmarks/near_copies.py [--data assets/sample_textures.zip] [--image-size 64]
"""

from __future__ import annotations

import argparse
import io
import time
import zipfile

import numpy as np
import torch
from common import table
from PIL import Image

from engine.data import IMAGE_EXTENSIONS, PHASH_MAX_DISTANCE, popcount64
from engine.predict import NearCopies, decode_bytes, perceptual_hash

COPIES = {  # name -> (side in px, format, save options)
    "resized up to 128 px, JPEG 85": (128, "JPEG", {"quality": 85}),
    "resized up to 200 px, PNG": (200, "PNG", {}),
    "resized up to 300 px, WebP": (300, "WEBP", {}),
    "resized down to 48 px, JPEG 85": (48, "JPEG", {"quality": 85}),
    "same size, JPEG 50": (None, "JPEG", {"quality": 50}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="assets/sample_textures.zip", help="a zip of images (any folders)")
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    with zipfile.ZipFile(args.data) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(tuple(IMAGE_EXTENSIONS))]
        raws = [zf.read(n) for n in names]
    images = torch.stack([decode_bytes(r, n, args.image_size)[0] for r, n in zip(raws, names)])
    t0 = time.perf_counter()
    copies = NearCopies(perceptual_hash(images), images.float().mean((2, 3)).numpy(), list(names))
    per_image_ms = 1000 * (time.perf_counter() - t0) / len(images)
    bits = popcount64(copies.hashes[:, None] ^ copies.hashes[None, :])
    np.fill_diagonal(bits, 64)
    rows = []
    for kind, (side, fmt, options) in COPIES.items():
        found = wrong = 0
        for raw, name in zip(raws, names):
            picture = Image.open(io.BytesIO(raw)).convert("RGB")
            if side:
                picture = picture.resize((side, side), Image.Resampling.BICUBIC)
            buf = io.BytesIO()
            picture.save(buf, fmt, **options)
            copy, _ = decode_bytes(buf.getvalue(), f"copy.{fmt.lower()}", args.image_size)
            got = copies.find(copy[None])[0]
            found += got == name
            wrong += got not in (None, name)
        rows.append([kind, f"{100 * found / len(names):.1f}%", f"{100 * wrong / len(names):.1f}%"])
    print(f"{args.data}: {len(names)} images at {args.image_size} px; a copy within {PHASH_MAX_DISTANCE} bits "
          f"and the colour rule; hashing {per_image_ms:.3f} ms per image")
    print(table(["copy", "found as its own image", "taken for another image"], rows))
    print(f"fewest bits between two different images' hashes: {int(bits.min())} (a match needs at most "
          f"{PHASH_MAX_DISTANCE})")


if __name__ == "__main__":
    main()
