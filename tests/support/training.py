"""Helpers for the tests that train: a tiny shapes config and small recording callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.config import Config, config_from_dict
from core.training.callback import Callback


def tiny_raw(root: Path, name: str = "tiny", **sections: dict[str, Any]) -> dict[str, Any]:
    """A config dict that trains in about a second per epoch on a loaded 2-core CPU."""
    raw: dict[str, Any] = {
        "run": {"name": name, "root": str(root), "seed": 7},
        "data": {
            "source": "shapes",
            "shapes": {"image_size": 16, "train_size": 96, "val_size": 32, "test_size": 32,
                       "classes": ["circle", "square", "triangle"], "difficulty": 0.2},
            "batch_size": 16,
            "num_workers": 0,
            "augment": {"hflip": 0.5},
        },
        "model": {"name": "simple_cnn", "channels": [4, 8], "dropout": 0.2},
        "optim": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 0.5},
        "trainer": {"epochs": 2, "device": "cpu", "cpu_threads": 1},
        "logging": {"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def tiny_cfg(root: Path, name: str = "tiny", **sections: dict[str, Any]) -> Config:
    return config_from_dict(tiny_raw(root, name, **sections))


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class HookRecorder(Callback):
    """Records every hook call as (hook name, epoch, batch index or None)."""

    HOOKS = [
        "setup", "on_fit_start", "on_train_start", "on_train_epoch_start", "on_train_batch_start",
        "on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad",
        "on_train_batch_end", "on_log", "on_validation_start", "on_validation_epoch_start",
        "on_validation_batch_end", "on_validation_epoch_end", "on_validation_end", "on_train_epoch_end",
        "on_save_checkpoint", "on_train_end", "on_fit_end", "teardown", "on_exception",
    ]

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

        def make(hook: str):
            def record(trainer: Any, *args: Any) -> None:
                detail = None
                if hook in ("on_train_batch_start", "on_train_batch_end", "on_validation_batch_end"):
                    detail = args[-1]
                elif hook == "on_log":
                    detail = args[0]
                elif hook in ("setup", "teardown"):
                    detail = args[0]
                self.calls.append((hook, detail))
            return record

        for hook in self.HOOKS:
            setattr(self, hook, make(hook))


class StopAt(Callback):
    """Requests a stop once ``global_step`` reaches ``step`` (a stand-in for `ftui ctl stop`)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            trainer.request_stop(f"test stop at step {self.step}")
