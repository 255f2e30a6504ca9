"""The trainer's standard callbacks and the default set a config asks for."""

from __future__ import annotations

from core.config import Config
from core.training.callback import Callback
from core.training.callbacks.checkpointing import CheckpointCallback
from core.training.callbacks.compile_monitor import CompileMonitor
from core.training.callbacks.control import ControlCallback
from core.training.callbacks.early_stopping import EarlyStopping
from core.training.callbacks.layer_stats import LayerStatsCallback
from core.training.callbacks.lr_monitor import LearningRateMonitor
from core.training.callbacks.progress import ProgressCallback
from core.training.callbacks.recorder import RecorderCallback
from core.training.callbacks.telemetry import TelemetryCallback
from core.training.callbacks.tensorboard import TensorBoardCallback

__all__ = [
    "CheckpointCallback",
    "CompileMonitor",
    "ControlCallback",
    "EarlyStopping",
    "LayerStatsCallback",
    "LearningRateMonitor",
    "ProgressCallback",
    "RecorderCallback",
    "TelemetryCallback",
    "TensorBoardCallback",
    "default_callbacks",
]


def default_callbacks(cfg: Config, *, record: bool = True, rank: int = 0) -> list[Callback]:
    """The callbacks ``cfg`` asks for, in hook order (recording first, progress last).

    Without ``record`` there is no run directory, so nothing that writes one is added. Ranks other
    than 0 of a distributed run write nothing and print nothing: they keep early stopping (the
    validation figures are the same on every rank) and the control callback, which receives rank
    0's commands so that every rank applies them at the same step.
    """
    out: list[Callback] = []
    ckpt = cfg.trainer.checkpoint
    if rank != 0:
        if cfg.trainer.early_stopping is not None:
            out.append(EarlyStopping(cfg.trainer.early_stopping))
        if record:
            out.append(ControlCallback())
        return out
    if record:
        out.append(RecorderCallback())
        if ckpt.save_last or ckpt.save_best or ckpt.every_n_epochs or ckpt.every_n_steps:
            out.append(CheckpointCallback(ckpt))
    if cfg.trainer.early_stopping is not None:
        out.append(EarlyStopping(cfg.trainer.early_stopping))
    if record:
        out.append(LearningRateMonitor())
        if cfg.logging.tensorboard:
            out.append(TensorBoardCallback(graph=cfg.logging.tensorboard_graph))
        if cfg.logging.system:
            out.append(TelemetryCallback(cfg.logging.system_interval))
        if cfg.logging.layer_stats:
            out.append(LayerStatsCallback(cfg.logging.layer_stats_depth, cfg.logging.every_n_steps))
        if cfg.trainer.compile:
            out.append(CompileMonitor())
        # last before progress: a pause blocks in its hooks, after the others have seen the step
        out.append(ControlCallback())
    if cfg.logging.progress != "none":
        out.append(ProgressCallback(cfg.logging.progress))
    return out
