"""A sweep: its trials with parameters, values and states, the best so far, and each trial's run.

The data come from :func:`core.sweep.view.load_sweep` in a thread worker every few seconds (the
Optuna storage when it can be read from here, else the sweep's local runs); enter on a trial opens
its run's dashboard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label
from textual.worker import get_current_worker

from core.run_index import RunIndex
from core.sweep.view import SweepView, TrialRow, load_sweep
from tui.listing_format import format_param
from tui.run_state import format_value
from tui.widgets.run_header import status_text
from tui.widgets.sweep_history import SweepHistory

POLL_SECONDS = 2.0
STATE_STYLES = {"complete": "bold black on dodger_blue2", "pruned": "bold black on orange3",
                "fail": "bold white on red3", "running": "bold black on green", "waiting": "reverse"}


@dataclass
class SweepLoaded(Message):
    view: SweepView


class SweepScreen(Screen):
    """The sweep ``study`` of the runs under ``root``."""

    BINDINGS = [
        Binding("escape", "back", "Runs", tooltip="Back to the runs table."),
        Binding("w", "open_trial", "Watch", tooltip="Open the selected trial's run (enter does too)."),
        Binding("b", "toggle_sort", "Sort by value", tooltip="Sort the trials by value (best first), or by number."),
    ]

    def __init__(self, study: str, root: Path) -> None:
        super().__init__()
        self.study = study
        self.root = Path(root)
        self.view: SweepView | None = None
        self.by_value = False
        self.loaded = False
        """True once the first load arrived (tests wait for it)."""
        self._rows: dict[str, TrialRow] = {}

    def compose(self) -> ComposeResult:
        yield Label(f"sweep {self.study}: loading...", id="sweep-header")
        yield SweepHistory(id="sweep-history")
        yield DataTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"sweep {self.study}"
        self.follow()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep-reader")
    def follow(self) -> None:
        worker = get_current_worker()
        index = RunIndex(self.root)
        while not worker.is_cancelled:
            self.post_message(SweepLoaded(load_sweep(self.study, index.scan())))
            deadline = time.monotonic() + POLL_SECONDS
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)

    def on_sweep_loaded(self, message: SweepLoaded) -> None:
        self.view = message.view
        self.loaded = True
        self.redraw()

    def redraw(self) -> None:
        view = self.view
        if view is None:
            return
        counts = ", ".join(f"{n} {state}" for state, n in sorted(view.counts().items()))
        head = Text(f"sweep {view.study}", style="bold")
        head.append(f"  ·  {view.metric or '?'} ({view.direction or '?'})  ·  {len(view.trials)} trials: {counts or '—'}")
        best = view.best
        if best is not None:
            head.append(f"  ·  best: trial {best.number} {format_value(best.value)}", style="bold green")
        if view.source == "runs":
            head.append(f"  ·  from the local runs ({view.problem})", style="yellow")
        self.query_one("#sweep-header", Label).update(head)
        self.query_one(SweepHistory).show(view)
        self._fill_table(view)

    def _fill_table(self, view: SweepView) -> None:
        table = self.query_one("#sweep-trials", DataTable)
        keys = view.param_keys()
        columns = ["trial", "state", view.metric or "value", *keys, "run", "status", "note"]
        selected = None
        if table.row_count and table.cursor_row >= 0:
            selected = str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
        table.clear(columns=True)
        for label in columns:
            table.add_column(label, key=label)
        trials = list(view.trials)
        if self.by_value:
            sign = 1 if view.direction == "minimize" else -1
            trials.sort(key=lambda t: (t.value is None, sign * (t.value or 0.0)))
        best = view.best
        self._rows = {}
        for t in trials:
            key = str(t.number)
            self._rows[key] = t
            style = "bold green" if best is not None and t.number == best.number else ""
            table.add_row(
                Text(str(t.number), style=style),
                Text(f" {t.state} ", style=STATE_STYLES.get(t.state, "reverse")),
                Text(format_value(t.value) if t.value is not None else "—", style=style, justify="right"),
                *(format_param(t.params.get(k)) for k in keys),
                t.run.name if t.run is not None else (f"on {t.host}" if t.host else "—"),
                status_text(t.run.status) if t.run is not None else "",
                t.note,
                key=key,
            )
        if selected in self._rows:
            table.move_cursor(row=list(self._rows).index(selected), animate=False)

    def selected_trial(self) -> TrialRow | None:
        table = self.query_one("#sweep-trials", DataTable)
        if not table.row_count or table.cursor_row < 0:
            return None
        return self._rows.get(str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value))

    @on(DataTable.RowSelected, "#sweep-trials")
    def _row_selected(self) -> None:
        self.action_open_trial()

    def action_open_trial(self) -> None:
        trial = self.selected_trial()
        if trial is None:
            return
        if trial.run is None:
            where = f" on {trial.host}" if trial.host else ""
            self.notify(f"Trial {trial.number} has no run directory here (it trained{where}).", severity="warning",
                        markup=False)
            return
        self.app.open_dashboard(trial.run.path)  # type: ignore[attr-defined]

    def action_toggle_sort(self) -> None:
        self.by_value = not self.by_value
        if self.view is not None:
            self._fill_table(self.view)

    def action_back(self) -> None:
        self.dismiss()
