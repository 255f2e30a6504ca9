"""The Explain view's confusion matrix: a table whose cells can be picked (enter) to see their samples."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


class ConfusionPicker(DataTable):
    """Rows are true classes, columns predicted ones; ``CellSelected`` names a (true, predicted) pair."""

    DEFAULT_CSS = """
    ConfusionPicker {
        height: auto;
        max-height: 100%;
        width: auto;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="cell", zebra_stripes=False, cell_padding=0, **kwargs)  # type: ignore[arg-type]
        self.matrix: list[list[int]] = []
        self.names: list[str] = []

    def show(self, matrix: list[list[int]], names: list[str]) -> None:
        """Fill the table; the cursor starts on the largest off-diagonal cell (the commonest mistake)."""
        self.matrix, self.names = matrix, names
        self.clear(columns=True)
        width = max(4, min(7, max((len(str(v)) for row in matrix for v in row), default=1) + 2))
        self.add_column(Text("true\\pred ", style="bold"), key="true")
        for j, name in enumerate(names):
            self.add_column(Text(_short(name, width - 1).rjust(width)), key=str(j), width=width)
        for i, row in enumerate(matrix):
            total = sum(row) or 1
            cells: list[Text] = [Text(_short(names[i], 10) + " ", style="bold")]
            for j, value in enumerate(row):
                if i == j:
                    style = "bold green" if value else "dim"
                elif value:
                    style = "bold red" if value / total > 0.1 else "red"
                else:
                    style = "dim"
                cells.append(Text(str(value), style=style, justify="right"))
            self.add_row(*cells, key=str(i))
        worst = max(((v, i, j) for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j), default=None)
        if worst is not None and worst[0] > 0:
            self.move_cursor(row=worst[1], column=worst[2] + 1)

    def cell_classes(self, row: int, column: int) -> tuple[int, int] | None:
        """(true, predicted) of a table coordinate, or None for the row-label column."""
        if column < 1 or row >= len(self.matrix):
            return None
        return row, column - 1
