"""Evaluate a checkpoint on a split, with the data rebuilt from its config and fitted statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Config, config_from_dict, load_config
from core.errors import CheckpointError, ConfigError
from core.training.checkpoint import load_file


@dataclass
class Evaluation:
    """What ``ftui eval`` shows."""

    checkpoint: Path
    split: str
    metrics: dict[str, Any]
    class_names: list[str]
    config: Config
    epoch: int
    step: int
    size: int


def evaluate_checkpoint(
    path: Path | str,
    *,
    config: Path | str | None = None,
    split: str = "test",
    overrides: list[str] | tuple[str, ...] = (),
) -> Evaluation:
    """Load ``path`` (weights_only), rebuild its data and model, and evaluate on ``split``.

    The config is the checkpoint's own unless ``config`` is given; in both cases the normalisation
    and cleaning statistics fitted when the run trained are reused, never refitted.
    """
    from core.training.trainer import Trainer

    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: expected 'val' or 'test'.")
    path = Path(path)
    ckpt = load_file(path)
    if config is not None:
        cfg = load_config(config, overrides)
    else:
        raw = ckpt.get("config")
        if not isinstance(raw, dict):
            raise CheckpointError(
                f"{path}: holds no config. Fix: pass the run's config with --config runs/<name>/config.yaml."
            )
        cfg = config_from_dict(raw, overrides)
        if not any(o.startswith("trainer.device=") for o in overrides):
            cfg.trainer.device = "auto"  # the checkpoint may come from another machine
            if cfg.trainer.precision == "16-mixed":
                cfg.trainer.precision = "32"
    cfg.model.weights = None  # the checkpoint's weights replace them
    cfg.logging.progress = "none"
    trainer = Trainer(cfg, record=False, default_callbacks=False)
    try:
        trainer.setup(ckpt, weights_only=True)
        metrics = trainer.validate(split)
    finally:
        trainer.cleanup()  # the loaders' workers end here, not whenever the collector finds them
    data = trainer.data
    dataset = data.val if split == "val" else data.test
    return Evaluation(
        checkpoint=path,
        split=split,
        metrics=metrics,
        class_names=list(trainer.class_names),
        config=cfg,
        epoch=int(ckpt.get("epoch", 0)),
        step=int(ckpt.get("step", 0)),
        size=len(dataset),
    )
