"""The callback-driven trainer, its callbacks, metrics, checkpoint io and control channel.

Public API::

    Trainer(cfg, callbacks=None, run_dir=None, record=True).fit(resume_from=None)
    Callback                      # core.training.callback, Lightning-style hooks
    callbacks.*                   # Recorder, Checkpoint, EarlyStopping, LR monitor, Progress, TensorBoard
    checkpoint.save_file / load_file / capture_rng / restore_rng
    metrics.ClassificationMetrics / TrainAccumulator
    schedule.LrSchedule

Importing this package does not import torch; the submodules do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from core.training.trainer import Trainer

__all__ = ["Trainer"]


def __getattr__(name: str) -> Any:
    # lazy, so `import core.training.callback` stays torch-free for viewers and the control client
    if name == "Trainer":
        from core.training.trainer import Trainer

        return Trainer
    raise AttributeError(name)
