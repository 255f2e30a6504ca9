"""``metrics.columns``: the numbers of ``metrics.jsonl`` as NumPy columns, so a viewer loads a long run fast.

Decoding a million JSON lines takes over a second whatever the decoder; reading the same numbers as
arrays takes a few tens of milliseconds. The recorder therefore writes, beside ``metrics.jsonl`` (which
stays the record and the source of truth), this append-only sidecar: one block per
:data:`BLOCK_ROWS` rows (and one when the writer closes), each block the
:func:`core.metrics_fold.fold_rows` of its rows — the points per split and metric, each split's newest
row, the newest confusion matrix — framed as::

    b"FTCOLS1 " + header JSON + b"\\n" + payload

The header says which rows (``start_row``, ``rows``) and which bytes of ``metrics.jsonl``
(``jsonl_start``, ``jsonl_end``) the block covers and how its ``nbytes`` of payload are laid out: per
split, the block rows that hold its points (int64) and their step, epoch and time (float64, 3 × n); per
metric of the split, its positions among them (int64, left out when it has a point in every row) and
its values (float64). A reader takes the blocks that follow each other without a gap (each
``jsonl_start`` the previous ``jsonl_end``, the first at 0) and ends within ``metrics.jsonl``, and
decodes JSON only after the last one. A block cut short by a crash is ignored by readers and cut off
by the next writer, which also folds the lines no block covers yet (a killed run's last rows, or a run
recorded before this file existed) so that a resumed run is covered from its first row.

Nothing here imports torch; NumPy is imported by the functions that need it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

import orjson

if TYPE_CHECKING:  # pragma: no cover
    from core.metrics_fold import Block

MAGIC = b"FTCOLS1 "
#: Rows per block: a block costs the writer one fold of this many rows (a few milliseconds).
BLOCK_ROWS = 4096
#: Bytes of metrics.jsonl folded at a time when a writer covers lines no block covers yet.
BACKFILL_BYTES = 4 << 20


@dataclass
class Coverage:
    """What the blocks of a sidecar cover: rows, and the bytes of ``metrics.jsonl`` they hold."""

    rows: int = 0
    jsonl_end: int = 0
    file_end: int = 0
    """Bytes of the sidecar up to the end of its last whole, consistent block."""


def encode_block(block: Block, *, start_row: int, rows: int, jsonl_start: int, jsonl_end: int) -> bytes:
    """One framed block for the rows ``start_row .. start_row + rows`` (``block`` is their fold)."""
    import numpy as np

    by_split: dict[str, list[tuple[str, Any]]] = {}
    for (split, metric), points in block.points.items():
        by_split.setdefault(split, []).append((metric, points))
    splits, payload = [], []
    for split, metrics in by_split.items():
        index = np.unique(np.concatenate([p.index for _, p in metrics])).astype(np.int64)
        coords = np.empty((3, index.size), dtype=np.float64)
        described, columns = [], []
        for metric, points in metrics:
            where = np.searchsorted(index, points.index)
            coords[:, where] = points.coords  # a row's coordinates are the same for each of its metrics
            every = points.index.size == index.size
            described.append({"name": metric, "n": int(points.index.size), "all": every})
            if not every:
                columns.append(where.astype(np.int64))
            columns.append(np.ascontiguousarray(points.values, dtype=np.float64))
        payload += [index, coords, *columns]
        splits.append({"split": split, "n": int(index.size), "metrics": described})
    parts = [p.tobytes() for p in payload]
    header = {
        "start_row": start_row, "rows": rows, "jsonl_start": jsonl_start, "jsonl_end": jsonl_end,
        "nbytes": sum(map(len, parts)),
        "order": [list(key) for key in block.points],
        "splits": splits,
        "first_row": block.first_row,
        "last_row": {s: [row, values] for s, (row, values) in block.last_row.items()},
        "confusion": {s: list(found) for s, found in block.confusion.items()},
    }
    return MAGIC + orjson.dumps(header) + b"\n" + b"".join(parts)


def _frames(data: bytes) -> Iterator[tuple[dict[str, Any], memoryview, int]]:
    """(header, payload, end offset) of each whole block of ``data``, in order, until one is not whole."""
    view = memoryview(data)
    at = 0
    while at < len(data):
        if data[at:at + len(MAGIC)] != MAGIC:
            return
        newline = data.find(b"\n", at)
        if newline < 0:
            return
        try:
            header = orjson.loads(view[at + len(MAGIC):newline])
            nbytes = int(header["nbytes"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        end = newline + 1 + nbytes
        if end > len(data):
            return  # cut short by a crash
        yield header, view[newline + 1:end], end
        at = end


def _consistent(frames: Iterator[tuple[dict[str, Any], memoryview, int]], jsonl_size: int
                ) -> Iterator[tuple[dict[str, Any], memoryview, int]]:
    """The blocks that follow each other without a gap, from row 0, within ``jsonl_size`` bytes."""
    rows = jsonl_end = 0
    for header, payload, end in frames:
        if (header.get("start_row") != rows or header.get("jsonl_start") != jsonl_end
                or int(header.get("jsonl_end", -1)) > jsonl_size or int(header.get("jsonl_end", -1)) < jsonl_end):
            return
        rows += int(header["rows"])
        jsonl_end = int(header["jsonl_end"])
        yield header, payload, end


def coverage(path: Path, jsonl_size: int) -> Coverage:
    """How far the sidecar at ``path`` covers a ``metrics.jsonl`` of ``jsonl_size`` bytes."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return Coverage()
    out = Coverage()
    for header, _, end in _consistent(_frames(data), jsonl_size):
        out.rows = int(header["start_row"]) + int(header["rows"])
        out.jsonl_end, out.file_end = int(header["jsonl_end"]), end
    return out


