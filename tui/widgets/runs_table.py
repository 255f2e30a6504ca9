"""The home screen's table of runs: status, progress, best, duration, tags and the config keys that
differ between the listed runs; sorted and filtered by the screen, with marks for multi-select.

:meth:`RunsTable.show` takes a :class:`core.run_index.Listing` and updates the table in place: cells
that changed are rewritten, rows are rebuilt only when the set or the order of runs changed, and the
cursor stays on the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from core.run_index import Listing, RunEntry
from tui.listing_format import BASE_COLUMNS, best_header, cell, header
from tui.widgets.run_header import status_text

MARK = "mark"
#: What a marked row shows in the first column.
MARK_GLYPH = "●"


class RunsTable(DataTable):
    """Rows keyed by run directory; ``marked`` holds the keys of the runs selected with space."""

    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    @dataclass
    class SortRequested(Message):
        """A column header was clicked: sort by it (again: reverse)."""

        column: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.fixed_columns = 2  # the mark and the name stay put while wide tables scroll
        self.runs: dict[str, RunEntry] = {}
        self.marked: set[str] = set()
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._columns: list[str] = []
        self._cells: dict[str, tuple] = {}
        self._headers: tuple = ()

    # ---- drawing ------------------------------------------------------------------------------

    def show(self, listing: Listing, clock: float | None = None) -> None:
        """Make the table show ``listing``, keeping the cursor on the same run."""
        clock = time.time() if clock is None else clock
        columns = [MARK, *(k for k, _ in BASE_COLUMNS), *listing.hparams]
        wanted = {str(e.path): e for e in listing.entries}
        headers = tuple(self._header(c, listing) for c in columns)
        selected = self.selected_key()
        if columns != self._columns or headers != self._headers:
            self.clear(columns=True)
            for key, label in zip(columns, headers):
                self.add_column(label, key=key)
            self._columns, self._headers = columns, headers
            self._cells = {}
        if list(wanted) != list(self.runs) or not self._cells:
            self.clear()
            self._cells = {key: self._row(entry, clock) for key, entry in wanted.items()}
            self.add_rows_with_keys(self._cells)
            if selected in wanted:
                self.move_cursor(row=list(wanted).index(selected), animate=False)
        else:
            for key, entry in wanted.items():
                cells = self._row(entry, clock)
                old = self._cells[key]
                if cells != old:
                    for column, new_value, old_value in zip(self._columns, cells, old):
                        if new_value != old_value:
                            self.update_cell(key, column, new_value, update_width=True)
                    self._cells[key] = cells
        self.runs = wanted

    def add_rows_with_keys(self, rows: dict[str, tuple]) -> None:
        for key, cells in rows.items():
            self.add_row(*cells, key=key)

    def _header(self, column: str, listing: Listing) -> Text | str:
        label = " " if column == MARK else best_header(listing.entries) if column == "best" else header(column)
        if column == self.sort_column:
            return Text(f"{label} {'▼' if self.sort_reverse else '▲'}", style="bold")
        return Text(label, style="cyan") if column in listing.hparams else label

    def _row(self, entry: RunEntry, clock: float) -> tuple:
        out: list = []
        for column in self._columns:
            if column == MARK:
                out.append(Text(MARK_GLYPH, style="bold magenta") if str(entry.path) in self.marked else " ")
            elif column == "name":
                out.append(Text(entry.name, style="dim" if entry.meta.archived else "bold"))
            elif column == "status":
                out.append(status_text(cell(entry, "status")))
            elif column in ("best", "duration"):
                out.append(Text(cell(entry, column, clock), justify="right"))
            elif column == "tags":
                out.append(Text(cell(entry, column), style="magenta"))
            else:
                out.append(cell(entry, column, clock))
        return tuple(out)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = str(event.column_key.value)
        if column != MARK:
            self.post_message(self.SortRequested(column))

    # ---- selection ----------------------------------------------------------------------------

    def selected_key(self) -> str | None:
        if not self.runs or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        return str(self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value)

    def selected(self) -> RunEntry | None:
        """The run under the cursor."""
        key = self.selected_key()
        return self.runs.get(key) if key is not None else None

    def selected_path(self) -> Path | None:
        entry = self.selected()
        return entry.path if entry else None

    def toggle_mark(self) -> None:
        """Mark or unmark the run under the cursor, then move the cursor down."""
        key = self.selected_key()
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        glyph = Text(MARK_GLYPH, style="bold magenta") if key in self.marked else " "
        self.update_cell(key, MARK, glyph)
        cells = list(self._cells.get(key, ()))
        if cells:
            cells[0] = glyph
            self._cells[key] = tuple(cells)
        if self.cursor_row < self.row_count - 1:
            self.move_cursor(row=self.cursor_row + 1, animate=False)

    def marked_entries(self) -> list[RunEntry]:
        """The marked runs still listed, in table order."""
        return [entry for key, entry in self.runs.items() if key in self.marked]

    def targets(self) -> list[RunEntry]:
        """What an action applies to: the marked runs, or the one under the cursor."""
        marked = self.marked_entries()
        if marked:
            return marked
        entry = self.selected()
        return [entry] if entry is not None else []
