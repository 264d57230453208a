"""The dashboard's page icon, assets/icon.png: three slider knobs (a "tune" glyph) on a blue rounded
square, 64 x 64 px RGBA. Drawn here so that the browser tab needs no icon font from the internet.

    python -m tools.icon [assets/icon.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

BLUE = (31, 119, 180, 255)
WHITE = (255, 255, 255, 255)


def draw_icon(size: int = 64) -> Image.Image:
    """The icon as an RGBA image of `size` x `size` px (drawn at 256 px, then downsampled)."""
    s = 256
    im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([8, 8, s - 8, s - 8], radius=48, fill=BLUE)
    for y, x in ((70, 160), (128, 90), (186, 140)):  # three sliders, knobs at different settings
        d.rounded_rectangle([40, y - 9, s - 40, y + 9], radius=9, fill=WHITE)
        d.ellipse([x - 24, y - 24, x + 24, y + 24], fill=WHITE, outline=BLUE, width=8)
    return im.resize((size, size), Image.LANCZOS)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "assets/icon.png")
    draw_icon().save(out, optimize=True)
    print(out)
