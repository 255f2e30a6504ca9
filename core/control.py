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
#: Where files that are not readable commands go (too large, too deeply nested, not a JSON object,
#: a stray file in the place of done/): set aside, kept for a look, never read again.
REJECTED_DIR = "rejected"
#: Bounds on a command file: a real command is a few hundred bytes, two levels deep. Anything beyond
#: is refused unread (its size) or unparsed (its depth), so no file can make the trainer recurse or
#: hold megabytes in memory.
MAX_COMMAND_BYTES = 64 * 1024
MAX_COMMAND_DEPTH = 8
MAX_ARG_CHARS = 1000  # a pattern or group name longer than this is not one
MAX_ANSWER_CHARS = 1000  # an answer echoes at most this much of a command's args, and says at most this much

#: command -> (positional argument names, option names); documented in docs/run-format.md.
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "freeze": (("pattern",), ()),
    "unfreeze": (("pattern",), ("lr", "force")),
    "set-lr": (("group", "lr"), ("force",)),
    "pause": ((), ()),
    "resume": ((), ()),
    "stop": ((), ()),
    "prune": ((), ("reason",)),
    "checkpoint": ((), ()),
    "validate": ((), ()),
}

#: Options that are switches (``--force``), not ``--name value``.
FLAGS = frozenset({"force"})

#: A learning rate above this many times the run's largest base lr is applied only with ``force``:
#: that far above what the run was tuned for, the loss usually diverges within a few steps.
LR_FORCE_FACTOR = 10.0

USAGE = {
    "freeze": "freeze PATTERN",
    "unfreeze": "unfreeze PATTERN [--lr X [--force]]",
    "set-lr": "set-lr GROUP|all X [--force]",
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
    if isinstance(text, bool):  # JSON true is not the number 1
        raise ControlError(f"{name} must be a number, got {json.dumps(text)}.")
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
    if "force" in out:
        if not isinstance(out["force"], bool):
            raise ControlError(f"{command}: force must be true or false, got {out['force']!r}.")
        if not out["force"]:
            del out["force"]
    for key in ("pattern", "group", "reason"):
        if key not in out:
            continue
        value = out[key]
        if not isinstance(value, str):
            kind = type(value).__name__
            raise ControlError(f"{command}: {key} must be a string, got {kind}; usage: {USAGE[command]}.")
        if len(value) > MAX_ARG_CHARS:
            raise ControlError(f"{command}: {key} is {len(value)} characters long; give at most {MAX_ARG_CHARS}.")
        out[key] = value
    return out


def clip(text: str, limit: int = MAX_ANSWER_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def bounded(args: Any) -> Any:
    """Args to echo in an answer: as given when small, else their JSON cut to :data:`MAX_ANSWER_CHARS`
    (a 20 MB command must not make a 20 MB line in events.jsonl)."""
    try:
        text = json.dumps(args, default=str, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(args)
    return args if len(text) <= MAX_ANSWER_CHARS else {"truncated": clip(text)}


def lr_needs_force(lr: float, largest_base_lr: float | None) -> bool:
    """True when ``lr`` is more than :data:`LR_FORCE_FACTOR` times the run's largest base lr."""
    return bool(largest_base_lr) and lr > LR_FORCE_FACTOR * float(largest_base_lr)  # type: ignore[arg-type]


def lr_force_reason(lr: float, largest_base_lr: float) -> str:
    """Why a learning rate needs ``force``, in the words the app and ``ftui ctl`` both show."""
    return (f"lr {lr:g} is {lr / largest_base_lr:,.0f}x the run's largest base learning rate ({largest_base_lr:g}); "
            f"more than {LR_FORCE_FACTOR:g}x usually makes the loss diverge")


def parse_cli_args(command: str, argv: list[str]) -> dict[str, Any]:
    """Arguments of ``ftui ctl RUN COMMAND ARGS...`` as a dict (``--lr X`` or ``--lr=X`` options, and
    switches such as ``--force``)."""
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
            if key in FLAGS:
                if eq:
                    raise ControlError(f"{command}: --{key} takes no value; usage: {USAGE[command]}.")
                args[key] = True
            else:
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


@dataclass(frozen=True)
class Pending:
    """A file waiting in ``control/``: its command object, or why it is not one."""

    path: Path
    obj: dict[str, Any] | None
    problem: str | None = None  # None: a JSON object (still to be validated as a command)
    final: bool = False  # the problem will not go away (size, depth): refuse now, no grace period


def waiting(run_dir: Path) -> list[Pending]:
    """The command files waiting in ``control/``, oldest first, each read within the bounds above."""
    control = Path(run_dir) / CONTROL_DIR
    try:
        entries = sorted(
            e.name
            for e in os.scandir(control)
            if e.name.endswith(".json") and not e.name.startswith(".") and _is_file(e)  # dot: a temp file
        )
    except OSError:  # no control/ (yet), or not a directory: nothing to read
        return []
    return [read_command(control / name) for name in entries]


def has_waiting(run_dir: Path) -> bool:
    """Whether ``control/`` holds a command file (one directory listing; no file is opened)."""
    try:
        with os.scandir(Path(run_dir) / CONTROL_DIR) as entries:
            return any(e.name.endswith(".json") and not e.name.startswith(".") and _is_file(e) for e in entries)
    except OSError:
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # follows a link; a FIFO or a device is never opened
    except OSError:
        return False


def read_command(path: Path) -> Pending:
    """Read one command file: at most :data:`MAX_COMMAND_BYTES`, nested at most :data:`MAX_COMMAND_DEPTH`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_COMMAND_BYTES + 1)
    except OSError as exc:
        return Pending(path, None, f"cannot be read ({exc.strerror or exc})")
    if len(data) > MAX_COMMAND_BYTES:
        return Pending(path, None, f"is larger than {MAX_COMMAND_BYTES // 1024} KiB; a command is a few hundred bytes",
                       final=True)
    depth = _nesting(data)
    if depth > MAX_COMMAND_DEPTH:
        return Pending(path, None, f"is nested {depth} levels deep; a command needs 2", final=True)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        return Pending(path, None, f"is not valid JSON ({str(exc)[:120]})")
    if not isinstance(obj, dict):
        return Pending(path, None, f"holds a JSON {type(obj).__name__}, not an object", final=True)
    return Pending(path, obj)


def _nesting(data: bytes) -> int:
    """The deepest ``[``/``{`` nesting in JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def pending_commands(run_dir: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Command files waiting in ``control/``, oldest first, with their parsed JSON (None if unreadable)."""
    return [(p.path, p.obj) for p in waiting(run_dir)]


def mark_done(path: Path) -> None:
    """Move a handled command file to ``control/done/`` (kept as a record). Never raises."""
    _move_into(path, DONE_DIR)


def set_aside(path: Path) -> None:
    """Move a file that is not a readable command to ``control/rejected/``. Never raises."""
    _move_into(path, REJECTED_DIR)


def _move_into(path: Path, folder: str) -> None:
    """Move ``path`` into ``control/<folder>/``. A stray entry in the folder's place (a file named
    ``done``, a link) is renamed ``.stray-<folder>-<time_ns>`` first: the listing skips dot names, and
    nothing is moved outside the run directory. If nothing works (a read-only directory), the file is
    deleted, so it is never handled twice."""
    target = path.parent / folder
    try:
        if target.is_symlink() or not target.is_dir():
            if target.is_symlink() or target.exists():
                os.replace(target, path.parent / f".stray-{folder}-{time.time_ns()}")
            target.mkdir()
        os.replace(path, target / path.name)
        return
    except OSError:
        pass
    try:
        path.unlink()
    except OSError:
        pass
