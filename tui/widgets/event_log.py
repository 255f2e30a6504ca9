"""The run's events (checkpoints, freeze changes, lr changes, warnings, errors), newest at the bottom."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import RichLog

from tui.run_state import format_duration, to_float

KIND_STYLES = {
    "error": "bold red",
    "exception": "bold red",
    "warning": "yellow",
    "checkpoint": "green",
    "freeze": "cyan",
    "unfreeze": "cyan",
    "lr": "blue",
}


def event_line(event: dict[str, Any], started: float | None) -> Text:
    """One event as ``+M:SS kind message`` (time since the start, so it reads the same everywhere)."""
    stamp = to_float(event.get("time"))
    when = "+" + format_duration(stamp - started) if stamp is not None and started is not None else "     "
    kind = str(event.get("kind", "event"))
    style = KIND_STYLES.get(kind, "")
    return Text.assemble((f"{when:>8} ", "dim"), (f"{kind:<11} ", style or "bold"), str(event.get("message", "")))


class EventLog(RichLog):
    """Appends only the events it has not written yet."""

    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=5000)
        self.written = 0

    def show(self, events: list[dict[str, Any]], total: int, started: float | None) -> None:
        """``events`` are the newest ``len(events)`` of ``total`` events seen so far."""
        new = total - self.written
        if new <= 0:
            return
        for event in events[-new:] if new <= len(events) else events:
            self.write(event_line(event, started))
        self.written = total
