"""A scrollable panel that shows one Rich renderable (summary, optimizer, data or config)."""

from __future__ import annotations

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class InspectPanel(VerticalScroll):
    """Shows a renderable; :meth:`show` replaces it."""

    DEFAULT_CSS = """
    InspectPanel {
        height: 1fr;
        padding: 0 1;
    }
    InspectPanel > Static {
        width: 1fr;
    }
    """

    def __init__(self, placeholder: RenderableType = "Loading…", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield Static(self._placeholder, classes="body")

    def show(self, renderable: RenderableType) -> None:
        """Replace the panel's content."""
        self.query_one(".body", Static).update(renderable)
