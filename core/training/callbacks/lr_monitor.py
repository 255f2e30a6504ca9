"""Learning-rate monitor: the one writer of ``lr`` events.

The schedule moves ``lr`` every step (visible in the train rows); this callback records the changes a
schedule's formula does not explain — an unfreeze adding a group, ``set-lr`` from the control
channel, a plateau reduction — so the dashboard can mark them on the plots. Whatever made the change
(the unfreeze schedule at an epoch start, a control command after a step or at a boundary, the
plateau scheduler after validation), the event is written at the next hook that follows it, with the
same fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.finetune import NO_DECAY
from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer


class LearningRateMonitor(Callback):
    """Writes an ``lr`` event when the parameter groups, their base rates or the plateau factor change.

    Fields: ``groups`` (``[{"name", "base_lr", "params"}]``, every group) and ``factor`` (the plateau
    factor the schedule multiplies by, 1 without one).
    """

    def __init__(self) -> None:
        self._last: tuple[Any, ...] | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        self._last = _signature(trainer)  # the start is recorded by the lr_group events

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self._check(trainer)  # the unfreeze schedule has just run

    def on_train_batch_start(self, trainer: Trainer, batch: Any, batch_idx: int) -> None:
        self._check(trainer)  # commands applied after the previous step (or while paused there)

    def on_validation_end(self, trainer: Trainer) -> None:
        self._check(trainer)  # the plateau scheduler has seen the new figures; commands before validation

    def on_train_end(self, trainer: Trainer) -> None:
        self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
        signature = _signature(trainer)
        if signature == self._last:
            return
        last, self._last = self._last, signature
        if last is None or signature is None:
            return
        optimizer = trainer.optimizer
        assert optimizer is not None
        groups = [{"name": str(g.get("name", i)), "base_lr": float(g.get("base_lr", g["lr"])),
                   "params": sum(p.numel() for p in g["params"])} for i, g in enumerate(optimizer.param_groups)]
        factor = signature[-1]
        if signature[:-1] != last[:-1]:
            rates = {g["name"]: g["base_lr"] for g in groups}
            # a group's no-weight-decay twin follows its group: named once, unless its rate was set apart
            said = [g for g in groups if not (g["name"].endswith(NO_DECAY)
                                              and rates.get(g["name"][: -len(NO_DECAY)]) == g["base_lr"])]
            message = "learning rates: " + ", ".join(f"{g['name']}={g['base_lr']:g}" for g in said)
        else:
            message = f"plateau: lr factor now {factor:g}"
        trainer.log_event("lr", message, groups=groups, factor=factor)


def _signature(trainer: Trainer) -> tuple[Any, ...] | None:
    """What an lr event reports, cheaply comparable every step: each group's name, base lr and size,
    then the plateau factor."""
    optimizer = trainer.optimizer
    if optimizer is None:
        return None
    factor = trainer.schedule.plateau_factor if trainer.schedule is not None else 1.0
    return (*((g.get("name"), g.get("base_lr", g["lr"]), len(g["params"])) for g in optimizer.param_groups),
            float(factor))
