"""The dashboard's column-wise fold of metrics rows gives exactly what a row-by-row fold gives."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from tui.downsample import Series
from core.runs import RunDelta
from tui.run_state import RunState, better_direction

COORDS = ("step", "epoch", "time", "split")


def _number(value: Any) -> float | None:
    """The metric rule, written out plainly: ints and floats, "nan"/"inf"/"-inf"; not bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None


class Reference:
    """A straightforward fold: every row, every key, one point at a time."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
        self.latest: dict[tuple[str, str], float] = {}
        self.best: dict[tuple[str, str], float] = {}
        self.last_row: dict[str, dict[str, Any]] = {}
        self.confusion: dict[str, list[list[Any]]] = {}

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            split = str(row.get("split", "train"))
            coords = [_number(row.get(name)) for name in COORDS[:3]]
            coords = [math.nan if c is None else c for c in coords]
            for key, raw in _points_of(row):
                value = None if key in COORDS else _number(raw)
                if value is None:
                    continue
                self.series.setdefault((split, key), []).append((*coords, value))
                self.latest[(split, key)] = value
                direction = better_direction(key)
                if direction and math.isfinite(value):
                    old = self.best.get((split, key))
                    if old is None or (value < old if direction == "min" else value > old):
                        self.best[(split, key)] = value
            self.last_row[split] = row
            matrix = row.get("confusion")
            if isinstance(matrix, list) and matrix and all(isinstance(r, list) for r in matrix):
                self.confusion[split] = matrix


def _points_of(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """A row's keys and values in order, each group of ``lrs`` standing in its place as ``lr/<group>``."""
    out: list[tuple[str, Any]] = []
    for key, raw in row.items():
        if key == "lrs":
            if isinstance(raw, dict):  # a /no_decay twin stands for its group only when the group is absent
                out.extend((f"lr/{group}", lr) for group, lr in raw.items()
                           if not (group.endswith("/no_decay") and group.removesuffix("/no_decay") in raw))
        else:
            out.append((key, raw))
    return out


def _value(rng: random.Random) -> Any:
    kind = rng.random()
    if kind < 0.55:
        return rng.uniform(-3, 3)
    if kind < 0.65:
        return rng.randrange(-5, 5)  # ints, 0 and 1 among them
    if kind < 0.72:
        return rng.choice(["nan", "inf", "-inf"])
    if kind < 0.78:
        return rng.choice([True, False])
    if kind < 0.82:
        return rng.choice(["1.5", "NaN", "abc", ""])  # strings that are not points
    if kind < 0.86:
        return None
    if kind < 0.9:
        return 0.0 if rng.random() < 0.5 else 1.0
    if kind < 0.95:
        return {"default": rng.random()}
    return [rng.random(), rng.random()]


def _varied_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = ["loss", "acc", "lr", "samples_per_s", "f1_macro", "grad_norm", "top5"]
    rows: list[dict[str, Any]] = []
    keys = names[:3]
    for i in range(n):
        if rng.random() < 0.02:  # the key set changes now and then, and stays for a while
            keys = rng.sample(names, rng.randrange(0, len(names) + 1))
        split = rng.choices(["train", "val", "test", None, 3], weights=[80, 12, 4, 2, 2])[0]
        row: dict[str, Any] = {}
        if rng.random() < 0.97:
            row["step"] = i * 10
        if rng.random() < 0.95:
            row["epoch"] = i // 100 if rng.random() < 0.98 else "one"
        if rng.random() < 0.95:
            row["time"] = 1_700_000_000.0 + i * 0.5 if rng.random() < 0.98 else True
        if split is not None:
            row["split"] = split
        for key in keys:
            row[key] = rng.uniform(0, 2) if rng.random() < 0.8 else _value(rng)
        if rng.random() < 0.1:
            row[rng.choice(names)] = _value(rng)  # one odd value in a known column
        if rng.random() < 0.05:
            # groups appear at run time (an unfreeze with an lr), with odd values now and then
            row["lrs"] = {"default": 0.1, "head": 0.01, "head/no_decay": 0.01, "other/no_decay": 0.2}
            if i > n // 2:
                row["lrs"]["unfrozen:stage3"] = rng.choice([0.001, "nan", None, True])
            if rng.random() < 0.1:
                row["lrs"] = rng.choice([{"head": 0.02, "default": 0.2}, {}, 0.5, ["default"]])
        if split == "val" or rng.random() < 0.02:
            row["per_class"] = {"precision": [rng.random() for _ in range(3)], "support": [10, 10, 10]}
            row["confusion"] = rng.choice(
                [[[rng.randrange(9) for _ in range(3)] for _ in range(3)], [], [1, 2], "x", [[1], 2]]
            )
        if rng.random() < 0.05:  # the same keys in another order
            row = dict(reversed(list(row.items())))
        rows.append(row)
    rows[5] = {}  # a row with no key at all
    rows[6] = {"loss": 0.5}  # a row with one key
    return rows


