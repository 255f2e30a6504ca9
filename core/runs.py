"""The run-directory contract: a writer (used by the trainer) and the one torch-free reader (used by viewers).

Layout of ``<root>/<name>/`` (see ``docs/run-format.md``)::

    run.json        status and facts of the run, rewritten atomically
    meta.json       what people add: tags, notes, archived (never written by the trainer)
    config.yaml     the resolved config (config.json: the same as JSON, for fast readers)
    metrics.jsonl   events.jsonl  system.jsonl  layers.jsonl   append-only JSON lines
    metrics.columns the numbers of metrics.jsonl as NumPy columns (core.run_columns; format 2)
    model.json      the layer tree
    control/        commands from clients        checkpoints/  tb/  stdout.log

Writers append whole lines and flush on a time budget; readers keep a byte offset per file, read only
new bytes on each poll, keep a partial last line for the next poll and count (never raise on)
garbage lines. :class:`RunReader` is the reader every viewer uses (the dashboard, scripts, the
benchmarks). This module must not import torch.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import orjson

from core.errors import RunError
from core.gc_pause import gc_paused

#: 2 added metrics.columns (a sidecar readers of version 1 never open); version 1 runs read as before.
FORMAT_VERSION = 2

RUN_JSON = "run.json"
CONFIG_YAML = "config.yaml"
CONFIG_JSON = "config.json"
META_JSON = "meta.json"
METRICS = "metrics.jsonl"
METRICS_COLUMNS = "metrics.columns"
EVENTS = "events.jsonl"
SYSTEM = "system.jsonl"
LAYERS = "layers.jsonl"
MODEL_JSON = "model.json"
CONTROL_DIR = "control"
CHECKPOINT_DIR = "checkpoints"
TB_DIR = "tb"
STDOUT_LOG = "stdout.log"
#: Deleted runs are moved here (under the runs root), never removed at once.
TRASH_DIR = ".trash"
LOCK_FILE = "run.lock"

class RunStatus(str, Enum):
    """A run's ``status`` in ``run.json``, with the exit code ``ftui run`` ends with in it.

    The one table of exit codes (the README's "Exit codes"): 0 finished, stopped or pruned, 1 failed,
    130 interrupted (SIGINT), 143 when SIGTERM interrupted it. Active statuses have none.
    """

    exit_code: int | None

    def __new__(cls, value: str, exit_code: int | None) -> RunStatus:
        member = str.__new__(cls, value)
        member._value_ = value
        member.exit_code = exit_code
        return member

    CREATED = ("created", None)
    RUNNING = ("running", None)
    FINISHED = ("finished", 0)
    FAILED = ("failed", 1)
    INTERRUPTED = ("interrupted", 130)
    STOPPED = ("stopped", 0)
    PRUNED = ("pruned", 0)
    """A sweep's pruner stopped the run as hopeless (a ``prune`` control command); ends like ``stopped``."""

    @property
    def active(self) -> bool:
        """Still training (or about to): ``created`` or ``running``."""
        return self.exit_code is None

    @classmethod
    def exit_code_of(cls, status: str | None, signum: int | None = None) -> int:
        """The exit code of an ended run: its status's code (143 for a run SIGTERM interrupted), and 1
        for anything that did not end properly (an active or unknown status)."""
        try:
            member = cls(status)
        except ValueError:
            return 1
        if member is cls.INTERRUPTED and signum == signal.SIGTERM:
            return 128 + signal.SIGTERM
        return member.exit_code if member.exit_code is not None else 1


STATUSES = tuple(status.value for status in RunStatus)
ACTIVE_STATUSES = tuple(status.value for status in RunStatus if status.active)
#: The statuses a run ends with.
FINAL_STATUSES = tuple(status.value for status in RunStatus if not status.active)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def now() -> float:
    """Wall-clock time in seconds since the epoch (what every ``time`` field holds)."""
    return time.time()


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by strings ("nan", "inf", "-inf") so every line is valid JSON."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_line(obj: dict[str, Any]) -> str:
    """One compact JSON line (with the newline)."""
    return json.dumps(json_safe(obj), separators=(",", ":"), allow_nan=False) + "\n"


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write a file atomically: ``write(fh)`` into a temp file in the same directory (``.NAME.*.tmp``),
    fsync, rename over ``path``, fsync the directory. A crash leaves the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data))


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_in_place(path: Path, text: str) -> None:
    """Overwrite an existing file's content without a new file (the fallback when the disk is full)."""
    data = text.encode("utf-8")
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Writer side
# ---------------------------------------------------------------------------------------------


