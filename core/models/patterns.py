"""Module-path patterns that select parts of a model for freezing, unfreezing and learning rates.

A pattern is one of:

- a module path or an ``fnmatch`` glob over module paths: ``layer1``, ``layer4.1.conv2``,
  ``features.*`` (``*`` also crosses dots); a parameter name (``class_token``) works too;
- ``backbone`` or ``all_but_head``: every parameter outside the head; ``head``: the head; ``all``;
- ``{last: N}``: the last N blocks counted from the head backwards, the head included (see
  :func:`blocks`);
- ``lora``: every LoRA adapter; ``lora:PATTERN``: the adapters inside what PATTERN selects (a run with
  ``finetune.lora``; the layer tree names the adapter of layer ``X`` ``X.lora``);
- a list of patterns: their union.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from core.config import LayerPattern
from core.errors import ModelError
from core.lora import names as lora_names

# Trunk containers whose children count as blocks for {last: N}: torchvision's layouts, and the usual
# names of a stack of repeated blocks in timm (blocks, layers) and in Hugging Face encoders (encoder.layer).
TRUNKS = ("features", "encoder", "encoder.layers", "encoder.layer", "trunk_output", "blocks", "layers")
BACKBONE_ALIASES = ("backbone", "all_but_head")


@dataclass
class Selection:
    """What a pattern selected: the outermost matched modules and every parameter inside them."""

    label: str
    modules: list[str]
    params: list[str]


def pattern_label(pattern: Any) -> str:
    """A short text form of a pattern, for group names, events and messages."""
    if isinstance(pattern, LayerPattern):
        return f"last:{pattern.last}"
    if isinstance(pattern, Mapping):
        return f"last:{pattern.get('last')}"
    if isinstance(pattern, (list, tuple)):
        return ",".join(pattern_label(p) for p in pattern)
    return str(pattern)


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _under(name: str, path: str) -> bool:
    return path == "" or name == path or name.startswith(path + ".")


def blocks(model: nn.Module, head_path: str) -> list[str]:
    """The model's blocks from the input to the head (the head last).

    Blocks are the top-level children that hold parameters, in registration order. The head is a
    block of its own even when nested (its siblings in ``classifier`` become blocks too), and the
    trunk containers in :data:`TRUNKS` are expanded into their children, so a MobileNet counts its
    ``features.N`` stages and a ViT its encoder layers. Parameters held directly by a container
    (ViT's ``class_token``) belong to no block.
    """
    units: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = prefix + name
            if path == head_path:
                continue
            if not _has_params(child):
                continue
            if head_path.startswith(path + ".") or path in TRUNKS:
                walk(child, path + ".")
            else:
                units.append(path)

    walk(model, "")
    return [*units, head_path]


def _outside_head(model: nn.Module, head_path: str) -> list[str]:
    """The outermost modules (and loose parameters) that together hold everything but the head."""
    out: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, _ in module.named_parameters(recurse=False):
            out.append(prefix + name)
        for name, child in module.named_children():
            path = prefix + name
            if path == head_path or not _has_params(child):
                continue
            if head_path.startswith(path + "."):
                walk(child, path + ".")
            else:
                out.append(path)

    walk(model, "")
    return out


def _outermost(paths: list[str]) -> list[str]:
    kept: list[str] = []
    for path in paths:  # named_modules order puts parents before children
        if not any(_under(path, k) for k in kept):
            kept.append(path)
    return kept


def select(model: nn.Module, pattern: Any, head_path: str, *, where: str = "finetune") -> Selection:
    """Resolve a pattern to modules and parameter names.

    Args:
        model: the model.
        pattern: see the module docstring.
        head_path: module path of the classifier head.
        where: the config key or command the pattern came from, for the error message.

    Raises:
        ModelError: the pattern matches no parameter; the message lists module names.
    """
    label = pattern_label(pattern)
    param_names = [n for n, _ in model.named_parameters()]
    if isinstance(pattern, (list, tuple)):
        parts = [select(model, p, head_path, where=where) for p in pattern]
        modules = _outermost([m for part in parts for m in part.modules])
        wanted = {p for part in parts for p in part.params}
        return Selection(label, modules, [n for n in param_names if n in wanted])
    if isinstance(pattern, Mapping):
        try:
            pattern = LayerPattern.model_validate(pattern)
        except ValueError:
            raise ModelError(
                f"{where}: pattern {dict(pattern)} is not understood; use a module path, a glob, 'backbone', "
                f"or {{last: N}} with N >= 1."
            ) from None
    is_lora, inner = lora_names.split_pattern(pattern)
    if is_lora:
        return _select_adapters(model, inner, head_path, where, label, param_names)
    if isinstance(pattern, LayerPattern):
        modules = blocks(model, head_path)[-pattern.last :]
    elif not isinstance(pattern, str) or not pattern:
        raise ModelError(f"{where}: pattern {pattern!r} is not understood; use a module path or a glob.")
    elif pattern in BACKBONE_ALIASES:
        modules = _outside_head(model, head_path)
    elif pattern == "head":
        modules = [head_path]
    elif pattern == "all":
        modules = [""]
    else:
        names = [n for n, _ in model.named_modules() if n]
        modules = _outermost([n for n in names if fnmatch.fnmatchcase(n, pattern)])
        loose = [p for p in param_names if fnmatch.fnmatchcase(p, pattern)]
        modules += [p for p in loose if not any(_under(p, m) for m in modules)]
    params = [n for n in param_names if any(_under(n, m) for m in modules)]
    if not params:
        raise ModelError(_no_match_message(model, label, where, bool(modules)))
    shown = [m or "(all)" for m in modules]
    return Selection(label, shown, params)


def _select_adapters(
    model: nn.Module, inner: str | None, head_path: str, where: str, label: str, param_names: list[str]
) -> Selection:
    """``lora`` / ``lora:INNER``: the adapter parameters (of the layers inside what INNER selects)."""
    owners = {n: lora_names.adapter_layer(n) for n in param_names}
    layers = list(dict.fromkeys(o for o in owners.values() if o is not None))
    if not layers:
        raise ModelError(
            f"{where}: pattern '{label}' selects LoRA adapters, but this model has none. Fix: configure "
            "finetune.lora (docs/lora.md), or use a module pattern."
        )
    if inner is not None:
        roots = select(model, inner, head_path, where=where).modules
        kept = [layer for layer in layers if any(root == "(all)" or _under(layer, root) for root in roots)]
        if not kept:
            close = difflib.get_close_matches(inner, layers, n=4, cutoff=0.4) or layers[:4]
            raise ModelError(
                f"{where}: pattern '{label}': {', '.join(roots[:3])} holds no LoRA adapter. Adapted layers: "
                f"{', '.join(close)}{' ...' if len(layers) > len(close) else ''}. Fix: name an adapted layer or a "
                "block that holds some, or 'lora' for every adapter."
            )
        layers = kept
    wanted = set(layers)
    params = [n for n, owner in owners.items() if owner in wanted]
    return Selection(label, [lora_names.node_path(layer) for layer in layers], params)


def _no_match_message(model: nn.Module, label: str, where: str, matched_empty_modules: bool) -> str:
    names = [n for n, m in model.named_modules() if n and _has_params(m)]
    top = [n for n in names if "." not in n]
    second = [n for n in names if n.count(".") == 1][:8]
    close = difflib.get_close_matches(label, names, n=4, cutoff=0.5)
    what = "matches only modules without parameters" if matched_empty_modules else "matches no module"
    text = (
        f"{where}: pattern '{label}' {what} of this model. Top-level modules: {', '.join(top)}"
        f"{'; e.g. ' + ', '.join(second) if second else ''}"
    )
    if close:
        text += f"; closest: {', '.join(close)}"
    return text + ". Use a module path, a glob such as 'layer4' or 'features.*', 'backbone', 'head' or {last: N}."
