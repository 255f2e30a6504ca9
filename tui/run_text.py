"""A run's facts as short text — durations, metric values, epochs, the best metric (no NumPy).

The runs table and ``ftui runs ls`` use these without loading what the dashboard's plots need.
"""

from __future__ import annotations

import math
from typing import Any

from core.runs import ACTIVE_STATUSES
from core.scalars import to_float


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour); "—" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(math.floor(seconds + 0.5))  # half up: round(8.5) is 8, and compare (to 0.1 s) read 0:08 for 0:09
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_value(value: float | None) -> str:
    """A metric value in a short, stable form."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3e}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4f}"


def display_epoch(info: dict[str, Any]) -> str:
    """``E/N`` as a person counts: the epoch in progress (1-based) while active, and after the end the
    epoch the run was in — the last completed one, or the one it stopped in part-way.

    ``run.json`` stores completed epochs and the batches done in the next one (docs/run-format.md); the
    headless progress line shows the epoch in progress, and so does this, so the epoch shown never goes
    back when a run stops mid-epoch.
    """
    epoch, epochs = info.get("epoch"), info.get("epochs")
    if not isinstance(epoch, int):
        return f"—/{epochs if epochs is not None else '—'}"
    shown = epoch
    batch = info.get("batch")
    in_progress = info.get("status") in ACTIVE_STATUSES and info.get("started")
    if in_progress or (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0):
        shown = epoch + 1 if not isinstance(epochs, int) else min(epoch + 1, epochs)
    return f"{shown}/{epochs if epochs is not None else '—'}"


def format_best(best: Any) -> str:
    """``run.json``'s ``best`` (a number or ``{"metric", "value", ...}``) as short text."""
    if isinstance(best, dict):
        value = to_float(best.get("value"))
        metric = best.get("metric") or best.get("monitor") or ""
        text = format_value(value) if value is not None else "—"
        return f"{metric} {text}".strip()
    value = to_float(best)
    return format_value(value) if value is not None else "—"


def trainable_share(model: dict[str, Any] | None) -> str | None:
    """``"0.9 %"``: trainable over total parameters of a layer tree (model.json); None when all train."""
    if not model:
        return None
    total, trainable = model.get("total_params"), model.get("trainable_params")
    if not isinstance(total, (int, float)) or not isinstance(trainable, (int, float)) or total <= 0:
        return None
    if trainable >= total:
        return None
    share = 100.0 * trainable / total
    return f"{share:.2g} %" if share < 10 else f"{share:.0f} %"
