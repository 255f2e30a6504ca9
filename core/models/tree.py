"""The layer tree of a model (``model.json``): paths, types, parameter counts, output shapes, head.

A model with LoRA adapters (``core.lora``) shows each adapter as one node ``X.lora`` under its layer
``X`` (type ``LoRA``, with rank and alpha) instead of PEFT's containers (``lora_A.default``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from core.lora import names as lora_names
from core.models.forward import call_model


def _shape(value: Any) -> Any:
    """Output shape without the batch dimension; nested for tuples/lists/dicts of tensors."""
    if isinstance(value, torch.Tensor):
        return list(value.shape[1:])
    if isinstance(value, (list, tuple)):
        shapes = [_shape(v) for v in value]
        return shapes if any(s is not None for s in shapes) else None
    if isinstance(value, Mapping):
        return {str(k): _shape(v) for k, v in value.items()}
    return None


def _trace(model: nn.Module, input_shape: Any, example: Any = None) -> tuple[dict[str, Any], dict[str, int], str | None]:
    """One forward pass on a batch of one (``example``, else zeros of ``input_shape``): first output
    shape and call order of every module."""
    shapes: dict[str, Any] = {}
    order: dict[str, int] = {}
    handles = []
    for path, module in model.named_modules():
        if not path:
            continue

        def hook(_m: nn.Module, _args: Any, output: Any, path: str = path) -> None:
            if path not in shapes:
                shapes[path] = _shape(output)
                order[path] = len(order)

        handles.append(module.register_forward_hook(hook))
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    error = None
    # Per-module modes: frozen BatchNorm layers sit in eval mode inside a training model.
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            if example is not None:
                call_model(model, _first(example))
            else:
                model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    except Exception as exc:  # a model that rejects this input size still gets its tree, without shapes
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
    finally:
        for module, mode in modes.items():
            module.training = mode
        for handle in handles:
            handle.remove()
    return shapes, order, error


def _first(batch: Any) -> Any:
    """The first sample of a batch, still batched (shapes of a batch of one)."""
    if isinstance(batch, torch.Tensor):
        return batch[:1]
    if isinstance(batch, Mapping):
        return {k: _first(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_first(v) for v in batch)
    return batch


def _shape_json(shape: Any) -> Any:
    if isinstance(shape, Mapping):
        return {str(k): [int(s) for s in v] for k, v in shape.items()}
    if shape and isinstance(next(iter(shape)), (tuple, list)):
        return [[int(s) for s in v] for v in shape]
    return [int(s) for s in shape]


def model_tree(
    model: nn.Module,
    input_shape: Any,
    head_path: str,
    *,
    lrs: Mapping[str, float] | None = None,
    name: str | None = None,
    example: Any = None,
    groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Describe ``model`` as JSON-serialisable data (the content of ``model.json``).

    Output shapes come from one forward pass on a batch of one (the first sample of ``example``, else
    zeros) under ``torch.no_grad()`` in eval mode (every module's mode is restored); they leave out the
    batch dimension, like ``input_shape``. A forward pass that fails leaves shapes null and sets
    ``forward_error``.

    Args:
        model: the model.
        input_shape: one input without the batch dimension, e.g. ``(3, 32, 32)``; for named
            inputs a dict ``{"input_ids": (64,), ...}``.
        head_path: module path of the classifier head.
        lrs: base learning rates keyed by parameter name or module path (e.g.
            ``FineTuner.param_lrs()``); a module's ``lr`` is the one rate shared by its trainable
            parameters, or null when they differ or none is trainable; its ``frozen_lr`` the one
            rate its frozen parameters would train at if unfrozen without a new rate.
        name: the model's name (default: its class name).
        example: a real batch of inputs (a tensor, tuple or dict, on the model's device) to trace
            instead of zeros; its first sample is used. Needed for inputs that zeros cannot stand
            for (token ids, several tensors).
        groups: the optimizer group of every parameter, by name (``FineTuner.param_groups()``): a
            module's ``groups`` and ``frozen_groups`` name those of its trainable and of its frozen
            parameters, so a viewer finds the rates they train at now (or would train at if
            unfrozen) among a train row's ``lrs``; the tree's ``groups`` maps each group to its
            base lr.

    Returns:
        ``{"name", "head", "total_params", "trainable_params", "input_shape", "forward_error",
        "groups", "modules": [{"path", "type", "depth", "params", "own_params", "trainable", "frozen",
        "output_shape", "is_head", "lr", "frozen_lr", "groups", "frozen_groups", "order"}]}``;
        ``order`` is the module's position in the forward pass (null if it was not called).
    """
    shapes, order, error = _trace(model, input_shape, example)
    lrs = dict(lrs or {})
    param_groups = dict(groups or {})
    modules = []
    for path, module in model.named_modules():
        if not path:
            continue
        params = list(module.named_parameters())
        own = sum(p.numel() for p in module.parameters(recurse=False))
        total = sum(p.numel() for _, p in params)
        trainable = sum(p.numel() for _, p in params if p.requires_grad)
        modules.append(
            {
                "path": path,
                "type": type(module).__name__,
                "depth": path.count(".") + 1,
                "params": total,
                "own_params": own,
                "trainable": trainable,
                "frozen": total > 0 and trainable == 0,
                "output_shape": shapes.get(path),
                "is_head": path == head_path,
                "lr": _module_lr(path, params, lrs),
                "frozen_lr": _module_lr(path, params, lrs, trainable=False) if trainable < total else None,
                "groups": _module_groups(path, params, param_groups, trainable=True),
                "frozen_groups": _module_groups(path, params, param_groups, trainable=False),
                "order": order.get(path),
            }
        )
    unique = {id(p): p for p in model.parameters()}.values()
    modules, lora = _fold_adapters(model, modules, lrs, param_groups)
    tree = {
        "name": name or type(model).__name__,
        "head": head_path,
        "total_params": sum(p.numel() for p in unique),
        "trainable_params": sum(p.numel() for p in unique if p.requires_grad),
        "input_shape": _shape_json(input_shape),
        "forward_error": error,
        "groups": {g: lrs[p] for p, g in param_groups.items() if p in lrs},
        "modules": modules,
    }
    if lora is not None:
        tree["lora"] = lora
    return tree


