"""Statistics of one tensor, computed on demand (they read the tensor's data)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

# Above this many elements, float32 instead of float64 keeps the extra memory at one copy's size.
_FLOAT64_LIMIT = 50_000_000


@dataclass(frozen=True)
class TensorStats:
    """Summary statistics; ``mean``/``std``/``min``/``max``/``norm`` are over the finite values only."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    numel: int
    mean: float | None
    std: float | None  # population standard deviation (correction 0)
    min: float | None
    max: float | None
    abs_mean: float | None
    norm: float | None  # L2 norm
    zeros: int
    nan: int
    inf: int

    def as_dict(self) -> dict:
        """JSON form."""
        out = asdict(self)
        out["shape"] = list(self.shape)
        return out


def tensor_stats(tensor: torch.Tensor, name: str = "") -> TensorStats:
    """Compute the statistics of ``tensor`` (any dtype; complex tensors use their magnitude)."""
    t = tensor.detach()
    if t.is_complex():
        t = t.abs()
    work = torch.float64 if t.numel() <= _FLOAT64_LIMIT else torch.float32
    x = t.reshape(-1).to(work)
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    zeros = int((x == 0).sum())
    finite = x[torch.isfinite(x)] if (nan or inf) else x
    if finite.numel() == 0:
        mean = std = lo = hi = abs_mean = norm = None
    else:
        mean = float(finite.mean())
        std = float(finite.std(correction=0))
        lo, hi = float(finite.min()), float(finite.max())
        abs_mean = float(finite.abs().mean())
        norm = float(torch.linalg.vector_norm(finite))
    return TensorStats(
        name=name,
        shape=tuple(int(s) for s in tensor.shape),
        dtype=str(tensor.dtype).removeprefix("torch."),
        numel=int(tensor.numel()),
        mean=_clean(mean),
        std=_clean(std),
        min=_clean(lo),
        max=_clean(hi),
        abs_mean=_clean(abs_mean),
        norm=_clean(norm),
        zeros=zeros,
        nan=nan,
        inf=inf,
    )


def _clean(value: float | None) -> float | None:
    """None for missing or non-finite results (keeps the JSON strict)."""
    return value if value is not None and math.isfinite(value) else None
