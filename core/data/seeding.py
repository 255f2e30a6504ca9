"""Cheap, well-mixed integer seeds derived from tuples such as ``(seed, epoch, index)``.

Per-sample seeding happens for every sample of every epoch, so it must cost microseconds; a
SplitMix64 finaliser mixes each part in, which gives independent-looking streams for neighbouring
indices (plain ``seed + index`` would correlate them).
"""

from __future__ import annotations

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (order matters); usable by torch and numpy."""
    h = 0x2545F4914F6CDD1D
    for p in parts:
        h = _splitmix(h ^ (int(p) & _MASK))
    return h >> 1
