"""The inspector's Compression tab: what compression made this checkpoint, and the trade-off table."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class TradeoffPanel(VerticalScroll):
    """Shows a checkpoint's compression record and the ``tradeoff.json`` that describes it (torch-free)."""

    DEFAULT_CSS = """
    TradeoffPanel {
        height: 1fr;
        padding: 0 1;
    }
    TradeoffPanel > Static {
        width: 1fr;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("Loading…", classes="body")

    def show(self, path: str, compression: dict[str, Any] | None, table: dict[str, Any] | None,
             table_path: str | None, *, compact: bool) -> None:
        """Render the record (if any) and the trade-off table (if any), or how to make one."""
        self.query_one(".body", Static).update(render(path, compression, table, table_path, compact=compact))


def render(path: str, compression: dict[str, Any] | None, table: dict[str, Any] | None, table_path: str | None,
           *, compact: bool) -> RenderableType:
    """The tab's content (a pure function, for tests and snapshots)."""
    from tui.widgets.inspect_render import compression_view
    from tui.widgets.tradeoff_render import tradeoff_table

    parts: list[RenderableType] = []
    if table:
        parts.append(Text(f"Trade-off table: {table_path}", style="bold"))
        parts.append(tradeoff_table(table, compact=compact))
    if compression:
        parts.append(compression_view(compression))
    if not parts:
        parts.append(Text(
            "This checkpoint was not compressed and no trade-off table was found beside it.\n"
            f"Make smaller variants and measure them:\n  ftui compress {path} --prune 0.5 --quantize int8",
        ))
    return Group(*parts)
