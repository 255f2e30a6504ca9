"""Compare the LoRA adapters of two checkpoints (``ftui diff A B``).

An adapter's factors are not unique (B·A equals (B·M)·(M⁻¹·A) for any invertible M), so comparing
``lora_A`` and ``lora_B`` tensor by tensor says little. What the adapter does to its layer is the
update ΔW = (alpha / rank) · B·A; this compares those, layer by layer: ||ΔW|| in A and in B, and
||ΔW_B − ΔW_A|| / ||ΔW_A||. Only the checkpoints' tensors are read (never PEFT, never user code).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from core.lora import names

_A = ("lora_A", "lora_embedding_A")
_B = ("lora_B", "lora_embedding_B")


def _factors(tensor_names: list[str]) -> dict[str, tuple[str, str]]:
    """Adapted layer -> (name of its A factor, name of its B factor)."""
    found: dict[str, dict[str, str]] = {}
    for name in tensor_names:
        layer = names.adapter_layer(name)
        if layer is None:
            continue
        part = name[len(layer) + 1:].split(".", 1)[0] if layer else name.split(".", 1)[0]
        if part in _A:
            found.setdefault(layer, {})["A"] = name
        elif part in _B:
            found.setdefault(layer, {})["B"] = name
    return {layer: (f["A"], f["B"]) for layer, f in found.items() if "A" in f and "B" in f}


def _scale(record: dict[str, Any] | None) -> float:
    record = record or {}
    rank, alpha = record.get("rank"), record.get("alpha")
    if isinstance(rank, (int, float)) and rank > 0 and isinstance(alpha, (int, float)):
        return float(alpha) / float(rank)
    return 1.0


def delta(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """ΔW = scale · B·A, with convolution and embedding factors flattened to matrices."""
    a64 = a.detach().to(torch.float64).reshape(a.shape[0], -1)
    b64 = b.detach().to(torch.float64).reshape(b.shape[0], -1)
    return scale * (b64 @ a64)


def compare_adapters(weights_a: Any, record_a: dict | None, weights_b: Any, record_b: dict | None) -> dict[str, Any] | None:
    """The adapter comparison of two checkpoints (``weights_*``: ``core.inspect`` tensor sources), or
    None when neither holds adapters."""
    pairs_a, pairs_b = _factors(weights_a.names()), _factors(weights_b.names())
    if not pairs_a and not pairs_b:
        return None
    scale_a, scale_b = _scale(record_a), _scale(record_b)
    layers = []
    for layer in list(pairs_a) + [k for k in pairs_b if k not in pairs_a]:
        entry: dict[str, Any] = {"layer": layer}
        da = delta(weights_a.get(pairs_a[layer][0]), weights_a.get(pairs_a[layer][1]), scale_a) if layer in pairs_a else None
        db = delta(weights_b.get(pairs_b[layer][0]), weights_b.get(pairs_b[layer][1]), scale_b) if layer in pairs_b else None
        entry["norm_a"] = float(da.norm()) if da is not None else None
        entry["norm_b"] = float(db.norm()) if db is not None else None
        entry["rank_a"] = int(weights_a.get(pairs_a[layer][0]).shape[0]) if layer in pairs_a else None
        entry["rank_b"] = int(weights_b.get(pairs_b[layer][0]).shape[0]) if layer in pairs_b else None
        if da is None:
            entry["status"] = "added"
        elif db is None:
            entry["status"] = "removed"
        elif da.shape != db.shape:
            entry["status"] = "shape_changed"
        else:
            diff = float((db - da).norm())
            base = entry["norm_a"]
            entry["status"] = "unchanged" if diff == 0 else "changed"
            entry["delta_change"] = diff
            entry["rel_change"] = diff / base if base else (None if diff else 0.0)
            if entry["rel_change"] is not None and not math.isfinite(entry["rel_change"]):
                entry["rel_change"] = None
        layers.append(entry)
    summary = lambda r: None if not r else {k: r.get(k) for k in ("rank", "alpha", "dropout", "target")}  # noqa: E731
    return {
        "a": summary(record_a),
        "b": summary(record_b),
        "layers": layers,
        "counts": {s: sum(1 for e in layers if e["status"] == s)
                   for s in ("unchanged", "changed", "shape_changed", "added", "removed")},
    }
