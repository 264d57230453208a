"""Generated pictures of machined parts from a fixed camera: a factory inspector's parts.zip, for the look-alike
checks (the test of the Data page's duplicate groups and `benchmarks/near_copies.py`)."""

from __future__ import annotations

import io

PART_KINDS = ("ok", "scratch", "dent")


def machined_part(seed: int, defect: str = "ok", size: int = 96) -> bytes:
    """A fixed camera's 16-bit greyscale PNG (size x size px) of a machined part: a disc with a bore on brushed metal,
    fresh sensor noise in every picture, with a small `defect` (one of PART_KINDS: none, a bright scratch, a dark
    dent). Pictures that look alike at a glance and differ in their details. Raises ValueError for another
    defect."""
    import numpy as np
    from PIL import Image

    if defect not in PART_KINDS:
        raise ValueError(f"defect must be one of {PART_KINDS}, not {defect!r}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    r = np.hypot(yy, xx)
    metal = 30000 + rng.normal(0, 1500, (size, 1)) + rng.normal(0, 400, (size, size))  # brushed: row streaks
    part = np.where(r < 0.38 * size, 42000, metal)
    part = np.where(r < 0.1 * size, 9000, part)
    if defect == "scratch":
        x0 = rng.integers(size // 4, size // 2)
        for y in range(size // 4, size // 2):
            part[y, x0 + (y - size // 4) // 3] = 60000
    elif defect == "dent":
        cy, cx = rng.integers(size // 2 + 5, size // 2 + 20, 2)
        part = part - 15000 * np.exp(-(((yy + size / 2 - cy) / 3) ** 2 + ((xx + size / 2 - cx) / 5) ** 2))
    buf = io.BytesIO()
    Image.fromarray(np.clip(part, 0, 65535).astype(np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def machined_parts(counts: dict[str, int] | None = None, top: str = "Export 2026-12-01") -> dict[str, bytes]:
    """{"<top>/ok/IMG_ok_0000.png": PNG bytes, ...}: `counts` pictures of each kind (default 16 ok, 6 scratched, 6
    dented; `machined_part`, each kind's own seeds), under a wrapper folder `top` as an export tool writes it."""
    counts = counts or {"ok": 16, "scratch": 6, "dent": 6}
    return {f"{top}/{kind}/IMG_{kind}_{i:04d}.png": machined_part(100 * PART_KINDS.index(kind) + i, kind)
            for kind, n in counts.items() for i in range(n)}
