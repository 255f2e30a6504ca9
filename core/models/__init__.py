"""Models: the registry (built-ins, torchvision, timm, the user's code), pretrained weights, head surgery,
the layer tree, and the one calling convention (``forward``: tensor, tuple or dict inputs).

Public API (see docs/architecture.md)::

    build_model(cfg.model, num_classes, input_shape, head_dropout=..., facts=..., model=...) -> BuiltModel
    load_weights(model, source, head_path=...) -> LoadReport
    model_tree(model, input_shape, head_path, lrs=...) -> dict   # model.json
    select(model, pattern, head_path) -> Selection                # fine-tuning patterns
"""

from __future__ import annotations

from core.models.patterns import Selection, blocks, select
from core.models.registry import BuiltModel, available_models, build_model
from core.models.tree import model_tree
from core.models.weights import LoadReport, load_weights, read_state_dict

__all__ = [
    "BuiltModel",
    "LoadReport",
    "Selection",
    "available_models",
    "blocks",
    "build_model",
    "load_weights",
    "model_tree",
    "read_state_dict",
    "select",
]
