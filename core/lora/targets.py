"""Which layers get LoRA adapters: ``finetune.lora.target`` patterns resolved to the layers PEFT can
adapt, ``modules_to_save`` to the modules that train fully, and each layer's largest rank.

A target pattern selects modules as ``finetune.freeze`` does; every adaptable layer inside them gets
an adapter (the head and the modules_to_save excepted; nothing inside an adapted layer is adapted
again — PEFT's MultiheadAttention adapter covers its ``out_proj`` itself). A pattern that selects no
adaptable layer, and a rank larger than a targeted layer allows, are errors that name the layer.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from torch import nn

from core.config import LoraConfig
from core.errors import ConfigError, ModelError
from core.models.patterns import pattern_label, select

#: What PEFT's LoRA adapts, as ftui offers it (grouped convolutions cannot be merged, so they are left out).
SUPPORTED = "Linear, Conv1d, Conv2d, Conv3d (groups=1), Embedding, MultiheadAttention"


@dataclass
class Target:
    """One layer that gets an adapter."""

    path: str
    type: str
    max_rank: int
    shape: str  # "in -> out", for messages and the record


def adaptable(module: nn.Module) -> tuple[bool, str]:
    """Whether PEFT's LoRA can adapt ``module`` (and be merged back); else the reason."""
    if isinstance(module, nn.MultiheadAttention):
        if not module._qkv_same_embed_dim:
            return False, "MultiheadAttention with kdim/vdim other than embed_dim"
        return True, ""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.groups != 1:
            return False, f"{type(module).__name__} with groups={module.groups} (depthwise/grouped)"
        return True, ""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return True, ""
    return False, type(module).__name__


def describe(module: nn.Module) -> tuple[int, str]:
    """The largest rank an adapter of ``module`` can have, and its shape as text."""
    if isinstance(module, nn.MultiheadAttention):
        return module.embed_dim, f"{module.embed_dim} -> 3x{module.embed_dim}"
    if isinstance(module, nn.Linear):
        return min(module.in_features, module.out_features), f"{module.in_features} -> {module.out_features}"
    if isinstance(module, nn.Embedding):
        return min(module.num_embeddings, module.embedding_dim), f"{module.num_embeddings} -> {module.embedding_dim}"
    kernel = "x".join(str(k) for k in module.kernel_size)
    fan_in = module.in_channels * math.prod(module.kernel_size)
    return min(fan_in, module.out_channels), f"{module.in_channels} -> {module.out_channels}, kernel {kernel}"


def resolve(model: nn.Module, cfg: LoraConfig, head_path: str) -> tuple[list[Target], list[str]]:
    """The layers to adapt and the modules to save (module paths), checked.

    Raises:
        ModelError: a pattern matches nothing (close module names listed), or nothing adaptable (the
            types found and the supported ones named), or a modules_to_save pattern names a loose parameter.
        ConfigError: the rank is larger than a targeted layer allows (the layer named).
    """
    modules = dict(model.named_modules())
    save: list[str] = []
    for i, pattern in enumerate(cfg.modules_to_save):
        where = f"finetune.lora.modules_to_save[{i}]"
        for path in select(model, pattern, head_path, where=where).modules:
            if path == "(all)" or path not in modules:
                raise ModelError(
                    f"{where}: '{pattern_label(pattern)}' selects {path}, which is not a module PEFT can save "
                    "(a whole model or a loose parameter). Fix: name modules, e.g. 'head' or 'classifier'."
                )
            if path not in save:
                save.append(path)
    targets: dict[str, Target] = {}
    for i, pattern in enumerate(cfg.target):
        where = f"finetune.lora.target[{i}]"
        selection = select(model, pattern, head_path, where=where)
        found, skipped, saved = _adaptable_inside(model, modules, selection.modules, save)
        if not found:
            raise ModelError(_nothing_adaptable(where, pattern_label(pattern), selection.modules, skipped, saved))
        for path in found:
            if path not in targets:
                max_rank, shape = describe(modules[path])
                targets[path] = Target(path, type(modules[path]).__name__, max_rank, shape)
    _check_rank(cfg.rank, list(targets.values()))
    return list(targets.values()), save


def _adaptable_inside(
    model: nn.Module, modules: dict[str, nn.Module], roots: list[str], save: list[str]
) -> tuple[list[str], Counter[str], list[str]]:
    """Adaptable layers under ``roots`` (outside ``save``), the unsupported layers seen, and the
    roots left out because they train fully."""
    found: list[str] = []
    skipped: Counter[str] = Counter()
    saved: list[str] = []

    def under(path: str, parent: str) -> bool:
        return path == parent or path.startswith(parent + ".")

    def walk(path: str, module: nn.Module) -> None:
        if any(under(path, s) for s in save):
            saved.append(path)
            return
        ok, why = adaptable(module)
        if ok and path:
            found.append(path)
            return  # nothing inside an adapted layer is adapted again
        if not ok and any(True for _ in module.parameters(recurse=False)):
            skipped[why] += 1
        for name, child in module.named_children():
            walk(f"{path}.{name}" if path else name, child)

    for root in roots:
        if root == "(all)":
            walk("", model)
        elif root in modules:
            walk(root, modules[root])
        else:
            skipped["parameter"] += 1  # a loose parameter (ViT's class_token): no layer to adapt
    return found, skipped, saved


def _nothing_adaptable(where: str, label: str, roots: list[str], skipped: Counter[str], saved: list[str]) -> str:
    shown = ", ".join(roots[:4]) + (" ..." if len(roots) > 4 else "")
    if saved and not skipped:
        return (f"{where}: pattern '{label}' selects {shown}, which trains fully (finetune.lora.modules_to_save) "
                "and gets no adapter. Fix: target other layers, or take it out of modules_to_save.")
    types = ", ".join(f"{t}" + (f" x{n}" if n > 1 else "") for t, n in skipped.most_common(6)) or "no layer with weights"
    return (f"{where}: pattern '{label}' selects {shown}, where LoRA can adapt nothing (found: {types}). LoRA adapts "
            f"{SUPPORTED}. Fix: target layers of those types, e.g. a Linear or Conv2d path, or a block that holds them.")


def _check_rank(rank: int, targets: list[Target]) -> None:
    too_small = [t for t in targets if rank > t.max_rank]
    if not too_small:
        return
    worst = min(too_small, key=lambda t: t.max_rank)
    others = f" (and {len(too_small) - 1} other layer(s))" if len(too_small) > 1 else ""
    raise ConfigError(
        f"finetune.lora.rank: {rank} is larger than {worst.path} allows ({worst.type} {worst.shape}: at most "
        f"{worst.max_rank}){others}. Fix: set finetune.lora.rank to {worst.max_rank} or less, or leave that layer "
        "out of finetune.lora.target."
    )


def close_layers(model: nn.Module, text: str, n: int = 4) -> list[str]:
    """Adaptable layer paths close to ``text`` (for messages)."""
    names = [p for p, m in model.named_modules() if p and adaptable(m)[0]]
    return difflib.get_close_matches(text, names, n=n, cutoff=0.4)


def record(targets: list[Target]) -> dict[str, Any]:
    """JSON form of the targets for the checkpoint record."""
    return {t.path: {"type": t.type, "shape": t.shape, "max_rank": t.max_rank} for t in targets}