def _fold_adapters(
    model: nn.Module, modules: list[dict[str, Any]], lrs: dict[str, float], groups: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Replace PEFT's adapter containers by one ``X.lora`` node per adapted layer ``X``.

    The adapted layer's entry gains ``"lora": {"rank", "alpha", "params"}``; the node has type
    ``LoRA``, the adapter's parameter counts, frozen flag, lrs and groups (as any module's), and
    ``"adapter": {"layer", "rank", "alpha", "scale"}`` and ``"pattern": "lora:X"`` (what a control
    command names to address it).
    """
    params = dict(model.named_parameters())
    owners = {n: lora_names.adapter_layer(n) for n in params}
    layers = list(dict.fromkeys(o for o in owners.values() if o is not None))
    if not layers:
        return modules, None
    found = dict(model.named_modules())
    out: list[dict[str, Any]] = []
    totals = {"params": 0, "trainable": 0}
    ranks: set[Any] = set()
    alphas: set[Any] = set()
    for entry in modules:
        path = entry["path"]
        if lora_names.is_adapter(path):
            continue
        out.append(entry)
        if path not in layers:
            continue
        module = found[path]
        rank = _adapter_value(getattr(module, "r", None))
        alpha = _adapter_value(getattr(module, "lora_alpha", None))
        mine = [(n, p) for n, p in params.items() if owners[n] == path]
        count = sum(p.numel() for _, p in mine)
        trainable = sum(p.numel() for _, p in mine if p.requires_grad)
        totals["params"] += count
        totals["trainable"] += trainable
        ranks.add(rank)
        alphas.add(alpha)
        entry["lora"] = {"rank": rank, "alpha": alpha, "params": count}
        relative = [(n[len(path) + 1:], p) for n, p in mine]  # the helpers join path and name again
        out.append({
            "path": lora_names.node_path(path),
            "type": "LoRA",
            "depth": entry["depth"] + 1,
            "params": count,
            "own_params": count,
            "trainable": trainable,
            "frozen": count > 0 and trainable == 0,
            "output_shape": None,
            "is_head": False,
            "lr": _module_lr(path, relative, lrs),
            "frozen_lr": _module_lr(path, relative, lrs, trainable=False) if trainable < count else None,
            "groups": _module_groups(path, relative, groups, trainable=True),
            "frozen_groups": _module_groups(path, relative, groups, trainable=False),
            "order": None,
            "adapter": {"layer": path, "rank": rank, "alpha": alpha,
                        "scale": alpha / rank if isinstance(rank, int) and rank and isinstance(alpha, (int, float)) else None},
            "pattern": lora_names.layer_pattern(path),
        })
    summary = {
        "layers": len(layers),
        "params": totals["params"],
        "trainable": totals["trainable"],
        "rank": ranks.pop() if len(ranks) == 1 else None,
        "alpha": alphas.pop() if len(alphas) == 1 else None,
    }
    return out, summary


def _adapter_value(values: Any) -> Any:
    """PEFT keeps per-adapter settings in dicts keyed by adapter name."""
    if isinstance(values, dict):
        value = values.get(lora_names.ADAPTER_NAME)
        return float(value) if isinstance(value, float) else value
    return None


def _module_lr(path: str, params: list[tuple[str, nn.Parameter]], lrs: dict[str, float], *,
               trainable: bool = True) -> float | None:
    """The one base lr of the module's trainable (or frozen) parameters; None when they differ or are none."""
    if path in lrs:
        return float(lrs[path])
    found = {lrs.get(f"{path}.{name}") for name, p in params if p.requires_grad == trainable}
    found.discard(None)
    return float(found.pop()) if len(found) == 1 else None


def _module_groups(path: str, params: list[tuple[str, nn.Parameter]], groups: dict[str, str], *,
                   trainable: bool) -> list[str]:
    """The optimizer groups of the module's trainable (or frozen) parameters, in the order met."""
    found = (groups.get(f"{path}.{name}") for name, p in params if p.requires_grad == trainable)
    return [str(g) for g in dict.fromkeys(found) if g is not None]
