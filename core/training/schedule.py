"""Learning-rate schedules as a per-step factor on each parameter group's ``base_lr``.

torch's ``LRScheduler`` remembers ``base_lrs`` once, at construction; fine-tuning changes the groups
while training (an unfreeze adds a group, ``set-lr`` changes a group's ``base_lr``). So a schedule here
is a factor ``f(step)`` and the trainer sets ``group["lr"] = group["base_lr"] * f`` for every group
before each optimizer step. Only reduce-on-plateau carries state (see :meth:`state_dict`).
"""

from __future__ import annotations

import math
from typing import Any

from core.config import ScheduleConfig


class LrSchedule:
    """A learning-rate factor as a function of the optimizer step (and, for plateau, of metrics).

    Args:
        cfg: the ``schedule`` section.
        steps_per_epoch: optimizer steps in one epoch (after gradient accumulation).
        total_steps: optimizer steps of the whole run (epochs x steps per epoch, or ``max_steps``).
    """

    def __init__(self, cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> None:
        self.cfg = cfg
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        # plateau state: the factor only ever shrinks when the monitored metric stalls
        self.plateau_factor = 1.0
        self.plateau_best: float | None = None
        self.plateau_bad = 0

    def factor(self, step: int) -> float:
        """The factor for optimizer step ``step`` (0-based: the step about to be taken)."""
        name = self.cfg.name
        if name == "onecycle":
            return self._onecycle(step)
        warm = self._warmup(step)
        if name == "none":
            return warm
        if name == "step":
            epoch = step // self.steps_per_epoch
            return warm * self.cfg.gamma ** (epoch // self.cfg.step_size)
        if name == "cosine":
            if step < self.warmup_steps:
                return warm
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            lo = self.cfg.min_lr_ratio
            return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "plateau":
            return warm * self.plateau_factor
        raise ValueError(f"unknown schedule {name!r}")

    def _warmup(self, step: int) -> float:
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return 1.0
        return (step + 1) / (self.warmup_steps + 1)

    def _onecycle(self, step: int) -> float:
        # Same shape as torch.optim.lr_scheduler.OneCycleLR (cosine annealing, two phases).
        cfg = self.cfg
        start = 1.0 / cfg.div_factor
        end = start / cfg.final_div_factor
        up = max(1.0, cfg.pct_start * self.total_steps - 1)
        last = max(up + 1, self.total_steps - 1)
        step = min(step, int(last))
        if step <= up:
            return _cos_anneal(start, 1.0, step / up)
        return _cos_anneal(1.0, end, (step - up) / (last - up))

    def observe(self, metrics: dict[str, float]) -> bool:
        """Feed validation metrics (plateau only); returns True when the factor was reduced."""
        if self.cfg.name != "plateau":
            return False
        value = metrics.get(self.cfg.monitor)
        if value is None or not math.isfinite(value):
            return False
        better = (
            self.plateau_best is None
            or (self.cfg.mode == "min" and value < self.plateau_best)
            or (self.cfg.mode == "max" and value > self.plateau_best)
        )
        if better:
            self.plateau_best, self.plateau_bad = value, 0
            return False
        self.plateau_bad += 1
        if self.plateau_bad > self.cfg.patience:
            self.plateau_factor *= self.cfg.factor
            self.plateau_bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """The mutable state (plateau) as plain numbers."""
        return {
            "name": self.cfg.name,
            "plateau_factor": self.plateau_factor,
            "plateau_best": self.plateau_best,
            "plateau_bad": self.plateau_bad,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.plateau_factor = float(state.get("plateau_factor", 1.0))
        best = state.get("plateau_best")
        self.plateau_best = None if best is None else float(best)
        self.plateau_bad = int(state.get("plateau_bad", 0))


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * min(1.0, max(0.0, pct))) + 1)


def apply_lr(optimizer: Any, factor: float) -> None:
    """Set every group's ``lr`` to its ``base_lr`` times ``factor`` (``base_lr`` defaults to ``lr``)."""
    for group in optimizer.param_groups:
        base = group.setdefault("base_lr", group["lr"])
        group["lr"] = base * factor
