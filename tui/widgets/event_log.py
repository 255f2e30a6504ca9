"""The run's events (checkpoints, freeze changes, lr changes, warnings, errors), newest at the bottom.

One thing that happened is one line: a control command that took effect is already told by the event
it caused (``froze stage2``, ``paused``, ``saved last.pt``), so its ``control`` answer is not shown
again — refusals and answers that say something of their own (``validate``) are; and the checkpoints
written at one step (``best.pt`` and ``last.pt`` at an epoch's end) share one line.
"""

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
    "compile": "magenta",
}


#: Commands whose successful answer repeats the event the command caused.
TOLD_BY_THEIR_EVENT = frozenset({"freeze", "unfreeze", "set-lr", "pause", "resume", "checkpoint", "stop", "prune"})


def shown_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``events`` as the log shows them: answers that repeat their command's event left out, checkpoints
    saved at one step merged into one (``saved best.pt and last.pt``). An event already in that form (the
    line shown last, given again with the events that follow it) is taken as it is."""
    out: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("kind")
        if kind == "control" and event.get("status") == "ok" and event.get("command") in TOLD_BY_THEIR_EVENT:
            continue
        last = out[-1] if out else None
        if (kind == "checkpoint" and last is not None and last.get("kind") == "checkpoint"
                and last.get("step") == event.get("step") and event.get("file") and last.get("files")):
            last["files"] = [*last["files"], event["file"]]
            last["message"] = "saved " + " and ".join(last["files"])
            continue
        if kind == "checkpoint" and event.get("file") and not event.get("files"):
            event = {**event, "files": [event["file"]]}
        out.append(dict(event))
    return out


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
        self._shown: list[dict[str, Any]] = []

    def show(self, events: list[dict[str, Any]], total: int, started: float | None) -> None:
        """``events`` are the newest ``len(events)`` of ``total`` events seen so far."""
        new = total - self.written
        if new <= 0:
            return
        # The line shown last goes in again: a live run's last.pt often comes a read after its best.pt.
        last = self._shown[-1:]
        lines = shown_events([*last, *(events[-new:] if new <= len(events) else events)])
        if last and lines[0] != last[0]:
            self._shown[-1] = lines[0]
            self.clear()  # a log has no way to replace its last line; the events are few (one per thing)
            for event in self._shown:
                self.write(event_line(event, started))
        for event in lines[len(last):]:
            self._shown.append(event)
            self.write(event_line(event, started))
        del self._shown[:-self.max_lines]
        self.written = total
