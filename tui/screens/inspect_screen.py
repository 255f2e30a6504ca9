"""The checkpoint inspector as a Screen: the home screen pushes it for a checkpoint, and
``ftui inspect PATH`` runs it as the whole app.

Loading and statistics run in worker threads; the threads hand results back with
``post_message`` and never touch widgets. Heavy imports (torch) happen inside the workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from tui.widgets.inspect_metrics import MetricPlots
from tui.widgets.inspect_panel import InspectPanel
from tui.widgets.inspect_stats import TensorStatsView
from tui.widgets.inspect_tree import LayerTree
from tui.widgets.tradeoff_panel import TradeoffPanel


class InspectScreen(Screen):
    """Summary, layer tree with on-demand tensor statistics, metric plots, optimizer, data, config."""

    DEFAULT_CSS = """
    InspectScreen #inspect-warning {
        background: $error;
        color: $text;
        text-style: bold;
        padding: 0 1;
        height: auto;
    }
    InspectScreen #layers-row {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("s", "tab('summary')", "Summary"),
        Binding("l", "tab('layers')", "Layers"),
        Binding("m", "tab('metrics')", "Metrics"),
        Binding("o", "tab('optimizer')", "Optimizer"),
        Binding("d", "tab('data')", "Data"),
        Binding("c", "tab('config')", "Config"),
        Binding("t", "tab('compression')", "Trade-off"),
        Binding("escape,q", "close", "Close"),
    ]

    class Loaded(Message):
        """The checkpoint was opened and summarised (posted from the load worker)."""

        def __init__(self, checkpoint: Any, summary: dict[str, Any], tradeoff: dict[str, Any] | None = None,
                     tradeoff_path: str | None = None) -> None:
            super().__init__()
            self.checkpoint = checkpoint
            self.summary = summary
            self.tradeoff = tradeoff  # the tradeoff.json that describes this checkpoint, if any
            self.tradeoff_path = tradeoff_path

    class LoadFailed(Message):
        """The checkpoint could not be opened; ``message`` says why."""

        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    class StatsReady(Message):
        """Statistics of one tensor (``TensorStats.as_dict()``), or an error message."""

        def __init__(self, name: str, stats: dict[str, Any] | None, error: str | None = None) -> None:
            super().__init__()
            self.name = name
            self.stats = stats
            self.error = error

    def __init__(self, path: Path, unsafe: bool = False, *, loaded: Any | None = None) -> None:
        """Inspect ``path``.

        Args:
            path: checkpoint, weights file or sharded safetensors directory.
            unsafe: load with ``weights_only=False`` (the caller has warned the user).
            loaded: an already opened ``core.inspect.LoadedCheckpoint`` for ``path`` (skips loading).
        """
        super().__init__()
        self.path = Path(path)
        self.unsafe = unsafe
        self.checkpoint = loaded
        self.summary: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        if self.unsafe:
            yield Static(Text(f"UNSAFE: {self.path} is loaded with weights_only=False; pickled code in it has run."),
                         id="inspect-warning")
        with TabbedContent(initial="summary"):
            with TabPane("Summary", id="summary"):
                yield InspectPanel(Text(f"Loading {self.path}…"), id="summary-panel")
            with TabPane("Layers", id="layers"):
                with Horizontal(id="layers-row"):
                    yield LayerTree(id="layer-tree")
                    yield TensorStatsView(id="tensor-stats")
            with TabPane("Metrics", id="metrics"):
                yield MetricPlots(id="metric-plots")
            with TabPane("Optimizer", id="optimizer"):
                yield InspectPanel(id="optimizer-panel")
            with TabPane("Data", id="data"):
                yield InspectPanel(id="data-panel")
            with TabPane("Config", id="config"):
                yield InspectPanel(id="config-panel")
            with TabPane("Trade-off", id="compression"):
                yield TradeoffPanel(id="tradeoff-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "ftui inspect"
        self.sub_title = str(self.path)
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspect-load")
    def load(self) -> None:
        """Open (unless given) and summarise the checkpoint off the UI thread."""
        from core.errors import FtuiError
        from core.inspect import load_checkpoint, summarize

        try:
            ckpt = self.checkpoint or load_checkpoint(self.path, unsafe=self.unsafe)
            summary = summarize(ckpt)
        except FtuiError as exc:
            self.post_message(self.LoadFailed(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the screen instead of killing the app
            self.post_message(self.LoadFailed(f"{self.path}: {type(exc).__name__}: {exc}"))
            return
        from core.compress.tradeoff import find_tradeoff, read_tradeoff

        found = find_tradeoff(self.path) if self.path.is_file() else None
        table = read_tradeoff(found) if found is not None else None
        self.post_message(self.Loaded(ckpt, summary, table, str(found) if table is not None else None))

    def on_inspect_screen_loaded(self, message: Loaded) -> None:
        from tui.widgets.inspect_render import config_view, data_table, metrics_table, optimizer_table, summary_table
        from rich.console import Group

        self.checkpoint, self.summary = message.checkpoint, message.summary
        s = message.summary
        self.query_one("#summary-panel", InspectPanel).show(Group(summary_table(s), metrics_table(s)))
        self.query_one(LayerTree).populate(s)
        self.query_one(MetricPlots).show(s.get("metrics"))
        self.query_one("#optimizer-panel", InspectPanel).show(optimizer_table(s))
        self.query_one("#data-panel", InspectPanel).show(data_table(s))
        self.query_one("#config-panel", InspectPanel).show(config_view(s))
        self.query_one(TradeoffPanel).show(str(self.path), s.get("compression"), message.tradeoff,
                                           message.tradeoff_path, compact=self.app.size.width < 110)

    def on_inspect_screen_load_failed(self, message: LoadFailed) -> None:
        self.query_one("#summary-panel", InspectPanel).show(Text(message.message, style="bold red"))
        self.notify(message.message, title="Cannot open checkpoint", severity="error", timeout=10, markup=False)

    @on(LayerTree.TensorChosen)
    def _tensor_chosen(self, message: LayerTree.TensorChosen) -> None:
        self.query_one(TensorStatsView).computing(message.name)
        self.compute_stats(message.name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="inspect-stats")
    def compute_stats(self, name: str) -> None:
        """Read one tensor and reduce it; a newer selection cancels this one."""
        from core.inspect import tensor_stats

        try:
            stats = tensor_stats(self.checkpoint.weights.get(name), name).as_dict()
        except Exception as exc:  # noqa: BLE001 - a damaged tensor is reported in the panel
            self.post_message(self.StatsReady(name, None, f"{type(exc).__name__}: {exc}"))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.StatsReady(name, stats))

    def on_inspect_screen_stats_ready(self, message: StatsReady) -> None:
        view = self.query_one(TensorStatsView)
        if message.name != view.current:  # a later selection is being computed
            return
        if message.stats is None:
            view.show_error(message.name, message.error or "failed")
        else:
            view.show_stats(message.stats)

    def action_tab(self, tab: str) -> None:
        """Switch to a tab (the layer tab gives the tree the keyboard, ready for enter)."""
        self.query_one(TabbedContent).active = tab
        if tab == "layers":
            self.query_one(LayerTree).focus()

    def action_close(self) -> None:
        """Back to the previous screen, or quit when the inspector is the whole app."""
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()
