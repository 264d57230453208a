"""The OOD suite: corrupted copies of a validation batch, in the spirit of ImageNet-C.

Hendrycks & Dietterich (2019, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations") define each corruption at severities 1-5 with one parameter table for ImageNet
(224 px) and a milder one for CIFAR-10-C (32 px), because the same blur or JPEG quality destroys
far more of a small image. Our images are 32-224 px, so each parameter is interpolated between
the two published tables on a log scale of the image side: exactly CIFAR-10-C at <= 32 px,
exactly ImageNet-C at >= 224 px. Both tables move in the same direction with severity, so the
interpolated parameters do too.

All corruptions work on whole uint8 [N,3,H,W] batches with torch ops (on any device); only JPEG
is per image, by nature of the codec (PIL, as in ImageNet-C). Randomness (noise) comes from a torch.Generator, so a
suite is identical for the same seed.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)

# Severity 1..5 parameters from the authors' make_cifar_c.py / make_imagenet_c.py.
_CIFAR_C = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std, image in [0,1]
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma, pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor towards the mean (lower = worse)
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "jpeg": (80, 65, 58, 50, 40),  # quality (lower = worse)
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # downscale factor (lower = worse)
}
_IMAGENET_C = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (1.0, 2.0, 3.0, 4.0, 6.0),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "jpeg": (25, 18, 15, 10, 7),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
}
_SMALL_SIDE, _LARGE_SIDE = 32, 224  # image sides the two tables were designed for


def severity_parameter(name: str, severity: int, image_side: int) -> float:
    """The corruption's parameter at `severity` for images of `image_side` pixels (see module doc)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    t = (math.log(max(image_side, 1)) - math.log(_SMALL_SIDE)) / (math.log(_LARGE_SIDE) - math.log(_SMALL_SIDE))
    t = min(max(t, 0.0), 1.0)
    small, large = _CIFAR_C[name][severity - 1], _IMAGENET_C[name][severity - 1]
    return small + t * (large - small)


def _side(images: torch.Tensor) -> int:
    return min(images.shape[-2:])


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


