"""Why did the model say that? Attributions with captum, and error analysis.

Attribution maps come back as [B, H, W] float tensors at the image's resolution, normalised to
[0, 1] per image, so the dashboard can overlay them on the picture. All methods run batched:
several models (pretrained, fine-tuned, WiSE-FT at alpha) or several images share one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.augment import to_float
from engine.backbones import Classifier
from engine.devices import eval_layout
from engine.errors import StudioError
from engine.evaluate import predict

MIN_CAM_SIDE = 4  # feature-map side (cells); at 1x1 or 2x2 Grad-CAM is one or four numbers per image

ATTRIBUTIONS = {
    "integrated_gradients": "Integrated Gradients: how much each pixel, moved from black to its value, adds to the class score.",
    "saliency": "Saliency: the size of the class score's gradient at each pixel (fast, noisy).",
    "grad_cam": "Grad-CAM: which regions of the image drive the class score, as the model's deepest layer that "
                "still splits the image into a grid of at least 4 x 4 regions sees them (coarse, robust).",
    "occlusion": "Occlusion: how much the class score drops when a patch of the image is greyed out.",
}


def gradcam_layer(model: Classifier, image_size: int) -> tuple[nn.Module, str, int]:
    """(layer, its name, its output side in cells) for Grad-CAM at `image_size` px: the last trunk
    block with a Conv2d whose output keeps at least MIN_CAM_SIDE x MIN_CAM_SIDE cells (at 32 px a
    ResNet's last stage is 1 x 1, a constant map). Found structurally, by one forward pass, so it
    also works for models whose convolutions a method has wrapped (AdaFilter). Raises StudioError
    when no stage is that large (the image is too small for Grad-CAM)."""
    names = {id(m): n for n, m in model.named_modules()}
    blocks = [b for b in model.trunk_blocks() if any(isinstance(m, nn.Conv2d) for m in b.modules())]
    sides: dict[int, int] = {}
    hooks = [b.register_forward_hook(lambda m, i, o: sides.__setitem__(id(m), o.shape[-1] if o.dim() == 4 else 0))
             for b in blocks]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    for block in reversed(blocks):
        if sides.get(id(block), 0) >= MIN_CAM_SIDE:
            name = names.get(id(block), "trunk")
            return block, name.removeprefix("net."), sides[id(block)]  # the torchvision name users look up
    raise StudioError(f"At {image_size} px no layer of this model still splits the image into {MIN_CAM_SIDE} x "
                      f"{MIN_CAM_SIDE} regions, so Grad-CAM would be a single number per image. Use Integrated Gradients, Saliency or "
                      "Occlusion, or train at a larger image size.")


def gradcam_note(model: Classifier, image_size: int) -> str:
    """Which layer Grad-CAM uses at `image_size`, in words (or why it cannot)."""
    try:
        _, name, side = gradcam_layer(model, image_size)
    except StudioError as exc:
        return str(exc)
    return (f"Grad-CAM here reads the model's deepest layer that still splits the image into at least "
            f"{MIN_CAM_SIDE} x {MIN_CAM_SIDE} regions: at {image_size} px it sees {side} x {side} regions, each about "
            f"{image_size // side} px across, so the map (smoothed to the image's size) shows nothing finer "
            f"(for experts: torchvision's `{name}`).")


BAR_WEIGHT_NOTE = 0.25  # a map with at least this share of its weight on a padded picture's grey bars says so


def bar_weight(heat, box: tuple[int, int, int, int]) -> float:
    """The share (0-1) of an attribution map's weight on a padded picture's grey bars: `heat` an H x W map (numpy
    or torch, any real dtype, non-negative: `attribute`'s [0, 1] maps or their uint8 form), `box` the picture's
    (top, bottom, left, right) inside them (engine.data.picture_box). 0.0 for a flat (all-zero) map. The bars carry
    no picture (data.fit "pad"): weight on them is Grad-CAM's coarse grid spilling over, or the model reading where
    the picture ends."""
    import numpy as np

    heat = np.asarray(heat, dtype=np.float64)
    total = float(heat.sum())
    if total <= 0:
        return 0.0
    top, bottom, left, right = box
    return max(0.0, 1.0 - float(heat[top:bottom, left:right].sum()) / total)


def occlusion_window(side: int) -> tuple[int, int]:
    """(window, stride) in px for Occlusion on a `side` px image: a sixth of the image, half-overlapping,
    so a 32 px image gets 5 px patches every 2 px and a 224 px one 37 px patches every 18 px."""
    window = max(3, side // 6)
    return window, max(1, window // 2)


OUTLIER_SHARE = 0.02  # the brightest 2% of a map's pixels share the top colour


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] from its minimum to its (1 - OUTLIER_SHARE) quantile, the pixels
    above that clipped to 1: pixel-level maps (Integrated Gradients, saliency) are heavy-tailed, and
    scaling by the maximum left a few bright specks on an otherwise dark map. Where that quantile is
    at the minimum (a map bright in under 2% of its pixels), the maximum is used. A map
    that is constant up to rounding stays flat at 0, never stretched (stretching rounding noise
    paints bright speckles that mean nothing)."""
    flat = maps.flatten(1)
    lo, top = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    constant = top - lo <= 1e-5 * torch.maximum(top.abs(), lo.abs()).clamp_min(1e-12)
    q = torch.quantile(flat.float(), 1 - OUTLIER_SHARE, dim=1, keepdim=True)
    hi = torch.where(q - lo > 1e-3 * (top - lo), q, top)
    out = torch.where(constant, torch.zeros_like(flat), ((flat - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1))
    return out.view_as(maps)


def attribute(model: Classifier, images_u8: torch.Tensor, targets: torch.Tensor, method: str,
              ig_steps: int = 24) -> torch.Tensor:
    """Attribution maps [B, H, W] float32 in [0, 1] for uint8 images [B, 3, H, W] and int64 target
    classes [B] (captum). Raises StudioError when the image is too small for Grad-CAM, ValueError
    for an unknown method."""
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

    model = model.eval()
    device = next(model.parameters()).device
    x = to_float(images_u8.to(device)).requires_grad_(True)
    targets = targets.to(device)
    if method == "integrated_gradients":
        attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=targets,
                                                    n_steps=ig_steps, internal_batch_size=256)
        maps = attr.abs().sum(1)
    elif method == "saliency":
        maps = Saliency(model).attribute(x, target=targets, abs=True).sum(1)
    elif method == "grad_cam":
        layer, _, _ = gradcam_layer(model, x.shape[-1])
        cam = LayerGradCam(model, layer).attribute(x, target=targets, relu_attributions=True)
        maps = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear").sum(1)
    elif method == "occlusion":
        win, stride = occlusion_window(x.shape[-1])
        maps = Occlusion(model).attribute(x, target=targets, sliding_window_shapes=(3, win, win),
                                          strides=(3, stride, stride), baselines=0.5,
                                          perturbations_per_eval=32).sum(1)  # 32 patches per forward pass
        maps = maps.clamp_min(0)  # evidence for the class; negative = occluding helped
    else:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTIONS)}")
    return _normalise(maps.detach().float().cpu())


