"""The help screen (``?``): what the current screen shows and every key it answers to."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Markdown

ABOUT = {
    "HomeScreen": (
        "The runs under the runs root, refreshed every second, and the config files you can start a run "
        "from (sample_configs/ and the current directory). Runs are separate processes: quitting ftui, "
        "or losing the SSH connection, never stops them; come back with `ftui` or `ftui watch NAME`."
    ),
    "DashboardScreen": (
        "The live view of one run, read from its directory. Tabs: plots (loss, accuracy, learning rate), "
        "metrics (latest and best), the confusion matrix with per-class precision/recall/F1, the event log "
        "and the run's output. Closing the dashboard leaves the run going."
    ),
}


def bindings_markdown(screen: Screen) -> str:
    """A Markdown table of the keys active on ``screen`` (its own, then the app's)."""
    rows: list[str] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description or binding.key in seen:
            continue
        seen.add(binding.key)
        key = screen.app.get_key_display(binding)
        rows.append(f"| `{key}` | {binding.description} | {binding.tooltip or ''} |")
    return "| key | action | what it does |\n|---|---|---|\n" + "\n".join(rows)


class HelpScreen(ModalScreen[None]):
    """Closes with escape, q or ?."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.about = ABOUT.get(type(screen).__name__, "")
        self.keys = bindings_markdown(screen)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog"):
            yield Label("Help (escape to close)", classes="dialog-title")
            with VerticalScroll():
                yield Markdown(
                    f"{self.about}\n\n{self.keys}\n\n"
                    "`ctrl+p` opens the command palette with every action. The mouse works too: click tabs, "
                    "rows and buttons."
                )

    def action_close(self) -> None:
        self.dismiss(None)
