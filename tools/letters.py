"""Generated drawn letters: a new user's letters.zip, for the near-copy checks (the test of the Data
page's duplicate groups and `benchmarks/near_copies.py`)."""

from __future__ import annotations

import io
import random


def drawn_letters(seed: int = 0) -> dict[str, bytes]:
    """{"letters/A/A_00.png": PNG bytes, ...}: 25 black-on-white 64 x 64 drawings of each of A-D, their
    sizes, shifts, stroke widths and tilts drawn at random (PIL's default font). Different pictures that
    a perceptual hash and mean colours alone took for copies of one another, some across letters."""
    from PIL import Image, ImageDraw, ImageFont

    rng, files = random.Random(seed), {}
    for cls in "ABCD":
        for i in range(25):
            img = Image.new("RGB", (64, 64), "white")
            ImageDraw.Draw(img).text((rng.randint(12, 22), rng.randint(4, 12)), cls, fill="black",
                                     font=ImageFont.load_default(size=rng.randint(34, 44)),
                                     stroke_width=rng.randint(0, 2), stroke_fill="black")
            buf = io.BytesIO()
            img.rotate(rng.uniform(-10, 10), fillcolor="white").save(buf, "PNG")
            files[f"letters/{cls}/{cls}_{i:02d}.png"] = buf.getvalue()
    return files