@dataclass
class ErrorCase:
    """One mistake on a split: the image's index in that split, its true and predicted class indices, the
    prediction's probability (0-1) and the image's cross-entropy (nats)."""

    index: int  # into the split
    true: int
    pred: int
    confidence: float
    loss: float


def highest_loss(model: Classifier, images: torch.Tensor, labels: torch.Tensor, k: int = 12,
                 device: torch.device | None = None, tta_flip: bool = False,
                 amp_dtype: torch.dtype | None = None) -> list[ErrorCase]:
    """The k examples of uint8 `images` [N, 3, S, S] (int64 `labels` [N]) with the highest loss (most
    confidently wrong first); `tta_flip` and `amp_dtype` (autocast; None = float32) as the run
    evaluated (engine.evaluate.predict), so that its answers are the ones the run reported."""
    device = device or next(model.parameters()).device
    with eval_layout(model, device, amp_dtype, images.shape[-1]):  # the layout the run's evaluation used
        r = predict(model, images, labels, device, tta_flip=tta_flip, amp_dtype=amp_dtype)
    order = torch.argsort(r.losses, descending=True)[:k]
    return [ErrorCase(int(i), int(labels[i]), int(r.preds[i]), float(r.probs_max[i]), float(r.losses[i])) for i in order]


def confusion_cell(labels: torch.Tensor, preds: torch.Tensor, true: int, pred: int) -> list[int]:
    """Indices of the examples of class `true` predicted as `pred` (a confusion-matrix cell)."""
    return ((labels == true) & (preds == pred)).nonzero().flatten().tolist()
