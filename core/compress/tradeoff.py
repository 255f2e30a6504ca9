"""The trade-off table of ``ftui compress``: its JSON file, written by the pipeline, read without torch.

``tradeoff.json`` (in the output folder) holds one row per variant — the original first — with what a
deployment decision needs: parameters, size, sparsity, FLOPs, test accuracy and its change, and the
median CPU latency at batch 1 and 64 in PyTorch and in ONNX Runtime, all measured with the same
thread count. The keys are documented in ``docs/compress.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRADEOFF_JSON = "tradeoff.json"
TRADEOFF_FORMAT = 1


def write_tradeoff(path: Path, table: dict[str, Any]) -> None:
    """Write the table atomically."""
    from core.runs import atomic_write_text

    atomic_write_text(path, json.dumps(table, indent=2) + "\n")


def read_tradeoff(path: Path | str) -> dict[str, Any] | None:
    """The table in ``path`` (a tradeoff.json or the folder holding one); None when absent or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / TRADEOFF_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        return None
    return data


def find_tradeoff(checkpoint: Path | str, record: Any = None) -> Path | None:
    """The tradeoff.json that describes ``checkpoint``: beside it (a compressed variant), or in the
    ``compressed/`` folder of its run (the original's run directory)."""
    checkpoint = Path(checkpoint)
    candidates = [checkpoint.parent / TRADEOFF_JSON]
    if checkpoint.parent.name == "checkpoints":
        candidates.append(checkpoint.parent.parent / "compressed" / TRADEOFF_JSON)
    candidates.append(checkpoint.parent / f"{checkpoint.stem}-compressed" / TRADEOFF_JSON)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None
