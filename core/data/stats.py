"""Per-channel statistics of image datasets (what ``normalize: auto`` fits on the training split)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from core.data.seeding import mix_seed

# Enough samples for mean/std to three decimals on every set we know, at a bounded cost.
MAX_STAT_SAMPLES = 2000


def channel_stats(
    base: Any,
    indices: list[int],
    transform: Callable[[Any], torch.Tensor],
    *,
    seed: int,
    max_samples: int = MAX_STAT_SAMPLES,
) -> dict:
    """Mean and std per channel over (a seeded subset of at most ``max_samples`` of) ``indices``.

    Args:
        base: Dataset whose items are ``(image, label)``.
        indices: The training split's indices into ``base``.
        transform: Deterministic pipeline that yields float ``(C, H, W)`` tensors in [0, 1].
        seed: Seed of the subset.
        max_samples: Cap on samples read.

    Returns:
        ``{"mean": [...], "std": [...], "samples": n}`` (population std over all pixels).
    """
    if len(indices) > max_samples:
        rng = np.random.default_rng(mix_seed(seed, 0x57A7))
        chosen = sorted(rng.choice(len(indices), size=max_samples, replace=False).tolist())
        indices = [indices[i] for i in chosen]
    total = sq = None
    count = 0
    for i in indices:
        x = transform(base[i][0]).to(torch.float64)
        flat = x.reshape(x.shape[0], -1)
        s, s2 = flat.sum(1), (flat * flat).sum(1)
        total = s if total is None else total + s
        sq = s2 if sq is None else sq + s2
        count += flat.shape[1]
    assert total is not None and sq is not None
    mean = total / count
    var = (sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-6)  # a constant channel must not divide by zero
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std], "samples": len(indices)}
