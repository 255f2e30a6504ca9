"""The home screen: the runs under the runs root (a table to sort, filter, mark, compare and manage),
the configs a run can start from, and the machine."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, OptionList
from textual.worker import get_current_worker

from core import manage
from core.errors import RunError
from core.run_index import RunEntry, RunIndex, differing_keys, make_listing, parse_query
from core.runs import CHECKPOINT_DIR, RUN_JSON, read_json
from tui.listing_format import BASE_COLUMNS, header
from tui.widgets.config_list import ConfigList, display_path, find_configs, folders_text
from tui.widgets.machine_panel import MachinePanel
from tui.widgets.runs_table import RunsTable

SCAN_SECONDS = 1.0


def runs_title(root: Path, max_len: int = 44) -> str:
    """The runs pane's title on one line at 80 columns: the root as a person types it, a long one
    shortened to its last two folders (a long absolute root wrapped the title onto a second line)."""
    shown = display_path(root)
    if len(shown) > max_len:
        path = Path(shown)
        shown = f"…/{path.parent.name}/{path.name}" if path.parent.name else f"…/{path.name}"
    return f"Runs in {shown} (enter: watch)"


@dataclass
class RunsScanned(Message):
    """A fresh scan of the runs root and of the config directories."""

    entries: list[RunEntry]
    configs: list[Path]


class HomeScreen(Screen):
    """Runs table on top, configs below; every action has a key."""

    AUTO_FOCUS = "#runs"

    BINDINGS = [
        Binding("w", "open_run", "Watch", tooltip="Open the selected run's dashboard (enter on a run does too)."),
        Binding("n", "new_run", "New run", tooltip="Start a run from the selected config (a form asks for overrides)."),
        Binding("s", "stop_run", "Stop", tooltip="Stop the selected run after its current step (it saves last.pt and ends stopped)."),
        Binding("e", "explain", "Explain", tooltip="Explain the selected run's best checkpoint: Grad-CAM on its worst mistakes."),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Filter the runs as you type: words (name, status, tag), key=value, key>value (optim.lr<1e-3)."),
        Binding("space", "mark", "Mark", tooltip="Mark or unmark the run under the cursor (compare, delete, tag act on marks)."),
        Binding("c", "compare", "Compare", tooltip="Overlay the marked runs' curves, configs and confusion matrices."),
        Binding("o", "sort", "Sort", tooltip="Sort the runs by a column (again: reverse); clicking a header does too."),
        Binding("d", "delete", "Delete", show=False, tooltip="Move the marked (or selected) runs to the trash, after asking."),
        Binding("m", "rename", "Rename", show=False, tooltip="Rename the selected run (not while it runs)."),
        Binding("t", "tag", "Tag", show=False, tooltip="Add tags to the marked (or selected) runs; -tag removes one."),
        Binding("N", "notes", "Notes", show=False, tooltip="Write notes on the selected run."),
        Binding("a", "archive", "Archive", show=False, tooltip="Archive (hide) or unarchive the marked (or selected) runs."),
        Binding("A", "toggle_archived", "Show archived", show=False, tooltip="Show or hide archived runs."),
        Binding("S", "sweep", "Sweep", show=False, tooltip="Open the sweep of the selected run (trials, parameters, best)."),
        Binding("i", "inspect", "Inspect", show=False, tooltip="Inspect a checkpoint of the selected run (or any file)."),
        Binding("r", "rescan", "Refresh", show=False, tooltip="Scan the runs root now."),
        Binding("escape", "clear_filter", "Clear filter", show=False, tooltip="Clear the filter."),
    ]

    def __init__(self, root: Path, config_dirs: list[Path]) -> None:
        super().__init__()
        self.root = Path(root)
        self.config_dirs = config_dirs
        self.scanned = False
        """True after the first scan arrived (tests wait for it)."""
        self.entries: list[RunEntry] = []
        self._differing: list[str] = []
        """Config keys that differ between all the runs (the filtered runs' columns are among them)."""
        self._scan_sig: tuple = ()
        self.query_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.show_archived = False
        self._wake = threading.Event()
        self._select_after_scan: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-pane"):
            yield Label(Text(runs_title(self.root), no_wrap=True, overflow="ellipsis"), id="runs-title",
                        classes="pane-title")
            box = Input(placeholder="filter: words, key=value, key>value — enter keeps it, escape clears",
                        id="runs-filter")
            box.display = False  # shown by / (hidden, it must not take the first focus)
            yield box
            yield RunsTable(id="runs")
            yield Label("", id="runs-status")
            yield Label("No runs yet: pick a config below and press n to start one.", id="runs-empty")
        with Horizontal(id="home-bottom"):
            with Vertical(id="configs-pane"):
                yield Label("Configs (n: new run)", classes="pane-title", id="configs-title")
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
        index = RunIndex(self.root)
        while not worker.is_cancelled:
            entries = index.scan()
            configs = find_configs(self.config_dirs)
            self.post_message(RunsScanned(entries, configs))
            self._wake.wait(SCAN_SECONDS)
            self._wake.clear()

    def on_runs_scanned(self, message: RunsScanned) -> None:
        # the index hands back the same objects for runs whose files did not change
        sig = tuple((id(e.info), id(e.meta), id(e.config), e.status) for e in message.entries)
        changed = sig != self._scan_sig
        active = any(e.active for e in message.entries)
        self._scan_sig = sig
        self.entries = message.entries
        table = self.query_one(RunsTable)
        if changed:
            table.marked &= {str(e.path) for e in message.entries}
            self._differing = differing_keys(message.entries)
        if changed or active or not self.scanned:  # active runs: their durations move
            self.refresh_table()
        if self._select_after_scan is not None and str(self._select_after_scan) in table.runs:
            # Put the cursor on the run just started, so enter watches it.
            table.move_cursor(row=list(table.runs).index(str(self._select_after_scan)))
            table.focus()
            self._select_after_scan = None
        configs = self.query_one(ConfigList)
        configs.show(message.configs)
        where = folders_text(message.configs)
        self.query_one("#configs-title", Label).update(f"{where} (n: new run)" if where else "Configs (n: new run)")
        if not self.scanned and not message.entries:
            # Nothing to watch yet: the first thing to do is to pick a config.
            configs.focus()
        self.scanned = True

    def refresh_table(self) -> None:
        """Filter, sort and show the runs (on every scan and every keystroke of the filter)."""
        table = self.query_one(RunsTable)
        table.sort_column, table.sort_reverse = self.sort_column, self.sort_reverse
        clock = time.time()
        listing = make_listing(self.entries, parse_query(self.query_text), sort=self.sort_column,
                               reverse=self.sort_reverse, show_archived=self.show_archived, clock=clock,
                               candidates=self._differing)
        table.show(listing, clock)
        has_runs = bool(self.entries)
        table.display = has_runs
        self.query_one("#runs-empty").display = not has_runs
        parts = [f"{len(listing.entries)} of {listing.total} runs"]
        if self.query_text.strip():
            parts.append(f"filter: {self.query_text.strip()}")
        if self.sort_column:
            parts.append(f"sorted by {header(self.sort_column)} {'▼' if self.sort_reverse else '▲'}")
        marked = len(table.marked_entries())
        if marked:
            parts.append(f"{marked} marked (c compares, d deletes, t tags)")
        if listing.hidden_archived:
            parts.append(f"{listing.hidden_archived} archived hidden (A shows)")
        if has_runs and not listing.entries:
            parts.append("no run matches: escape clears the filter")
        status = self.query_one("#runs-status", Label)
        status.update("  ·  ".join(parts))
        status.display = has_runs

    def rescan(self) -> None:
        """Ask the scanner for a scan now."""
        self._wake.set()

    # ---- filter and sort ----------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self.refresh_table()

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self) -> None:
        self.query_one(RunsTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        if not box.display and not self.query_text:
            return
        box.value = ""
        box.display = False
        self.query_text = ""
        self.refresh_table()
        self.query_one(RunsTable).focus()

    def action_sort(self) -> None:
        from tui.screens.choose import ChooseScreen

        table = self.query_one(RunsTable)
        hparams = [c for c in table.columns if str(c.value) not in {k for k, _ in BASE_COLUMNS} | {"mark"}]
        options = [(k, label) for k, label in BASE_COLUMNS] + [(str(c.value), str(c.value)) for c in hparams]
        options.append(("", "newest first (no sort)"))
        self.app.push_screen(ChooseScreen("Sort runs by (again: reverse)", options, self.sort_column), self._sort_by)

    def _sort_by(self, column: str | None) -> None:
        if column is None:
            return
        self.set_sort(column or None)

    def set_sort(self, column: str | None) -> None:
        """Sort by ``column``; the same column again reverses the order."""
        if column is not None and column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = column
            # the useful end first: highest best and latest start, longest duration
            self.sort_reverse = column in ("best", "duration", "started", "progress")
        self.refresh_table()

    @on(RunsTable.SortRequested)
    def _header_clicked(self, message: RunsTable.SortRequested) -> None:
        self.set_sort(message.column)

    def action_toggle_archived(self) -> None:
        self.show_archived = not self.show_archived
        self.notify("Showing archived runs." if self.show_archived else "Archived runs hidden.")
        self.refresh_table()

    # ---- actions on runs ----------------------------------------------------------------------

    def selected_run(self) -> RunEntry | None:
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

    def action_mark(self) -> None:
        self.query_one(RunsTable).toggle_mark()
        self.refresh_table()

    def action_compare(self) -> None:
        from tui.screens.compare import CompareScreen

        marked = self.query_one(RunsTable).marked_entries()
        if len(marked) < 2:
            self.notify("Mark two or more runs with space, then press c to compare them.", severity="warning")
            return
        self.app.push_screen(CompareScreen([e.path for e in marked]))

    def action_delete(self) -> None:
        from tui.screens.confirm import ConfirmScreen

        targets = self.query_one(RunsTable).targets()
        if not targets:
            self.notify("No run selected.", severity="warning")
            return
        refused: list[str] = []
        ok: list[RunEntry] = []
        for entry in targets:
            try:
                manage.check_not_active(entry.path, "delete")
                ok.append(entry)
            except RunError as exc:
                refused.append(str(exc))
        if not ok:
            self.notify("\n".join(refused), title="Not deleted", severity="error", timeout=10, markup=False)
            return
        names = ", ".join(e.name for e in ok)
        message = (f"Move {len(ok)} run(s) to {self.root / '.trash'}: {names}. They can be restored with "
                   "`ftui runs restore NAME`.")
        if refused:
            message += "\n\nSkipped (still running):\n" + "\n".join(refused)

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete_runs(ok)

        self.app.push_screen(ConfirmScreen(f"Delete {len(ok)} run(s)?", message), answered)

    def delete_runs(self, entries: list[RunEntry]) -> None:
        table = self.query_one(RunsTable)
        done = []
        for entry in entries:
            try:
                target = manage.trash_run(entry.path, self.root)
            except (RunError, OSError) as exc:
                self.notify(str(exc), title=f"{entry.name} not deleted", severity="error", timeout=10, markup=False)
                continue
            table.marked.discard(str(entry.path))
            done.append(target.name)
        if done:
            root = "" if self.root == Path("runs") else f" --root {self.root}"
            self.notify(f"Moved to the trash: {', '.join(done)}. Undo: ftui runs restore {' '.join(done)}{root}",
                        title="Deleted", markup=False)
        self.rescan()

    def action_rename(self) -> None:
        from tui.screens.prompt import PromptScreen

        entry = self.selected_run()
        if entry is None:
            self.notify("No run selected.", severity="warning")
            return
        try:
            manage.check_not_active(entry.path, "rename")
        except RunError as exc:
            self.notify(str(exc), title="Not renamed", severity="error", timeout=10, markup=False)
            return

        def check(text: str) -> str | None:
            text = text.strip()
            if text == entry.name:
                return "That is its name already."
            if not manage.NAME_RE.match(text):
                return "Use letters, digits, '.', '_' and '-' (starting with a letter or digit)."
            if (entry.path.parent / text).exists():
                return f"{text} exists already; pick another name."
            return None

        def renamed(text: str | None) -> None:
            if text is None:
                return
            try:
                target = manage.rename_run(entry.path, text.strip())
            except (RunError, OSError) as exc:
                self.notify(str(exc), title="Not renamed", severity="error", timeout=10, markup=False)
                return
            self.notify(f"Renamed {entry.name} to {target.name}.", markup=False)
            self._select_after_scan = target
            self.rescan()

        self.app.push_screen(PromptScreen(f"Rename {entry.name}", "The run directory and run.json change; "
                                          "checkpoints and files inside stay as they are.", entry.name,
                                          check=check), renamed)

    def action_tag(self) -> None:
        from tui.screens.prompt import PromptScreen

        targets = self.query_one(RunsTable).targets()
        if not targets:
            self.notify("No run selected.", severity="warning")
            return
        current = " ".join(targets[0].meta.tags) if len(targets) == 1 else ""

        def check(text: str) -> str | None:
            for word in text.split():
                if not manage.TAG_RE.match(word.lstrip("-")):
                    return f"{word!r} is not a tag: use letters, digits and _ . : / + - (no spaces or commas)."
            return None

        def tagged(text: str | None) -> None:
            if text is None:
                return
            words = text.split()
            for entry in targets:
                if len(targets) == 1:
                    # the field showed the current tags: what is left out is removed
                    add = [w for w in words if not w.startswith("-")]
                    remove = [t for t in entry.meta.tags if t not in add] + [w[1:] for w in words if w.startswith("-")]
                else:
                    add = [w for w in words if not w.startswith("-")]
                    remove = [w[1:] for w in words if w.startswith("-")]
                manage.tag_run(entry.path, add, remove)
            self.notify(f"Tags of {len(targets)} run(s) updated.", markup=False)
            self.rescan()

        names = ", ".join(e.name for e in targets[:5]) + (" ..." if len(targets) > 5 else "")
        self.app.push_screen(PromptScreen(f"Tags of {names}", "Words separated by spaces; -tag removes a tag.",
                                          current, placeholder="baseline lr:small", check=check), tagged)

    def action_notes(self) -> None:
        from tui.screens.prompt import PromptScreen

        entry = self.selected_run()
        if entry is None:
            self.notify("No run selected.", severity="warning")
            return

        def noted(text: str | None) -> None:
            if text is not None:
                manage.note_run(entry.path, text)
                self.rescan()

        self.app.push_screen(PromptScreen(f"Notes on {entry.name}", "", entry.notes, placeholder="what this run tried"),
                             noted)

    def action_archive(self) -> None:
        targets = self.query_one(RunsTable).targets()
        if not targets:
            self.notify("No run selected.", severity="warning")
            return
        archive = not all(e.meta.archived for e in targets)
        for entry in targets:
            manage.archive_run(entry.path, archive)
        word = "Archived" if archive else "Unarchived"
        hint = " (hidden; A shows archived runs)" if archive and not self.show_archived else ""
        self.notify(f"{word} {', '.join(e.name for e in targets)}{hint}.", markup=False)
        self.rescan()

    def action_sweep(self) -> None:
        from tui.screens.choose import ChooseScreen

        entry = self.selected_run()
        if entry is not None and entry.sweep:
            self.open_sweep(str(entry.sweep.get("study")))
            return
        sweeps = sorted({str(e.sweep.get("study")) for e in self.entries if e.sweep})
        if not sweeps:
            self.notify("No sweeps here yet: start one with `ftui sweep CONFIG --param KEY=DIST --trials N`.",
                        severity="warning")
            return
        if len(sweeps) == 1:
            self.open_sweep(sweeps[0])
            return
        self.app.push_screen(ChooseScreen("Open a sweep", [(s, s) for s in sweeps]),
                             lambda s: self.open_sweep(s) if s else None)

    def open_sweep(self, study: str) -> None:
        from tui.screens.sweep import SweepScreen

        self.app.push_screen(SweepScreen(study, self.root))

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
                self.notify(f"Started {path.name} (output in {path}). Press enter on it to watch.", title="Run started",
                            markup=False)
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
                        severity="warning", markup=False)
            return
        self.app.open_explain(found)  # type: ignore[attr-defined]

    def _inspect_path(self, path: Path | None) -> None:
        if path is not None:
            self.app.open_inspector(path)  # type: ignore[attr-defined]
