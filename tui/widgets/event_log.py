"""The run's events (checkpoints, freeze changes, lr changes, warnings, errors), newest at the bottom.

One thing that happened is one line: a control command that took effect is already told by the event
it caused (``froze stage2``, ``paused``, ``saved last.pt``), so its ``control`` answer is not shown
again — refusals and answers that say something of their own (``validate``) are; the checkpoints
written at one step (``best.pt`` and ``last.pt`` at an epoch's end) share one line, and so do the
optimizer's groups as a run starts.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

from tui.format import format_count
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


def groups_message(groups: list[dict[str, Any]]) -> str:
    """The optimizer's groups at a start, on one line: a group and its ``/no_decay`` twin as one, with
    how many parameters it holds and whether any of them train (a frozen backbone's group has none)."""
    merged: dict[str, dict[str, Any]] = {}
    for group in groups:
        name = str(group.get("name", "?")).removesuffix("/no_decay")
        into = merged.setdefault(name, {"lrs": [], "params": 0, "trainable": 0, "counted": False})
        if group.get("lr") not in into["lrs"]:
            into["lrs"].append(group.get("lr"))
        for key in ("params", "trainable"):
            if isinstance(group.get(key), (int, float)):
                into[key] += group[key]
                into["counted"] = True
    parts = []
    for name, into in merged.items():
        text = f"{name} lr {' / '.join(str(lr) for lr in into['lrs'])}"
        if into["counted"]:
            frozen = ", all frozen" if into["params"] and not into["trainable"] else ""
            text += f" ({format_count(into['params'])} params{frozen})"
        parts.append(text)
    return "optimizer groups: " + " · ".join(parts)


def _within_a_second(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ta, tb = to_float(a.get("time")), to_float(b.get("time"))
    return ta is not None and tb is not None and abs(ta - tb) < 1.0


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
        if (kind == "lr_group" and last is not None and last.get("kind") == "lr_group" and "name" in event
                and last.get("groups") and _within_a_second(event, last)):
            last["groups"] = [*last["groups"], event]
            last["message"] = groups_message(last["groups"])
            continue
        if kind == "lr_group" and "name" in event and not event.get("groups"):
            event = {**event, "groups": [event], "message": groups_message([event])}
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


def event_row(event: dict[str, Any], started: float | None) -> Table:
    """:func:`event_line` as a grid whose message wraps under itself, not under the time (a long
    message at 80 columns broke back to the first column)."""
    line = event_line(event, started)
    cut = len(line) - len(str(event.get("message", "")))  # the time and the kind, each padded to its width
    grid = Table.grid()
    grid.add_column(width=cut, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(line[:cut], line[cut:])
    return grid


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
                self.write(event_row(event, started))
        for event in lines[len(last):]:
            self._shown.append(event)
            self.write(event_row(event, started))
        del self._shown[:-self.max_lines]
        self.written = total
