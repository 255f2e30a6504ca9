"""Learning-rate monitor: records an event whenever the parameter groups or their base rates change.

The schedule moves ``lr`` every step (visible in the train rows); this callback catches the changes a
schedule does not explain — an unfreeze adding a group, ``set-lr`` from the control channel, a plateau
reduction — so the dashboard can mark them on the plots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer


class LearningRateMonitor(Callback):
    """Writes an ``lr`` event with every group's name, base lr and parameter count when they change."""

    def __init__(self) -> None:
        self._last: list[tuple[str, float, int]] | None = None

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self._check(trainer)

    def on_log(self, trainer: Trainer, split: str, metrics: dict[str, Any]) -> None:
        if split == "train":
            self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
        if trainer.optimizer is None:
            return
        groups = [
            (str(g.get("name", i)), float(g.get("base_lr", g["lr"])), sum(p.numel() for p in g["params"]))
            for i, g in enumerate(trainer.optimizer.param_groups)
        ]
        if groups != self._last:
            if self._last is not None:
                desc = ", ".join(f"{n}={lr:g}" for n, lr, _ in groups)
                trainer.log_event(
                    "lr", f"learning rates: {desc}",
                    groups=[{"name": n, "base_lr": lr, "params": c} for n, lr, c in groups],
                )
            self._last = groups
