"""Models from the user's code: a callable named in the config, or an object given from Python.

The callable (a class or a function) gets ``model.kwargs`` plus the data facts its signature names
(``num_classes``, ``input_shape``, ``class_names`` and the keys of the data's ``meta``; see
:func:`core.usercode.call_with_facts`) and must return an ``nn.Module``. What built the model is
recorded (:attr:`UserModel.record`) for checkpoints.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from core.config import ModelConfig
from core.errors import ModelError
from core.usercode import call_with_facts, file_sha256, is_object_name, load, object_name


@dataclass
class UserModel:
    """A model built from user code, its display name and its record for checkpoints."""

    model: nn.Module
    name: str
    record: dict[str, Any]


def build_user_model(cfg: ModelConfig, facts: dict[str, Any], *, obj: Any = None) -> UserModel:
    """Build the model that ``cfg.name`` (a code name) or ``obj`` (from the Python API) stands for.

    ``obj`` may be an ``nn.Module`` (used as it is) or a callable that returns one (called like a
    code name's callable).

    Raises:
        ModelError: import or call failures, or something other than an ``nn.Module`` came back.
    """
    if obj is not None:
        return _from_object(cfg, facts, obj)
    if is_object_name(cfg.name):
        raise ModelError(
            f"model.name: {cfg.name} stands for a model that was given as a Python object to ftui.run(); a config "
            "cannot rebuild it. Fix: pass the model again from Python (ftui.run(..., model=...) or "
            "ftui.evaluate(..., model=...)), or name its code in the config: model.name: ./models.py:Net."
        )
    code = load(cfg.name, key="model.name")
    label = code.name.short
    files = tuple(Path(f) for f in code.files())
    result, used = call_with_facts(code.obj, dict(cfg.kwargs), facts, key="model.name", label=label, files=files)
    _check_module(result, label)
    return UserModel(model=result, name=label, record=code.record(cfg.kwargs, _facts_used(used, facts)))


def _from_object(cfg: ModelConfig, facts: dict[str, Any], obj: Any) -> UserModel:
    label = object_name(obj)[len("<object "):-1].rsplit(".", 1)[-1]
    record: dict[str, Any] = {"kind": "object", "name": object_name(obj), "kwargs": {}, "facts": {}}
    if isinstance(obj, nn.Module):
        model = obj
    elif callable(obj):
        model, used = call_with_facts(obj, dict(cfg.kwargs), facts, key="model.name", label=label)
        record.update(kwargs=dict(cfg.kwargs), facts=_facts_used(used, facts))
        _check_module(model, label)
    else:
        raise ModelError(
            f"model=: got a {type(obj).__name__}; pass an nn.Module or a callable that returns one (a class or a "
            "function)."
        )
    source = _source_of(type(model) if isinstance(obj, nn.Module) else obj)
    if source is not None:
        record.update(path=str(source), sha256=file_sha256(source), files={str(source): file_sha256(source)})
    return UserModel(model=model, name=label, record=record)


def _check_module(result: Any, label: str) -> None:
    if not isinstance(result, nn.Module):
        kind = type(result).__name__
        hint = " (a tuple: return the model alone)" if isinstance(result, tuple) else ""
        raise ModelError(
            f"model.name: {label} returned a {kind}{hint}, not a torch.nn.Module. Fix: return the network (an "
            "nn.Module whose forward takes the batch's inputs and returns logits)."
        )


def _facts_used(used: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in used.items() if k in facts}


def _source_of(obj: Any) -> Path | None:
    try:
        found = inspect.getsourcefile(obj)
    except (TypeError, OSError):
        return None
    path = Path(found).resolve() if found else None
    return path if path is not None and path.is_file() else None
