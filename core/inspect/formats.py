"""Recognise what a loaded checkpoint object is: an ftui checkpoint, a Lightning checkpoint or
a (possibly nested) plain state dict, and find its model weights.

Works alike on ``torch.load`` results and on :mod:`core.inspect.torchzip`'s stand-ins, and never
imports torch itself.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CheckpointError
from core.inspect.tensors import is_tensor

if TYPE_CHECKING:
    import torch

# Keys that only Lightning checkpoints carry next to "state_dict".
LIGHTNING_KEYS = ("pytorch-lightning_version", "global_step", "hyper_parameters", "optimizer_states", "callbacks", "loops")
# Where other tools usually nest a state dict, in the order we look.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights", "params")


@dataclass
class Layout:
    """Where a checkpoint keeps its weights."""

    format: str  # "ftui", "lightning", "state_dict" or "module" (a pickled nn.Module, --unsafe only)
    weights: dict[str, torch.Tensor]
    weights_key: str | None  # top-level key of the weights; None when the file is the state dict


def tensor_items(obj: Any) -> dict[str, torch.Tensor]:
    """The tensor entries of a mapping (a state dict may carry e.g. a ``_metadata`` entry)."""
    if not isinstance(obj, dict):
        return {}
    return {str(k): v for k, v in obj.items() if is_tensor(v)}


def is_ftui(obj: dict) -> bool:
    """An ftui checkpoint: our version stamp or format tag, and a state dict under ``model``."""
    tagged = "ftui_version" in obj or str(obj.get("format", "")).lower().startswith("ftui")
    return tagged and isinstance(obj.get("model"), dict)


def is_lightning(obj: dict) -> bool:
    """A PyTorch Lightning checkpoint: ``state_dict`` plus Lightning's bookkeeping keys."""
    return isinstance(obj.get("state_dict"), dict) and any(k in obj for k in LIGHTNING_KEYS)


def classify(obj: Any, path: Path) -> Layout:
    """Find the format and the model weights of a loaded checkpoint object.

    Raises:
        CheckpointError: the object holds no tensors (a pickle of something else).
    """
    torch = sys.modules.get("torch")  # a Module exists only if torch was imported (and --unsafe used)
    if torch is not None and isinstance(obj, torch.nn.Module):  # torch.save(model)
        return Layout("module", dict(obj.state_dict()), None)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a checkpoint (a dict of tensors or a dict with a "
            "state dict). Pass a file written by torch.save(model.state_dict()) or by ftui."
        )
    if is_ftui(obj):
        return Layout("ftui", tensor_items(obj["model"]), "model")
    if is_lightning(obj):
        return Layout("lightning", tensor_items(obj["state_dict"]), "state_dict")
    flat = tensor_items(obj)
    if flat and len(flat) >= len(obj) - 1:  # tolerate one non-tensor entry such as "_metadata"
        return Layout("state_dict", flat, None)
    for key in NESTED_KEYS:
        nested = tensor_items(obj.get(key))
        if nested:
            return Layout("state_dict", nested, key)
    # Fall back to the child dict with the most tensors (e.g. {"ema": {...}, "step": 3}).
    best_key, best = None, flat
    for key, value in obj.items():
        nested = tensor_items(value)
        if len(nested) > len(best):
            best_key, best = str(key), nested
    if best:
        return Layout("state_dict", best, best_key)
    raise CheckpointError(
        f"{path} holds no tensors (top-level keys: {', '.join(map(str, list(obj)[:12])) or 'none'}), so it is "
        "not a model checkpoint. Pass a file written by torch.save(model.state_dict()), a Lightning .ckpt, "
        "a .safetensors file or an ftui checkpoint."
    )
