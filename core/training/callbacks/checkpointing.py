"""Checkpointing: ``last.pt`` every epoch (and at a stop), ``best.pt`` by a monitored metric, keep-every-N.

A model with non-finite weights is never written: a run that diverges keeps its last good files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import CheckpointConfig
from core.runs import CHECKPOINT_DIR
from core.training.callback import Callback
from core.training.checkpoint import all_finite, remove_stale_temps

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer


class CheckpointCallback(Callback):
    """Writes checkpoints under ``dirpath`` (default: the run's ``checkpoints/``)."""

    def __init__(self, cfg: CheckpointConfig, dirpath: Path | str | None = None) -> None:
        self.cfg = cfg
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_step: int | None = None
        self._saved_at: tuple[int, int, int] | None = None  # (epoch, batch, step) of the newest last.pt
        self._warned_monitor = False

    def setup(self, trainer: Trainer, stage: str) -> None:
        if self.dirpath is None and trainer.run is not None:
            self.dirpath = trainer.run.path / CHECKPOINT_DIR
        if self.dirpath is not None:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temps(self.dirpath):
                trainer.log_event("warning", f"removed {stale.name}, left by a checkpoint write that was cut short")

    # -- when to save ---------------------------------------------------------------------------

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = self.cfg.every_n_steps
        if n and trainer.global_step > 0 and trainer.global_step % n == 0 and self._last_step() != trainer.global_step:
            if trainer.batches_done < len(trainer.train_loader):  # the epoch end saves anyway
                self._save(trainer, "last.pt", "step")

    def on_validation_end(self, trainer: Trainer) -> None:
        monitor = self.cfg.monitor
        value = trainer.callback_metrics.get(monitor)
        if value is None:
            if not self._warned_monitor:
                self._warned_monitor = True
                known = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/")))
                trainer.log_event("warning", f"checkpoint monitor {monitor!r} is not a metric; known: {known}")
            return
        if not math.isfinite(value) or not self._improves(value):
            return
        self.best_value, self.best_epoch, self.best_step = value, trainer.epoch, trainer.global_step
        trainer.best = {
            "metric": monitor, "value": value, "epoch": trainer.epoch, "step": trainer.global_step,
            "mode": self.cfg.mode,
        }
        if self.cfg.save_best:
            path = self._save(trainer, "best.pt", "best")
            if path is not None and trainer.best is not None:
                trainer.best["checkpoint"] = str(path)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if self.cfg.save_last:
            self._save(trainer, "last.pt", "epoch")
        n = self.cfg.every_n_epochs
        if n and trainer.epoch_closed and (trainer.epoch + 1) % n == 0:
            self._save(trainer, f"epoch-{trainer.epoch + 1:04d}.pt", "keep")

    def on_train_end(self, trainer: Trainer) -> None:
        # a stop or interrupt mid-epoch (or during validation): record the exact position
        epoch, batch = trainer.position
        if self.cfg.save_last and self._saved_at != (epoch, batch, trainer.global_step):
            self._save(trainer, "last.pt", trainer.status)

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "best_step": self.best_step,
                "monitor": self.cfg.monitor, "mode": self.cfg.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state.get("monitor", self.cfg.monitor), state.get("mode", self.cfg.mode))
        if saved != (self.cfg.monitor, self.cfg.mode):
            return  # a different monitor: its best does not compare
        self.best_value = state.get("best_value")
        self.best_epoch = state.get("best_epoch")
        self.best_step = state.get("best_step")

    # -- helpers --------------------------------------------------------------------------------

    def _improves(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.cfg.mode == "min" else value > self.best_value

    def _last_step(self) -> int | None:
        return self._saved_at[2] if self._saved_at else None

    def _save(self, trainer: Trainer, name: str, reason: str) -> Path | None:
        if self.dirpath is None or trainer.model is None:
            return None
        if not all_finite(trainer.model):
            trainer.log_event(
                "warning", f"not writing {name}: the model has non-finite weights (keeping the last good file)"
            )
            return None
        path = trainer.save_checkpoint(self.dirpath / name)
        epoch, batch = trainer.position
        if name == "last.pt":
            self._saved_at = (epoch, batch, trainer.global_step)
        trainer.log_event("checkpoint", f"saved {name}", path=str(path), file=name, reason=reason,
                          position={"epoch": epoch, "batch": batch})
        return path
