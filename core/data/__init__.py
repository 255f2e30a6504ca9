"""Datasets, preprocessing, augmentation and loaders (see docs/architecture.md, "Data").

``build_data(cfg.data, seed)`` gives a :class:`DataBundle`; ``build_loader(...)`` an
:class:`EpochLoader` whose batches are a function of ``(seed, epoch)`` only.

Modules: ``build`` (build_data), ``sources`` (shapes, torchvision sets, imagefolder, digits),
``shapes`` (the procedural generator), ``tabular`` (csv cleaning), ``transforms`` (torchvision v2
pipelines), ``stats`` (normalize: auto), ``splits``, ``datasets`` (per-sample seeding), ``loader``,
and for viewers ``render`` (half-block ``SampleGrid``) and ``summary`` (Rich tables and the preview),
which use Rich only.
"""

from __future__ import annotations

from core.data.build import build_data
from core.data.bundle import DataBundle
from core.data.loader import EpochLoader, EpochSampler, build_loader

__all__ = ["DataBundle", "EpochLoader", "EpochSampler", "build_data", "build_loader"]
