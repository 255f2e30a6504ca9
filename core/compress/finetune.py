"""Fine-tune a pruned model as an ordinary ftui run (its own run directory, watched and steered).

The run's config is the source checkpoint's, with ``model.weights`` pointing at the pruned
checkpoint: the model builder replays the pruned shapes from that file's compression record (see
``core.models.build_model``), so the trainer starts from the pruned model with no special case, and
its checkpoints carry the record on. The config is written beside the compressed variants
(``finetune.yaml``) and trained by ``ftui run CONFIG --run-dir DIR`` in a child process, in the
foreground: ``ftui watch DIR`` and ``ftui ctl DIR ...`` work on it as on any run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.config import Config, FinetuneConfig, config_from_dict, config_to_yaml
from core.errors import CompressionError
from core.runs import CHECKPOINT_DIR, CONFIG_YAML, RunWriter, read_json


@dataclass
class FinetuneRun:
    """A finished fine-tuning run and the checkpoint to keep from it."""

    run_dir: Path
    checkpoint: Path
    status: str
    config_path: Path


# The pruned model is a trained one that lost some of its capacity, not a fresh one: half the run's
# rate recovers it best in one epoch (resnet18 on shapes, docs/benchmarks.md benchmark 8: -1.2, -0.2
# and -0.3 accuracy points at 1, 1/2 and 1/4 of the training lr).
LR_FACTOR = 0.5


def finetune_config(source: Config, weights: Path, epochs: int, name: str, overrides: list[str]) -> Config:
    """The source run's config, retargeted: start from ``weights``, train ``epochs`` epochs, all layers,
    at :data:`LR_FACTOR` times the run's learning rate (``overrides`` apply last)."""
    cfg = source.model_copy(deep=True)
    cfg.optim.lr = source.optim.lr * LR_FACTOR
    cfg.model.weights = str(Path(weights).resolve())
    cfg.run.name = name
    cfg.trainer.epochs = int(epochs)
    cfg.trainer.max_steps = None
    cfg.trainer.max_time = None
    # recovery trains every layer; only head dropout shapes the model, so it stays
    cfg.finetune = FinetuneConfig(head_dropout=source.finetune.head_dropout)
    cfg.logging.progress = "auto"
    if overrides:
        cfg = config_from_dict(cfg.model_dump(mode="json"), overrides)
    return cfg


def run_finetune(
    cfg: Config, config_path: Path, *, announce: Callable[[str], None] = print, stdout: Any = None
) -> FinetuneRun:
    """Write ``cfg`` to ``config_path``, create its run directory and train it in the foreground.

    ``stdout``: where the run's output goes (default: this process's stdout; ``--json`` sends it to
    stderr so that stdout holds only the JSON).

    Raises:
        CompressionError: the run failed or left no checkpoint.
    """
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(
        "# Fine-tuning of a pruned model, written by `ftui compress`. Train it again with:\n"
        f"#   ftui run {config_path}\n" + config_to_yaml(cfg)
    )
    writer = RunWriter.create(Path(cfg.run.root), cfg.run.name or "finetune", launcher_pid=os.getpid())
    writer.write_text(CONFIG_YAML, config_to_yaml(cfg))
    run_dir = writer.path
    announce(
        f"fine-tuning the pruned model for {cfg.trainer.epochs} epoch(s) as run {run_dir.name} "
        f"(watch: ftui watch {run_dir}   steer: ftui ctl {run_dir} stop)"
    )
    cmd = [sys.executable, "-m", "tui.cli", "run", str(config_path.resolve()), "--run-dir", str(run_dir.resolve())]
    code = subprocess.call(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=stdout)
    status = str((read_json(run_dir / "run.json") or {}).get("status"))
    ckpt_dir = run_dir / CHECKPOINT_DIR
    chosen = next((p for p in (ckpt_dir / "best.pt", ckpt_dir / "last.pt") if p.is_file()), None)
    if chosen is None or status == "failed":
        raise CompressionError(
            f"fine-tuning run {run_dir} ended {status} (exit {code})"
            + (" without a checkpoint" if chosen is None else "")
            + f". Fix: look at {run_dir / 'stdout.log'} or `ftui watch {run_dir}`, then run `ftui compress` "
            "without --finetune-epochs, or with --finetune-set to change its config."
        )
    return FinetuneRun(run_dir=run_dir, checkpoint=chosen, status=status, config_path=config_path)
