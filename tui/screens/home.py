"""The home screen: the runs under the runs root, the configs a run can start from, and actions."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, OptionList
from textual.worker import get_current_worker

from core.runs import CHECKPOINT_DIR, RUN_JSON, iter_runs, read_json
from tui.widgets.config_list import ConfigList, find_configs
from tui.widgets.machine_panel import MachinePanel
from tui.widgets.runs_table import RunRow, RunsTable, run_row

SCAN_SECONDS = 1.0


@dataclass
class RunsScanned(Message):
    """A fresh scan of the runs root and of the config directories."""

    rows: list[RunRow]
    configs: list[Path]


class HomeScreen(Screen):
    """Runs table on top, configs below; every action has a key."""

    BINDINGS = [
        Binding("w", "open_run", "Watch", tooltip="Open the selected run's dashboard (enter on a run does too)."),
        Binding("n", "new_run", "New run", tooltip="Start a run from the selected config (a form asks for overrides)."),
        Binding("s", "stop_run", "Stop", tooltip="Stop the selected run (it saves last.pt and ends interrupted)."),
        Binding("i", "inspect", "Inspect", tooltip="Inspect a checkpoint of the selected run (or any file)."),
        Binding("e", "explain", "Explain", tooltip="Explain the selected run's best checkpoint: Grad-CAM on its worst mistakes."),
        Binding("r", "rescan", "Refresh", tooltip="Scan the runs root now."),
    ]

    def __init__(self, root: Path, config_dirs: list[Path]) -> None:
        super().__init__()
        self.root = Path(root)
        self.config_dirs = config_dirs
        self.scanned = False
        """True after the first scan arrived (tests wait for it)."""
        self._wake = threading.Event()
        self._select_after_scan: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-pane"):
            yield Label(f"Runs in {self.root} (enter: watch)", id="runs-title", classes="pane-title")
            yield RunsTable(id="runs")
            yield Label("No runs yet: pick a config below and press n to start one.", id="runs-empty")
        with Horizontal(id="home-bottom"):
            with Vertical(id="configs-pane"):
                yield Label("Configs (n: new run)", classes="pane-title")
                yield ConfigList(id="configs")
            yield MachinePanel(id="machine")
        yield Footer()

    def on_mount(self) -> None:
        self.scan()

    # ---- scanning -----------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs-scan")
    def scan(self) -> None:
        """Rescan the runs root every second until cancelled (worker thread)."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            clock = time.time()
            rows = [run_row(path, info, clock) for path, info in iter_runs(self.root)]
            configs = find_configs(self.config_dirs)
            self.post_message(RunsScanned(rows, configs))
            self._wake.wait(SCAN_SECONDS)
            self._wake.clear()

    def on_runs_scanned(self, message: RunsScanned) -> None:
        table = self.query_one(RunsTable)
        table.show(message.rows)
        if self._select_after_scan is not None and str(self._select_after_scan) in table.runs:
            # Put the cursor on the run just started, so enter watches it.
            table.move_cursor(row=list(table.runs).index(str(self._select_after_scan)))
            table.focus()
            self._select_after_scan = None
        table.display = bool(message.rows)
        self.query_one("#runs-empty").display = not message.rows
        configs = self.query_one(ConfigList)
        configs.show(message.configs)
        if not self.scanned and not message.rows:
            # Nothing to watch yet: the first thing to do is to pick a config.
            configs.focus()
        self.scanned = True

    def rescan(self) -> None:
        """Ask the scanner for a scan now."""
        self._wake.set()

    # ---- actions ------------------------------------------------------------------------------

    def selected_run(self) -> RunRow | None:
        return self.query_one(RunsTable).selected()

    def action_rescan(self) -> None:
        self.rescan()

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open_run()

    @on(OptionList.OptionSelected, "#configs")
    def _config_selected(self) -> None:
        self.action_new_run()

    def action_open_run(self) -> None:
        # the selected run, wherever the focus is: "w Watch" in the footer means that run
        row = self.selected_run()
        if row is None:
            self.notify("No run selected.", severity="warning")
            return
        self.app.open_dashboard(row.path)  # type: ignore[attr-defined]

    def action_new_run(self) -> None:
        from tui.screens.start_run import StartRunScreen

        configs = self.query_one(ConfigList)
        if not configs.paths:
            self.notify(
                "No configs found in sample_configs/ or the current directory: write a YAML config "
                "(see `ftui config schema`) and it appears here.",
                severity="warning",
            )
            return

        def started(path: Path | None) -> None:
            if path is not None:
                self.notify(f"Started {path.name} (output in {path}). Press enter on it to watch.", title="Run started")
                self._select_after_scan = path
                self.rescan()

        self.app.push_screen(StartRunScreen(configs.paths, configs.selected(), self.app.root), started)  # type: ignore[attr-defined]

    def action_stop_run(self) -> None:
        row = self.selected_run()
        if row is None:
            self.notify("No run selected.", severity="warning")
            return
        info = read_json(row.path / RUN_JSON) or {}
        self.app.request_stop(row.path, info)  # type: ignore[attr-defined]

    def _run_checkpoint(self) -> Path | None:
        row = self.selected_run()
        if row is not None:
            for name in ("best.pt", "last.pt"):
                candidate = row.path / CHECKPOINT_DIR / name
                if candidate.is_file():
                    return candidate
        return None

    def action_inspect(self) -> None:
        from tui.screens.open_checkpoint import OpenCheckpointScreen

        found = self._run_checkpoint()
        self.app.push_screen(OpenCheckpointScreen(str(found) if found else ""), self._inspect_path)

    def action_explain(self) -> None:
        row = self.selected_run()
        if row is None:
            self.notify("No run selected.", severity="warning")
            return
        found = self._run_checkpoint()
        if found is None:
            self.notify(f"{row.path.name} has no checkpoint yet: it appears after the first validation.",
                        severity="warning")
            return
        self.app.open_explain(found)  # type: ignore[attr-defined]

    def _inspect_path(self, path: Path | None) -> None:
        if path is not None:
            self.app.open_inspector(path)  # type: ignore[attr-defined]
