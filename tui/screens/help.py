"""The help screen (``?``): what the current screen shows and every key it answers to."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

ABOUT = {
    "HomeScreen": (
        "The runs under the runs root, refreshed every second, with the config keys that differ between them "
        "as columns, and the config files you can start a run from (sample_configs/ and the current "
        "directory). / filters as you type (words match name, status and tags; key=value, key>value match "
        "config keys: optim.lr<1e-3 status=finished tag=baseline); o or a header click sorts; space marks "
        "runs for c compare, d delete (to the trash), t tag, a archive. Runs are separate processes: quitting "
        "ftui, or losing the SSH connection, never stops them; come back with `ftui` or `ftui watch NAME`."
    ),
    "CompareScreen": (
        "Runs side by side: their curves overlaid (one colour per run; x by step, epoch or minutes since each "
        "run started), event markers in each run's colour (U unfreeze, F freeze, L lr change, P pause, G go on, "
        "R resumed, C checkpoint), a table of final metrics and the config keys that differ (the best value in "
        "green), and their confusion matrices. Runs of another task are set aside with the reason."
    ),
    "SweepScreen": (
        "An Optuna sweep: every trial with its parameters, state (complete, pruned, fail, running) and value, "
        "the best so far, and the history of values by trial. Each trial is an ordinary run: enter opens its "
        "dashboard, where it can be steered like any run."
    ),
    "DashboardScreen": (
        "The live view of one run, read from its directory. Tabs (keys 1-7): plots (loss, accuracy, learning "
        "rate), metrics (latest and best), the confusion matrix with per-class precision/recall/F1, the event "
        "log, the run's output, the machine (GPU/CPU telemetry and diagnostics) and the layers (the model's "
        "tree with the rate each layer trains at now, b for the base rates: freeze, unfreeze and set learning "
        "rates while it trains; an unfreeze shows the rate the layer gets back, and a rate far above the run's "
        "asks first). While the run is live, pause, checkpoint, validate and stop work in every tab. Closing the "
        "dashboard leaves the run going."
    ),
    "ExplainScreen": (
        "Why the model predicts what it does: each tile is a sample of the split and, beside it, the map of "
        "the pixels that drove the prediction (Grad-CAM at a layer, plain gradient saliency or Integrated "
        "Gradients, drawn with Matplotlib's turbo colours: red = most). The gallery starts with the worst "
        "mistakes; the confusion matrix picks one kind of mistake. The explaining runs in its own process, "
        "so the app never waits on it; `ftui explain` writes the same maps to files."
    ),
}
#: Keys every Textual screen has; listing them would bury the ones that matter.
GENERIC_KEYS = {"ctrl+c", "super+c", "ctrl+q", "tab", "shift+tab"}


def keys_table(screen: Screen) -> Table:
    """The keys active on ``screen`` (its own, then the app's), one line each."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description or binding.key in seen or binding.key in GENERIC_KEYS or not active.enabled:
            continue
        seen.add(binding.key)
        what = binding.description + (f": {binding.tooltip}" if binding.tooltip else "")
        table.add_row(screen.app.get_key_display(binding), what)
    return table


class HelpScreen(ModalScreen[None]):
    """Closes with escape, q or ?."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.about = ABOUT.get(type(screen).__name__, "")
        self.keys = keys_table(screen)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog"):
            yield Label("Help (escape closes)", classes="dialog-title")
            with VerticalScroll():
                yield Static(Text(self.about), classes="help-about")
                yield Static(self.keys)
                yield Static(
                    Text("ctrl+p opens the command palette with every action. The mouse works too: "
                         "click tabs, rows and buttons.", style="dim")
                )

    def action_close(self) -> None:
        self.dismiss(None)
