"""The dashboard's one-line header: name, status, epoch/step, elapsed, ETA, samples/s, and the
trainable share of the parameters when not all of them train (LoRA, frozen layers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:  # the runs table uses status_text without the dashboard's NumPy state
    from tui.run_state import HeaderFacts

#: Status → Rich style; Textual degrades these on terminals without true colour.
STATUS_STYLES = {
    "created": "bold white on grey37",
    "running": "bold black on green",
    "finished": "bold black on dodger_blue2",
    "failed": "bold white on red3",
    "interrupted": "bold black on yellow",
    "stopped": "bold black on yellow",
    "pruned": "bold black on orange3",
    "lost": "bold white on magenta",
}


def status_text(status: str) -> Text:
    """A status as a coloured badge."""
    return Text(f" {status} ", style=STATUS_STYLES.get(status, "reverse"))


class RunHeader(Static):
    """Shows :class:`tui.run_state.HeaderFacts` on one line; shorter labels when the terminal is narrow."""

    DEFAULT_CSS = """
    RunHeader {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    facts: HeaderFacts | None = None

    def show(self, facts: HeaderFacts) -> None:
        """Redraw with new facts."""
        if facts == self.facts:
            return
        self.facts = facts
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.facts is None:
            return
        full = header_text(self.facts, compact=False)
        fits = self.size.width == 0 or full.cell_len <= self.size.width
        self.update(full if fits else header_text(self.facts, compact=True))


def header_text(facts: HeaderFacts, *, compact: bool) -> Text:
    """The header line; ``compact`` drops words, not facts, so 80 columns hold it all."""
    share: list[str | tuple[str, str]] = []
    if facts.trainable is not None:
        # compact: before the times, so a long name pushes samples/s off the line rather than this
        share = ["  ", (facts.trainable.replace(" ", ""), "bold"), (" trains", "dim")] if compact else \
            ["  ", (facts.trainable, "bold"), (" trainable", "dim")]
    if compact:
        # a finished run says so in its status: "ETA done" is the one thing 80 columns can spare
        eta = [] if facts.eta == "done" else [(" ETA ", "dim"), facts.eta]
        return Text.assemble(
            (facts.name, "bold"), " ", status_text(facts.status),
            ("  ep ", "dim"), facts.epoch, ("  step ", "dim"), facts.step, *share,
            "  ", facts.elapsed, *eta,
            "  ", facts.samples_per_s, ("/s", "dim"),
        )
    return Text.assemble(
        (facts.name, "bold"), " ", status_text(facts.status),
        ("  epoch ", "dim"), facts.epoch, ("  step ", "dim"), facts.step,
        ("  elapsed ", "dim"), facts.elapsed, ("  ETA ", "dim"), facts.eta,
        ("  samples/s ", "dim"), facts.samples_per_s, *share,
    )
