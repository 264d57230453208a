"""Training augmentation for whole batches, on the training device (airbench style).

The dataset lives decoded as uint8 [N,3,S,S]; each training batch is converted and augmented in
one shot with per-sample affine grids instead of per-image PIL transforms, so the GPU is never
waiting for a data loader. Outputs are pixels in [0,1]: mean/std normalisation happens inside
the model (it depends on the backbone).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..,3,S,S] -> float32 in [0,1] (evaluation input). Float input is returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device) -> torch.Tensor:
    # Draw on the generator's device (a CPU generator may drive a GPU batch), then move.
    gen_device = generator.device if generator is not None else device
    return (torch.rand(n, generator=generator, device=gen_device) * (high - low) + low).to(device)


def random_crop_flip_theta(batch: int, generator: torch.Generator | None, scale, ratio, flip: bool,
                           device) -> torch.Tensor:
    """Per-sample affine matrices [B,2,3] for a random resized crop (+ optional horizontal flip).

    In affine_grid's normalised coordinates the full image spans [-1,1]; a crop of relative width
    w and height h centred at (cx, cy) is the matrix [[w,0,cx],[0,h,cy]]. Area fraction and
    aspect ratio are sampled as in torchvision's RandomResizedCrop (ratio log-uniform); instead of
    its rejection loop, oversize sides are clamped to the full image.
    """
    area = _uniform(batch, scale[0], scale[1], generator, device)
    log_ratio = _uniform(batch, math.log(ratio[0]), math.log(ratio[1]), generator, device)
    aspect = torch.exp(log_ratio)  # width / height
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (_uniform(batch, -1.0, 1.0, generator, device)) * (1.0 - width)
    centre_y = (_uniform(batch, -1.0, 1.0, generator, device)) * (1.0 - height)
    mirror = torch.ones(batch, device=device)
    if flip:
        mirror = torch.where(_uniform(batch, 0.0, 1.0, generator, device) < 0.5, -mirror, mirror)
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0] = width * mirror
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    return theta


def augment_batch(images: torch.Tensor, generator: torch.Generator | None = None, scale=(0.35, 1.0),
                  ratio=(3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """Random resized crop + horizontal flip of a whole batch: uint8 [B,3,S,S] -> float [B,3,S,S] in [0,1]
    (`crop_flip`). Runs on `images.device`; deterministic for a given generator state.
    """
    return crop_flip(to_float(images), generator, scale, ratio, flip)


def crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3),
              flip: bool = True) -> torch.Tensor:
    """Random resized crop + horizontal flip of float [B,C,S,S] in [0,1] (any channels: a mask carried beside the
    pixels follows the same crop), bilinear, returned in [0,1]; draws 4 (5 with `flip`) x B numbers from
    `generator`."""
    batch = x.shape[0]
    if batch == 0:
        return x
    theta = random_crop_flip_theta(batch, generator, scale, ratio, flip, x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # The crop always lies inside the image, so padding only matters for sub-pixel edge samples.
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp_(0.0, 1.0)


def training_batch(images: torch.Tensor, generator: torch.Generator | None, train, fit: str = "crop") -> torch.Tensor:
    """A training batch as the run's settings ask: uint8 [B,3,S,S] -> float32 [B,3,S,S] in [0,1],
    augmented (`augment_batch`) when `train.augment` is on, mirrored only when `train.flip` is too, and a
    `train.greyscale` share of it turned greyscale (`greyscale_some`) (`train`: the run's `TrainConfig`). In a
    whole-picture run (`fit` "pad", `engine.data.fit_square`) the grey bars (`engine.data.pad_mask`, carried
    through the same crop) keep their colour in the greyscale copies."""
    if not train.augment:
        return to_float(images)
    if train.greyscale <= 0:  # no draw at 0: runs without it repeat
        return augment_batch(images, generator, flip=train.flip)
    from engine.data import pad_mask

    x = to_float(images)
    if fit == "pad":
        x = torch.cat([x, pad_mask(images)[:, None].to(x.dtype)], 1)
    x = crop_flip(x, generator, flip=train.flip)
    bars = x[:, 3:] > 1 - 1e-3 if fit == "pad" else None  # the bars' own pixels after the crop, not their edges
    return greyscale_some(x[:, :3].contiguous(), train.greyscale, generator, bars)


def greyscale_some(x: torch.Tensor, share: float, generator: torch.Generator | None = None,
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """Each image of float [B,3,S,S] (pixels in [0,1]) turned greyscale with probability `share`, in place and
    returned: its luminance (ITU-R 601, torchvision's rgb_to_grayscale, as RandomGrayscale) in all three channels.
    Pixels where bool `keep` [B,1,S,S] is set keep their colour (a padded picture's grey bars: greyed, they were
    unlike every test image's bars). Draws B uniform numbers from `generator` (on its device)."""
    from torchvision.transforms.v2.functional import rgb_to_grayscale

    chosen = _uniform(len(x), 0.0, 1.0, generator, x.device) < share
    if bool(chosen.any()):
        picked = x[chosen]
        grey = rgb_to_grayscale(picked, num_output_channels=3)
        x[chosen] = grey if keep is None else torch.where(keep[chosen], picked, grey)
    return x


def augmentation_words(train) -> str:
    """What a run's training batches went through, in plain words (model card, Results):
    `train` is its `TrainConfig`."""
    if not train.augment:
        return "no augmentation"
    words = "random crops and left-right mirrors" if train.flip else "random crops, no mirroring"
    copies = greyscale_copies_words(train)
    return words + (f", {copies}" if copies else "")


def greyscale_copies_words(train) -> str:
    """`train.greyscale` (`train`: a TrainConfig) in a few words: "25% of images greyscale"; "" at 0 or with
    augmentation off (then none is turned greyscale)."""
    return f"{100 * train.greyscale:.3g}% of images greyscale" if train.augment and train.greyscale > 0 else ""


MIRROR_MEASURED = (  # benchmarks/flip.sh, benchmarks/results/flip.txt (3 seeds)
    "On handwritten digits, stopping it gained 1.3 points of test accuracy in 10 epochs and 4.4 in 5; training "
    "without any augmentation gained 2.8 and 6.2 over the default there.")

NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
_SYMBOL = re.compile(r"^(?:\d+|[^\W\d_])$")  # a number, or one letter of any script


def mirror_changes_meaning(classes: list[str]) -> bool:
    """Whether the class names look like digits or letters ("0".."9", "seven", "A", "ж"): a mirrored
    digit or letter is another symbol or none, so mirroring in training (`train.flip`) teaches wrong
    pictures. Names are compared stripped and case-insensitively; all must look so, with at least two
    classes, and three when all are numbers (two folders named 0 and 1 are as often "no" and "yes"
    photos; "b" and "d" are letters). A hint for the dashboard, never a change made on its own."""
    names = [str(c).strip().lower() for c in classes]
    if len(names) < 2 or not all(_SYMBOL.match(n) or n in NUMBER_WORDS for n in names):
        return False
    return len(names) >= 3 or not all(n.isdigit() or n in NUMBER_WORDS for n in names)
