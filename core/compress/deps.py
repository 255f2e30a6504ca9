"""The optional libraries compression needs, imported on use with a fix when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from core.errors import UserError

EXTRA = "compress"
# module name -> pip distribution name
_DISTRIBUTIONS = {
    "torch_pruning": "torch-pruning",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "onnxscript": "onnxscript",
}


class MissingDependency(UserError):
    """An optional library is not installed (exit 2, with the pip command)."""


def require(module: str, *, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist = _DISTRIBUTIONS.get(module.split(".", 1)[0], module.split(".", 1)[0])
        raise MissingDependency(
            f"{purpose} needs the Python package '{dist}', which is not installed ({exc}). "
            f"Fix: pip install '{dist}' (or everything compression uses: pip install 'ftui[{EXTRA}]')."
        ) from None