class JsonlWriter:
    """Appends JSON lines to a file, flushing whole lines at most every ``flush_seconds``.

    Lines are buffered in memory and written with one ``write`` of whole lines to a file opened in
    append mode, so a reader can see a partial line only if the OS splits the write.
    """

    def __init__(self, path: Path, flush_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.flush_seconds = flush_seconds
        self._buffer: list[str] = []
        self._last_flush = time.monotonic()
        self._pending_since = self._last_flush
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        if _torn(self.path):
            # A crash left half a line; without a newline the first new record would join it and be lost.
            self._fh.write("\n")
            self._fh.flush()

    def write(self, obj: dict[str, Any]) -> None:
        """Queue one record; flush if the time budget has passed."""
        now = time.monotonic()
        if not self._buffer:
            self._pending_since = now
        self._buffer.append(dumps_line(obj))
        if now - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush_if_due(self) -> None:
        """Flush when the oldest queued line has waited ``flush_seconds`` (cheap to call every step).

        Without this a line written just after a flush would wait for the *next* write, so a viewer
        would lag one logging interval behind.
        """
        if self._buffer and time.monotonic() - self._pending_since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every queued line now."""
        if self._buffer and not self._fh.closed:
            self._fh.write("".join(self._buffer))
            self._fh.flush()
            self._buffer.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close. On a full disk the unwritten lines are dropped (and the error is not raised:
        closing happens on the way out of a failure, which must reach run.json)."""
        if self._fh.closed:
            return
        try:
            self.flush()
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            self._buffer.clear()
        try:
            self._fh.close()
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise

    @property
    def size(self) -> int:
        """Bytes in the file after what has been flushed (append mode: the end of the file)."""
        return self._fh.tell() if not self._fh.closed else self.path.stat().st_size


def _torn(path: Path) -> bool:
    """Whether a non-empty file's last byte is not a newline (a write cut short by a crash)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


def free_run_name(root: Path | str, name: str) -> str:
    """The name :func:`unique_run_dir` would give a run called ``name`` now: ``name``, or ``name-2``,
    ``-3``... when taken (to say so before the directory exists; another process may still take it)."""
    root = Path(root)
    candidate, n = name, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def unique_run_dir(root: Path, name: str) -> Path:
    """Create and return ``root/name``, or ``root/name-2``, ``-3``... if taken. Never reuses one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    candidate = root / name
    n = 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = root / f"{name}-{n}"


# Run directories this process holds the lock of. POSIX record locks belong to the process, so a
# second lock from the same process would "succeed", and closing any descriptor of the lock file
# would silently drop the lock: both are kept from happening here.
_HELD_LOCKS: dict[Path, int] = {}


def _lock_key(path: Path) -> Path:
    return Path(os.path.realpath(path))


class RunWriter:
    """Creates a run directory and writes its files (the trainer's side of the contract)."""

    def __init__(self, path: Path, flush_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.flush_seconds = flush_seconds
        self._writers: dict[str, JsonlWriter] = {}
        self._columns: Any = None  # core.run_columns.ColumnsWriter, opened with metrics.jsonl
        self._info: dict[str, Any] = {}
        self.opened = now()  # when this process took the directory over (commands older than it were not for it)
        self._lock_fd: int | None = None
        for sub in (CONTROL_DIR, CHECKPOINT_DIR):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, root: Path | str, name: str, flush_seconds: float = 1.0, **info: Any) -> RunWriter:
        """Create a fresh run directory (suffixing the name if taken) with ``run.json`` in ``created``."""
        path = unique_run_dir(Path(root), name)
        writer = cls(path, flush_seconds)
        writer._info = {
            "format": FORMAT_VERSION,
            "name": path.name,
            "status": "created",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "created": now(),
            "started": None,
            "ended": None,
            "error": None,
            "best": None,
            "paths": {
                "config": CONFIG_YAML,
                "config_json": CONFIG_JSON,
                "meta": META_JSON,
                "metrics": METRICS,
                "metrics_columns": METRICS_COLUMNS,
                "events": EVENTS,
                "system": SYSTEM,
                "layers": LAYERS,
                "model": MODEL_JSON,
                "checkpoints": CHECKPOINT_DIR,
                "tensorboard": TB_DIR,
                "stdout": STDOUT_LOG,
                "control": CONTROL_DIR,
            },
        }
        writer._info.update(info)
        writer._write_info()
        return writer

    @classmethod
    def reopen(cls, path: Path | str, flush_seconds: float = 1.0) -> RunWriter:
        """Open an existing run directory to continue it (resume): appends, never truncates."""
        path = Path(path)
        info_path = path / RUN_JSON
        if not info_path.is_file():
            raise RunError(f"{path}: not a run directory (no {RUN_JSON}). Fix: pass a directory under runs/.")
        writer = cls(path, flush_seconds)
        writer._info = json.loads(info_path.read_text(encoding="utf-8"))
        if writer._info.get("format") != FORMAT_VERSION:
            # a run recorded before metrics.columns gains one when its first new row is written (the
            # rows it has are folded then); run.json says so at its next update
            writer._info["format"] = FORMAT_VERSION
            writer._info.setdefault("paths", {})["metrics_columns"] = METRICS_COLUMNS
        return writer

    @property
    def name(self) -> str:
        return str(self._info.get("name", self.path.name))

    @property
    def info(self) -> dict[str, Any]:
        """A copy of the current ``run.json`` content."""
        return dict(self._info)

    def update(self, **fields: Any) -> None:
        """Change fields of ``run.json`` (atomically rewritten)."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        self._info.update(fields)
        self._write_info()

    def set_status(self, status: str, **fields: Any) -> None:
        """Move to a new status, stamping ``started``/``ended`` as appropriate."""
        if status == "running" and not self._info.get("started"):
            fields.setdefault("started", now())
        if status not in ACTIVE_STATUSES:
            fields.setdefault("ended", now())
        else:
            fields.setdefault("ended", None)
        self.update(status=status, pid=os.getpid(), **fields)

    def _write_info(self) -> None:
        text = json.dumps(json_safe(self._info), indent=2) + "\n"
        try:
            atomic_write_text(self.path / RUN_JSON, text)
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            # A full disk has no block for the temp file, but run.json's own blocks can be rewritten in
            # place: not atomic (a reader may see it half-written and keeps its last good copy), but the
            # status says "failed" instead of "running" forever.
            write_in_place(self.path / RUN_JSON, text)

    def write_text(self, filename: str, text: str) -> None:
        """Write a whole file atomically (config.yaml, model.json)."""
        atomic_write_text(self.path / filename, text)

    def write_json(self, filename: str, obj: Any) -> None:
        """Write a JSON file atomically."""
        self.write_text(filename, json.dumps(json_safe(obj), indent=1) + "\n")

    def _jsonl(self, filename: str) -> JsonlWriter:
        writer = self._writers.get(filename)
        if writer is None:
            if filename == METRICS:
                from core.run_columns import ColumnsWriter

                self._columns = ColumnsWriter(self.path / METRICS_COLUMNS, self.path / METRICS)
            writer = JsonlWriter(self.path / filename, self.flush_seconds)
            self._writers[filename] = writer
        return writer

    def log_metrics(self, step: int, epoch: int, split: str, values: dict[str, Any], **extra: Any) -> None:
        """Append one point to ``metrics.jsonl`` (and, every block of rows, to ``metrics.columns``)."""
        row = {"step": step, "epoch": epoch, "time": now(), "split": split, **extra, **values}
        writer = self._jsonl(METRICS)
        writer.write(row)
        if self._columns.add(json_safe(row)):
            self._write_columns(writer)

    def _write_columns(self, writer: JsonlWriter) -> None:
        writer.flush()  # a block only ever covers lines that are in metrics.jsonl
        self._columns.write_block(writer.size)

    def log_event(self, kind: str, message: str = "", **fields: Any) -> None:
        """Append an event (checkpoint, freeze, warning, error, control ack...) to ``events.jsonl``."""
        self._jsonl(EVENTS).write({"time": now(), "kind": kind, "message": message, **fields})

    def append(self, filename: str, record: dict[str, Any]) -> None:
        """Append a record to any JSONL file of the run (system.jsonl, layers.jsonl)."""
        record.setdefault("time", now())
        self._jsonl(filename).write(record)

    def flush(self) -> None:
        """Flush every JSONL file now."""
        for writer in self._writers.values():
            writer.flush()

    def flush_if_due(self) -> None:
        """Flush the files whose oldest queued line has waited the time budget."""
        for writer in self._writers.values():
            writer.flush_if_due()

    def close(self) -> None:
        """Flush and close every JSONL file (and write the last block of ``metrics.columns``), and release
        the lock (if held), whatever fails on the way (a full disk must not keep the lock held)."""
        try:
            if self._columns is not None:
                columns, self._columns = self._columns, None
                try:
                    if METRICS in self._writers:
                        metrics = self._writers[METRICS]
                        metrics.flush()  # a block only ever covers lines that are in metrics.jsonl
                        columns.write_block(metrics.size)
                except OSError as exc:
                    if exc.errno not in DISK_FULL:
                        raise  # on a full disk the sidecar misses its last block; a reader folds those lines itself
                finally:
                    try:
                        columns.close()
                    except OSError:
                        pass
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()
        finally:
            self.unlock()

    def lock(self) -> None:
        """Take the run directory's exclusive lock for the life of this process (or until :meth:`close`).

        Only the process that trains a run holds it: two processes can never train into one
        directory. It is a POSIX record lock (``fcntl.lockf``) on ``run.lock``, which the kernel
        drops when the process ends however it ends (a SIGKILLed run can be resumed at once) and
        which data-loader workers forked from the trainer do not inherit. The file holds the pid.

        Raises:
            RunError: another process holds it (the message names its pid); nothing was written.
        """
        import fcntl

        key = _lock_key(self.path)
        if key in _HELD_LOCKS:
            if _HELD_LOCKS[key] == id(self):
                return
            raise RunError(
                f"{self.path}: this process is already training this run. Fix: one Trainer per run directory."
            )
        lock_path = self.path / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)  # never held: closing it drops nothing of ours
            raise RunError(
                f"{self.path}: another process (pid {holder}) is training this run right now; two processes never "
                f"train into one run. Fix: wait for it, or stop it (`ftui ctl {self.path} stop`), then resume."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd
        _HELD_LOCKS[key] = id(self)

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock` (no-op when not held)."""
        fd = self._lock_fd
        if fd is None:
            return
        self._lock_fd = None
        _HELD_LOCKS.pop(_lock_key(self.path), None)
        os.close(fd)  # closing the descriptor releases the POSIX lock


# ---------------------------------------------------------------------------------------------
# Reader side (torch-free)
# ---------------------------------------------------------------------------------------------


class JsonlTail:
    """Follows a JSON-lines file: each :meth:`poll` returns only the complete lines added since the last.

    A partial last line is kept for the next poll; lines that are not JSON objects are counted in
    :attr:`bad_lines` and skipped. If the file shrinks (replaced or truncated) it is read again from
    the start.
    """

    def __init__(self, path: Path, chunk_size: int = 1 << 20) -> None:
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0
        self.lines_read = 0
        self._partial = b""
        self._chunk = chunk_size

    def skip_to(self, offset: int, *, align: bool = True) -> None:
        """Continue from byte ``offset``; with ``align``, from the first whole line at or after it."""
        self.offset, self._partial = max(0, offset), b""
        if not align or not self.offset:
            return
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset - 1)
                if fh.read(1) != b"\n":
                    fh.readline()  # the rest of a line cut in the middle
                self.offset = fh.tell()
        except OSError:
            pass

    def skip_to_end(self, keep: int) -> None:
        """Continue from the first whole line of the last ``keep`` bytes of the file."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size > keep:
            self.skip_to(size - keep)

    def poll(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        """Read the new complete lines (at most about ``max_bytes`` of them, if given)."""
        try:
            size = self.path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return []
        if size < self.offset:
            self.offset, self._partial = 0, b""
        if size <= self.offset:
            return []
        want = size - self.offset if max_bytes is None else min(size - self.offset, max_bytes)
        out: list[dict[str, Any]] = []
        # A large backlog creates a million dicts: the cyclic GC would walk them again and again
        # (over half of a first load's time) though parsing JSON creates no cycles.
        with gc_paused(want > 1 << 20):
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(self.offset)
                    # Piece by piece: a 276 MB backlog read whole (then joined, sliced and split)
                    # made four transient copies whose page faults cost as much as the parsing.
                    while want > 0:
                        data = fh.read(min(want, self._chunk))
                        if not data:
                            break
                        want -= len(data)
                        self.offset += len(data)
                        self._feed(data, out)
            except OSError:
                pass
        self.lines_read += len(out)
        return out

    def _feed(self, data: bytes, out: list[dict[str, Any]]) -> None:
        """Parse the complete lines of ``_partial + data`` into ``out``; keep the rest for later."""
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # after the last newline: empty, or a line still being written
        if not lines:
            return
        try:
            # One C-level pass for the usual block of good lines; any bad line sends the whole
            # block through the careful loop below.
            rows = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            pass
        else:
            if set(map(type, rows)) == _ONLY_DICTS:
                out += rows
                return
        append, loads, bad = out.append, orjson.loads, 0
        for raw in lines:
            if not raw or raw.isspace():
                continue
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError:
                bad += 1
                continue
            if type(obj) is dict:
                append(obj)
            else:
                bad += 1
        self.bad_lines += bad


_ONLY_DICTS = {dict}


def read_json(path: Path | str) -> dict[str, Any] | None:
    """A JSON object from a file, or None when the file is missing or not (yet) valid JSON."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        # orjson: a runs table reads a thousand run.json and config.json files at once
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(data)  # NaN/Infinity literals, which orjson refuses
        except ValueError:
            return None
    return obj if isinstance(obj, dict) else None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this host."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return True


