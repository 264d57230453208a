"""Generated pictures' parts shared by the benchmark scripts (fit.py, greyscale.py): clutter lines and a class's
shape, drawn with PIL."""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw


def scribble(pen: ImageDraw.ImageDraw, rng: np.random.Generator, size: tuple[int, int], lines: int, reach: int,
             width: int) -> None:
    """`lines` lines of random colours, each from a random point of a `size` (width, height) picture to within
    `reach` px of it, `width` px thick: clutter for the subject to stand out from."""
    for _ in range(lines):
        x0, y0 = rng.integers(0, size[0]), rng.integers(0, size[1])
        pen.line([x0, y0, x0 + rng.integers(-reach, reach), y0 + rng.integers(-reach, reach)],
                 fill=tuple(int(c) for c in rng.integers(0, 255, 3)), width=width)


def draw_shape(pen: ImageDraw.ImageDraw, shape: str, x: int, y: int, side: int, fill: tuple[int, int, int]) -> None:
    """A filled `shape` ("disc", "square", "triangle", else a bar across the middle third) in the `side` px square
    whose top left corner is (`x`, `y`)."""
    box = [x, y, x + side, y + side]
    if shape == "disc":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    elif shape == "triangle":
        pen.polygon([(x, y + side), (x + side // 2, y), (x + side, y + side)], fill=fill)
    else:
        pen.rectangle([x, y + side // 3, x + side, y + 2 * side // 3], fill=fill)
