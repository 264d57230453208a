"""Which device a run trains on and in which precision (helpers: no project imports but errors).

Sources: PyTorch's autocast documentation (bf16 on CUDA when supported, fp16 with a GradScaler
otherwise); torchrun's LOCAL_RANK convention (one GPU per process).
"""

from __future__ import annotations

import os

import torch

from engine.errors import StudioError


def pick_device(name: str, distributed: bool = False) -> torch.device:
    """The torch device for a config's `train.device` (auto | cpu | cuda | cuda:N | mps).

    Under torchrun (`distributed`), `auto`/`cuda` means the GPU of this process's LOCAL_RANK.
    Raises StudioError when the asked-for device does not exist here, saying what to use instead."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # torchrun: one GPU per process
    if name in ("auto", "cuda") and torch.cuda.is_available() and distributed:
        if local_rank >= torch.cuda.device_count():
            raise StudioError(
                f"This machine has {torch.cuda.device_count()} GPU(s) but torchrun started a process for GPU "
                f"{local_rank}: use --nproc_per_node {torch.cuda.device_count()} (one process per GPU), "
                "or --device cpu to train with CPU processes."
            )
        return torch.device(f"cuda:{local_rank}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StudioError("The config asks for a CUDA GPU but none is available here. Use device: auto or cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise StudioError("The config asks for Apple's MPS device but it is not available here. Use device: auto.")
    return torch.device(name)


def pick_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.amp` (auto | bf16 | fp16 | off) on `device`; None = fp32."""
    if device.type != "cuda" or mode == "off":
        return None  # CPU autocast is slower than fp32 for these models
    if mode == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_ctx(device: torch.device, amp_dtype: torch.dtype | None):
    """torch.autocast for `device` in `amp_dtype`, or a disabled one (fp32) when it is None."""
    if amp_dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=amp_dtype)