def live_status(info: dict[str, Any]) -> str:
    """The status to show: an active status whose process is gone on this host reads as ``lost``."""
    status = str(info.get("status", "unknown"))
    if status in ACTIVE_STATUSES and info.get("host") == socket.gethostname() and not pid_alive(info.get("pid")):
        return "lost"
    return status


@dataclass
class RunDelta:
    """What one :meth:`RunReader.poll` found new in a run directory."""

    info: dict[str, Any] | None = None
    """run.json, when it changed since the last poll."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """New rows of metrics.jsonl, decoded."""
    metric_columns: Any = None
    """First poll only: the rows ``metrics.columns`` covers, already folded (a
    :class:`core.metrics_fold.Block`, row numbers from 0); :attr:`metrics` follows on from them."""
    recent_metrics: list[dict[str, Any]] = field(default_factory=list)
    """First poll with :attr:`metric_columns` only: the last rows it covers, decoded, for views that
    look at recent raw rows; they are not new rows (already in :attr:`metric_columns`)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] | None = None
    """model.json when it changed since the last poll."""
    stdout: str | None = None
    """The end of stdout.log when it changed since the last poll."""
    bad_lines: int = 0
    """Corrupt lines skipped so far, over every JSONL file."""
    deleted: bool = False
    more: bool = False
    """True when the poll stopped early on a big backlog (poll again at once for the rest)."""


