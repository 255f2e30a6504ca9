"""Control commands the app sends to one run, and their answers (torch-free, no widget).

A command is one file in the run's ``control/`` (``core.control.send``); the trainer answers it with a
``control`` event carrying the command's id. :class:`RunControl` keeps what was sent and not answered
yet (so the layer tree can mark a module, or the run, as pending) and matches the answers as the
dashboard's :class:`~tui.run_state.RunState` reads them. The dashboard owns one per run; its layer
tree and its run-wide keys (pause, checkpoint, validate, stop) all send through it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core import control

#: Who sent a command, as written in its file and shown in the trainer's answer.
SENDER = "ftui app"


class RunEvents(Protocol):
    """What the control follows in the dashboard's state."""

    events: deque[dict[str, Any]]
    events_total: int


@dataclass
class Pending:
    """A command sent and not answered yet."""

    id: str
    path: str
    """The module it is about (``""`` for the run as a whole)."""
    command: str
    text: str
    """How the command reads to a person: ``set-lr head 0.01``."""


class RunControl:
    """Sends commands to the run in ``run_path`` and follows their answers."""

    def __init__(self, run_path: Path | str) -> None:
        self.run_path = Path(run_path)
        self.pending: dict[str, Pending] = {}
        self.answers: list[dict[str, Any]] = []
        """Answers to the commands sent here, newest last."""
        self._events_seen = 0

    def send(self, command: str, args: dict[str, Any] | None = None, *, path: str = "") -> Pending:
        """Write the command (``core.control.send`` checks it) and note it as pending on ``path``.

        Raises :class:`core.errors.UserError` for a bad command, ``OSError`` when it cannot be written.
        """
        sent = control.send(self.run_path, command, args, sender=SENDER)
        shown = " ".join([command, *(str(v) for v in (args or {}).values() if v is not None)])
        pending = self.pending[sent.id] = Pending(sent.id, path, command, shown)
        return pending

    def take_answers(self, state: RunEvents) -> list[tuple[Pending, dict[str, Any]]]:
        """The answers to pending commands among the events ``state`` read since the last call."""
        new = state.events_total - self._events_seen
        if new <= 0:
            return []
        self._events_seen = state.events_total
        found = []
        if self.pending:
            for event in list(state.events)[-new:]:
                if event.get("kind") == "control" and event.get("id") in self.pending:
                    found.append((self.pending.pop(str(event["id"])), event))
                    self.answers.append(event)
        return found

    def abandon(self) -> list[Pending]:
        """Forget the pending commands (the run has ended: a killed trainer answers nothing)."""
        gone = list(self.pending.values())
        self.pending.clear()
        return gone
