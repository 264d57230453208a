"""The bundled sample dataset: procedurally drawn "describable textures".

Eight texture words (in the spirit of the Describable Textures Dataset, Cimpoi et al. 2014), each
drawn from a formula over rotated, scaled pixel coordinates, then painted with two random colours,
lit by a random gradient and covered with sensor-like noise. Colour carries no class information;
scale, rotation, line width, contrast and noise vary per image, and several classes are near
neighbours at some scales (dotted / chequered / grid at small periods, striped / wavy / zigzagged at
low amplitudes, blotchy / crackled), so the task is learnable but not solved by one epoch of training
from scratch.

Everything is vectorised over all images of a class with torch, seeded by one ``torch.Generator``,
and therefore deterministic: the same seed gives the same bytes.

    images, labels = make_texture_images(80, 64, seed=0)     # uint8 [640, 3, 64, 64], int64 [640]
    write_texture_zip("assets/sample_textures.zip")          # textures/<class>/<i>.jpg
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import torch

TEXTURE_CLASSES: tuple[str, ...] = (
    "blotchy",
    "chequered",
    "crackled",
    "dotted",
    "grid",
    "striped",
    "wavy",
    "zigzagged",
)

# Pattern period range in pixels at 64 px (scaled with image size). The low end is close to the
# Nyquist limit on purpose: small chequers, dots and grids blur into each other there.
_PERIOD_RANGE_PX = (6.0, 22.0)
_MAX_TILT_DEG = 30.0      # tilt away from horizontal/vertical
_ASPECT_RANGE = (0.85, 1.18)
_WARP_MAX = 0.12          # low-frequency coordinate warp, in periods
_LUMA_CONTRAST = (0.3, 0.65)  # luminance gap between the two colours (hue is free)
_NOISE_RANGE = (0.01, 0.07)
_JPEG_QUALITY = 88  # 4:4:4 chroma; keeps the zip under 3 MB
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)  # fixed timestamps keep the zip byte-identical across runs


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(lo), math.log(hi), gen))


def _soft_step(signed_distance: torch.Tensor, aa: torch.Tensor) -> torch.Tensor:
    """1 inside (distance > 0), 0 outside, with a ramp about one pixel wide (anti-aliasing)."""
    return (signed_distance / aa + 0.5).clamp(0.0, 1.0)


def _frac_centre_distance(t: torch.Tensor) -> torch.Tensor:
    """Distance from t to the nearest half-integer, in [0, 0.5] (0 at the middle of a cell)."""
    return (t - torch.floor(t) - 0.5).abs()


def _coords(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Per-image rotated, scaled, shifted and mildly warped coordinates in units of one period.

    Returns u, v of shape [n, size, size], the period in pixels [n, 1, 1] and the pixel grid.
    """
    scale = size / 64.0
    period = _log_uniform(n, _PERIOD_RANGE_PX[0] * scale, _PERIOD_RANGE_PX[1] * scale, gen)
    # Near-axis-aligned (either way round) with a random tilt: orientation varies a lot, but
    # not uniformly, as in photographed textures.
    tilt = math.radians(_MAX_TILT_DEG)
    theta = _uniform(n, -tilt, tilt, gen) + (math.pi / 2) * (torch.rand(n, generator=gen) < 0.5)
    aspect = _uniform(n, *_ASPECT_RANGE, gen)  # slightly non-square cells
    phase = torch.rand(n, 2, generator=gen) * 4.0
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    y, x = torch.meshgrid(r, r, indexing="ij")
    x, y = x[None], y[None]
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    p = period[:, None, None]
    u = (x * cos + y * sin) / p + phase[:, 0, None, None]
    v = (-x * sin + y * cos) / (p * aspect[:, None, None]) + phase[:, 1, None, None]
    # A gentle low-frequency warp so that even the regular classes look hand-made.
    warp = _uniform(n, 0.0, _WARP_MAX, gen)[:, None, None]
    wf = _uniform(n, 0.5, 2.0, gen)[:, None, None] * (2 * math.pi / size)
    wp = torch.rand(n, 2, generator=gen) * 2 * math.pi
    u = u + warp * torch.sin(wf * y + wp[:, 0, None, None])
    v = v + warp * torch.sin(wf * x + wp[:, 1, None, None])
    return u, v, p, x, y


