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
    batch: int = 0  # batches of the next epoch done when it was saved (a mid-epoch checkpoint)
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
        batch=int(ckpt.get("batch_idx", 0)),
        size=len(dataset),
        code=rebuilt.code,
        notices=rebuilt.notices,
    )


def record_in_run(result: Evaluation) -> tuple[Path | None, str]:
    """Add a test-split evaluation of a run's own checkpoint to that run, as a ``test`` row of
    ``metrics.jsonl`` (with its per-class figures and confusion matrix, at the checkpoint's step) and an
    ``evaluated`` event, so the run's dashboard shows it. Returns (the run directory or None, what was
    done, in words).

    Only the run's own evaluation is its record: a checkpoint outside a run directory, another split,
    another config (``--config``, ``--set``) or a run that is training (its process holds the run's
    lock and writes its files) is left alone.
    """
    from core.errors import RunError
    from core.runs import RUN_JSON, RunWriter

    path = Path(result.checkpoint)
    run_dir = path.parent.parent
    if path.parent.name != "checkpoints" or not (run_dir / RUN_JSON).is_file():
        return None, "not recorded: the checkpoint is not in a run directory"
    if result.split != "test":
        return None, "not recorded: only the test split is added to a run (its validation is the run's own)"
    writer = RunWriter.reopen(run_dir)
    try:
        writer.lock()
    except RunError:
        return None, f"not recorded: {run_dir.name} is training and writes its own files"
    try:
        m = result.metrics
        # rows carry the 0-based epoch they were measured in; the checkpoint counts the epochs it completed
        in_epoch = result.epoch - 1 if result.batch == 0 and result.epoch > 0 else result.epoch
        writer.log_metrics(result.step, in_epoch, "test", m, checkpoint=path.name)
        shown = ", ".join(f"{k} {m[k]:.4f}" for k in ("loss", "acc", "f1_macro") if isinstance(m.get(k), (int, float)))
        writer.log_event("evaluated", f"test split of {path.name} ({result.size} samples): {shown}",
                         checkpoint=path.name, split="test", step=result.step, epoch=in_epoch)
    finally:
        writer.close()
    return run_dir, f"recorded in {run_dir} (its dashboard shows the test split: v on the Confusion tab)"
