"""L-infinity attacks in pixel space [0, 1] (the model normalises inside), and robust accuracy.

- PGD-k (Madry et al. 2018): k signed-gradient steps of `step_size`, projected onto the eps-ball
  and [0, 1], from a random start in the ball.
- FGSM with random start (Wong, Rice & Kolter 2020, "Fast is better than free"): one step of
  1.25 * eps from a uniform random start; as cheap as one extra forward-backward pass.

Gradients are taken with respect to the input only (`torch.autograd.grad(loss, delta)`), so no
parameter gradient is computed or accumulated while crafting. Works under autocast.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from engine.augment import to_float
from engine.devices import autocast_ctx


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module):
    """Train-mode batch norm whose running statistics do not move.

    While crafting a training attack the model stays in train mode, so the attack sees exactly
    the function the next optimiser step will change (batch statistics), but crafting must not
    feed adversarial batches into the running mean/var used at evaluation: momentum 0 keeps them.
    """
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, nbt in saved:
            m.momentum = momentum
            if nbt is not None:
                m.num_batches_tracked.copy_(nbt)


def _input_grad(model: nn.Module, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, amp_dtype) -> torch.Tensor:
    delta = delta.detach().requires_grad_(True)
    with autocast_ctx(x.device, amp_dtype):
        logits = model(x + delta)
    loss = F.cross_entropy(logits.float(), y)
    (grad,) = torch.autograd.grad(loss, delta)
    return grad


def _project(x: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    delta = delta.clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0) - x


def _random_start(x: torch.Tensor, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    gen_device = generator.device if generator is not None else x.device  # draw where the generator lives
    u = torch.rand(x.shape, generator=generator, device=gen_device).to(x.device, x.dtype)
    return _project(x, (2 * u - 1) * eps, eps)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
        random_start: bool = True, generator: torch.Generator | None = None, amp_dtype=None) -> torch.Tensor:
    """Adversarial images within the L-inf ball of radius eps around x, in [0, 1]."""
    delta = _random_start(x, eps, generator) if random_start else torch.zeros_like(x)
    for _ in range(steps):
        g = _input_grad(model, x, delta, y, amp_dtype)
        delta = _project(x, delta + step_size * g.sign(), eps)
    return (x + delta).detach()


def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float | None = None,
            generator: torch.Generator | None = None, amp_dtype=None) -> torch.Tensor:
    """FGSM from a random start (Wong et al. 2020: step 1.25 * eps)."""
    step_size = 1.25 * eps if step_size is None else step_size
    delta = _random_start(x, eps, generator)
    g = _input_grad(model, x, delta, y, amp_dtype)
    return (x + _project(x, delta + step_size * g.sign(), eps)).detach()


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                    eps: float, steps: int = 20, step_size: float | None = None, batch_size: int = 256,
                    amp_dtype=None, seed: int = 0, should_stop=None) -> float:
    """Accuracy under PGD-`steps` (eval mode) on uint8 images. step_size defaults to 2.5*eps/steps."""
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    correct = total = 0
    for i in range(0, len(images), batch_size):
        if should_stop is not None and should_stop():
            break
        x = to_float(images[i:i + batch_size].to(device))
        y = labels[i:i + batch_size].to(device)
        x_adv = pgd(model, x, y, eps, step_size, steps, True, gen, amp_dtype)
        with torch.no_grad(), autocast_ctx(device, amp_dtype):
            correct += int((model(x_adv).argmax(1) == y).sum())
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def autoattack_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                        eps: float, num_classes: int, batch_size: int = 128) -> float | None:
    """AutoAttack (standard, L-inf) through torchattacks when it is installed; None otherwise."""
    try:
        import torchattacks
    except ImportError:
        return None
    was_training = model.training
    model.eval()
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=num_classes, seed=0)
    correct = total = 0
    for i in range(0, len(images), batch_size):
        x = to_float(images[i:i + batch_size].to(device))
        y = labels[i:i + batch_size].to(device)
        x_adv = attack(x, y)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == y).sum())
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def adversarial_strip(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, eps: float,
                      steps: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    """Images, their PGD adversarial versions, the perturbation amplified to be visible, and the
    predictions with confidence before and after (for the dashboard's strip)."""
    model = model.eval()
    x = to_float(images_u8)
    x_adv = pgd(model, x, labels, eps, 2.5 * eps / max(steps, 1), steps, True, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        p_clean, p_adv = model(x).softmax(1), model(x_adv).softmax(1)
    delta = x_adv - x
    amplified = (0.5 + delta / (2 * max(eps, 1e-12))).clamp(0, 1)  # -eps -> 0, 0 -> grey, +eps -> 1
    return {"clean": x, "adversarial": x_adv, "perturbation": amplified,
            "pred": p_clean.argmax(1), "conf": p_clean.max(1).values,
            "pred_adv": p_adv.argmax(1), "conf_adv": p_adv.max(1).values, "linf": delta.abs().flatten(1).max(1).values}
