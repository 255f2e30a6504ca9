"""``ftui data preview``."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def preview(config: Path, *, split: str, n: int, seed: int | None, overrides: list[str]) -> None:
    """Print dataset statistics and a grid of augmented samples."""
    raise not_built("data preview", 3)
