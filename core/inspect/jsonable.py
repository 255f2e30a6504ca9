"""Turn checkpoint contents (tensors, numbers, nested containers) into strict JSON values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.inspect.tensors import is_tensor

# Small tensors (a scalar metric, a best score) are shown as values; larger ones by shape only.
_SMALL_TENSOR = 16


def to_jsonable(obj: Any, *, depth: int = 0) -> Any:
    """A JSON-safe copy: tensors become numbers or ``{"tensor": shape, "dtype"}``, NaN/inf become None."""
    if depth > 32:
        return "..."
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if is_tensor(obj):  # a torch tensor or a torchzip TensorRecord: both have this much of its API
        if obj.numel() <= _SMALL_TENSOR and not obj.is_complex():
            value = obj.tolist()
            return to_jsonable(value, depth=depth + 1)
        return {"tensor": list(obj.shape), "dtype": str(obj.dtype).removeprefix("torch.")}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, depth=depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v, depth=depth + 1) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        try:
            return to_jsonable(obj.item(), depth=depth + 1)
        except Exception:  # noqa: BLE001 - fall through to repr
            pass
    return repr(obj)[:200]


def as_number(value: Any) -> float | int | None:
    """A finite number from an int, float or one-element tensor, else None."""
    if is_tensor(value) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None
