"""Evaluate a checkpoint on a split, with the data rebuilt from its config and fitted statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import ConfigError


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
    code: list[str] = field(default_factory=list)  # code names imported to rebuild it
    notices: list[str] = field(default_factory=list)  # warnings (code changed since the checkpoint)


def evaluate_checkpoint(
    path: Path | str,
    *,
    config: Path | str | None = None,
    split: str = "test",
    overrides: list[str] | tuple[str, ...] = (),
    trust_code: bool = False,
    model: Any = None,
    data: Any = None,
    announce: Any = None,
    base: Path | str | None = None,
) -> Evaluation:
    """Load ``path`` (weights_only), rebuild its data and model, and evaluate on ``split``.

    The config is the checkpoint's own unless ``config`` is given; in both cases the normalisation
    and cleaning statistics fitted when the run trained are reused, never refitted. A checkpoint
    whose config names the user's code is rebuilt only with ``trust_code`` or a ``config``
    (:func:`core.training.rebuild.rebuild`, the one rebuild path); ``announce`` is called with the
    code names before they are imported. ``base`` names the base weights of a LoRA checkpoint that
    keeps them in a file, when the file is not where the checkpoint says (``--base``).
    """
    from core.training.rebuild import rebuild

    if split not in ("val", "test"):
        raise ConfigError(f"--split {split!r}: expected 'val' or 'test'.")
    path = Path(path)
    rebuilt = rebuild(path, config=config, overrides=overrides, trust_code=trust_code, model=model, data=data,
                      command=f"ftui eval {path}" + (f" --split {split}" if split != "test" else ""), announce=announce,
                      base=base)
    trainer, ckpt = rebuilt.trainer, rebuilt.ckpt
    try:
        metrics = trainer.validate(split)
    finally:
        trainer.cleanup()  # the loaders' workers end here, not whenever the collector finds them
    data_bundle = trainer.data
    dataset = data_bundle.val if split == "val" else data_bundle.test
    return Evaluation(
        checkpoint=path,
        split=split,
        metrics=metrics,
        class_names=list(trainer.class_names),
        config=rebuilt.config,
        epoch=int(ckpt.get("epoch", 0)),
        step=int(ckpt.get("step", 0)),
        size=len(dataset),
        code=rebuilt.code,
        notices=rebuilt.notices,
    )
