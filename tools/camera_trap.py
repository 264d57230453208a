"""A generated camera-trap export: bursts of frames of one animal (or of nothing), each file with the EXIF time and
camera a trail camera writes, for the burst checks (`tests/test_bursts.py`' generated frames are noise;
`benchmarks/bursts.py` uses these).

One camera at one site: every frame shows the same grass and trunk, so that pictures alone do not tell one burst
from another (the studio's near-copy search finds a crowd of look-alikes). Within a burst the frames share their
light and the animal's size, colour and path, the animal a few pixels further on in each frame: frames of one
moment. Bursts differ in these.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

ANIMALS = ("empty", "deer", "fox")
SIZE = (128, 96)  # px, width x height
CAMERA = ("Browning", "BTC-8E")
NIGHT_SHARE = 0.4  # bursts taken at night, under the infrared flash


def site(seed: int = 0):
    """The camera's view (float32 [H, W, 3], 0-255): grass, a trunk and the treeline, the same in every frame it takes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = SIZE
    img = np.zeros((h, w, 3), np.float32)
    img[:] = (60, 92, 50)
    img[: h // 3] = (72, 100, 84)
    img[8: h - 10, 18:28] = (85, 66, 46)  # a trunk
    grass = np.kron(rng.normal(0, 14, (h // 4, w // 4, 1)), np.ones((4, 4, 1)))
    img[h // 3:] += grass[h // 3:]
    return img


def _animal(draw, kind: str, x: float, y: float, s: float, tone: float) -> None:
    """A deer (a brown body, legs, neck and head) or a fox (a smaller orange body and a white-tipped tail) at (x, y),
    `s` its scale, `tone` its colour's brightness."""
    def c(r, g, b):
        return tuple(int(min(255, v * tone)) for v in (r, g, b))

    if kind == "deer":
        bw, bh = 34 * s, 16 * s
        draw.ellipse([x, y, x + bw, y + bh], fill=c(120, 82, 46))
        for lx in (0.15, 0.8):
            draw.rectangle([x + bw * lx, y + bh * 0.8, x + bw * lx + 2 * s, y + bh + 14 * s], fill=c(100, 66, 36))
        draw.rectangle([x + bw * 0.85, y - 10 * s, x + bw * 0.95, y + 4 * s], fill=c(115, 78, 44))
        draw.ellipse([x + bw * 0.8, y - 15 * s, x + bw * 1.08, y - 7 * s], fill=c(125, 85, 50))
    elif kind == "fox":
        bw, bh = 20 * s, 9 * s
        draw.ellipse([x, y, x + bw, y + bh], fill=c(205, 100, 32))
        draw.polygon([(x, y + bh * 0.4), (x - 13 * s, y + bh * 0.2), (x - 12 * s, y + bh * 0.8)], fill=c(195, 95, 30))
        draw.ellipse([x - 15 * s, y + bh * 0.2, x - 11 * s, y + bh * 0.7], fill=c(240, 240, 235))
        for lx in (0.2, 0.75):
            draw.rectangle([x + bw * lx, y + bh * 0.8, x + bw * lx + 1.5 * s, y + bh + 6 * s], fill=c(40, 25, 20))


def burst(kind: str, frames: int, seed: int, view=None) -> list[bytes]:
    """`frames` JPEGs (SIZE) of one moment at the camera's `view` (`site`; `site(0)` when None): an animal of `kind`
    (ANIMALS) walking a few pixels a frame across it, in this burst's light (NIGHT_SHARE of bursts at night: grey
    and grainy), the grass swaying a little between frames; without EXIF (`camera_trap_export` adds it). Raises ValueError for another kind."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    if kind not in ANIMALS:
        raise ValueError(f"kind must be one of {ANIMALS}, not {kind!r}")
    rng = np.random.default_rng(seed)
    view = site(0) if view is None else view
    light, scale, tone = rng.uniform(0.55, 1.25), rng.uniform(0.45, 1.2), rng.uniform(0.7, 1.1)
    night = rng.random() < NIGHT_SHARE  # the infrared flash: grey, grainy frames
    x, y, step = rng.uniform(10, 80), rng.uniform(35, 60), rng.choice([-4.0, 4.0])
    out = []
    for k in range(frames):
        sway = np.kron(rng.normal(0, 5, (SIZE[1] // 4, SIZE[0] // 4, 1)), np.ones((4, 4, 1)))
        arr = (view + sway) * light + rng.normal(0, 4, view.shape)  # the wind and each frame's sensor noise
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        _animal(ImageDraw.Draw(img), kind, x + step * k, y + rng.uniform(-1, 1), scale, tone * light)
        if night:
            grey = np.asarray(img.convert("L"), np.float32) * 0.8 + 15 + rng.normal(0, 9, (SIZE[1], SIZE[0]))
            img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
        buf = io.BytesIO()
        img.filter(ImageFilter.GaussianBlur(0.5)).save(buf, "JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def with_time(jpeg: bytes, when: datetime | None) -> bytes:
    """The JPEG with the EXIF a trail camera writes (Make, Model, DateTimeOriginal) at `when`; without any EXIF
    for `when` None (an export tool that strips it)."""
    from PIL import ExifTags, Image

    img = Image.open(io.BytesIO(jpeg))
    exif = Image.Exif()
    if when is not None:
        exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = CAMERA
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = when.strftime("%Y:%m:%d %H:%M:%S")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def camera_trap_export(bursts_per_class: int = 16, seed: int = 0, timed: bool = True,
                       top: str = "DCIM export") -> tuple[dict[str, bytes], list[list[str]]]:
    """({"<top>/<kind>/IMG_0001.JPG": JPEG bytes, ...}, the files of each burst): `bursts_per_class` bursts of 3 to
    5 frames (`burst`) of each of ANIMALS, numbered in the order the camera took them, frames 1 s apart, bursts
    minutes to hours apart; `timed` False: the same pictures without EXIF."""
    import numpy as np

    rng = np.random.default_rng(seed)
    view = site(0)  # one camera: every export of it sees the same place
    plan = [kind for kind in ANIMALS for _ in range(bursts_per_class)]
    order = rng.permutation(len(plan))
    when = datetime(2024, 5, 1, 6, 0, 0)
    files: dict[str, bytes] = {}
    groups: list[list[str]] = []
    n = 1
    for b in order.tolist():
        kind = plan[b]
        when += timedelta(minutes=int(rng.integers(5, 240)))
        group = []
        for k, jpeg in enumerate(burst(kind, int(rng.integers(3, 6)), seed * 100_000 + b, view)):
            name = f"{top}/{kind}/IMG_{n:04d}.JPG"
            files[name] = with_time(jpeg, when + timedelta(seconds=k) if timed else None)
            group.append(name)
            n += 1
        groups.append(group)
    return files, groups