#: Bytes before the end of what metrics.columns covers decoded as :attr:`RunDelta.recent_metrics`.
RECENT_BYTES = 256 << 10


class RunReader:
    """The reader of a run directory (torch-free): each :meth:`poll` returns what is new.

    Every file is followed from a byte offset (:class:`JsonlTail`), so a poll reads only new bytes.
    The first poll of a run recorded with ``metrics.columns`` takes the rows it covers as NumPy columns
    instead of decoding their JSON (``core.run_columns``), which is what makes a million-row run load
    in a fraction of a second; a run without it (format 1) is decoded line by line.

    Args:
        path: the run directory.
        step_bytes: read at most about this many new bytes per file in one poll (the poll then says
            :attr:`RunDelta.more`), so a viewer stays responsive on a huge backlog. None: everything.
        layers_tail_bytes: start ``layers.jsonl`` this many bytes from its end (a viewer showing recent
            per-layer statistics need not read a long run's history of them). None: from the start.
        columns: use ``metrics.columns`` when it is there.
        files: the JSONL files to follow (all four by default): a follower that needs only the metrics
            (a sweep reporting validations) reads nothing else.
    """

    def __init__(self, path: Path | str, *, step_bytes: int | None = None, layers_tail_bytes: int | None = None,
                 columns: bool = True, files: tuple[str, ...] = (METRICS, EVENTS, SYSTEM, LAYERS)) -> None:
        self.path = Path(path)
        if not (self.path / RUN_JSON).is_file():
            raise RunError(
                f"{self.path}: not a run directory (no {RUN_JSON} inside). "
                "Fix: pass a directory created by `ftui run`, or a run name under the runs root."
            )
        self.step_bytes = step_bytes
        self.tails = {name: JsonlTail(self.path / name) for name in files}
        if layers_tail_bytes is not None and LAYERS in self.tails:
            self.tails[LAYERS].skip_to_end(layers_tail_bytes)
        self.info: dict[str, Any] = {}
        """run.json as last read."""
        self.model: dict[str, Any] | None = None
        """model.json as last read."""
        self._columns = columns and METRICS in self.tails
        self._model_sig: tuple[int, int] | None = None
        self._stdout_sig: tuple[int, float] | None = None
        self._bad = 0

    def poll(self) -> RunDelta | None:
        """What is new since the last poll; None when nothing changed."""
        if not (self.path / RUN_JSON).is_file():
            return RunDelta(deleted=True, bad_lines=self._bad)
        delta = RunDelta()
        changed = False
        info = read_json(self.path / RUN_JSON)
        if info is not None and info != self.info:
            self.info = delta.info = info
            changed = True
        if self._columns:
            self._columns = False
            changed |= self._read_columns(delta)
        for name, tail in self.tails.items():
            rows = tail.poll(self.step_bytes)
            try:
                delta.more = delta.more or tail.offset < tail.path.stat().st_size
            except OSError:
                pass
            if rows:
                changed = True
                getattr(delta, _DELTA_FIELDS[name]).extend(rows)
        # after events.jsonl: the trainer rewrites model.json before it answers a control command,
        # so a poll that sees the answer also sees the new tree
        model_sig = _signature(self.path / MODEL_JSON, size_first=False)
        if model_sig is not None and model_sig != self._model_sig:
            model = read_json(self.path / MODEL_JSON)
            if model is not None:
                self._model_sig, self.model, delta.model, changed = model_sig, model, model, True
        bad = sum(t.bad_lines for t in self.tails.values())
        if bad != self._bad:
            self._bad, changed = bad, True
        delta.bad_lines = bad
        stdout_sig = _signature(self.path / STDOUT_LOG, size_first=True)
        if stdout_sig != self._stdout_sig:
            self._stdout_sig = stdout_sig
            delta.stdout = self.stdout_tail()
            changed = True
        return delta if changed else None

    def _read_columns(self, delta: RunDelta) -> bool:
        """Take what metrics.columns covers (first poll); the metrics tail then starts after it."""
        from core.run_columns import read_columns

        tail = self.tails[METRICS]
        try:
            size = tail.path.stat().st_size
        except OSError:
            return False
        found = read_columns(self.path / METRICS_COLUMNS, size)
        if found is None:
            return False
        delta.metric_columns = found.block
        tail.offset = found.jsonl_end
        start = max(0, found.jsonl_end - RECENT_BYTES)
        recent = JsonlTail(tail.path)
        recent.skip_to(start, align=start > 0)
        delta.recent_metrics = recent.poll(found.jsonl_end - recent.offset) if found.jsonl_end > recent.offset else []
        return True

    @property
    def exists(self) -> bool:
        """False once the run directory has been deleted."""
        return (self.path / RUN_JSON).is_file()

    def stdout_tail(self, max_bytes: int = 16384) -> str:
        """The last ``max_bytes`` of ``stdout.log`` (empty when absent)."""
        log = self.path / STDOUT_LOG
        try:
            size = log.stat().st_size
            with open(log, "rb") as fh:
                fh.seek(max(0, size - max_bytes))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""