def gaussian_noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of the severity's std (fraction of the pixel range) added to uint8 `images` [N, 3, H, W];
    uint8 [N, 3, H, W] back, clamped. The noise comes from `generator` (same seed, same suite)."""
    std = severity_parameter("gaussian_noise", severity, _side(images))
    noise = torch.randn(images.shape, generator=generator, device=generator.device).to(images.device)
    return _to_uint8(_to_unit(images) + std * noise)


def gaussian_blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur of the severity's sigma (pixels) on uint8 `images` [N, 3, H, W] (kernel radius 3 sigma, at most
    the side minus 1); uint8 [N, 3, H, W] back. `generator` is unused (no randomness)."""
    sigma = severity_parameter("gaussian_blur", severity, _side(images))
    # Kernel radius 3 sigma (>99.7% of the mass), capped so reflect padding fits in the image.
    radius = min(math.ceil(3 * sigma), _side(images) - 1)
    import torchvision.transforms.v2.functional as TF  # here: importing torchvision takes 1-2 s

    return TF.gaussian_blur(images, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


def contrast(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Contrast lowered by the severity's factor on uint8 `images` [N, 3, H, W]; uint8 [N, 3, H, W] back.
    `generator` is unused. ImageNet-C blends towards the per-image mean; torchvision's adjust_contrast towards
    the mean of the greyscale image, the same idea (within a rounding of it for natural images)."""
    import torchvision.transforms.v2.functional as TF

    return TF.adjust_contrast(images, severity_parameter("contrast", severity, _side(images)))


def brightness(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """ImageNet-C brightness: add c to the HSV value channel, keeping hue and saturation.

    torchvision's adjust_brightness multiplies instead, which leaves dark pixels dark; the
    additive HSV shift is what the benchmark does. Scaling RGB by new_v / v is exactly the HSV
    round trip with V replaced; black pixels (v = 0, no hue) become grey c.
    """
    c = severity_parameter("brightness", severity, _side(images))
    x = _to_unit(images)
    value = x.amax(dim=-3, keepdim=True)
    new_value = (value + c).clamp(max=1.0)
    scaled = x * (new_value / value.clamp(min=1e-6))
    return _to_uint8(torch.where(value > 0, scaled, new_value.expand_as(x)))


def jpeg(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """JPEG round trip at the severity's quality, per image on the CPU (the codec is per image).

    PIL's encoder, as ImageNet-C used; torchvision's image IO is deprecated since 0.29.
    """
    quality = int(round(severity_parameter("jpeg", severity, _side(images))))
    pixels = images.permute(0, 2, 3, 1).cpu().numpy()  # [N,H,W,3]
    out = np.empty_like(pixels)
    for i, hwc in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(hwc).save(buffer, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)


def _box_weights(n_in: int, n_out: int, device) -> torch.Tensor:
    """[n_out, n_in] resampling matrix of a box filter with exact fractional pixel coverage.

    Output cell i covers [i, i+1) * n_in / n_out in input pixels; its weights are the overlaps.
    This is PIL's BOX filter (what ImageNet-C uses), in both directions. torch's "area" mode is
    not: for non-integer factors it averages whole overlapping windows, which at the mild small-
    image factors (0.95 -> 30 of 32 px) blurs every pixel by 2 and hides the severity ordering.
    """
    edges = torch.arange(n_out + 1, dtype=torch.float64, device=device) * (n_in / n_out)
    pixel = torch.arange(n_in, dtype=torch.float64, device=device)[None, :]
    overlap = (torch.minimum(edges[1:, None], pixel + 1) - torch.maximum(edges[:-1, None], pixel)).clamp(min=0)
    return (overlap / overlap.sum(dim=1, keepdim=True)).float()


def _box_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    rows = _box_weights(x.shape[-2], height, x.device)
    cols = _box_weights(x.shape[-1], width, x.device)
    return torch.einsum("ih,nchw,jw->ncij", rows, x, cols)


def pixelate(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    """Box-downscale by the severity's factor, then box-upscale back (as ImageNet-C does with PIL)."""
    factor = severity_parameter("pixelate", severity, _side(images))
    height, width = images.shape[-2:]
    small = _box_resize(_to_unit(images), max(1, int(height * factor)), max(1, int(width * factor)))
    return _to_uint8(_box_resize(small, height, width))


Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "brightness": brightness,
    "jpeg": jpeg,
    "pixelate": pixelate,
}
# as people write them, for the charts and the model card ("JPEG", not "jpeg")
CORRUPTION_NAMES = {"gaussian_noise": "Gaussian noise", "gaussian_blur": "Gaussian blur", "contrast": "Contrast",
                    "brightness": "Brightness", "jpeg": "JPEG", "pixelate": "Pixelation"}


def corruption_name(key: str) -> str:
    """A corruption of the OOD suite as people write it ("JPEG", "Gaussian noise"); an unknown one unchanged."""
    return CORRUPTION_NAMES.get(key, key.replace("_", " "))


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images [N,3,H,W], got {images.dtype} {tuple(images.shape)}")


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """A corrupted copy of a uint8 [N,3,H,W] batch; identical for the same (name, severity, seed)."""
    _check_images(images)
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return CORRUPTIONS[name](images, severity, generator)


def build_ood_suite(images: torch.Tensor, severities=SEVERITIES, names=None,
                    seed: int = 0) -> dict[str, dict[int, torch.Tensor]]:
    """Every requested corruption at every severity: name -> severity -> uint8 tensor.

    Memory: len(names) * len(severities) copies of `images` (30 copies for the full suite).
    """
    names = list(CORRUPTIONS) if names is None else list(names)
    return {name: {s: corrupt(images, name, s, seed) for s in severities} for name in names}
