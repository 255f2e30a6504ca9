"""Torch-free series storage and downsampling for live plots.

A run can log a million points; a plot is at most a few hundred cells wide. :class:`Series` keeps the
points in growable NumPy arrays (amortised O(1) appends, O(1) views), and :func:`minmax_downsample`
reduces them to two points per bucket (the minimum and the maximum, in x order) so spikes stay visible
and drawing costs the same whatever the length of the run. :func:`ema` is the smoothing the dashboard
offers (TensorBoard-style, debiased so the first points are not pulled towards zero).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

COLUMNS = ("step", "epoch", "time", "value")


class Series:
    """Append-only columns ``step``, ``epoch``, ``time``, ``value`` of one metric of one split."""

    def __init__(self, capacity: int = 256) -> None:
        self._data = np.empty((len(COLUMNS), max(8, capacity)), dtype=np.float64)
        self._n = 0
        self._smooth: dict[float, tuple[EmaState, list[np.ndarray]]] = {}

    @classmethod
    def adopt(cls, packed: np.ndarray, n: int) -> Series:
        """A series that takes over ``packed`` (``(4, capacity)`` float64, :data:`COLUMNS` in rows) holding
        ``n`` points, without copying them."""
        if packed.dtype != np.float64 or packed.ndim != 2 or packed.shape[0] != len(COLUMNS) or packed.shape[1] < n:
            raise ValueError(f"expected a (4, >= {n}) float64 array, got {packed.dtype} {packed.shape}")
        series = cls(capacity=8)
        series._data, series._n = packed, n
        return series

    def __len__(self) -> int:
        return self._n

    def append(self, step: float, epoch: float, time: float, value: float) -> None:
        """Add one point."""
        self.extend([(step, epoch, time, value)])

    def extend(self, rows: Iterable[tuple[float, float, float, float]] | np.ndarray) -> None:
        """Add many points (tuples in :data:`COLUMNS` order, or an ``(n, 4)`` array)."""
        data = rows if isinstance(rows, np.ndarray) else list(rows)
        block = np.asarray(data, dtype=np.float64).reshape(-1, len(COLUMNS)).T
        self.extend_columns(block[:3], block[3])

    def extend_columns(self, coords: np.ndarray, values: np.ndarray) -> None:
        """Add many points given as columns: ``coords`` ``(3, n)`` (step, epoch, time) and ``values``."""
        k = len(values)
        if not k:
            return
        need = self._n + k
        if need > self._data.shape[1]:
            # Doubling keeps appends amortised O(1) even for a million single-point polls.
            grown = np.empty((len(COLUMNS), max(need, 2 * self._data.shape[1])), dtype=np.float64)
            grown[:, : self._n] = self._data[:, : self._n]
            self._data = grown
        self._data[:3, self._n : need] = coords
        self._data[3, self._n : need] = values
        self._n = need

    def column(self, name: str) -> np.ndarray:
        """A read-only view of one column (no copy)."""
        view = self._data[COLUMNS.index(name), : self._n]
        view.flags.writeable = False
        return view

    @property
    def values(self) -> np.ndarray:
        """The metric values."""
        return self.column("value")

    def smoothed(self, weight: float) -> np.ndarray:
        """The values smoothed by :func:`ema` with ``weight``, extended incrementally between calls."""
        if weight <= 0:
            return self.values
        cache = self._smooth.get(weight)
        if cache is None:
            cache = self._smooth[weight] = (EmaState(weight), [np.empty(0)])
        state, parts = cache
        done = sum(p.size for p in parts)
        if done < self._n:
            parts.append(state.update(self._data[3, done : self._n]))
            # Keep one contiguous array so the next call is a cheap view.
            parts[:] = [np.concatenate(parts)]
        return parts[0]

    def last(self) -> float | None:
        """The latest value, or None when empty."""
        return float(self._data[3, self._n - 1]) if self._n else None


_EMA_CHUNK = 256


class EmaState:
    """Running state of a debiased EMA so a growing series is smoothed in O(new points)."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.acc = 0.0
        self.norm = 0.0
        k = _EMA_CHUNK
        i = np.arange(k)
        lag = i[:, None] - i[None, :]
        # Lower-triangular kernel: out[i] = sum_j<=i (1-w) w^(i-j) v[j]; decay[i] = w^(i+1).
        self._kernel = np.where(lag >= 0, (1 - weight) * weight ** np.maximum(lag, 0), 0.0)
        self._decay = weight ** (i + 1.0)

    def update(self, values: np.ndarray) -> np.ndarray:
        """Smooth the next values; non-finite ones pass through without touching the average."""
        values = np.asarray(values, dtype=np.float64)
        out = values.copy()
        finite = np.flatnonzero(np.isfinite(values))
        v = values[finite]
        smooth = np.empty_like(v)
        for a in range(0, v.size, _EMA_CHUNK):
            c = v[a : a + _EMA_CHUNK]
            m = c.size
            kern, decay = self._kernel[:m, :m], self._decay[:m]
            acc = kern @ c + decay * self.acc
            norm = kern.sum(axis=1) + decay * self.norm
            smooth[a : a + m] = acc / norm
            self.acc, self.norm = float(acc[-1]), float(norm[-1])
        out[finite] = smooth
        return out


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average; ``weight`` in [0, 1), 0 returns the values unchanged.

    Non-finite values are carried through without polluting the average after them.
    """
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0 or values.size == 0:
        return values.copy()
    return EmaState(weight).update(values)


def minmax_downsample(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` points: per bucket of equal index width, its min and max in x order.

    The first and last points are always kept. Non-finite ``y`` values are dropped first (a plot can't
    draw them; the header and the metrics table still report them).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(y) & np.isfinite(x)
    if not finite.all():
        x, y = x[finite], y[finite]
    n = x.size
    if buckets < 1 or n <= 2 * buckets:
        return x.copy(), y.copy()
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    # reduceat gives per-bucket min/max in one pass; argmin/argmax need the explicit positions.
    lo_idx = np.empty(buckets, dtype=np.int64)
    hi_idx = np.empty(buckets, dtype=np.int64)
    for b in range(buckets):
        seg = y[edges[b] : edges[b + 1]]
        lo_idx[b] = edges[b] + int(np.argmin(seg))
        hi_idx[b] = edges[b] + int(np.argmax(seg))
    idx = np.unique(np.concatenate([lo_idx, hi_idx, [0, n - 1]]))
    return x[idx], y[idx]
