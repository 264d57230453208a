"""The hook interface between the training loop and a method (see DESIGN.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.train import TrainContext


class MethodHook:
    """Override what the method needs; every default does nothing.

    Order of calls in a run: `setup` once (after the model and data exist, before the
    optimiser is built, so a method may change the model), then per step `compute_loss`
    (at most one enabled method may own it), backward, `after_backward`, optimiser step,
    `after_step`; `on_epoch_end` after each evaluation; `on_train_end` once at the end.
    """

    name = "method"

    def setup(self, ctx: "TrainContext") -> None:
        pass

    def compute_loss(self, ctx: "TrainContext", x: "torch.Tensor", y: "torch.Tensor") -> tuple[Any, Any] | None:
        """Return (loss, logits) to replace the plain cross-entropy step, or None."""
        return None

    def after_backward(self, ctx: "TrainContext") -> None:
        pass

    def after_step(self, ctx: "TrainContext") -> None:
        pass

    def on_epoch_end(self, ctx: "TrainContext", metrics: dict[str, float]) -> None:
        """May add entries to `metrics` (they are stored and charted)."""

    def on_train_end(self, ctx: "TrainContext") -> None:
        pass