@dataclass
class ColumnsRead:
    """What :func:`read_columns` found: the fold of every row covered, and where JSON takes over."""

    block: Block
    """Points indexed by row number in the run (0 = the first line of metrics.jsonl)."""
    rows: int
    jsonl_end: int


def read_columns(path: Path, jsonl_size: int) -> ColumnsRead | None:
    """The covered rows of a run as one :class:`~core.metrics_fold.Block`; None without a usable sidecar."""
    import numpy as np

    from core.metrics_fold import Block, Points

    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    pieces: dict[tuple[str, str], list[tuple[Any, Any, Any]]] = {}
    merged = Block()
    rows = jsonl_end = 0
    for header, payload, _ in _consistent(_frames(data), jsonl_size):
        start = int(header["start_row"])
        at = 0

        def take(dtype: Any, count: int) -> Any:
            nonlocal at
            out = np.frombuffer(payload, dtype=dtype, count=count, offset=at)
            at += out.nbytes
            return out

        found: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        for split in header["splits"]:
            n = int(split["n"])
            index = take(np.int64, n) + start
            coords = take(np.float64, 3 * n).reshape(3, n)
            for metric in split["metrics"]:
                where = None if metric["all"] else take(np.int64, int(metric["n"]))
                values = take(np.float64, int(metric["n"]))
                if where is None:
                    found[(split["split"], metric["name"])] = (index, coords, values)
                else:
                    found[(split["split"], metric["name"])] = (index[where], coords[:, where], values)
        for key in header["order"]:
            pieces.setdefault((key[0], key[1]), []).append(found[(key[0], key[1])])
        for split, row in header["first_row"].items():
            merged.first_row.setdefault(split, start + int(row))
        for split, (row, values) in header["last_row"].items():
            merged.last_row[split] = (start + int(row), values)
        for split, (first, last, matrix) in header["confusion"].items():
            old = merged.confusion.get(split)
            merged.confusion[split] = (old[0] if old else start + int(first), start + int(last), matrix)
        rows, jsonl_end = start + int(header["rows"]), int(header["jsonl_end"])
    if not rows:
        return None
    for key, parts in pieces.items():
        # One copy, in the reader's thread, into the layout a plot's series keeps (with room to grow):
        # the viewer's event loop then takes the million points over instead of copying them.
        n = sum(p[2].size for p in parts)
        packed = np.empty((4, n + max(1024, n // 4)), dtype=np.float64)
        at = 0
        for _, coords, values in parts:
            k = values.size
            packed[:3, at:at + k] = coords
            packed[3, at:at + k] = values
            at += k
        index = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        merged.points[key] = Points(index, packed[:3, :n], packed[3, :n], packed)
    return ColumnsRead(merged, rows, jsonl_end)


class ColumnsWriter:
    """Appends blocks to a run's sidecar as the rows of ``metrics.jsonl`` are written (one writer per run).

    Opening it cuts off a block left half-written by a crash and folds the lines of ``metrics.jsonl``
    that no block covers yet, so the sidecar covers the file from its first line.
    """

    def __init__(self, path: Path, jsonl: Path) -> None:
        self.path = Path(path)
        self.jsonl = Path(jsonl)
        size = self.jsonl.stat().st_size if self.jsonl.exists() else 0
        found = coverage(self.path, size)
        self._fh: BinaryIO = open(self.path, "ab")  # noqa: SIM115 - kept open for the run
        if self._fh.tell() != found.file_end:
            self._fh.truncate(found.file_end)  # a block cut short (or one past the end of the JSONL)
            self._fh.seek(found.file_end)
        self.rows = found.rows
        self.jsonl_end = found.jsonl_end
        self._pending: list[dict[str, Any]] = []
        if found.jsonl_end < size:
            self._backfill(size)

    def add(self, row: dict[str, Any]) -> bool:
        """Queue one row as written to the JSONL (JSON-safe values); True when a block is due."""
        self._pending.append(row)
        return len(self._pending) >= BLOCK_ROWS

    def write_block(self, jsonl_end: int) -> None:
        """Append the queued rows as one block; ``jsonl_end`` is the JSONL's size with them all flushed."""
        from core.metrics_fold import fold_rows

        if not self._pending or self._fh.closed:
            return
        rows, self._pending = self._pending, []
        data = encode_block(fold_rows(rows), start_row=self.rows, rows=len(rows), jsonl_start=self.jsonl_end,
                            jsonl_end=jsonl_end)
        self._fh.write(data)
        self._fh.flush()
        self.rows += len(rows)
        self.jsonl_end = jsonl_end

    def close(self) -> None:
        """Close the file (the owner writes the last block first, after flushing the JSONL)."""
        if not self._fh.closed:
            self._fh.close()

    def _backfill(self, size: int) -> None:
        """Fold the whole lines of metrics.jsonl after the covered bytes into blocks."""
        with open(self.jsonl, "rb") as fh:
            fh.seek(self.jsonl_end)
            offset, partial = self.jsonl_end, b""
            while offset < size:
                data = fh.read(min(BACKFILL_BYTES, size - offset))
                if not data:
                    break
                offset += len(data)
                data = partial + data
                cut = data.rfind(b"\n") + 1
                partial = data[cut:]  # a line still being written, or torn by a crash: left to JSON readers
                for line in data[:cut].split(b"\n"):
                    try:
                        row = orjson.loads(line) if line.strip() else None
                    except orjson.JSONDecodeError:
                        continue
                    if type(row) is dict:
                        self._pending.append(row)
                if len(self._pending) >= BLOCK_ROWS:
                    self.write_block(offset - len(partial))
            self.write_block(offset - len(partial))
        os.fsync(self._fh.fileno())