def _random_field(n: int, x: torch.Tensor, y: torch.Tensor, p: torch.Tensor,
                  gen: torch.Generator, waves: int = 10) -> torch.Tensor:
    """A smooth random field: a sum of cosines with random directions near frequency 1/period."""
    ang = torch.rand(n, waves, generator=gen) * 2 * math.pi
    freq = (0.6 + 0.8 * torch.rand(n, waves, generator=gen)) / p.view(n, 1)
    phase = torch.rand(n, waves, generator=gen) * 2 * math.pi
    kx = (freq * torch.cos(ang) * 2 * math.pi)[:, :, None, None]
    ky = (freq * torch.sin(ang) * 2 * math.pi)[:, :, None, None]
    field = torch.cos(kx * x[:, None] + ky * y[:, None] + phase[:, :, None, None]).sum(1)
    return field / math.sqrt(waves / 2.0)


def _pattern(name: str, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Foreground coverage in [0, 1], shape [n, size, size]."""
    u, v, p, x, y = _coords(n, size, gen)
    aa = 1.0 / p  # one pixel in period units
    if name == "striped":
        duty = _uniform(n, 0.25, 0.6, gen)[:, None, None]
        return _soft_step(duty / 2 - _frac_centre_distance(u), aa)
    if name == "wavy":
        amp = _uniform(n, 0.25, 0.8, gen)[:, None, None]
        k = _uniform(n, 0.12, 0.35, gen)[:, None, None]
        duty = _uniform(n, 0.3, 0.6, gen)[:, None, None]
        uw = u + amp * torch.sin(2 * math.pi * k * v)
        return _soft_step(duty / 2 - _frac_centre_distance(uw), aa * 1.2)
    if name == "zigzagged":
        amp = _uniform(n, 0.3, 0.9, gen)[:, None, None]
        k = _uniform(n, 0.15, 0.4, gen)[:, None, None]
        duty = _uniform(n, 0.3, 0.6, gen)[:, None, None]
        tri = 4 * _frac_centre_distance(k * v) - 1.0  # triangle wave in [-1, 1]
        uz = u + amp * tri
        return _soft_step(duty / 2 - _frac_centre_distance(uz), aa * 1.2)
    if name == "chequered":
        su = _soft_step(_frac_centre_distance(u) - 0.25, aa)
        sv = _soft_step(_frac_centre_distance(v) - 0.25, aa)
        return su * (1 - sv) + sv * (1 - su)
    if name == "grid":
        width = _uniform(n, 0.08, 0.25, gen)[:, None, None]
        lu = _soft_step(width / 2 - (0.5 - _frac_centre_distance(u)), aa)
        lv = _soft_step(width / 2 - (0.5 - _frac_centre_distance(v)), aa)
        return torch.maximum(lu, lv)
    if name == "dotted":
        radius = _uniform(n, 0.14, 0.34, gen)[:, None, None]
        # Half the images use a staggered (hexagonal-like) lattice.
        stagger = (torch.rand(n, generator=gen) < 0.5).float()[:, None, None]
        u2 = u + stagger * 0.5 * (torch.floor(v) % 2)
        du = u2 - torch.floor(u2) - 0.5
        dv = v - torch.floor(v) - 0.5
        return _soft_step(radius - torch.sqrt(du * du + dv * dv), aa)
    if name == "blotchy":
        field = _random_field(n, x, y, p * 1.3, gen)
        level = _uniform(n, -0.5, 0.5, gen)[:, None, None]
        edge = _uniform(n, 0.15, 0.5, gen)[:, None, None]  # soft or crisp blotch edges
        return _soft_step(field - level, edge)
    if name == "crackled":
        return _crackle(n, size, p, gen)
    raise ValueError(f"unknown texture class {name!r}")


def _crackle(n: int, size: int, p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Voronoi cell borders: thin irregular cracks between random seed points."""
    period = p.view(n)
    counts = ((size * 1.4 / period) ** 2).round().clamp(4, 160).long()
    k_max = int(counts.max())
    seeds = (torch.rand(n, k_max, 2, generator=gen) * 1.4 - 0.2) * size  # cover the borders too
    # Unused seed slots go far away so they never win the nearest-seed race.
    unused = torch.arange(k_max)[None, :] >= counts[:, None]
    seeds[unused] = 1e6
    width = _uniform(n, 0.8, 2.0, gen) * (size / 64.0)
    r = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    pix = torch.stack([xx.flatten(), yy.flatten()], 1)  # [S*S, 2]
    out = torch.empty(n, size * size)
    for start in range(0, n, 32):  # chunked: the distance table is [chunk, S*S, k_max]
        s = seeds[start:start + 32]
        d = torch.cdist(pix[None].expand(s.shape[0], -1, -1), s)
        two = torch.topk(d, 2, dim=2, largest=False).values
        gap = (two[..., 1] - two[..., 0]) / 2.0  # distance to the bisector, in pixels
        out[start:start + 32] = _soft_step(width[start:start + 32, None] / 2 - gap, torch.tensor(1.0))
    return out.view(n, size, size)


def _paint(cover: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Two random colours, random lighting gradient and noise; returns uint8 [n, 3, S, S]."""
    n, size, _ = cover.shape
    # Two random colours of any hue whose luminances differ by a random gap, either way round:
    # the pattern is always visible, its colours never tell the class.
    c1 = torch.rand(n, 3, generator=gen)
    c2 = torch.rand(n, 3, generator=gen)
    l1 = c1.mean(1, keepdim=True)
    gap = _uniform(n, *_LUMA_CONTRAST, gen)[:, None]
    target = torch.where(l1 > 0.5, (l1 - gap).clamp_min(0.02), (l1 + gap).clamp_max(0.98))
    l2 = c2.mean(1, keepdim=True).clamp_min(1e-3)
    darker = c2 * (target / l2).clamp(max=1.0)
    brighter = c2 + (1 - c2) * ((target - l2) / (1 - l2).clamp_min(1e-3)).clamp(0.0, 1.0)
    c2 = torch.where(target < l2, darker, brighter)
    swap = (torch.rand(n, generator=gen) < 0.5)[:, None]
    c1, c2 = torch.where(swap, c2, c1), torch.where(swap, c1, c2)
    c1, c2 = c1[:, :, None, None], c2[:, :, None, None]
    img = c1 + (c2 - c1) * cover[:, None]
    # Lighting: a linear ramp in a random direction plus a random overall exposure.
    r = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(r, r, indexing="ij")
    ang = torch.rand(n, generator=gen) * 2 * math.pi
    strength = _uniform(n, 0.0, 0.45, gen)
    ramp = (x[None] * torch.cos(ang)[:, None, None] + y[None] * torch.sin(ang)[:, None, None])
    light = _uniform(n, 0.75, 1.15, gen)[:, None, None] * (1.0 + strength[:, None, None] * ramp)
    img = img * light[:, None]
    sigma = _uniform(n, *_NOISE_RANGE, gen)[:, None, None, None]
    img = img + sigma * torch.randn(img.shape, generator=gen)
    return (img.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def make_texture_images(n_per_class: int, image_size: int = 64,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n_per_class`` images of every class in ``TEXTURE_CLASSES``.

    Returns (images uint8 [N, 3, S, S], labels int64 [N]) in class order, N = 8 * n_per_class.
    Deterministic for a seed; the label index is the position in ``TEXTURE_CLASSES``.
    """
    if n_per_class < 1 or image_size < 8:
        raise ValueError("need n_per_class >= 1 and image_size >= 8")
    gen = torch.Generator().manual_seed(int(seed))
    images, labels = [], []
    for label, name in enumerate(TEXTURE_CLASSES):
        cover = _pattern(name, n_per_class, image_size, gen)
        images.append(_paint(cover, gen))
        labels.append(torch.full((n_per_class,), label, dtype=torch.int64))
    return torch.cat(images), torch.cat(labels)


def _encode(image: torch.Tensor, fmt: str) -> bytes:
    from PIL import Image

    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG", optimize=True)
    else:
        pil.save(buf, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def write_texture_zip(path: str | Path, n_per_class: int = 80, image_size: int = 64,
                      seed: int = 0, fmt: str = "jpg") -> Path:
    """Write ``textures/<class>/<i>.<fmt>`` into a zip at ``path`` (byte-identical for a seed)."""
    if fmt not in ("jpg", "png"):
        raise ValueError("fmt must be 'jpg' or 'png'")
    images, labels = make_texture_images(n_per_class, image_size, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counters = [0] * len(TEXTURE_CLASSES)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for image, label in zip(images, labels.tolist()):
            name = f"textures/{TEXTURE_CLASSES[label]}/{counters[label]:03d}.{fmt}"
            counters[label] += 1
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            zf.writestr(info, _encode(image, fmt))  # jpg/png are already compressed
    return path


if __name__ == "__main__":  # python -m tools.textures [out.zip]
    import sys

    out = write_texture_zip(sys.argv[1] if len(sys.argv) > 1 else "assets/sample_textures.zip")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def cut_zip(src: str | Path, dst: str | Path, per_class: int) -> Path:
    """A copy of the image zip `src` at `dst` with only the first `per_class` files (in name order) of each
    class folder (a file's parent folder), the same names otherwise: a smaller dataset of the same kind.
    Returns `dst`."""
    taken: dict[str, int] = {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in sorted(n for n in zin.namelist() if not n.endswith("/")):
            cls = name.split("/")[-2] if "/" in name else ""
            taken[cls] = taken.get(cls, 0) + 1
            if taken[cls] <= per_class:
                zout.writestr(name, zin.read(name))
    return Path(dst)
