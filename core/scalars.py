"""Metric values as numbers: what a JSON line may hold for one (dependency-free, so readers that must
not load NumPy or torch share it)."""

from __future__ import annotations

from typing import Any


def to_float(value: Any) -> float | None:
    """A metric value as a float ("nan"/"inf" strings included), or None if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return None
