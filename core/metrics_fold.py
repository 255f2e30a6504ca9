"""Column-wise reading of a block of decoded ``metrics.jsonl`` rows: NumPy points per split and metric.

A million-row backlog reaches the dashboard as dicts, one per line. Walking them value by value in
Python cost 3 s; here the rows are grouped by key set (a run writes the same keys line after line)
and each group is read with C-level passes: one ``map(itemgetter(key), rows)`` and one
``array("d", column)`` per key. The per-value rules of :func:`to_float` run only for a column that
holds something other than ints and floats.

The rules are those of a row-by-row reading: a row's split is ``str(row.get("split", "train"))``;
``step``, ``epoch`` and ``time`` are its coordinates (not-a-number when missing or not a number);
every other key whose value is a number (an int or a float, not a bool) or one of the strings
"nan", "inf", "-inf" is a point of that metric in that split. The learning rate of every optimizer
group, which train rows carry as ``lrs: {group: lr}``, is read the same way as metric ``lr/<group>``
(the name TensorBoard's events give it), so each group has a series of its own; a ``<group>/no_decay``
twin, whose rate is always its group's, is read only when its group is not in the same block.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from itertools import chain, compress
from operator import itemgetter, methodcaller
from typing import Any, Sequence

import numpy as np

from core.gc_pause import gc_paused
from core.scalars import to_float  # also what readers import from here

#: Keys of a metrics row that are coordinates, not metrics.
COORDINATES = ("step", "epoch", "time", "split")
#: The key of a train row's ``{group: lr}``, and the prefix of the metrics read from it.
GROUP_LRS = "lrs"
GROUP_LR_PREFIX = "lr/"
#: The suffix of an optimizer group's weight-decay-free twin (``core.finetune.NO_DECAY``; torch-free here).
NO_DECAY = "/no_decay"
#: Types that can hold a point: int and float, and str for "nan"/"inf"/"-inf" (bool is not an int here).
_MAYBE_NUMBER = {int, float, str}


@dataclass
class Points:
    """The points of one metric of one split in a block."""

    index: np.ndarray
    """The row (position in the block) of each point, ascending."""
    coords: np.ndarray
    """``(3, n)``: step, epoch, time of each point's row."""
    values: np.ndarray
    packed: np.ndarray | None = None
    """Optionally a ``(4, capacity)`` array whose first ``n`` columns are step, epoch, time, value, with
    ``coords`` and ``values`` views of it: a series may take it over instead of copying the points."""


@dataclass
class Block:
    """What a block of rows adds: points per (split, metric), and per split its newest row and matrix."""

    points: dict[tuple[str, str], Points] = field(default_factory=dict)
    """In the order a row-by-row reading meets them: by first point's row, then key order in that row."""
    first_row: dict[str, int] = field(default_factory=dict)
    """Split -> the row where it first appears."""
    last_row: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    """Split -> (row, its dict) of its newest row."""
    confusion: dict[str, tuple[int, int, list[list[Any]]]] = field(default_factory=dict)
    """Split -> (row of its first matrix, row of its newest, the newest): ``confusion`` values that are
    non-empty lists of lists."""


def fold_rows(rows: list[dict[str, Any]]) -> Block:
    """Read a block of metrics rows into a :class:`Block`.

    The rows are dicts as JSON decodes them (values: int, float, str, bool, None, list, dict); a
    value of another type that converts to float (a ``Decimal``...) would count as a number here.
    """
    pieces: dict[tuple[str, str], list[Points]] = {}
    block = Block()
    # Some passes allocate per row (key tuples of a mixed block, values read one by one): each
    # collection they trigger would walk the block's freshly decoded dicts again (4x the time of
    # the passes, measured with a tuple per row). Nothing here makes a cycle.
    with gc_paused():
        for index, part, keys, columns in _groups(rows):
            _read_group(index, part, keys, columns, pieces, block)
    firsts = []
    for key, found in pieces.items():
        if len(found) == 1:
            points = found[0]
        else:  # the split's rows changed key set inside the block: merge in row order
            index = np.concatenate([p.index for p in found])
            order = np.argsort(index, kind="stable")
            points = Points(
                index[order],
                np.concatenate([p.coords for p in found], axis=1)[:, order],
                np.concatenate([p.values for p in found])[order],
            )
        at = int(points.index[0])
        firsts.append((at, _key_rank(rows[at], key[1]), key, points))
    firsts.sort(key=lambda item: item[:2])
    block.points = {key: points for _, _, key, points in firsts}
    block.first_row = dict(sorted(block.first_row.items(), key=lambda item: item[1]))
    return block


