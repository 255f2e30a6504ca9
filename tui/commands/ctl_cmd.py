"""``ftui ctl``: send a control command to a run."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def ctl_command(run_spec: str, command: str, args: list[str], *, timeout: float, root: Path) -> int:
    """Send a command, wait for the answer; returns the exit code."""
    raise not_built("ctl", 7)
