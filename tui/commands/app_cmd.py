"""Opening the Textual app: the home screen (``ftui``) and a run's dashboard (``ftui watch``)."""

from __future__ import annotations

from pathlib import Path

from tui.commands import not_built


def open_home(root: Path) -> None:
    """Open the home screen."""
    raise not_built("(the app)", 6)


def open_watch(run_spec: str, root: Path) -> None:
    """Open the dashboard of one run."""
    raise not_built("watch", 6)
