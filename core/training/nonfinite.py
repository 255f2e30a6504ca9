"""``trainer.on_nonfinite: skip`` without a host sync per batch: the skip travels with the gradients.

A batch whose loss is NaN or inf must leave no trace: no weight update, no change to BatchNorm's
running statistics. Deciding that on the host would read the loss after every forward pass (a
device sync per micro-batch, plus an all-reduce of the flag under DDP). Instead, every batch runs
its backward pass, and one whose loss is not finite multiplies its loss by NaN first, so that every
gradient it touches becomes NaN. The decision is then taken once, at the optimizer step, from the
gradients themselves:

* the accumulated gradients of the whole step are non-finite if any batch of the step was bad, so
  the whole step is skipped (as GradScaler skips a float16 step) and its gradients are zeroed;
* under DDP the gradient all-reduce carries the NaN to every rank, so all ranks skip the same step
  and their weights stay identical — no rank steps on gradients of its own;
* under ``16-mixed`` GradScaler finds the non-finite gradients and skips the step itself (and lowers
  its scale, as after any overflow); otherwise :func:`gradients_finite` reads one number per step.

BatchNorm's running statistics are put back on the device with ``torch.where`` (no sync either).
A finite loss is multiplied by exactly 1.0, so its gradients are bit-identical to a run without
the guard.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class NonFiniteSkip:
    """The per-batch guard of skip mode for ``model`` (its floating-point buffers are kept and put back)."""

    def __init__(self, model: nn.Module) -> None:
        # running statistics and BatchNorm's batch counter (which a momentum of None averages by)
        self.buffers = [b for n, b in model.named_buffers() if b.is_floating_point() or n.endswith("num_batches_tracked")]

    def keep(self) -> list[torch.Tensor]:
        """Copies of the buffers before a forward pass (which may move them with a bad batch)."""
        return [b.clone() for b in self.buffers]

    def guard(self, loss: torch.Tensor, backward_loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(what to call ``backward`` on, whether ``loss`` is finite): ``backward_loss`` times exactly 1.0
        when ``loss`` is finite, times NaN otherwise. Device work only."""
        ok = torch.isfinite(loss.detach())
        return backward_loss * torch.where(ok, 1.0, float("nan")), ok

    @torch.no_grad()
    def restore(self, ok: torch.Tensor, kept: list[torch.Tensor]) -> None:
        """After the backward pass (BatchNorm's backward reads the buffers): put back the values of
        ``kept`` where the loss was not finite. Device work only."""
        for buffer, value in zip(self.buffers, kept):
            buffer.copy_(torch.where(ok, buffer, value))


def gradients_finite(params: Iterable[nn.Parameter], total_norm: torch.Tensor | None = None) -> bool:
    """Whether every gradient is finite (one host read); ``total_norm``, when the step already computed
    it (gradient clipping), is used instead of computing it again."""
    if total_norm is None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return True
        total_norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
    return bool(torch.isfinite(total_norm))
