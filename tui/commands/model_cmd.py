"""``ftui model show`` and ``ftui model graph``."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def show(config: Path, *, depth: int, overrides: list[str]) -> None:
    """Print the layer tree."""
    raise not_built("model show", 4)


def graph(config: Path, *, format_: str, depth: int, overrides: list[str]) -> None:
    """Print a Mermaid graph."""
    raise not_built("model graph", 4)
