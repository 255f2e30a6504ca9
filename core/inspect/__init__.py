"""Checkpoint inspection: safe loading, summaries, tensor statistics, diffs and exports.

Loading never executes pickled code unless the caller asks for it with ``unsafe=True``; the
summary reads shapes and dtypes only (tensors are memory-mapped or read from a safetensors
header), and tensor data is read when a statistic, a diff or an export needs it.
"""

from __future__ import annotations

from core.inspect.diff import DiffReport, TensorDiff, diff_checkpoints
from core.inspect.export import EXPORT_FORMATS, export_weights
from core.inspect.loading import LoadedCheckpoint, load_checkpoint
from core.inspect.stats import TensorStats, tensor_stats
from core.inspect.summary import SUMMARY_SCHEMA, summarize
from core.inspect.tensors import TensorInfo, TensorSource

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
