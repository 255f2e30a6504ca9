"""``ftui inspect PATH``: the inspector screen as a stand-alone Textual app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App
from textual.screen import Screen

from tui.screens.inspect_screen import InspectScreen


class InspectApp(App):
    """Runs :class:`InspectScreen` as its only screen; ``q`` or ``escape`` quits."""

    TITLE = "ftui inspect"

    def __init__(self, path: Path, *, unsafe: bool = False, loaded: Any | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.unsafe = unsafe
        self.loaded = loaded

    def get_default_screen(self) -> Screen:
        return InspectScreen(self.path, self.unsafe, loaded=self.loaded)
