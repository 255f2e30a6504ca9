"""Streaming classification metrics that accumulate on the device and sync once per read-out.

Training keeps each batch's loss and correct count as device tensors until the read-out
(:class:`TrainAccumulator`); evaluation keeps a confusion matrix built with ``index_add_``
(:class:`ClassificationMetrics`). Only :meth:`compute` / :meth:`read` move numbers to the host.
Under torch.distributed, ``all_reduce()`` sums the counts of every rank (one collective), after which
the figures are those of the whole job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TrainWindow:
    """What :meth:`TrainAccumulator.read` found: the window's figures and its non-finite losses."""

    loss: float
    acc: float
    count: int
    nonfinite: int  # batches whose loss was NaN or inf
    first_nonfinite_step: int | None  # the global step of the first of them (this rank's)


class TrainAccumulator:
    """Per-batch losses and correct counts since the last read-out, kept on the device.

    A batch costs three small kernels (argmax, compare, sum) and two list appends: its loss and
    correct count stay 0-d device tensors, its size and step stay host ints. There is no host sync
    and no host-to-device copy per batch (``torch.tensor(n, device="cuda")`` would be a synchronous
    copy); :meth:`read` reduces the window in a few kernels and reads it with one sync.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        """Start a new read-out window."""
        self._losses: list[torch.Tensor] = []
        self._correct: list[torch.Tensor] = []
        self._sizes: list[int] = []
        self._steps: list[int] = []

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, step: int = 0) -> None:
        """Add one batch (``loss`` is the batch mean, ``step`` the global step it belongs to)."""
        self._losses.append(loss.detach())
        self._correct.append((logits.argmax(dim=1) == targets).sum())
        self._sizes.append(int(targets.shape[0]))
        self._steps.append(step)

    def pending_nonfinite(self) -> int:
        """Batches of the window not read out yet whose loss was not finite (one sync; this rank's)."""
        if not self._losses:
            return 0
        return int((~torch.isfinite(torch.stack(self._losses))).sum())

    @torch.no_grad()
    def read(self, *, all_ranks: bool = False) -> TrainWindow:
        """The window's mean loss, accuracy, sample count and non-finite batches — one host sync.

        Loss, accuracy and count are over the batches whose loss is finite (skip mode leaves the
        others out of training, so they are left out of its figures too).

        Args:
            all_ranks: sum loss, correct, count and non-finite batches over every rank first (one
                collective); the first non-finite step stays this rank's own.
        """
        bad: torch.Tensor | None = None
        if self._losses:
            losses = torch.stack(self._losses).double()
            sizes = torch.tensor(self._sizes, dtype=torch.float64).to(self.device, non_blocking=True)
            bad = ~torch.isfinite(losses)
            good = (~bad).double()  # the figures are those of the batches with a finite loss
            sums = torch.stack([(torch.where(bad, 0.0, losses) * sizes).sum(),
                                (torch.stack(self._correct).double() * good).sum(), (sizes * good).sum(),
                                bad.sum().double()])
        else:
            sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        if all_ranks:
            from core.training.distributed import all_reduce_sum_

            all_reduce_sum_(sums)
        loss_sum, correct, count, nonfinite = sums.tolist()
        first_step = None
        if nonfinite and bad is not None and bool(bad.any()):  # a failing run only: a second sync is fine
            first_step = self._steps[int(bad.nonzero()[0, 0])]
        if count <= 0:
            return TrainWindow(float("nan"), float("nan"), 0, int(nonfinite), first_step)
        return TrainWindow(loss_sum / count, correct / count, int(count), int(nonfinite), first_step)


class ClassificationMetrics:
    """Loss, accuracy, top-5, per-class and macro precision/recall/F1 and the confusion matrix.

    ``confusion[i][j]`` counts samples of true class ``i`` predicted as class ``j``. Precision of a
    class that is never predicted (and recall of a class that never occurs) is 0, as scikit-learn's
    ``zero_division=0``; macro averages are over all classes.
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        c = self.num_classes
        self.confusion = torch.zeros(c * c, dtype=torch.int64, device=self.device)
        self._sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # [loss sum, top5 correct, count]

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor | None = None) -> None:
        """Add a batch of logits ``(N, C)`` and integer targets ``(N,)``; ``loss_sum`` is the batch's summed loss.

        Device work only, no host sync: the confusion matrix grows by ``index_add_`` (CUDA's
        ``bincount`` reads the indices' range back to size its output) and the sample count is the
        batch's own ``ones`` (a ``torch.tensor(n, device=...)`` would be a blocking host copy).
        """
        c = self.num_classes
        targets = targets.to(torch.int64)
        preds = logits.argmax(dim=1)
        ones = torch.ones_like(targets)
        self.confusion.index_add_(0, targets * c + preds, ones)
        k = min(5, c)
        topk = logits.topk(k, dim=1).indices
        self._sums[1] += (topk == targets[:, None]).any(dim=1).sum()
        self._sums[2] += ones.sum()
        if loss_sum is not None:
            self._sums[0] += loss_sum.detach().double()

    def all_reduce(self) -> None:
        """Sum the confusion matrix and the sums over all ranks (no-op in a single process).

        With shards that do not overlap (evaluation loaders do not pad), the result equals what one
        process computes over the whole split: counts are integers, and the loss sum differs only by
        float64 rounding.
        """
        from core.training.distributed import all_reduce_sum_

        packed = torch.cat([self.confusion.to(torch.float64), self._sums])
        all_reduce_sum_(packed)
        c2 = self.confusion.numel()
        self.confusion = packed[:c2].round().to(torch.int64)
        self._sums = packed[c2:]

    def compute(self) -> dict[str, Any]:
        """Every metric as host numbers (one sync); empty dict when nothing was seen."""
        c = self.num_classes
        conf = self.confusion.view(c, c).cpu().to(torch.float64)
        loss_sum, top_hits, count = self._sums.tolist()
        if count <= 0:
            return {}
        tp = conf.diag()
        predicted = conf.sum(dim=0)
        actual = conf.sum(dim=1)
        precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
        recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
        denom = precision + recall
        f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
        out: dict[str, Any] = {
            "loss": loss_sum / count,
            "acc": float(tp.sum()) / count,
            "precision_macro": float(precision.mean()),
            "recall_macro": float(recall.mean()),
            "f1_macro": float(f1.mean()),
        }
        if c > 5:
            out["top5"] = top_hits / count
        out["per_class"] = {
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "support": [int(v) for v in actual.tolist()],
        }
        out["confusion"] = [[int(v) for v in row] for row in conf.tolist()]
        return out


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Only the number-valued entries (what monitors, TensorBoard and progress lines use)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
