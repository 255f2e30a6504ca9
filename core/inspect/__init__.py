"""Checkpoint inspection: safe loading, summaries, tensor statistics, diffs and exports.

Loading never executes pickled code unless the caller asks for it with ``unsafe=True``; the
summary reads shapes and dtypes only (torch zip files through a torch-free restricted unpickler,
safetensors from their JSON headers), and tensor data is read when a statistic, a diff or an
export needs it. Loading and summarising never import torch; statistics, diffs and exports
(whose modules are imported on first use, below) do.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from core.inspect.loading import LoadedCheckpoint, load_checkpoint
from core.inspect.summary import SUMMARY_SCHEMA, summarize
from core.inspect.tensors import TensorInfo, TensorSource

# Names whose modules import torch: resolved on first access so `ftui inspect --json` never pays
# torch's start-up (~2 s CPU, ~640 MB RSS) for a summary.
_LAZY = {
    "DiffReport": "core.inspect.diff",
    "TensorDiff": "core.inspect.diff",
    "diff_checkpoints": "core.inspect.diff",
    "EXPORT_FORMATS": "core.inspect.export",
    "export_weights": "core.inspect.export",
    "TensorStats": "core.inspect.stats",
    "tensor_stats": "core.inspect.stats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'core.inspect' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "EXPORT_FORMATS",
    "SUMMARY_SCHEMA",
    "DiffReport",
    "LoadedCheckpoint",
    "TensorDiff",
    "TensorInfo",
    "TensorSource",
    "TensorStats",
    "diff_checkpoints",
    "export_weights",
    "load_checkpoint",
    "summarize",
    "tensor_stats",
]
