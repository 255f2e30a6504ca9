"""``ftui inspect``, ``ftui diff`` and ``ftui export``."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def inspect_command(path: Path, *, as_json: bool, plain: bool, unsafe: bool) -> None:
    """Inspect a checkpoint."""
    raise not_built("inspect", 9)


def diff_command(a: Path, b: Path, *, as_json: bool, unsafe: bool) -> None:
    """Compare two checkpoints."""
    raise not_built("diff", 9)


def export_command(ckpt: Path, *, format_: str, out: Path | None) -> None:
    """Export weights."""
    raise not_built("export", 9)
