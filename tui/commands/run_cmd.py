"""``ftui run``: headless training."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def run_command(
    config: Path, overrides: list[str], *, name: str | None, resume: str | None, detach: bool,
    nproc: int | None, quiet: bool, run_dir: Path | None = None,
) -> int:
    """Train from a config; returns the exit code."""
    raise not_built("run", 5)
