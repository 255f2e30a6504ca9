"""``ftui eval``: evaluate a checkpoint."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def eval_command(ckpt: Path, *, config: Path | None, split: str, overrides: list[str]) -> None:
    """Evaluate a checkpoint on a split and print metrics."""
    raise not_built("eval", 5)
