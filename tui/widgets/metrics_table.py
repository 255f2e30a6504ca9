"""Latest and best value of every logged metric, per split."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.run_state import format_value


class MetricsTable(DataTable):
    """Rows of (split, metric, latest, best); redrawn only when the rows change."""

    DEFAULT_CSS = """
    MetricsTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: list[tuple[str, str, float | None, float | None]] | None = None

    def on_mount(self) -> None:
        self.add_column("split", key="split")
        self.add_column("metric", key="metric")
        self.add_column(Text("latest", justify="right"), key="latest")
        self.add_column(Text("best", justify="right"), key="best")

    def show(self, rows: list[tuple[str, str, float | None, float | None]]) -> None:
        """Replace the rows (keeps the cursor position)."""
        if rows == self._shown:
            return
        self._shown = list(rows)
        cursor = self.cursor_row
        self.clear()
        for split, metric, latest, best in rows:
            self.add_row(
                Text(split),
                Text(metric),  # metric names come from the run's files: text, never markup
                Text(format_value(latest), justify="right"),
                Text(format_value(best) if best is not None else "", justify="right"),
                key=f"{split}/{metric}",
            )
        if rows:
            self.move_cursor(row=min(cursor, len(rows) - 1))
