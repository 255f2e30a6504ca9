"""Short text forms of numbers the app and the printed commands share: counts and sparklines (torch-free)."""

from __future__ import annotations

import math
from typing import Any, Iterable

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def format_count(n: Any, missing: str = "—") -> str:
    """A count in a short form: ``268``, ``45.3K``, ``11.2M``, ``1.5B``; ``missing`` when not a number."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n):
        return missing
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def sparkline(values: Iterable[Any], *, log: bool = False) -> str:
    """Block characters scaled between the values' minimum and maximum, one per value.

    A value that cannot be drawn (not a number, not finite, or not > 0 on a ``log`` scale — norms span
    decades) is a space, so the others keep their place; a flat line sits in the middle. Empty when
    nothing can be drawn.
    """
    scaled: list[float | None] = []
    for value in values:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok and log:
            ok = value > 0
        scaled.append((math.log10(value) if log else float(value)) if ok else None)
    drawn = [x for x in scaled if x is not None]
    if not drawn:
        return ""
    lo, hi = min(drawn), max(drawn)
    top = len(SPARK_CHARS) - 1
    if hi == lo:
        return "".join(" " if x is None else SPARK_CHARS[top // 2] for x in scaled)
    return "".join(" " if x is None else SPARK_CHARS[int((x - lo) / (hi - lo) * top + 0.5)] for x in scaled)