_DELTA_FIELDS = {METRICS: "metrics", EVENTS: "events", SYSTEM: "system", LAYERS: "layers"}


def _signature(path: Path, *, size_first: bool) -> tuple[Any, Any] | None:
    """What tells a rewritten or grown file from the last one seen (None when absent)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime) if size_first else (st.st_mtime_ns, st.st_size)


# ---------------------------------------------------------------------------------------------
# What people add to a run (meta.json) and the run's config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunMeta:
    """``meta.json``: tags, notes and the archived flag, written by ``ftui runs`` and the app.

    Kept apart from ``run.json`` because the trainer rewrites that file from its own copy every few
    seconds: a tag added to a running run there would be overwritten.
    """

    tags: tuple[str, ...] = ()
    notes: str = ""
    archived: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"tags": list(self.tags), "notes": self.notes, "archived": self.archived, "updated": now()}


def read_meta(path: Path | str) -> RunMeta:
    """A run's :class:`RunMeta` (empty when it has no ``meta.json`` or the file is not valid)."""
    raw = read_json(Path(path) / META_JSON) or {}
    tags = raw.get("tags")
    return RunMeta(
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        notes=str(raw.get("notes") or ""),
        archived=bool(raw.get("archived", False)),
    )


def write_meta(path: Path | str, meta: RunMeta) -> None:
    """Rewrite a run's ``meta.json`` atomically."""
    atomic_write_text(Path(path) / META_JSON, json.dumps(meta.to_json(), indent=1) + "\n")


