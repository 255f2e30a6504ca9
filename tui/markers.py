"""Event markers on plots: what was done to a run (unfreeze, freeze, lr change, pause, resume,
checkpoint, recompilation), placed on a plot's x axis so a bend in a curve can be read against it (torch-free).

Markers come from ``events.jsonl``; :func:`markers` turns events into :class:`Marker` values for one
x axis (step, epoch or wall time), merging the ones that fall on the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

#: kind -> (letter drawn on the plot, word in the legend). Checkpoints get no vertical line:
#: they happen every epoch and would hide the curves.
KINDS: dict[str, tuple[str, str]] = {
    "unfreeze": ("U", "unfreeze"),
    "freeze": ("F", "freeze"),
    "lr": ("L", "lr change"),
    "paused": ("P", "pause"),
    "unpaused": ("G", "go on (un-pause)"),
    "resumed": ("R", "resumed from a checkpoint"),
    "checkpoint": ("C", "checkpoint"),
    "compile": ("K", "recompiled"),
}
LINE_KINDS = ("unfreeze", "freeze", "lr", "paused", "unpaused", "resumed")


@dataclass(frozen=True)
class Marker:
    """One place on the x axis and what happened there."""

    x: float
    kinds: tuple[str, ...]

    @property
    def letters(self) -> str:
        return "".join(KINDS[k][0] for k in self.kinds)

    @property
    def line(self) -> bool:
        """Whether it deserves a vertical line (anything but checkpoints alone)."""
        return any(k in LINE_KINDS for k in self.kinds)


def event_kind(event: dict[str, Any]) -> str | None:
    """The marker kind of an event, or None when it is not marked."""
    kind = event.get("kind")
    if kind == "resumed":
        # runs of format 1 wrote `resumed` for an un-pause too (format 2 writes `unpaused`); only a
        # resume from a checkpoint names the checkpoint
        return "resumed" if event.get("checkpoint") else "unpaused"
    if kind == "compile":
        # a recompilation (a freeze, a new batch shape) costs seconds; the first compilation is the start
        return "compile" if event.get("recompile") else None
    return kind if kind in KINDS else None


def event_x(event: dict[str, Any], axis: str, info: dict[str, Any]) -> float | None:
    """Where an event sits on ``axis`` ("step", "epoch" or "time" in minutes since the start)."""
    if axis == "time":
        started, t = info.get("started"), event.get("time")
        if not isinstance(started, (int, float)) or not isinstance(t, (int, float)):
            return None
        return (float(t) - float(started)) / 60.0
    step = event.get("step")
    if not isinstance(step, (int, float)):
        return None
    if axis == "epoch":
        per_epoch = info.get("steps_per_epoch")
        if isinstance(per_epoch, (int, float)) and per_epoch > 0:
            return float(step) / float(per_epoch)
        epoch = event.get("epoch")
        return float(epoch) + 1.0 if isinstance(epoch, (int, float)) else None
    return float(step)


def markers(events: Iterable[dict[str, Any]], axis: str, info: dict[str, Any],
            x_range: tuple[float, float] | None = None) -> list[Marker]:
    """Markers of ``events`` on ``axis``, merged per x, inside ``x_range`` when given."""
    at: dict[float, list[str]] = {}
    for event in events:
        kind = event_kind(event)
        if kind is None:
            continue
        x = event_x(event, axis, info)
        if x is None or (x_range is not None and not x_range[0] <= x <= x_range[1]):
            continue
        kinds = at.setdefault(round(x, 6), [])
        if kind not in kinds:
            kinds.append(kind)
    return [Marker(x, tuple(sorted(kinds, key=list(KINDS).index))) for x, kinds in sorted(at.items())]


def legend(found: Iterable[Marker], width: int | None = None) -> str:
    """``U unfreeze · C checkpoint`` for the kinds present, in a fixed order; shorter forms when it must
    fit in ``width`` characters (plotext drops a title wider than its plot)."""
    kinds = [k for k in KINDS if k in {k for m in found for k in m.kinds}]
    forms = (
        " · ".join(f"{KINDS[k][0]} {KINDS[k][1]}" for k in kinds),
        " · ".join(f"{KINDS[k][0]} {SHORT[k]}" for k in kinds),
        " ".join(KINDS[k][0] for k in kinds),
    )
    for form in forms:
        if width is None or len(form) <= width:
            return form
    return ""


#: One-word names for narrow plots.
SHORT = {"unfreeze": "unfreeze", "freeze": "freeze", "lr": "lr", "paused": "pause", "unpaused": "go",
         "resumed": "resume", "checkpoint": "ckpt", "compile": "recompile"}


def draw_in_lane(plt: Any, found: list[Marker], x_lo: float, y_lo: float, y_hi: float, *, log: bool = False,
                 color: Any = "gray", rows: int | None = None, legend_rows: int = 0) -> bool:
    """Draw ``found`` on a plotext figure whose data spans ``y_lo..y_hi`` from ``x_lo``: a vertical line
    per marker (none for checkpoints alone) and its letters in a lane added below the data, where
    they hide neither the curves nor the legend (top left).

    ``rows`` is the plot's height inside its frame and ``legend_rows`` the lines of its legend: where
    the lane would run through the legend, only the lines are drawn and ``False`` says the letters were
    left out (so the caller leaves their legend out too). The y axis is labelled only where data can
    be, never at the lane's made-up values (a loss axis reading -0.24)."""
    letters = rows is None or rows > legend_rows
    if log and y_lo > 0 and y_hi > 0:
        ratio = (y_hi / y_lo) if y_hi > y_lo else 10.0
        lane, bottom = y_lo / ratio**0.1, y_lo / ratio**0.16
    else:
        span = (y_hi - y_lo) or (abs(y_hi) or 1.0)
        lane, bottom = y_lo - 0.1 * span, y_lo - 0.16 * span
        if letters:
            ticks = nice_ticks(y_lo, y_hi, max(2, min(6, (rows or 10) // 2 + 1)))
            plt.yticks(ticks, tick_labels(ticks))
    for marker in found:
        if marker.line:
            plt.vline(marker.x, color)
    if not letters:
        return False
    # an invisible point makes room for the lane (plotext's ylim breaks the legend on a log scale)
    plt.scatter([x_lo], [bottom], marker=" ")
    for marker in found:
        plt.text(marker.letters, marker.x, lane, color=color, alignment="center")
    return True


def nice_ticks(lo: float, hi: float, most: int) -> list[float]:
    """As many round values (1, 2 or 5 times a power of ten apart) from ``lo`` to ``hi`` as fit in
    ``most``, the closest spacing first."""
    if not hi > lo:
        return [lo]
    power = 10.0 ** math.floor(math.log10((hi - lo) / max(1, most)))
    for step in (f * power * scale for scale in (1, 10, 100) for f in (1, 2, 5)):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if 0 < last - first + 1 <= most:
            return [i * step for i in range(first, last + 1)]
    return [lo, hi]


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels with as many decimals as the ticks' spacing needs, all alike."""
    if len(ticks) < 2:
        return [f"{t:.3g}" for t in ticks]
    step = min(b - a for a, b in zip(ticks, ticks[1:]))
    if step >= 1e4 or step < 1e-4:
        return [f"{t:.1e}" if t else "0" for t in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t:.{decimals}f}" for t in ticks]
