"""Text of a runs listing: the cells of the app's runs table and of ``ftui runs ls`` (no Textual).

Columns are identified by keys: the fixed ones in :data:`BASE_COLUMNS`, and config keys (the
hyper-parameters that differ between the listed runs) by their dotted name.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from core.run_index import Listing, RunEntry
from tui.run_text import display_epoch, format_duration, format_value

#: (key, header) of the columns every listing has, in order.
BASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("status", "status"),
    ("progress", "epoch · step"),
    ("best", "best"),
    ("duration", "duration"),
    ("started", "started"),
    ("model", "model"),
    ("dataset", "dataset"),
    ("tags", "tags"),
)


def columns_of(listing: Listing) -> list[str]:
    """The columns of a listing, in order: the run's facts, the hyper-parameters that differ right after
    its duration (what a comparison looks at first), tags when any run has some, then when, what model
    and what data."""
    tags = ["tags"] if any(e.meta.tags for e in listing.entries) else []
    return ["name", "status", "progress", "best", "duration", *listing.hparams, *tags, "started", "model", "dataset"]


def format_param(value: Any) -> str:
    """A config value in a table cell: short numbers (``3e-04``, ``0.9``), lists as JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}".replace("e-0", "e-").replace("e+0", "e+")
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def header(column: str) -> str:
    """A column's header: the fixed header, or the config key's last part(s)."""
    for key, label in BASE_COLUMNS:
        if key == column:
            return label
    parts = column.split(".")
    # `optim.lr` reads better than `lr`; deeper keys keep their two last parts
    return ".".join(parts[-2:])


def cell(entry: RunEntry, column: str, clock: float | None = None) -> str:
    """The text of one cell."""
    info = entry.info
    if column == "name":
        return entry.name
    if column == "status":
        return "paused" if entry.status == "running" and info.get("paused") else entry.status
    if column == "progress":
        if info.get("epoch") is None and info.get("step") is None:
            return "—"
        step = info.get("step")
        return f"{display_epoch(info)} · {step if step is not None else '—'}"
    if column == "best":
        value = entry.best_value
        return format_value(value) if value is not None else "—"
    if column == "duration":
        return format_duration(entry.duration(clock))
    if column == "started":
        started = info.get("started") or info.get("created")
        return time.strftime("%m-%d %H:%M", time.localtime(started)) if isinstance(started, (int, float)) else "—"
    if column in ("model", "dataset"):
        value = entry.field(column)
        return str(value) if value else "—"
    if column == "tags":
        return " ".join(entry.meta.tags) or ""
    return format_param(entry.config.get(column))


def best_header(entries: list[RunEntry]) -> str:
    """``best val/acc`` when every run monitors the same metric, else ``best``."""
    metrics = {e.best_metric for e in entries if e.best_metric}
    return f"best {metrics.pop()}" if len(metrics) == 1 else "best"


def entry_json(entry: RunEntry, hparams: list[str]) -> dict[str, Any]:
    """A run as ``ftui runs ls --json`` prints it."""
    return {
        "name": entry.name,
        "path": str(entry.path),
        "status": entry.status,
        "epoch": entry.info.get("epoch"),
        "epochs": entry.info.get("epochs"),
        "step": entry.info.get("step"),
        "best": entry.info.get("best"),
        "duration": entry.duration(),
        "started": entry.info.get("started"),
        "model": entry.field("model"),
        "dataset": entry.field("dataset"),
        "tags": list(entry.meta.tags),
        "notes": entry.notes,
        "archived": entry.meta.archived,
        "sweep": entry.sweep,
        "hparams": {k: entry.config.get(k) for k in hparams},
    }