def _key_rank(row: dict[str, Any], key: str) -> float:
    for rank, name in enumerate(row):
        if name == key:
            return rank
    groups = row.get(GROUP_LRS)
    if key.startswith(GROUP_LR_PREFIX) and isinstance(groups, dict):
        # a group's lr sits where `lrs` sits in the row, in the order of the groups
        names = list(groups)
        group = key[len(GROUP_LR_PREFIX):]
        if group in names:
            return _key_rank(row, GROUP_LRS) + (names.index(group) + 1) / (len(names) + 1)
    return len(row)


def group_lr_columns(column: Sequence[Any]) -> list[tuple[str, Sequence[Any]]]:
    """``(lr/<group>, its raw values)`` for every group named in a column of ``lrs`` values, in the
    order the groups first appear; a value that is no dict has no group's lr. A group's
    ``<group>/no_decay`` twin (its biases and norm weights, which always share its rate) is left out
    when the group is there: it would only double the work and the sidecar."""
    if set(map(type, column)) != {dict}:
        column = [value if type(value) is dict else {} for value in column]
    names = [name for name in dict.fromkeys(chain.from_iterable(column)) if type(name) is str]
    present = set(names)
    out = []
    for name in names:
        if name.endswith(NO_DECAY) and name[: -len(NO_DECAY)] in present:
            continue
        try:
            values = list(map(itemgetter(name), column))
        except KeyError:  # a group that is not in every row (added at run time)
            values = list(map(methodcaller("get", name), column))
        out.append((f"{GROUP_LR_PREFIX}{name}", values))
    return out


def _groups(rows: list[dict[str, Any]]) -> list[tuple[np.ndarray, list[dict[str, Any]], tuple[str, ...], list[Sequence[Any]]]]:
    """The rows grouped by key set: (their positions, the rows, the keys, one column per key)."""
    n = len(rows)
    lens = np.fromiter(map(len, rows), dtype=np.intp, count=n)
    if (lens == lens[0]).all():
        by_len = [(np.arange(n), rows)]
    else:
        by_len = []
        for length in np.unique(lens):
            mask = lens == length
            by_len.append((np.flatnonzero(mask), list(compress(rows, mask.tolist()))))
    out = []
    for index, part in by_len:
        keys = tuple(part[0])
        try:
            # Every row has as many keys as the first and all of the first's: the same key set.
            out.append((index, part, keys, _columns(part, keys)))
            continue
        except KeyError:
            pass
        # Same number of keys, not the same keys: one group per exact key sequence.
        seen: dict[tuple[str, ...], int] = {}
        codes = np.fromiter((seen.setdefault(tuple(row), len(seen)) for row in part), dtype=np.intp, count=len(part))
        for keys, code in seen.items():
            mask = codes == code
            own = list(compress(part, mask.tolist()))
            out.append((index[mask], own, keys, _columns(own, keys)))
    return out


