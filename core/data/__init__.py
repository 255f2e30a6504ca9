"""Datasets, preprocessing, augmentation and loaders (see docs/architecture.md, "Data").

``build_data(cfg.data, seed)`` gives a :class:`DataBundle`; ``build_loader(...)`` an
:class:`EpochLoader` whose batches are a function of ``(seed, epoch)`` only.

Modules: ``build`` (build_data), ``sources`` (shapes, torchvision sets, imagefolder, digits),
``shapes`` (the procedural generator), ``tabular`` (csv cleaning), ``user`` (datasets from the user's
code: ``data.source: ./data.py:make_data``), ``transforms`` (torchvision v2
pipelines), ``stats`` (normalize: auto), ``splits``, ``datasets`` (per-sample seeding), ``loader``,
and for viewers ``render`` (half-block ``SampleGrid``) and ``summary`` (Rich tables and the preview),
which use Rich only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.data.build import build_data
    from core.data.bundle import DataBundle
    from core.data.loader import EpochLoader, EpochSampler, build_loader

__all__ = ["DataBundle", "EpochLoader", "EpochSampler", "build_data", "build_loader"]

_HOMES = {
    "build_data": "core.data.build",
    "DataBundle": "core.data.bundle",
    "EpochLoader": "core.data.loader",
    "EpochSampler": "core.data.loader",
    "build_loader": "core.data.loader",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that viewers can import core.data.render / core.data.summary without torch.
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'core.data' has no attribute {name!r}")
