"""The dashboard's one-line header: name, status, epoch/step, elapsed, ETA, samples/s."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.run_state import HeaderFacts

#: Status → Rich style; Textual degrades these on terminals without true colour.
STATUS_STYLES = {
    "created": "bold white on grey37",
    "running": "bold black on green",
    "finished": "bold black on dodger_blue2",
    "failed": "bold white on red3",
    "interrupted": "bold black on yellow",
    "stopped": "bold black on yellow",
    "lost": "bold white on magenta",
}


def status_text(status: str) -> Text:
    """A status as a coloured badge."""
    return Text(f" {status} ", style=STATUS_STYLES.get(status, "reverse"))


class RunHeader(Static):
    """Shows :class:`tui.run_state.HeaderFacts`; wraps onto a second line on narrow terminals."""

    DEFAULT_CSS = """
    RunHeader {
        height: auto;
        max-height: 2;
        padding: 0 1;
        background: $panel;
    }
    """

    def show(self, facts: HeaderFacts) -> None:
        """Redraw with new facts."""
        text = Text.assemble(
            (facts.name, "bold"),
            " ",
            status_text(facts.status),
            ("  epoch ", "dim"),
            facts.epoch,
            ("  step ", "dim"),
            facts.step,
            ("  elapsed ", "dim"),
            facts.elapsed,
            ("  ETA ", "dim"),
            facts.eta,
            ("  samples/s ", "dim"),
            facts.samples_per_s,
        )
        self.update(text)