def read_config(path: Path | str) -> dict[str, Any] | None:
    """A run's resolved config as a nested dict: ``config.json``, else ``config.yaml`` (runs written
    before config.json existed); None when neither is readable."""
    found = read_json(os.path.join(path, CONFIG_JSON))
    if found is not None:
        return found
    try:
        with open(os.path.join(path, CONFIG_YAML), encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return None
    import yaml

    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    return raw if isinstance(raw, dict) else None


def file_signature(path: Path | str) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of a file, or None when it is missing: a cheap "did it change" test."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def read_events(path: Path | str) -> list[dict[str, Any]]:
    """Every event of a run (``events.jsonl``), in order."""
    return JsonlTail(Path(path) / EVENTS).poll()


def iter_runs(root: Path | str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every run directory directly under ``root`` with its ``run.json``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return
    found = []
    for child in root.iterdir():
        # hidden directories (the trash) hold runs that are not listed
        info = read_json(child / RUN_JSON) if child.is_dir() and not child.name.startswith(".") else None
        if info is not None:
            found.append((child, info))
    found.sort(key=lambda item: item[1].get("created") or 0, reverse=True)
    yield from found


def newer_namesakes(run_dir: Path | str) -> list[tuple[Path, dict[str, Any]]]:
    """Runs beside ``run_dir`` that started from the same name after it (``name-2``, ``name-3``... as
    :func:`unique_run_dir` names a run whose name was taken), newest first.

    ``ftui watch NAME`` and ``ftui ctl NAME`` act on exactly the run called NAME; these are what they
    mention when a person probably meant the newer one.
    """
    run_dir = Path(run_dir)
    info = read_json(run_dir / RUN_JSON) or {}
    base = re.sub(r"-\d+$", "", run_dir.name)
    created = info.get("created") or 0
    pattern = re.compile(rf"{re.escape(base)}(-\d+)?")
    return [(path, other) for path, other in iter_runs(run_dir.parent)
            if path.name != run_dir.name and pattern.fullmatch(path.name) and (other.get("created") or 0) > created]


def resolve_run(spec: str | Path, root: Path | str = "runs") -> Path:
    """A run directory from a path or a run name under ``root``; raises :class:`RunError`."""
    spec_path = Path(spec)
    for candidate in (spec_path, Path(root) / spec_path):
        if (candidate / RUN_JSON).is_file():
            return candidate
    if spec_path.is_dir():
        raise RunError(
            f"{spec}: is a directory but not a run (no {RUN_JSON} inside). "
            "Fix: pass a directory created by `ftui run`."
        )
    names = [p.name for p, _ in iter_runs(root)]
    import difflib

    close = difflib.get_close_matches(str(spec), names, n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else (f" Runs under {root}: {', '.join(names[:8])}." if names else "")
    raise RunError(f"{spec}: no such run (looked for a directory and for {Path(root) / spec_path}).{hint}")
