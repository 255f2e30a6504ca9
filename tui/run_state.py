"""What the dashboard knows about one run: series, latest and best values, events (torch-free).

The reader worker polls the run directory with :class:`core.runs.RunReader`, which turns new bytes into
a :class:`~core.runs.RunDelta`; the screen folds each delta into one :class:`RunState` on the event
loop and its widgets draw from that state. Everything
shown is a function of the state, and time-dependent text of a finished run is computed from the times
in ``run.json`` (never from the clock), so a recorded run always looks the same.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.metrics_fold import Block
from core.runs import ACTIVE_STATUSES, RunDelta, live_status
from tui.downsample import Series
from core.metrics_fold import COORDINATES, GROUP_LR_PREFIX, fold_rows, to_float
from tui.run_text import display_epoch, format_best, format_duration, format_value, trainable_share

__all__ = ["COORDINATES", "RunDelta", "RunState", "display_epoch", "format_best", "format_duration", "format_value",
           "to_float"]

#: Metrics where lower is better; everything else named here is higher-is-better.
LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae")
HIGHER_IS_BETTER = ("acc", "top5", "precision", "recall", "f1", "auc")
MAX_EVENTS = 2000
#: The suffix of an optimizer group's weight-decay-free twin (``core.finetune.NO_DECAY``, kept here
#: because the app never imports torch): it always has its group's learning rate.
NO_DECAY = "/no_decay"
#: layers.jsonl records kept (the layer tree draws the last few as sparklines).
MAX_LAYER_RECORDS = 64


def better_direction(metric: str) -> str | None:
    """"min", "max", or None when "best" means nothing for this metric (lr, samples/s...)."""
    name = metric.lower()
    if name == "lr" or name.startswith(GROUP_LR_PREFIX):
        return None  # a group's name ("lr/top5_head") says nothing about which way is better
    if any(part in name for part in LOWER_IS_BETTER):
        return "min"
    if any(part in name for part in HIGHER_IS_BETTER):
        return "max"
    return None


def per_class_from_confusion(matrix: list[list[float]]) -> list[tuple[float, float, float, int]]:
    """Per class (precision, recall, F1, support) from a confusion matrix (rows true, columns predicted)."""
    n = len(matrix)
    out = []
    for k in range(n):
        tp = float(matrix[k][k])
        support = sum(float(v) for v in matrix[k])
        predicted = sum(float(matrix[r][k]) for r in range(n))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append((precision, recall, f1, int(support)))
    return out


@dataclass
class HeaderFacts:
    """The dashboard header, as text."""

    name: str
    status: str
    epoch: str
    step: str
    elapsed: str
    eta: str
    samples_per_s: str
    error: str | None
    trainable: str | None = None
    """The trainable share of the parameters ("0.9 %") when not all train (LoRA, frozen layers)."""


class RunState:
    """Everything the dashboard draws, folded from :class:`RunDelta` values."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.series: dict[tuple[str, str], Series] = {}
        self.latest: dict[tuple[str, str], float] = {}
        self.best: dict[tuple[str, str], float] = {}
        self.last_row: dict[str, dict[str, Any]] = {}
        self.confusion: dict[str, list[list[float]]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.events_total = 0
        self.system: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.recent_metrics: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        """The newest raw metrics rows (the system panel's diagnostics read data_wait from them)."""
        self.layers: deque[dict[str, Any]] = deque(maxlen=MAX_LAYER_RECORDS)
        self.layers_total = 0
        self.model: dict[str, Any] | None = None
        """The layer tree (model.json), replaced whole when the trainer rewrites it."""
        self.stdout = ""
        self.bad_lines = 0
        self.deleted = False
        self.version = 0
        """Bumped on every change, so widgets redraw only when something is new."""

    @property
    def status(self) -> str:
        """The live status (``lost`` for an active run whose process is gone)."""
        return live_status(self.info) if self.info else "unknown"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def apply(self, delta: RunDelta) -> None:
        """Fold one delta in."""
        if delta.info is not None:
            self.info = delta.info
        if delta.metric_columns is not None:
            self._add_block(delta.metric_columns)
        self._add_metrics(delta.metrics)
        self.recent_metrics.extend(delta.recent_metrics)
        self.recent_metrics.extend(delta.metrics)
        self.events.extend(delta.events)
        self.events_total += len(delta.events)
        self.system.extend(delta.system)
        self.layers.extend(delta.layers)
        self.layers_total += len(delta.layers)
        if delta.model is not None:
            self.model = delta.model
        if delta.stdout is not None:
            self.stdout = delta.stdout
        self.bad_lines = delta.bad_lines
        self.deleted = self.deleted or delta.deleted
        self.version += 1

    def _add_metrics(self, rows: list[dict[str, Any]]) -> None:
        # Hot path of a large backlog without metrics.columns (a million rows): core.metrics_fold turns
        # the rows into NumPy points per series with C-level passes, so nothing here runs per row or
        # per value. Its orders are those of a row-by-row fold, so new series and splits enter these
        # dicts (and the dashboard's lists) in the same order.
        if rows:
            self._add_block(fold_rows(rows))

    def _add_block(self, block: Block) -> None:
        """Fold in the points of rows already read as columns (a fold of rows, or metrics.columns)."""
        for key, points in block.points.items():
            series = self.series.get(key)
            if series is None and points.packed is not None:
                self.series[key] = Series.adopt(points.packed, len(points.values))  # a backlog: no copy
            else:
                if series is None:
                    series = self.series[key] = Series()
                series.extend_columns(points.coords, points.values)
            self._note(key[0], key[1], points.values)
        for split in block.first_row:
            self.last_row[split] = block.last_row[split][1]
        for split, (_, _, matrix) in sorted(block.confusion.items(), key=lambda item: item[1][0]):
            self.confusion[split] = matrix

    def _note(self, split: str, metric: str, values: np.ndarray) -> None:
        """Latest and best of a series after ``values`` (its newest points, in order) were added."""
        key = (split, metric)
        self.latest[key] = float(values[-1])
        direction = better_direction(metric)
        if direction is None:
            return
        finite = values[np.isfinite(values)]
        if not finite.size:
            return
        value = float(finite.min() if direction == "min" else finite.max())
        old = self.best.get(key)
        if old is None or (value < old if direction == "min" else value > old):
            self.best[key] = value

    # ---- derived facts ------------------------------------------------------------------------

    def elapsed(self, clock: float | None = None) -> float | None:
        """Seconds from start to end (or to now while active); from run.json, never the clock when ended."""
        started = to_float(self.info.get("started"))
        if started is None:
            return None
        ended = to_float(self.info.get("ended"))
        if ended is None:
            if not self.active:
                # A lost run has no end time: its last record is the best guess, and it is stable.
                ended = self.last_time()
            else:
                ended = clock if clock is not None else time.time()
        return None if ended is None else max(0.0, ended - started)

    def last_time(self) -> float | None:
        """Time of the newest metrics row."""
        times = [to_float(r.get("time")) for r in self.last_row.values()]
        times = [t for t in times if t is not None]
        return max(times) if times else None

    def eta(self, clock: float | None = None) -> float | None:
        """Seconds left at this session's pace; None when unknown, paused or not active.

        The pace is steps per second since the process now training took over (``session_started``,
        ``session_step``), without the time pauses held it (``paused_seconds``): a resumed run's ETA
        does not count the hours it lay stopped, nor a pause that just ended. Runs recorded before
        those fields use the average since ``started``.
        """
        info = self.info
        if not self.active or info.get("paused"):
            return None
        step = to_float(info.get("step"))
        total = to_float(info.get("total_steps"))
        if not step or not total or step <= 0:
            return None
        since = to_float(info.get("session_started"))
        if since is not None:
            now = clock if clock is not None else time.time()
            done = step - (to_float(info.get("session_step")) or 0.0)
            spent = now - since - (to_float(info.get("paused_seconds")) or 0.0)
            if done <= 0 or spent <= 0:
                return None
            return max(0.0, spent / done * (total - step))
        elapsed = self.elapsed(clock)
        if elapsed is None:
            return None
        return max(0.0, elapsed / step * (total - step))

    def header(self, clock: float | None = None) -> HeaderFacts:
        """The facts of the header line."""
        info = self.info
        step, total = info.get("step"), info.get("total_steps")
        sps = self.latest.get(("train", "samples_per_s"))
        status = self.status
        eta = self.eta(clock)
        paused = status == "running" and bool(info.get("paused"))
        return HeaderFacts(
            name=str(info.get("name", "?")),
            # held by a `pause` control command: still `running` in run.json, but say so
            status="paused" if paused else status,
            epoch=display_epoch(info),
            step=f"{step if step is not None else '—'}/{total if total is not None else '—'}",
            elapsed=format_duration(self.elapsed(clock)),
            # a pause holds the clock, not the run's pace: neither a growing ETA nor a stale throughput
            eta="paused" if paused else (format_duration(eta) if eta is not None else ("done" if status == "finished" else "—")),
            samples_per_s="paused" if paused else (f"{sps:,.0f}" if sps is not None and math.isfinite(sps) else "—"),
            error=str(info["error"]) if info.get("error") else None,
            trainable=trainable_share(self.model),
        )

    def group_lrs(self) -> dict[str, float]:
        """The learning rate of every optimizer group at the newest train row (its ``lrs``); ``{}`` before
        the first one, or for a run recorded without them."""
        row = self.last_row.get("train") or {}
        lrs = row.get("lrs") if isinstance(row, dict) else None
        if not isinstance(lrs, dict):
            return {}
        return {str(k): float(v) for k, v in lrs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def lr_groups(self) -> dict[str, Series]:
        """The learning-rate series of each optimizer group (``train`` ``lr/<group>``), by group name, in
        the order the groups appeared; a ``/no_decay`` twin only when its group has no series of its own."""
        groups = {metric[len(GROUP_LR_PREFIX):]: s for (split, metric), s in self.series.items()
                  if split == "train" and metric.startswith(GROUP_LR_PREFIX) and len(s)}
        return {name: s for name, s in groups.items()
                if not (name.endswith(NO_DECAY) and name[: -len(NO_DECAY)] in groups)}

    def metric_rows(self) -> list[tuple[str, str, float | None, float | None]]:
        """(split, metric, latest, best) for the metrics table, grouped by split in a stable order
        (a group's ``/no_decay`` twin left out: it repeats its group's learning rate)."""
        order = {"train": 0, "val": 1, "test": 2}
        twins = {f"{GROUP_LR_PREFIX}{name}{NO_DECAY}" for name in self.lr_groups()}
        keys = sorted((k for k in self.latest if not (k[0] == "train" and k[1] in twins)),
                      key=lambda k: (order.get(k[0], 9), k[0], k[1]))
        return [(split, self._metric_label(split, metric), self.latest[(split, metric)], self.best.get((split, metric)))
                for split, metric in keys]

    def _metric_label(self, split: str, metric: str) -> str:
        """A group's learning rate that stopped being logged (its modules all moved to groups of their own
        by unfreezes) says until when: its latest value is not the rate anything trains at now."""
        if split != "train" or not metric.startswith(GROUP_LR_PREFIX):
            return metric
        series, overall = self.series.get((split, metric)), self.series.get((split, "lr"))
        if series is None or overall is None or not len(series) or not len(overall):
            return metric
        last, now = int(series.column("step")[-1]), int(overall.column("step")[-1])
        return f"{metric} (until step {last})" if last < now else metric

    def class_names(self, n: int) -> list[str]:
        """Class names from run.json, or ``0..n-1``."""
        names = self.info.get("class_names")
        if isinstance(names, list) and len(names) == n:
            return [str(x) for x in names]
        return [str(i) for i in range(n)]

