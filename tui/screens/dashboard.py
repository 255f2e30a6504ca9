"""The live dashboard of one run: header, plots, metrics, confusion matrix, events, output.

A thread worker follows the run directory with :class:`core.runs.RunReader` (only new bytes; a long
run's backlog from ``metrics.columns``) and posts :class:`RunUpdated` messages; the screen folds them
into a :class:`tui.run_state.RunState` and a timer redraws what changed a few times a second. A
finished or failed run is shown the same way.

The run-wide control keys work in every tab of a live run: ``p`` pauses or resumes, ``c`` saves
``last.pt``, ``V`` validates, ``s`` stops (``FtuiApp.request_stop``, the app's one stop path). They and
the layer tree's commands go through one :class:`tui.run_control.RunControl`, whose answers the
screen turns into notifications.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.css.query import NoMatches
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import get_current_worker

from core.errors import RunError
from core.runs import CHECKPOINT_DIR, RunDelta, RunReader, live_status, newer_namesakes
from tui.run_control import RunControl
from tui.run_state import RunState
from tui.widgets.alert_banner import AlertBanner
from tui.widgets.confusion_matrix import ConfusionMatrix
from tui.widgets.event_log import EventLog
from tui.widgets.layer_tree import LayerTreeView
from tui.widgets.metric_plot import X_AXES, LearningRatePlot, MetricPlot, PlotOptions, cycle
from tui.widgets.metrics_table import MetricsTable
from tui.widgets.run_header import RunHeader
from tui.widgets.stdout_view import StdoutView
from tui.widgets.system_panel import SystemPanel

#: Seconds between polls of the run directory, and between redraws.
POLL_SECONDS = 0.5
REDRAW_SECONDS = 0.25
#: Bytes read per file per poll, so a huge backlog arrives in steps and the screen stays responsive.
POLL_BYTES = 4 << 20
#: Only the end of layers.jsonl matters (the tree shows recent gradient norms): skip the rest of a backlog.
LAYERS_TAIL_BYTES = 256 << 10
SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.98)
#: Keys that steer the run: offered only while it is active.
RUN_ACTIONS = ("stop", "pause", "unpause", "checkpoint", "validate")
#: Keys that act on one tab's view: offered (and shown in the footer) only there.
TAB_ACTIONS = {"toggle_log": ("plots",), "cycle_smoothing": ("plots",), "cycle_x": ("plots",),
               "toggle_markers": ("plots",), "cycle_split": ("plots", "confusion")}
TABS = ("plots", "metrics", "confusion", "events", "output", "system", "layers")
#: Tab labels, and the short ones that keep all seven on a terminal narrower than TAB_LABELS_FIT columns.
TAB_LABELS = ("1 Plots", "2 Metrics", "3 Confusion", "4 Events", "5 Output", "6 System", "7 Layers")
SHORT_TAB_LABELS = ("1 Plots", "2 Metric", "3 Conf", "4 Event", "5 Out", "6 Sys", "7 Layer")
TAB_LABELS_FIT = 74


@dataclass
class NamesakesFound(Message):
    """Newer runs of the same name (``NAME-2``...): (name, live status), newest first."""

    runs: list[tuple[str, str]]


@dataclass
class RunUpdated(Message):
    """New data read from the run directory."""

    delta: RunDelta


class DashboardScreen(Screen):
    """The dashboard of the run in ``path``; ``standalone`` when opened by ``ftui watch``."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]

    # In the footer, in this order: what steers a live run first (at 80 columns the footer cannot hold
    # every key), then the keys of the tab in view; check_action offers each only where it works.
    BINDINGS = [
        Binding("escape", "back", "Runs", tooltip="Back to the runs list (the run keeps going)."),
        Binding("p", "pause", "Pause", tooltip="Hold the run at its next step boundary (every tab)."),
        Binding("p", "unpause", "Resume", tooltip="Let the paused run go on (every tab)."),
        Binding("s", "stop", "Stop",
                tooltip="Stop the run after its current step: it saves last.pt and ends stopped (resume with --resume)."),
        Binding("l", "toggle_log", "Log y", tooltip="Switch the plots' y axis between linear and log."),
        Binding("e", "cycle_smoothing", "Smooth", tooltip="Cycle EMA smoothing of the plots: off, 0.6, 0.9, 0.98."),
        Binding("x", "cycle_x", "X axis", tooltip="Cycle the plots' x axis: step, epoch, wall time."),
        Binding("k", "toggle_markers", "Markers", show=False,
                tooltip="Show or hide event markers (U unfreeze, F freeze, L lr, P pause, G go on, R resume, C checkpoint)."),
        Binding("v", "cycle_split", "Split", tooltip="Show the confusion matrix of the next split (val, test)."),
        # not in the footer (full at 80 columns); ? and the command palette list them
        Binding("c", "checkpoint", "Checkpoint", show=False, tooltip="Save checkpoints/last.pt now."),
        Binding("V", "validate", "Validate", show=False, tooltip="Run validation now."),
        Binding("E", "explain", "Explain", show=False,
                tooltip="Explain the run's best checkpoint: Grad-CAM on its worst mistakes."),
        *(Binding(str(i + 1), f"show_tab('{tab}')", tab.title(), show=False) for i, tab in enumerate(TABS)),
    ]

    x_axis: reactive[str] = reactive("step")
    log_y: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.0)
    show_markers: reactive[bool] = reactive(True)
    plot_options: reactive[PlotOptions] = reactive(PlotOptions())
    confusion_split: reactive[str | None] = reactive(None)

    def __init__(self, path: Path, *, standalone: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.standalone = standalone
        self.state = RunState()
        self.control = RunControl(self.path)
        """Commands sent to the run from this screen (its keys and the layer tree)."""
        self.loaded = False
        """True once the backlog has been read (tests wait for it)."""
        self._drawn_version = -1
        self._was_active: tuple[bool, bool] | None = None
        self._findings: list[str] = []
        self._namesakes: list[tuple[str, str]] = []

    # ---- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        yield AlertBanner(id="alert")
        with TabbedContent(initial="plots", id="tabs"):
            with TabPane(TAB_LABELS[0], id="plots"):
                with Grid(id="plot-grid"):
                    yield MetricPlot("loss", "loss", id="plot-loss")
                    yield MetricPlot("acc", "accuracy", id="plot-acc")
                    yield LearningRatePlot(id="plot-lr")
            with TabPane(TAB_LABELS[1], id="metrics"):
                yield MetricsTable(id="metrics-table")
            with TabPane(TAB_LABELS[2], id="confusion"):
                with VerticalScroll(id="confusion-scroll"):
                    yield ConfusionMatrix(id="confusion-matrix")
            with TabPane(TAB_LABELS[3], id="events"):
                yield EventLog(id="event-log")
            with TabPane(TAB_LABELS[4], id="output"):
                yield StdoutView(id="stdout")
            with TabPane(TAB_LABELS[5], id="system"):
                with VerticalScroll():
                    yield SystemPanel(id="system-panel")
            with TabPane(TAB_LABELS[6], id="layers"):
                yield LayerTreeView(self.control, id="layer-tree")
        yield Footer()

    def on_resize(self) -> None:
        # every tab's number stays on the screen: a tab that is not shown is one nobody finds
        labels = SHORT_TAB_LABELS if self.size.width < TAB_LABELS_FIT else TAB_LABELS
        tabs = self.query_one(TabbedContent)
        for tab, label in zip(TABS, labels):
            tabs.get_tab(tab).label = label

    def on_mount(self) -> None:
        self.sub_title = str(self.path)
        self.follow()
        self.set_interval(REDRAW_SECONDS, self.redraw)

    # ---- reading ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-reader")
    def follow(self) -> None:
        """Poll the run directory until cancelled or deleted (worker thread)."""
        worker = get_current_worker()
        try:
            reader = RunReader(self.path, step_bytes=POLL_BYTES, layers_tail_bytes=LAYERS_TAIL_BYTES)
        except RunError:
            # Deleted between the click and now: say so instead of showing an empty dashboard.
            self.post_message(RunUpdated(RunDelta(deleted=True)))
            return
        # `ftui run` names a run NAME-2 when NAME is taken: say so when this one is not the newest
        newer = [(path.name, live_status(info)) for path, info in newer_namesakes(self.path)]
        if newer:
            self.post_message(NamesakesFound(newer))
        while not worker.is_cancelled:
            delta = reader.poll()
            if delta is not None:
                self.post_message(RunUpdated(delta))
                if delta.deleted:
                    return
                if delta.more:
                    continue
            deadline = time.monotonic() + POLL_SECONDS
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)

    def on_namesakes_found(self, message: NamesakesFound) -> None:
        self._namesakes = message.runs
        self.query_one(AlertBanner).show(*self.alerts())

    def on_run_updated(self, message: RunUpdated) -> None:
        self.state.apply(message.delta)
        if not message.delta.more:
            if not self.loaded:
                self.loaded = True
                self.redraw()

    # ---- drawing ------------------------------------------------------------------------------

    def compute_plot_options(self) -> PlotOptions:
        return PlotOptions(x_axis=self.x_axis, log_y=self.log_y, smoothing=self.smoothing, markers=self.show_markers)

    def watch_plot_options(self, options: PlotOptions) -> None:
        self._draw_plots(options)

    def watch_confusion_split(self) -> None:
        self._draw_confusion()

    def redraw(self, clock: float | None = None) -> None:
        """Bring every view up to date with the state (cheap when nothing changed)."""
        state = self.state
        self.query_one(RunHeader).show(state.header(clock))
        live = (state.active, bool(state.info.get("paused")))
        if live != self._was_active:
            # pause or resume, and stop, are offered only while the run is active
            self._was_active = live
            self.refresh_bindings()
        if state.version == self._drawn_version:
            return
        self._drawn_version = state.version
        self.query_one(AlertBanner).show(*self.alerts())
        self._draw_plots()
        self.query_one(MetricsTable).show(state.metric_rows())
        self._draw_confusion()
        self.query_one(EventLog).show(list(state.events), state.events_total, _started(state))
        self.query_one(StdoutView).show(state.stdout)
        self.query_one(SystemPanel).update_samples(list(state.system), list(state.recent_metrics))
        self.query_one(LayerTreeView).show(state, answered=self._take_answers())

    def _take_answers(self) -> bool:
        """Notify the answers to commands sent from here; give up on them once the run has ended."""
        answered = False
        for sent, event in self.control.take_answers(self.state):
            answered = True
            message = str(event.get("message") or "")
            if event.get("status") == "ok":
                self.notify(f"{sent.text}: {message}", title="ok", timeout=4, markup=False)
            else:
                self.notify(f"{sent.text} refused: {message}", title="control", severity="error", timeout=10,
                            markup=False)
        if self.control.pending and not self.state.active:
            # a trainer that was killed answers nothing; one that ended normally answered already
            unanswered = ", ".join(p.text for p in self.control.abandon())
            self.notify(f"The run is {self.state.info.get('status', 'gone')}; no answer to: {unanswered}.",
                        severity="warning", timeout=10, markup=False)
            answered = True
        return answered

    def on_system_panel_findings_changed(self, message: SystemPanel.FindingsChanged) -> None:
        self._findings = [f.message for f in message.findings if f.level == "warning"]
        self.query_one(AlertBanner).show(*self.alerts())

    def _draw_plots(self, options: PlotOptions | None = None) -> None:
        options = self.plot_options if options is None else options
        for plot in self.query(MetricPlot):
            plot.show(self.state, options)

    def _draw_confusion(self) -> None:
        splits = sorted(self.state.confusion, key=lambda s: {"val": 0, "test": 1}.get(s, 2))
        split = self.confusion_split if self.confusion_split in splits else (splits[0] if splits else None)
        matrix = self.state.confusion.get(split) if split else None
        names = self.state.class_names(len(matrix)) if matrix else []
        self.query_one(ConfusionMatrix).show(split, matrix, names, splits)

    def alerts(self) -> tuple[list[str], list[str]]:
        """(errors, warnings) for the banner."""
        state, info = self.state, self.state.info
        errors: list[str] = []
        warnings: list[str] = []
        status = state.status
        if state.deleted:
            errors.append(f"Run directory deleted: {self.path} (showing what was read before).")
        if status == "failed":
            errors.append(f"Training failed: {info.get('error') or 'no message recorded (see 5 Output)'}")
        elif info.get("error"):
            errors.append(str(info["error"]))
        if status == "lost":
            errors.append(
                f"The training process (pid {info.get('pid')}) is gone but the run never recorded an end: "
                "it was killed. See 5 Output for its last words."
            )
        if status == "interrupted":
            warnings.append(f"Interrupted: last.pt was saved; resume with `ftui run --resume {self.path}`.")
        if self._namesakes and not state.active:
            name, newer_status = self._namesakes[0]
            warnings.append(f"{name} is a newer run of the same name ({newer_status}): "
                            f"`ftui watch {self.path.parent / name}`.")
        warnings.extend(self._findings)
        if state.bad_lines:
            warnings.append(f"{state.bad_lines} corrupt line(s) in the run's JSONL files were skipped.")
        return errors, warnings

    # ---- actions ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return not self.standalone
        if action in RUN_ACTIONS:
            if not self.state.active:
                return False  # offered only while the run trains
            paused = bool(self.state.info.get("paused"))
            return not paused if action == "pause" else paused if action == "unpause" else True
        if action in TAB_ACTIONS:
            try:
                return self.query_one(TabbedContent).active in TAB_ACTIONS[action]
            except NoMatches:
                return True
        return True

    def on_tabbed_content_tab_activated(self) -> None:
        self.refresh_bindings()  # the footer shows the keys of the tab in view

    def action_back(self) -> None:
        self.dismiss()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y

    def action_toggle_markers(self) -> None:
        self.show_markers = not self.show_markers

    def action_cycle_smoothing(self) -> None:
        self.smoothing = float(cycle(SMOOTHING_STEPS, self.smoothing))

    def action_cycle_x(self) -> None:
        self.x_axis = str(cycle(X_AXES, self.x_axis))

    def action_cycle_split(self) -> None:
        splits = sorted(self.state.confusion, key=lambda s: {"val": 0, "test": 1}.get(s, 2))
        if splits:
            current = self.confusion_split if self.confusion_split in splits else splits[0]
            self.confusion_split = str(cycle(tuple(splits), current))
        self.query_one(TabbedContent).active = "confusion"
        if "test" not in splits:
            # training measures the validation split only: say how the test split gets here
            best = self.path / CHECKPOINT_DIR / "best.pt"
            ckpt = best if best.is_file() else self.path / CHECKPOINT_DIR / "last.pt"
            how = (f"`ftui eval {ckpt}` evaluates it on the test split and records the result in this run"
                   if ckpt.is_file() else "it is recorded here once a checkpoint is evaluated with `ftui eval`")
            self.notify(f"No test split in this run yet: {how}.", title="v: test split", timeout=10, markup=False)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_explain(self) -> None:
        for name in ("best.pt", "last.pt"):
            path = self.path / CHECKPOINT_DIR / name
            if path.is_file():
                self.app.open_explain(path)  # type: ignore[attr-defined]
                return
        self.notify("No checkpoint yet: it appears after the first validation.", severity="warning")

    def action_stop(self) -> None:
        self.app.request_stop(self.path, self.state.info, control=self.control)  # type: ignore[attr-defined]

    def action_pause(self) -> None:
        self.send("pause")

    def action_unpause(self) -> None:
        self.send("resume")

    def action_checkpoint(self) -> None:
        self.send("checkpoint")

    def action_validate(self) -> None:
        self.send("validate")

    def send(self, command: str, args: dict | None = None, *, path: str = "") -> None:
        """Send a command to the run through :attr:`control` (pending until answered)."""
        self.query_one(LayerTreeView).send(command, args, path=path)

    def on_layer_tree_view_learning_rate_wanted(self, message: LayerTreeView.LearningRateWanted) -> None:
        from tui.screens.learning_rate import LearningRateDialog

        def chosen(lr: float | None) -> None:
            if lr is not None:
                self._send_lr(message.tree, "set-lr", {"group": message.target, "lr": lr}, message.path)

        self.app.push_screen(LearningRateDialog(message.target, message.current), chosen)

    def on_layer_tree_view_unfreeze_wanted(self, message: LayerTreeView.UnfreezeWanted) -> None:
        from tui.screens.learning_rate import Unfreeze, UnfreezeDialog

        def chosen(answer: Unfreeze | None) -> None:
            if answer is None:
                return
            if answer.lr is None:
                message.tree.send("unfreeze", {"pattern": message.pattern}, path=message.path)
            else:
                self._send_lr(message.tree, "unfreeze", {"pattern": message.pattern, "lr": answer.lr}, message.path)

        self.app.push_screen(UnfreezeDialog(message.path, message.base, message.now, message.groups), chosen)

    def _send_lr(self, tree: LayerTreeView, command: str, args: dict, path: str) -> None:
        """Send a command that sets a learning rate; one far above the run's rates is confirmed first and
        then sent with ``force`` (the trainer refuses it without)."""
        from core import control
        from tui.screens.confirm import ConfirmScreen

        lr, largest = float(args["lr"]), largest_base_lr(self.state.model)
        if not control.lr_needs_force(lr, largest):
            tree.send(command, args, path=path)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                tree.send(command, {**args, "force": True}, path=path)
            else:
                self.notify(f"Not sent: {command} with lr {lr:g}.", timeout=4)

        assert largest is not None
        self.app.push_screen(ConfirmScreen(f"Learning rate {lr:g}?", control.lr_force_reason(lr, largest) +
                                           ". Send it anyway?"), answered)


def largest_base_lr(model: dict | None) -> float | None:
    """The run's largest base learning rate from model.json: its groups, else (older runs) its modules."""
    if not model:
        return None
    groups = model.get("groups")
    rates = list(groups.values()) if isinstance(groups, dict) else []
    if not rates:
        rates = [m.get(k) for m in model.get("modules") or [] for k in ("lr", "frozen_lr")]
    rates = [float(r) for r in rates if isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0]
    return max(rates, default=None)


def _started(state: RunState) -> float | None:
    raw = state.info.get("started")
    return float(raw) if isinstance(raw, (int, float)) else None
