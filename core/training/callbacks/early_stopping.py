"""Early stopping: stop when a monitored validation metric stops improving."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from core.config import EarlyStoppingConfig
from core.training.callback import Callback

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer


class EarlyStopping(Callback):
    """Requests a stop after ``patience`` validations without an improvement of at least ``min_delta``."""

    def __init__(self, cfg: EarlyStoppingConfig) -> None:
        self.cfg = cfg
        self.best: float | None = None
        self.wait = 0

    def on_validation_end(self, trainer: Trainer) -> None:
        value = trainer.callback_metrics.get(self.cfg.monitor)
        if value is None or not math.isfinite(value):
            return
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.cfg.patience:
            reason = (
                f"early stopping: {self.cfg.monitor} did not improve by {self.cfg.min_delta:g} for "
                f"{self.wait} validation(s) (best {self.best:.6g})"
            )
            trainer.log_event("early_stopping", reason, monitor=self.cfg.monitor, best=self.best)
            trainer.request_stop(reason, status="finished")

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.cfg.mode == "min":
            return value < self.best - self.cfg.min_delta
        return value > self.best + self.cfg.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.wait = int(state.get("wait", 0))
