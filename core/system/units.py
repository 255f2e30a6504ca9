"""Human-readable telemetry figures; a missing figure reads as a dash, never as 0."""

from __future__ import annotations

from typing import Any

MISSING = "–"
GIB = 1024**3


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_gib(value: Any, digits: int = 1) -> str:
    """Bytes as GiB (``12.3``), or a dash."""
    return f"{value / GIB:.{digits}f}" if _is_num(value) else MISSING


def fmt_used_total(used: Any, total: Any) -> str:
    """``used/total GiB``, or a dash for an unknown part."""
    return f"{fmt_gib(used)}/{fmt_gib(total)} GiB"


def fmt_pct(value: Any) -> str:
    """``37%``, or a dash."""
    return f"{value:.0f}%" if _is_num(value) else MISSING


def fmt_unit(value: Any, unit: str, digits: int = 0) -> str:
    """``55°C``, ``123 W``, ``1410 MHz``, or a dash."""
    return f"{value:.{digits}f}{unit}" if _is_num(value) else MISSING


def ratio_pct(used: Any, total: Any) -> float | None:
    """``used / total`` in percent, or None when either is unknown."""
    if not (_is_num(used) and _is_num(total)) or not total:
        return None
    return 100.0 * used / total
