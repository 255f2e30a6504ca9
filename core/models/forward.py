"""The one calling convention of every model, and the check that a model fits its data.

A batch's inputs are a tensor, a tuple of tensors, or a dict of named tensors (``input_ids``,
``attention_mask``); the model is called with them as ``model(x)``, ``model(*x)`` or ``model(**x)``
and returns logits of shape ``(batch, num_classes)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from core.data.device import to_device  # noqa: F401 - the one mover of inputs, re-exported for the trainer
from core.errors import ModelError
from core.usercode import user_frame


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(**inputs)`` for a dict, ``model(*inputs)`` for a tuple or list, else ``model(inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def describe_inputs(inputs: Any) -> str:
    """``tensor (2, 3, 32, 32) float32`` or ``dict input_ids (2, 64) int64, attention_mask (2, 64) bool``."""
    if isinstance(inputs, torch.Tensor):
        return f"tensor {tuple(inputs.shape)} {str(inputs.dtype).removeprefix('torch.')}"
    if isinstance(inputs, Mapping):
        parts = ", ".join(f"{k} {_one(v)}" for k, v in inputs.items())
        return f"dict {parts} (passed as keyword arguments)"
    if isinstance(inputs, (tuple, list)):
        return f"{type(inputs).__name__} of {len(inputs)}: {', '.join(_one(v) for v in inputs)} (passed as positional arguments)"
    return type(inputs).__name__


def _one(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    return type(value).__name__


def check_forward(model: nn.Module, inputs: Any, num_classes: int, *, label: str, key: str = "model.name") -> None:
    """Run one sample batch through ``model`` (eval mode, no gradients) and check it returns logits.

    Every module's train/eval mode is restored afterwards.

    Raises:
        ModelError: the forward pass raised (naming the inputs it got and the line that failed), or
            it returned something other than a ``(batch, num_classes)`` tensor.
    """
    batch = _batch_size(inputs)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            out = call_model(model, inputs)
    except Exception as exc:  # noqa: BLE001 - the user's model: a message with the line, exit 2
        where = user_frame(exc)
        raise ModelError(
            f"{key}: {label} fails on a sample batch: {type(exc).__name__}: {_first_line(exc)}"
            f"{f' ({where})' if where else ''}. It got {describe_inputs(inputs)}. Fix: make forward() accept these "
            "inputs (a dict arrives as keyword arguments, a tuple as positional ones), or change what the dataset "
            "yields (--debug shows the traceback)."
        ) from exc
    finally:
        for module, mode in modes.items():
            module.training = mode
    if not isinstance(out, torch.Tensor):
        kind = type(out).__name__
        hint = " (e.g. `return out.logits`)" if hasattr(out, "logits") else ""
        raise ModelError(
            f"{key}: {label} returned a {kind}; ftui needs a tensor of logits shaped (batch, num_classes). Fix: return "
            f"the logits from forward(){hint}."
        )
    if out.dim() != 2 or out.shape[0] != batch or out.shape[1] != num_classes:
        raise ModelError(
            f"{key}: {label} returned logits of shape {tuple(out.shape)} for a batch of {batch}; the data has "
            f"{num_classes} classes, so ftui needs ({batch}, {num_classes}). Fix: size the model's last layer for "
            "num_classes (name it as a parameter to receive it from the data), or set model.head so ftui can "
            "replace the head."
        )


def _batch_size(inputs: Any) -> int:
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    values = list(inputs.values()) if isinstance(inputs, Mapping) else list(inputs)
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
