"""The home screen's table of runs: one row per run directory, updated in place."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from core.runs import live_status
from tui.run_state import display_epoch, format_best, format_duration, to_float
from tui.widgets.run_header import status_text

COLUMNS = (
    ("name", "name"),
    ("status", "status"),
    ("model", "model"),
    ("dataset", "dataset"),
    ("progress", "epoch / step"),
    ("best", "best"),
    ("started", "started"),
    ("duration", "duration"),
)


@dataclass(frozen=True)
class RunRow:
    """One run as shown in the table (plain text; built off the event loop)."""

    path: Path
    name: str
    status: str
    model: str
    dataset: str
    progress: str
    best: str
    started: str
    duration: str
    pid: int | None
    host: str | None


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return str(value.get("name") or value.get("source") or "—")
    return str(value)


def run_row(path: Path, info: dict[str, Any], clock: float | None = None) -> RunRow:
    """A :class:`RunRow` from a run directory's ``run.json``."""
    status = live_status(info)
    started = to_float(info.get("started"))
    ended = to_float(info.get("ended"))
    if started is not None and ended is None and status in ("created", "running"):
        ended = clock if clock is not None else time.time()
    step = info.get("step")
    progress = "—"
    if info.get("epoch") is not None or step is not None:
        progress = f"{display_epoch(info)} · {step if step is not None else '—'}"
    return RunRow(
        path=path,
        name=str(info.get("name") or path.name),
        status=status,
        model=_text(info.get("model")),
        dataset=_text(info.get("dataset")),
        progress=progress,
        best=format_best(info.get("best")) if info.get("best") is not None else "—",
        started=time.strftime("%m-%d %H:%M", time.localtime(started)) if started else "—",
        duration=format_duration(ended - started) if started is not None and ended is not None else "—",
        pid=info.get("pid") if isinstance(info.get("pid"), int) else None,
        host=info.get("host"),
    )


class RunsTable(DataTable):
    """Rows keyed by run directory; :meth:`show` adds, updates and removes rows in place."""

    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.runs: dict[str, RunRow] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, rows: list[RunRow]) -> None:
        """Make the table match ``rows`` (in that order), keeping the cursor on the same run."""
        wanted = {str(r.path): r for r in rows}
        if list(wanted) == list(self.runs) and all(wanted[k] == self.runs[k] for k in wanted):
            return
        selected = self.selected_path()
        if list(wanted) == list(self.runs):
            for key, row in wanted.items():
                if row != self.runs[key]:
                    for col, value in zip((c for c, _ in COLUMNS), self._cells(row)):
                        # Widen the column when a value grows (a run fills in its model, times...).
                        self.update_cell(key, col, value, update_width=True)
        else:
            self.clear()
            for key, row in wanted.items():
                self.add_row(*self._cells(row), key=key)
            if selected is not None and str(selected) in wanted:
                self.move_cursor(row=list(wanted).index(str(selected)))
        self.runs = wanted

    @staticmethod
    def _cells(row: RunRow) -> tuple:
        return (
            Text(row.name, style="bold"),
            status_text(row.status),
            row.model,
            row.dataset,
            row.progress,
            row.best,
            row.started,
            row.duration,
        )

    def selected(self) -> RunRow | None:
        """The run under the cursor."""
        if not self.runs or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        return self.runs.get(str(key))

    def selected_path(self) -> Path | None:
        row = self.selected()
        return row.path if row else None