def _columns(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[Sequence[Any]]:
    """One column (the values in row order) per key; KeyError when a row lacks one."""
    # Key by key: measured faster than one itemgetter of every key per row and a transpose.
    return [list(map(itemgetter(key), rows)) for key in keys]


def numbers(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(values, their positions or None for all) of the points among raw values; None if none."""
    try:
        # One C-level pass converts ints and floats and rejects every other type but bool.
        values = np.frombuffer(array("d", raw))
    except (TypeError, OverflowError):
        return _numbers_one_by_one(raw)
    # bool is an int to array(): only a value of exactly 0 or 1 can have been one.
    suspects = np.flatnonzero((values == 0.0) | (values == 1.0))
    if suspects.size and bool in set(map(type, map(raw.__getitem__, suspects.tolist()))):
        return _numbers_one_by_one(raw)
    return values, None


def _numbers_one_by_one(raw: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None] | None:
    if set(map(type, raw)).isdisjoint(_MAYBE_NUMBER):
        return None  # nested dicts, lists, nulls, bools: no point, without a look at each value
    converted = list(map(to_float, raw))
    keep = [value is not None for value in converted]
    if all(keep):
        return np.array(converted, dtype=np.float64), None
    rows = np.flatnonzero(keep)
    if not rows.size:
        return None
    return np.array(list(compress(converted, keep)), dtype=np.float64), rows


def _coordinate(raw: Sequence[Any] | None, n: int) -> np.ndarray:
    found = None if raw is None else numbers(raw)
    if found is None:
        return np.full(n, np.nan)
    values, at = found
    if at is None:
        return values
    out = np.full(n, np.nan)
    out[at] = values
    return out


def _split_names(raw: Sequence[Any] | None, n: int) -> tuple[list[str], np.ndarray | None]:
    """(the splits in order of first appearance, each row's split as an index in that list or None
    when there is one split)."""
    if raw is None:
        return ["train"], None
    try:
        kinds = set(raw)
        plain = all(type(kind) is str for kind in kinds)
    except TypeError:  # an unhashable split (a list...) is known by its text, like any other
        plain = False
    if not plain:
        raw = list(map(str, raw))
        kinds = set(raw)
    if len(kinds) == 1:
        return [raw[0]], None
    order = sorted(kinds, key=raw.index)
    code = {kind: i for i, kind in enumerate(order)}
    return order, np.fromiter(map(code.__getitem__, raw), dtype=np.intp, count=n)


def _read_group(
    index: np.ndarray,
    rows: list[dict[str, Any]],
    keys: tuple[str, ...],
    columns: list[Sequence[Any]],
    pieces: dict[tuple[str, str], list[Points]],
    block: Block,
) -> None:
    """Add one group of rows with the same key set to ``pieces`` and ``block``."""
    n = len(rows)
    raw = dict(zip(keys, columns))
    coords = np.stack([_coordinate(raw.get(name), n) for name in COORDINATES[:3]])
    splits, codes = _split_names(raw.get("split"), n)
    metrics = []
    for key, column in raw.items():
        if key in COORDINATES:
            continue
        if key == GROUP_LRS:
            for name, values in group_lr_columns(column):
                found = numbers(values)
                if found is not None:
                    metrics.append((name, found))
            continue
        found = numbers(column)
        if found is not None:
            metrics.append((key, found))
    matrices = raw.get("confusion")
    for s, split in enumerate(splits):
        # Positions (in this group) of this split's rows.
        mine = None if codes is None else np.flatnonzero(codes == s)
        first = int(index[0] if mine is None else index[mine[0]])
        last = n - 1 if mine is None else int(mine[-1])
        if split not in block.first_row or first < block.first_row[split]:
            block.first_row[split] = first
        if split not in block.last_row or int(index[last]) > block.last_row[split][0]:
            block.last_row[split] = (int(index[last]), rows[last])
        for key, (values, at) in metrics:
            if mine is None:
                chosen = at
            elif at is None:
                chosen, values = mine, values[mine]
            else:
                keep = np.isin(at, mine)
                chosen, values = at[keep], values[keep]
                if not chosen.size:
                    continue
            if chosen is None:
                points = Points(index, coords, values)
            else:
                points = Points(index[chosen], coords[:, chosen], values)
            pieces.setdefault((split, key), []).append(points)
        if matrices is not None:
            _note_confusion(block, split, matrices, index, mine)


def _is_matrix(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(row, list) for row in value)


def _note_confusion(block: Block, split: str, matrices: Sequence[Any], index: np.ndarray, mine: np.ndarray | None) -> None:
    positions = range(len(matrices)) if mine is None else mine.tolist()
    # From both ends: the newest matrix is what is shown, the first one only orders new splits.
    last = next((i for i in reversed(positions) if _is_matrix(matrices[i])), None)
    if last is None:
        return
    first = next(i for i in positions if _is_matrix(matrices[i]))
    found = (int(index[first]), int(index[last]), matrices[last])
    old = block.confusion.get(split)
    if old is not None:
        found = (min(old[0], found[0]), *max(old[1:], found[1:], key=lambda item: item[0]))
    block.confusion[split] = found
