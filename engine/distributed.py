"""The process group as the engine sees it: rank, world size, one decision for all processes.

Every function works without torch.distributed (one process: rank 0 of 1), so the same code
serves a laptop and a torchrun job.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def on_rank0(fn: Callable[[], Any]) -> Any:
    """Run `fn` on rank 0 only and hand its (picklable) result to every process: one decision for
    all, e.g. a pruning search whose trials would otherwise differ between GPUs by rounding."""
    rank, size = world()
    if size == 1:
        return fn()
    box = [fn() if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(flag: bool, world_size: int) -> bool:
    """True on every process if it is True on any (a method's early stop must end all of them)."""
    if world_size == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_sum(values: list[torch.Tensor | float], device: torch.device, world_size: int) -> list[float]:
    """Element-wise sum over all processes of a few scalars (epoch totals); the values themselves
    with one process. Returns Python floats."""
    t = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device) for v in values])
    if world_size > 1:
        dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


EPOCH_STREAM_OFFSET = 1_000_003  # a continued run's random streams start this far on per epoch already trained


def process_random_stream(seed: int, rank: int, epoch: int = 0) -> None:
    """Give a process of a torchrun job its own global random stream (torch.manual_seed, every
    device), once its model is built, the same on every process, and wrapped: what training draws
    from that stream per example, AdaFilter's gate noise, dropout and stochastic depth (the heads of
    MobileNetV3 and EfficientNet, the blocks of EfficientNet and ConvNeXt), must
    differ between the shards of a batch, as between the examples of one batch in one process.
    Seeded alike, image k of every shard drew the same noise. `rank` >= 0; `epoch`: the epochs
    already trained when a run continues (only rank 0's stream is saved with the resume point, so
    each process starts a stream of its own for the epochs left rather than replaying the first
    epochs' draws). The offset differs from the augmentation generator's (engine.train.setup_run)."""
    torch.manual_seed(seed + 104_729 * (rank + 1) + EPOCH_STREAM_OFFSET * epoch)