def _assert_same(state: RunState, ref: Reference) -> None:
    assert list(state.series) == list(ref.series)
    for key, points in ref.series.items():
        expected = np.array(points, dtype=np.float64).reshape(-1, 4)
        got = np.column_stack([state.series[key].column(c) for c in ("step", "epoch", "time", "value")])
        np.testing.assert_array_equal(got, expected, err_msg=str(key))
    assert list(state.latest) == list(ref.latest)
    for key, value in ref.latest.items():
        assert state.latest[key] == value or (math.isnan(value) and math.isnan(state.latest[key])), key
    assert state.best == ref.best  # its order follows the series (the first finite value may come later)
    assert list(state.last_row) == list(ref.last_row)
    assert all(state.last_row[s] is ref.last_row[s] for s in ref.last_row)
    assert list(state.confusion) == list(ref.confusion)
    assert all(state.confusion[s] is ref.confusion[s] for s in ref.confusion)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_fold_equals_the_row_by_row_reference(seed: int) -> None:
    rows = _varied_rows(4000, seed)
    state, ref = RunState(), Reference()
    # Blocks of every size: a single row, small polls, a large backlog, the rest.
    cuts = [0, 1, 2, 9, 40, 41, 1500, 2600, 2601, len(rows)]
    for a, b in zip(cuts, cuts[1:]):
        state.apply(RunDelta(metrics=rows[a:b]))
        ref.add(rows[a:b])
        _assert_same(state, ref)
    assert len(state.series) > 15 and {"train", "val", "test", "3"} <= set(state.last_row)


def test_recorder_shaped_rows_with_per_class_and_confusion() -> None:
    # What the recorder writes: train rows with lrs, a val row with per-class lists and a matrix.
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for i in range(3000):
        step = (i + 1) * 20
        if (i + 1) % 250 == 0:
            matrix = [[rng.randrange(50) for _ in range(4)] for _ in range(4)]
            rows.append({"step": step, "epoch": step // 93, "time": 1e9 + step, "split": "val", "loss": rng.random(),
                         "acc": rng.random(), "per_class": {"f1": [rng.random()] * 4}, "confusion": matrix})
        else:
            loss = "nan" if i == 1234 else rng.random()
            rows.append({"step": step, "epoch": step // 93, "time": 1e9 + step, "split": "train", "loss": loss,
                         "acc": rng.random(), "lr": 0.003, "lrs": {"default": 0.003}})
    state, ref = RunState(), Reference()
    for a in range(0, len(rows), 1100):
        state.apply(RunDelta(metrics=rows[a : a + 1100]))
        ref.add(rows[a : a + 1100])
    _assert_same(state, ref)
    at = sum(1 for r in rows[:1234] if r["split"] == "train")
    assert math.isnan(state.series[("train", "loss")].values[at])
    assert state.best[("train", "loss")] == min(r["loss"] for r in rows if r["split"] == "train" and r["loss"] != "nan")
    assert state.confusion["val"] is rows[-1]["confusion"]
    assert ("train", "lrs") not in state.series and ("val", "per_class") not in state.series
    # every group's learning rate is a series of its own, named as in TensorBoard
    assert state.series[("train", "lr/default")].values.tolist() == [0.003] * len(state.series[("train", "loss")])


def test_series_fed_by_columns_equals_series_fed_by_tuples() -> None:
    rng = np.random.default_rng(3)
    a, b = Series(capacity=2), Series(capacity=2)
    for k in (1, 5, 300, 2, 1000):
        block = rng.normal(size=(k, 4))
        a.extend(map(tuple, block))
        b.extend_columns(block[:, :3].T, block[:, 3])
    for name in ("step", "epoch", "time", "value"):
        np.testing.assert_array_equal(a.column(name), b.column(name))
    assert len(b) == 1308 and b.last() == a.last()
