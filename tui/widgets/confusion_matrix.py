"""A confusion matrix as a coloured heatmap, with per-class precision, recall and F1."""

from __future__ import annotations

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from core.richtext import PlainTable
from tui.run_state import per_class_from_confusion

# Heat ramps (dark → bright) for correct (diagonal) and wrong predictions.
_DARK = (30, 30, 30)
_GOOD = (40, 170, 80)
_BAD = (200, 60, 50)


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> Color:
    t = max(0.0, min(1.0, t))
    return Color.from_rgb(*(int(x + (y - x) * t) for x, y in zip(a, b)))


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def confusion_table(matrix: list[list[float]], names: list[str], title: str, width: int | None = None) -> Table:
    """The heatmap as a Rich table: rows are true classes, columns predicted ones, cells row-normalised.

    ``width``: the columns the table may take; its class columns then grow to show whole names where
    they fit (without it, or where they do not, a name is cut to its start and "…")."""
    n = len(matrix)
    per_class = per_class_from_confusion(matrix)
    digits = max((len(str(int(max(r or [0])))) for r in matrix), default=1)
    cell_w = max(4, min(6, digits + 1))
    if width is not None and n:
        # every column has a space either side: the row labels, n class columns, P, R, F1 (4 each), n
        label_w = max(len("true \\ pred"), min(12, max((len(name) for name in names), default=0)))
        support_w = max(len(str(int(sum(float(v) for v in row)))) for row in matrix)
        room = (width - (label_w + 2) - 3 * 6 - (support_w + 2) + 2) // n - 2  # + 2: no space at the edges
        longest = max((len(name) for name in names), default=0)
        cell_w = max(digits, 1, min(max(longest, cell_w), room))
    table = PlainTable(title=title, title_justify="left", box=None, pad_edge=False, padding=(0, 1), show_edge=False)
    table.add_column("true \\ pred", no_wrap=True, style="bold")
    for name in names:
        table.add_column(_short(name, cell_w), justify="right", no_wrap=True, width=cell_w)
    for label in ("P", "R", "F1"):
        table.add_column(label, justify="right", no_wrap=True, width=4)
    table.add_column("n", justify="right", no_wrap=True)
    for k in range(n):
        row = matrix[k]
        support = sum(float(v) for v in row) or 1.0
        cells: list[Text | str] = [_short(names[k], 12)]
        for j in range(n):
            frac = float(row[j]) / support
            ramp = _GOOD if j == k else _BAD
            bg = _blend(_DARK, ramp, frac if j == k else min(1.0, frac * 3))
            fg = "white" if frac < 0.6 else "black"
            cells.append(Text(f"{int(row[j])}", style=Style(bgcolor=bg, color=fg)))
        p, r, f1, sup = per_class[k]
        cells += [f"{p:.2f}", f"{r:.2f}", f"{f1:.2f}", str(sup)]
        table.add_row(*cells)
    return table


class ConfusionMatrix(Static):
    """Shows the latest confusion matrix of one split; ``show`` picks the data."""

    DEFAULT_CSS = """
    ConfusionMatrix {
        width: auto;
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, split: str | None, matrix: list[list[float]] | None, names: list[str], splits: list[str]) -> None:
        """Draw ``matrix`` of ``split``; ``splits`` are all splits that have one (for the hint)."""
        if not matrix or split is None:
            self.update(Text("No confusion matrix yet: it appears after the first validation.", style="dim"))
            return
        others = [s for s in splits if s != split]
        hint = Text(f"  (press v for {', '.join(others)})", style="dim") if others else Text("")
        room = self.app.size.width - 4 if self.is_attached else None  # its padding and the pane's
        table = confusion_table(matrix, names, f"{split}: rows = true class, columns = predicted", room)
        self.update(Group(table, hint))
