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
from tui.listing_format import best_header, cell, columns_of, header
from tui.widgets.run_header import status_text

MARK = "mark"
#: What a marked row shows in the first column.
MARK_GLYPH = "●"
#: Rows added at once (more than a tall terminal shows); the rest follow after each repaint, in steps:
#: DataTable measures every cell it is given, about a third of a second per 1,000 rows.
FIRST_ROWS = 80
ROWS_PER_STEP = 200


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
        self._made: dict[str, tuple[tuple, tuple]] = {}
        """key -> (what the cells were made from, the cells): rows of runs that did not change are reused."""
        self._pending: list[str] = []
        """Keys of rows still to add (the table fills in steps)."""
        self._clock = time.time()

    # ---- drawing ------------------------------------------------------------------------------

    def show(self, listing: Listing, clock: float | None = None) -> None:
        """Make the table show ``listing``, keeping the cursor on the same run."""
        clock = time.time() if clock is None else clock
        columns = [MARK, *columns_of(listing)]
        wanted = {str(e.path): e for e in listing.entries}
        headers = tuple(self._header(c, listing) for c in columns)
        selected = self.selected_key()
        if columns != self._columns or headers != self._headers:
            self._pending = []
            self.clear(columns=True)
            for key, label in zip(columns, headers):
                self.add_column(label, key=key)
            self._columns, self._headers = columns, headers
            self._cells, self._made = {}, {}
        if list(wanted) != list(self.runs) or not self._cells:
            self.clear()
            self._pending = []
            self._cells = {}
            self.runs = wanted
            self._clock = clock
            keys = list(wanted)
            at = keys.index(selected) if selected in wanted else 0
            first = max(FIRST_ROWS, at + 1)
            # cells are made as rows are added: the first screenful now, the rest after repaints
            self._add(keys[:first])
            self._pending = keys[first:]
            if self._pending:
                self.call_after_refresh(self._add_more)
            if selected in wanted:
                self.move_cursor(row=at, animate=False)
        else:
            self._clock = clock
            for key, entry in wanted.items():
                old = self._cells.get(key)
                if old is None:
                    continue  # still to be added: its cells are made then
                cells = self._cached_row(key, entry, clock)
                if cells != old:
                    self._cells[key] = cells
                    for column, new_value, old_value in zip(self._columns, cells, old):
                        if new_value != old_value:
                            self.update_cell(key, column, new_value, update_width=True)
        self.runs = wanted

    def _add(self, keys: list[str]) -> None:
        for key in keys:
            cells = self._cells[key] = self._cached_row(key, self.runs[key], self._clock)
            self.add_row(*cells, key=key)

    def _add_more(self) -> None:
        """Add the next step of rows, then come back after the next repaint."""
        step, self._pending = self._pending[:ROWS_PER_STEP], self._pending[ROWS_PER_STEP:]
        self._add([k for k in step if k in self.runs and k not in self.rows])
        if self._pending:
            self.call_after_refresh(self._add_more)

    @property
    def filling(self) -> bool:
        """True while rows are still being added."""
        return bool(self._pending)

    def _header(self, column: str, listing: Listing) -> Text | str:
        label = " " if column == MARK else best_header(listing.entries) if column == "best" else header(column)
        if column == self.sort_column:
            return Text(f"{label} {'▼' if self.sort_reverse else '▲'}", style="bold")
        return Text(label, style="cyan") if column in listing.hparams else Text(label)

    def _cached_row(self, key: str, entry: RunEntry, clock: float) -> tuple:
        """The row's cells, made again only when the run changed (or, while it trains, its clock did)."""
        source = (id(entry.info), id(entry.meta), id(entry.config), entry.status, key in self.marked,
                  int(clock) if entry.active else None)
        made = self._made.get(key)
        if made is not None and made[0] == source:
            return made[1]
        cells = self._row(entry, clock)
        self._made[key] = (source, cells)
        return cells

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
            else:  # models, datasets, tags, hyper-parameters: the run's own strings, never markup
                out.append(Text(cell(entry, column, clock)))
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
        self._made.pop(key, None)
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
