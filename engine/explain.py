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
from engine.evaluate import predict

ATTRIBUTIONS = {
    "integrated_gradients": "Integrated Gradients: how much each pixel, moved from black to its value, adds to the class score.",
    "saliency": "Saliency: the size of the class score's gradient at each pixel (fast, noisy).",
    "grad_cam": "Grad-CAM: which regions of the last convolutional stage drive the class score (coarse, robust).",
    "occlusion": "Occlusion: how much the class score drops when a patch of the image is greyed out.",
}


def gradcam_layer(model: Classifier) -> nn.Module:
    """The last convolutional stage of any registered backbone (ViT: its patch-embedding conv).

    Found structurally: the last trunk block that contains a Conv2d, so it also works for
    models whose convolutions a method has wrapped (AdaFilter).
    """
    for block in reversed(model.trunk_blocks()):
        if any(isinstance(m, nn.Conv2d) for m in block.modules()):
            return block
    raise ValueError(f"{model.backbone_name} has no convolutional layer for Grad-CAM")


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def attribute(model: Classifier, images_u8: torch.Tensor, targets: torch.Tensor, method: str,
              ig_steps: int = 24) -> torch.Tensor:
    """Attribution maps [B, H, W] in [0, 1] for uint8 images [B, 3, H, W] and target classes [B]."""
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
        cam = LayerGradCam(model, gradcam_layer(model)).attribute(x, target=targets, relu_attributions=True)
        maps = LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear").sum(1)
    elif method == "occlusion":
        side = x.shape[-1]
        win = max(2, side // 8)
        maps = Occlusion(model).attribute(x, target=targets, sliding_window_shapes=(3, win, win),
                                          strides=(3, max(1, win // 2), max(1, win // 2)), baselines=0.5,
                                          perturbations_per_eval=32).sum(1)  # 32 patches per forward pass
        maps = maps.clamp_min(0)  # evidence for the class; negative = occluding helped
    else:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTIONS)}")
    return _normalise(maps.detach().float().cpu())


@dataclass
class ErrorCase:
    index: int  # into the split
    true: int
    pred: int
    confidence: float
    loss: float


def highest_loss(model: Classifier, images: torch.Tensor, labels: torch.Tensor, k: int = 12,
                 device: torch.device | None = None) -> list[ErrorCase]:
    """The k examples with the highest loss (most confidently wrong first)."""
    device = device or next(model.parameters()).device
    r = predict(model, images, labels, device)
    order = torch.argsort(r.losses, descending=True)[:k]
    return [ErrorCase(int(i), int(labels[i]), int(r.preds[i]), float(r.probs_max[i]), float(r.losses[i])) for i in order]


def confusion_cell(labels: torch.Tensor, preds: torch.Tensor, true: int, pred: int) -> list[int]:
    """Indices of the examples of class `true` predicted as `pred` (a confusion-matrix cell)."""
    return ((labels == true) & (preds == pred)).nonzero().flatten().tolist()
