"""The control channel's protocol and its client side (torch-free).

A client steers a running trainer by writing one JSON file per command into the run's ``control/``
directory, atomically (temp file + rename)::

    {"id": "<time_ns>-<hex>", "command": "freeze", "args": {"pattern": "layer1"}, "time": ..., "sender": ...}

The trainer picks the files up at step boundaries (a directory listing at most every ~100 ms),
applies each between optimizer steps, moves the file to ``control/done/`` and answers in
``events.jsonl`` with ``{"kind": "control", "id", "command", "status": "ok"|"error", "message"}``.
See ``docs/run-format.md``.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import UserError
from core.runs import CONTROL_DIR, EVENTS, JsonlTail, atomic_write_text

DONE_DIR = "done"

#: command -> (positional argument names, option names); documented in docs/run-format.md.
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "freeze": (("pattern",), ()),
    "unfreeze": (("pattern",), ("lr",)),
    "set-lr": (("group", "lr"), ()),
    "pause": ((), ()),
    "resume": ((), ()),
    "stop": ((), ()),
    "prune": ((), ("reason",)),
    "checkpoint": ((), ()),
    "validate": ((), ()),
}

USAGE = {
    "freeze": "freeze PATTERN",
    "unfreeze": "unfreeze PATTERN [--lr X]",
    "set-lr": "set-lr GROUP|all X",
    "pause": "pause",
    "resume": "resume",
    "stop": "stop",
    "prune": "prune [--reason TEXT]",
    "checkpoint": "checkpoint",
    "validate": "validate",
}


class ControlError(UserError):
    """A malformed control command."""


@dataclass
class Command:
    """One control command."""

    command: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}")
    time: float = field(default_factory=time.time)
    sender: str = "ftui"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "args": self.args, "time": self.time, "sender": self.sender}


def _positive_float(name: str, text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ControlError(f"{name} must be a number, got {text!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ControlError(f"{name} must be a finite number > 0, got {text!r}.")
    return value


def validate_command(command: str, args: dict[str, Any]) -> dict[str, Any]:
    """Check a command and its arguments; returns the normalised arguments or raises ControlError."""
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ControlError(f"unknown command {command!r}.{hint} Commands: {', '.join(USAGE.values())}.")
    positional, options = COMMANDS[command]
    allowed = set(positional) | set(options)
    unknown = set(args) - allowed
    if unknown:
        raise ControlError(f"{command}: unexpected argument(s) {sorted(unknown)}; usage: {USAGE[command]}.")
    missing = [p for p in positional if args.get(p) in (None, "")]
    if missing:
        raise ControlError(f"{command}: missing {', '.join(missing)}; usage: {USAGE[command]}.")
    out = dict(args)
    if "lr" in out and out["lr"] is not None:
        out["lr"] = _positive_float("lr", out["lr"])
    for key in ("pattern", "group", "reason"):
        if key in out:
            out[key] = str(out[key])
    return out


def parse_cli_args(command: str, argv: list[str]) -> dict[str, Any]:
    """Arguments of ``ftui ctl RUN COMMAND ARGS...`` as a dict (``--lr X`` or ``--lr=X`` options)."""
    if command not in COMMANDS:
        validate_command(command, {})
    positional, options = COMMANDS[command]
    args: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            if key not in options:
                raise ControlError(f"{command}: unknown option --{key}; usage: {USAGE[command]}.")
            if not eq:
                if i + 1 >= len(argv):
                    raise ControlError(f"{command}: --{key} needs a value; usage: {USAGE[command]}.")
                i += 1
                value = argv[i]
            args[key] = value
        else:
            rest.append(token)
        i += 1
    if len(rest) > len(positional):
        raise ControlError(f"{command}: too many arguments {rest}; usage: {USAGE[command]}.")
    args.update(dict(zip(positional, rest)))
    return validate_command(command, args)


def send(run_dir: Path, command: str, args: dict[str, Any] | None = None, *, sender: str = "ftui") -> Command:
    """Validate and write a command file into ``run_dir/control`` atomically; returns the command."""
    cmd = Command(command, validate_command(command, dict(args or {})), sender=sender)
    control = Path(run_dir) / CONTROL_DIR
    control.mkdir(parents=True, exist_ok=True)
    atomic_write_text(control / f"{cmd.id}.json", json.dumps(cmd.to_json()) + "\n")
    return cmd


def answers_tail(run_dir: Path) -> JsonlTail:
    """A tail of ``events.jsonl`` positioned at its current end (open it before sending)."""
    tail = JsonlTail(Path(run_dir) / EVENTS)
    try:
        tail.offset = (Path(run_dir) / EVENTS).stat().st_size
    except OSError:
        tail.offset = 0
    return tail


def wait_for_answer(
    tail: JsonlTail,
    command_id: str,
    timeout: float,
    poll: float = 0.05,
    *,
    alive: Callable[[], bool] | None = None,
) -> dict[str, Any] | None:
    """The trainer's answer event for ``command_id``, or None after ``timeout`` seconds.

    With ``alive`` (checked about once a second), waiting also ends, with None, once it returns
    False: a trainer that is gone will not answer.
    """
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 1.0
    while True:
        for event in tail.poll():
            if _answers(event, command_id) and event.get("status") in ("ok", "error"):
                return event
        now = time.monotonic()
        if now >= deadline:
            return None
        if alive is not None and now >= next_check:
            next_check = now + 1.0
            if not alive():
                # one last look: the answer may have been written just before the exit
                return next((e for e in tail.poll() if _answers(e, command_id)), None)
        time.sleep(poll)


def _answers(event: dict[str, Any], command_id: str) -> bool:
    return event.get("kind") == "control" and event.get("id") == command_id


# ------------------------------------------------------------------------------- trainer side


def pending_commands(run_dir: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Command files waiting in ``control/``, oldest first, with their parsed JSON (None if unreadable)."""
    control = Path(run_dir) / CONTROL_DIR
    try:
        entries = sorted(
            e.name
            for e in os.scandir(control)
            if e.is_file() and e.name.endswith(".json") and not e.name.startswith(".")  # dot: a temp file
        )
    except FileNotFoundError:
        return []
    out: list[tuple[Path, dict[str, Any] | None]] = []
    for name in entries:
        path = control / name
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            obj = None
        out.append((path, obj if isinstance(obj, dict) else None))
    return out


def mark_done(path: Path) -> None:
    """Move a handled command file to ``control/done/`` (kept as a record)."""
    done = path.parent / DONE_DIR
    done.mkdir(exist_ok=True)
    try:
        os.replace(path, done / path.name)
    except OSError:
        try:
            path.unlink()
        except OSError:
            pass
