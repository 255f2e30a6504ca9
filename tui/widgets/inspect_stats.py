"""Statistics of the selected tensor, shown once a worker has computed them."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.widgets.inspect_render import stats_table

HINT = "Select a tensor in the tree (enter) to compute its statistics."


class TensorStatsView(Static):
    """Hint, progress, result or error for one tensor's statistics."""

    DEFAULT_CSS = """
    TensorStatsView {
        width: 1fr;
        height: 1fr;
        padding: 0 1;
        border: round $secondary 40%;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text(HINT, style="dim"), id=id)
        self.current: str | None = None

    def computing(self, name: str) -> None:
        """Show that ``name`` is being read and reduced."""
        self.current = name
        self.update(Text(f"Computing statistics of {name}…", style="italic"))

    def show_stats(self, stats: dict[str, Any]) -> None:
        """Show the result (``TensorStats.as_dict()``)."""
        self.current = stats.get("name")
        self.update(stats_table(stats))

    def show_error(self, name: str, message: str) -> None:
        """Show why the statistics could not be computed."""
        self.update(Text(f"{name}: {message}", style="bold red"))
