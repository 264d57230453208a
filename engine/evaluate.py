"""Evaluation: clean accuracy, per-class accuracy, confusion matrix, OOD accuracy, latency.

Everything takes uint8 image tensors (the cached dataset) and a `Classifier` (pixels in [0,1]).
Robust accuracy under attacks lives with the adversarial method (engine.attacks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from engine.augment import to_float


@dataclass
class EvalResult:
    acc: float
    loss: float
    preds: torch.Tensor  # int64 [N], CPU
    probs_max: torch.Tensor  # confidence of the prediction, [N]
    losses: torch.Tensor  # per-example cross-entropy, [N]

    def per_class_acc(self, labels: torch.Tensor, num_classes: int) -> list[float]:
        out = []
        for c in range(num_classes):
            m = labels == c
            out.append(float((self.preds[m] == c).float().mean()) if m.any() else float("nan"))
        return out


def autocast_ctx(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
            batch_size: int = 256, amp_dtype: torch.dtype | None = None,
            should_stop: Callable[[], bool] | None = None) -> EvalResult:
    was_training = model.training
    model.eval()
    preds, confs, losses = [], [], []  # kept on the device: one copy to the host at the end, not one per batch
    for i in range(0, len(images), batch_size):
        if should_stop is not None and should_stop():
            break
        x = to_float(images[i:i + batch_size].to(device, non_blocking=True))
        y = labels[i:i + batch_size].to(device, non_blocking=True)
        with autocast_ctx(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        losses.append(F.cross_entropy(logits, y, reduction="none"))
        conf, pred = logits.softmax(1).max(1)
        preds.append(pred)
        confs.append(conf)
    model.train(was_training)
    if not preds:
        empty = torch.zeros(0)
        return EvalResult(float("nan"), float("nan"), empty.long(), empty, empty)
    preds_t, confs_t, losses_t = (torch.cat(t).cpu() for t in (preds, confs, losses))
    n = len(preds_t)
    acc = float((preds_t == labels[:n]).float().mean())
    return EvalResult(acc, float(losses_t.mean()), preds_t, confs_t, losses_t)


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> list[list[int]]:
    idx = labels[: len(preds)] * num_classes + preds
    cm = torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
    return cm.tolist()


def ood_accuracy(model, suite: dict[str, dict[int, torch.Tensor]], labels: torch.Tensor, device,
                 batch_size: int = 256, amp_dtype=None, should_stop=None) -> dict[str, float]:
    """Accuracy per corruption, averaged over the severities present in `suite`."""
    out: dict[str, float] = {}
    for name, by_sev in suite.items():
        # a suite may hold the first n validation images only (a quicker subset): their labels are labels[:n]
        accs = [predict(model, imgs, labels[:len(imgs)], device, batch_size, amp_dtype, should_stop).acc
                for imgs in by_sev.values()]
        out[name] = sum(accs) / len(accs)
    return out


@torch.no_grad()
def cpu_latency_ms(model: torch.nn.Module, image_size: int, batch: int = 1, repeats: int = 20) -> float:
    """Median CPU latency of one forward pass in milliseconds (warm-up excluded)."""
    model = model.eval().to("cpu")
    x = torch.rand(batch, 3, image_size, image_size)
    for _ in range(3):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]
