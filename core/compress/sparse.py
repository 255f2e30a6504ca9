"""Unstructured magnitude pruning with ``torch.nn.utils.prune``: zeros, not smaller tensors.

The smallest-magnitude weights over all convolution and Linear layers together
(``global_unstructured`` with ``L1Unstructured``) are set to zero and the re-parametrisation is
removed at once (``prune.remove``), so the state dict keeps its keys and shapes and every tool that
reads an ftui checkpoint reads this one. The zeros pay off where a runtime or a compressor exploits
sparsity; on dense CPU kernels they change neither size nor latency, which the trade-off table shows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from core.compress.runtime import prunable_weights, sparsity


def prune_unstructured(model: nn.Module, amount: float) -> dict[str, Any]:
    """Zero ``amount`` of all convolution and Linear weights by magnitude (global ranking), in place.

    Returns the record step (see :mod:`core.compress.record`).
    """
    layers = prunable_weights(model)
    with torch.no_grad():
        prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                                  amount=float(amount))
        for _, module in layers:
            prune.remove(module, "weight")
    per_layer = [{"module": name, "type": type(m).__name__,
                  "sparsity": float((m.weight == 0).sum()) / m.weight.numel()} for name, m in layers]
    return {
        "kind": "prune",
        "method": "unstructured",
        "amount": float(amount),
        "library": f"torch.nn.utils.prune (torch {torch.__version__.split('+')[0]})",
        "importance": "global L1 magnitude",
        "sparsity": sparsity(model),
        "layers": per_layer,
    }
