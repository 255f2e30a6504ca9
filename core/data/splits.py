"""Seeded, stratified index splits, and the class counts of a split."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from core.data.seeding import mix_seed


def stratified_split(
    targets: Sequence[int], fractions: Sequence[float], seed: int
) -> list[list[int]]:
    """Split indices into a remainder plus one part per fraction, keeping class proportions.

    Each class contributes ``round(fraction * count)`` indices to each part (at least one when the
    class has enough samples to leave one in the remainder), drawn by a generator seeded from
    ``seed``. Returns ``[remainder, part_1, ...]``, each sorted.

    Args:
        targets: Label of every index.
        fractions: Fraction of each class that goes to each extra part.
        seed: Seed of the shuffle.
    """
    labels = np.asarray(targets)
    rng = np.random.default_rng(mix_seed(seed, 0x5917))
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        start = 0
        for k, frac in enumerate(fractions, start=1):
            take = int(round(frac * len(idx)))
            if take == 0 and frac > 0 and len(idx) - start > 1:
                take = 1
            take = min(take, max(len(idx) - start - 1, 0))
            parts[k].extend(idx[start : start + take].tolist())
            start += take
        parts[0].extend(idx[start:].tolist())
    return [sorted(p) for p in parts]


def class_counts(targets: Sequence[int], num_classes: int) -> list[int]:
    """Samples per class, index = label."""
    counts = Counter(targets)
    return [int(counts.get(c, 0)) for c in range(num_classes)]
