"""Checkpointing: ``last.pt`` every epoch (and at a stop), ``best.pt`` by a monitored metric, keep-every-N.

The best monitored value lives here, as in Lightning's ``ModelCheckpoint`` (``trainer.best`` reads
it), and travels in the callback's state in every checkpoint. Files are written by
:meth:`Trainer.save_checkpoint`, which never writes a model with non-finite weights: a run that
diverges keeps its last good files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import CheckpointConfig
from core.runs import CHECKPOINT_DIR
from core.training.callback import Callback
from core.training.checkpoint import NonFiniteWeights, remove_stale_temps

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer


class CheckpointCallback(Callback):
    """Writes checkpoints under ``dirpath`` (default: the run's ``checkpoints/``)."""

    def __init__(self, cfg: CheckpointConfig, dirpath: Path | str | None = None) -> None:
        self.cfg = cfg
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.best: dict[str, Any] | None = None
        """``{"metric", "value", "epoch", "step", "mode", "checkpoint"}`` of the best monitored value."""
        self._saved_at: tuple[int, int, int] | None = None  # (epoch, batch, step) of the newest last.pt
        self._warned_monitor = False

    @property
    def best_value(self) -> float | None:
        """The best monitored value so far (Lightning's ``best_model_score``)."""
        return None if self.best is None else self.best.get("value")

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
                self.save(trainer, "last.pt", "step")

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
        best = {"metric": monitor, "value": value, "epoch": trainer.epoch, "step": trainer.global_step,
                "mode": self.cfg.mode}
        if self.cfg.save_best:
            path = self.save(trainer, "best.pt", "best")
            if path is None:
                return  # not written (non-finite weights): `best` keeps naming the file that exists
            best["checkpoint"] = str(path)
        self.best = best

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if self.cfg.save_last:
            self.save(trainer, "last.pt", "epoch")
        n = self.cfg.every_n_epochs
        if n and trainer.epoch_closed and (trainer.epoch + 1) % n == 0:
            self.save(trainer, f"epoch-{trainer.epoch + 1:04d}.pt", "keep")

    def on_train_end(self, trainer: Trainer) -> None:
        # a stop or interrupt mid-epoch (or during validation): record the exact position
        epoch, batch = trainer.position
        if self.cfg.save_last and self._saved_at != (epoch, batch, trainer.global_step):
            self.save(trainer, "last.pt", trainer.status)

    # -- saving ---------------------------------------------------------------------------------

    def save(self, trainer: Trainer, name: str, reason: str) -> Path | None:
        """Write ``name`` in :attr:`dirpath` now; None (and a warning event) when the weights are not finite."""
        if self.dirpath is None or trainer.model is None:
            return None
        try:
            path = trainer.save_checkpoint(self.dirpath / name, reason=reason)
        except NonFiniteWeights:
            trainer.log_event(
                "warning", f"not writing {name}: the model has non-finite weights (keeping the last good file)"
            )
            return None
        if name == "last.pt":
            epoch, batch = trainer.position
            self._saved_at = (epoch, batch, trainer.global_step)
        return path

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        best = self.best or {}
        # best_value/epoch/step: the keys of checkpoints written before `best` was kept whole here
        return {"best": self.best, "best_value": best.get("value"), "best_epoch": best.get("epoch"),
                "best_step": best.get("step"), "monitor": self.cfg.monitor, "mode": self.cfg.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state.get("monitor", self.cfg.monitor), state.get("mode", self.cfg.mode))
        if saved != (self.cfg.monitor, self.cfg.mode):
            return  # a different monitor: its best does not compare
        best = state.get("best")
        if isinstance(best, dict):
            self.best = dict(best)
        elif state.get("best_value") is not None:
            self.best = {"metric": self.cfg.monitor, "value": state["best_value"], "epoch": state.get("best_epoch"),
                         "step": state.get("best_step"), "mode": self.cfg.mode}

    def on_load_checkpoint(self, trainer: Trainer, checkpoint: dict[str, Any]) -> None:
        # an older checkpoint kept the whole record (with the best.pt path) only in its metrics
        old = (checkpoint.get("metrics") or {}).get("best")
        if self.best is not None and "checkpoint" not in self.best and isinstance(old, dict):
            if old.get("metric") == self.best.get("metric") and old.get("value") == self.best.get("value"):
                self.best = dict(old)

    # -- helpers --------------------------------------------------------------------------------

    def _improves(self, value: float) -> bool:
        best = self.best_value
        if best is None:
            return True
        return value < best if self.cfg.mode == "min" else value > best

    def _last_step(self) -> int | None:
        return self._saved_at[2] if self._saved_at else None
