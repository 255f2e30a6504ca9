"""Compare runs: their curves overlaid (a colour per run, event markers), a table of final metrics and
config differences, and their confusion matrices side by side. Runs still training keep updating.

A thread worker follows every run directory (metrics and events only, through ``core.runs``) and
posts :class:`CompareUpdated`; the screen folds the rows into one :class:`tui.run_state.RunState` per
run, which the :class:`tui.widgets.overlay_plot.OverlayPlot` widgets draw.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, HorizontalScroll, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Label, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from core.compare import ComparedRun, Comparison, comparison_of
from core.errors import RunError
from core.run_index import load_entry
from core.runs import EVENTS, METRICS, RunReader
from tui.compare_view import comparison_table
from tui.run_state import RunDelta, RunState
from tui.widgets.confusion_matrix import ConfusionMatrix, confusion_table
from tui.widgets.metric_plot import X_AXES, PlotOptions, cycle
from tui.widgets.overlay_plot import OverlayPlot, OverlayRun, run_color

POLL_SECONDS = 1.0
SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.98)
TABS = ("curves", "table", "confusion")
#: (split, metric, title) of the overlaid plots, in grid order.
PLOTS = (("train", "loss", "train loss"), ("val", "loss", "val loss"), ("val", "acc", "val accuracy"),
         ("train", "lr", "learning rate"))


@dataclass
class CompareUpdated(Message):
    """New rows of the compared runs, and the comparison as it stands."""

    comparison: Comparison
    deltas: dict[str, RunDelta] = field(default_factory=dict)


class CompareScreen(Screen):
    """Compares the runs in ``paths`` (the first is the reference for what can be compared)."""

    BINDINGS = [
        Binding("escape", "back", "Runs", tooltip="Back to the runs table."),
        Binding("x", "cycle_x", "X axis", tooltip="Cycle the x axis: step, epoch, wall time since each run started."),
        Binding("l", "toggle_log", "Log y", tooltip="Switch the plots' y axis between linear and log."),
        Binding("e", "cycle_smoothing", "Smooth", tooltip="Cycle EMA smoothing: off, 0.6, 0.9, 0.98."),
        Binding("k", "toggle_markers", "Markers",
                tooltip="Show or hide event markers (U unfreeze, F freeze, L lr, P pause, G go on, R resume, C checkpoint)."),
        Binding("v", "cycle_split", "Split", show=False, tooltip="Confusion matrices of the next split (val, test)."),
        *(Binding(str(i + 1), f"show_tab('{tab}')", tab.title(), show=False) for i, tab in enumerate(TABS)),
    ]

    x_axis: reactive[str] = reactive("step")
    log_y: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.0)
    show_markers: reactive[bool] = reactive(True)
    plot_options: reactive[PlotOptions] = reactive(PlotOptions())
    confusion_split: reactive[str] = reactive("val")

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = [Path(p) for p in paths]
        self.states: dict[str, RunState] = {str(p): RunState() for p in self.paths}
        self.comparison: Comparison | None = None
        self.version = 0
        self.loaded = False
        """True once every run's backlog has been read (tests wait for it)."""
        self._confusion_drawn: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Label("Loading...", id="compare-legend")
        with TabbedContent(initial="curves", id="compare-tabs"):
            with TabPane("1 Curves", id="curves"):
                with Grid(id="compare-grid"):
                    for split, metric, title in PLOTS:
                        yield OverlayPlot(split, metric, title, id=f"overlay-{split}-{metric}")
            with TabPane("2 Table", id="table"):
                with VerticalScroll():
                    yield Static(id="compare-table")
                    yield Static(id="compare-notes")
            with TabPane("3 Confusion", id="confusion"):
                yield HorizontalScroll(id="compare-confusion")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + " ".join(p.name for p in self.paths)
        self.follow()

    # ---- reading ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare-reader")
    def follow(self) -> None:
        """Poll every run directory until cancelled (worker thread)."""
        worker = get_current_worker()
        readers: dict[str, RunReader] = {}
        runs: dict[str, ComparedRun] = {}
        for path in self.paths:
            try:
                readers[str(path)] = RunReader(path, files=(METRICS, EVENTS))
            except RunError:
                continue  # deleted since it was marked: the others are still compared
            runs[str(path)] = ComparedRun(load_entry(path))
        while not worker.is_cancelled:
            deltas: dict[str, RunDelta] = {}
            for key, reader in list(readers.items()):
                delta = reader.poll()
                if delta is None:
                    continue
                if delta.deleted:
                    del readers[key]  # deleted while compared: what was read stays on screen
                    continue
                if delta.info is not None:
                    runs[key].entry = load_entry(reader.path)
                runs[key].add_delta(delta)
                deltas[key] = delta
            if deltas or self.comparison is None:
                loaded = [runs[str(p)] for p in self.paths if str(p) in runs]
                if len(loaded) >= 1:
                    self.post_message(CompareUpdated(comparison_of(loaded), deltas))
            deadline = time.monotonic() + POLL_SECONDS
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)

    def on_compare_updated(self, message: CompareUpdated) -> None:
        for key, delta in message.deltas.items():
            self.states[key].apply(delta)
        self.comparison = message.comparison
        self.version += 1
        self.loaded = True
        self.redraw()

    # ---- drawing ------------------------------------------------------------------------------

    def colors(self) -> dict[str, int]:
        """Run name -> its colour (by position among the runs given)."""
        if self.comparison is None:
            return {}
        names = [r.name for r in self.comparison.runs]
        return {name: run_color(i) for i, name in enumerate(names)}

    def overlay_runs(self) -> list[OverlayRun]:
        if self.comparison is None:
            return []
        colors = self.colors()
        return [OverlayRun(r.name, colors[r.name], self.states[str(r.entry.path)]) for r in self.comparison.runs]

    def compute_plot_options(self) -> PlotOptions:
        return PlotOptions(x_axis=self.x_axis, log_y=self.log_y, smoothing=self.smoothing, markers=self.show_markers)

    def watch_plot_options(self, options: PlotOptions) -> None:
        self._draw_plots(options)

    def watch_confusion_split(self) -> None:
        self._draw_confusion()

    def redraw(self) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        colors = self.colors()
        legend = Text("Comparing: ")
        for run in comparison.runs:
            legend.append("━━ ", style=f"color({colors[run.name]})")
            legend.append(f"{run.name}  ", style="bold")
        for run, why in comparison.excluded:
            legend.append(f"  not compared: {run.name}", style="yellow")
        self.query_one("#compare-legend", Label).update(legend)
        self._draw_plots()
        rich_colors = {name: f"color({c})" for name, c in colors.items()}
        self.query_one("#compare-table", Static).update(comparison_table(comparison, rich_colors))
        notes = [Text(f"note: {n}", style="yellow") for n in comparison.notes]
        notes += [Text(f"not compared: {why}. The other runs are compared.", style="bold yellow")
                  for _, why in comparison.excluded]
        self.query_one("#compare-notes", Static).update(Group(*notes))
        self._draw_confusion()

    def _draw_plots(self, options: PlotOptions | None = None) -> None:
        options = self.plot_options if options is None else options
        runs = self.overlay_runs()
        for plot in self.query(OverlayPlot):
            plot.show(runs, options)

    def _draw_confusion(self) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        key = (self.version, self.confusion_split)
        if key == self._confusion_drawn:
            return
        self._confusion_drawn = key
        box = self.query_one("#compare-confusion", HorizontalScroll)
        box.remove_children()
        colors = self.colors()
        panes = []
        for run in comparison.runs:
            split = self.confusion_split if self.confusion_split in run.confusion else next(iter(run.confusion), None)
            matrix = run.confusion.get(split) if split else None
            names = run.class_names if matrix and len(run.class_names) == len(matrix) else \
                [str(i) for i in range(len(matrix or []))]
            widget = ConfusionMatrix()
            widget.show(split, matrix, names, sorted(run.confusion))
            pane = Vertical(Label(Text(run.name, style=f"bold color({colors[run.name]})")), widget,
                            classes="compare-confusion-pane")
            # side by side, each pane as wide as its table (an auto width would measure it too narrow)
            pane.styles.width = _width(confusion_table(matrix, names, "") if matrix else Text("no matrix yet")) + 4
            panes.append(pane)
        box.mount_all(panes)

    # ---- actions ------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss()

    def action_cycle_x(self) -> None:
        self.x_axis = str(cycle(X_AXES, self.x_axis))

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y

    def action_cycle_smoothing(self) -> None:
        self.smoothing = float(cycle(SMOOTHING_STEPS, self.smoothing))

    def action_toggle_markers(self) -> None:
        self.show_markers = not self.show_markers

    def action_cycle_split(self) -> None:
        self.confusion_split = "test" if self.confusion_split == "val" else "val"
        self.query_one(TabbedContent).active = "confusion"

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab


def _width(renderable: object) -> int:
    """The width a Rich renderable wants."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(emoji=False, width=1000)
    return int(Measurement.get(console, console.options, renderable).maximum)
