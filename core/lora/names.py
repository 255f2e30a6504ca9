"""How LoRA adapters are named inside a model, and in ftui's patterns, trees and records (torch-free).

PEFT injects adapters in place: a targeted layer ``X`` keeps its path and becomes a LoRA layer whose
original module is ``X.base_layer`` and whose adapter weights are ``X.lora_A.default.weight`` and
``X.lora_B.default.weight`` (every adapter container's name starts with ``lora_``). A module kept
fully trainable (``modules_to_save``) becomes a wrapper holding the frozen original
(``X.original_module``) and the trained copy (``X.modules_to_save.default``).

ftui names the adapter of layer ``X``:

- ``X.lora`` in the layer tree (``model.json``) and in ``layers.jsonl`` (its own statistics unit);
- ``lora:X`` in patterns (``ftui ctl RUN freeze lora:X``); ``lora`` alone is every adapter.

This module imports nothing heavy, so the readers (the app, ``ftui inspect``) can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: PEFT's adapter name; ftui trains one adapter per model.
ADAPTER_NAME = "default"
#: Every PEFT LoRA container (lora_A, lora_B, lora_dropout, lora_embedding_A, ...) starts with it.
PEFT_PREFIX = "lora_"
#: The pattern keyword, and the last component of an adapter's node in the layer tree.
LORA = "lora"
#: The checkpoint key of the LoRA record (``core.lora.record``).
RECORD_KEY = "lora"


def adapter_layer(name: str) -> str | None:
    """The path of the adapted layer that holds parameter or module ``name``, or None when ``name``
    is not part of an adapter (``a.mlp.0.lora_A.default.weight`` -> ``a.mlp.0``)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith(PEFT_PREFIX):
            return ".".join(parts[:i])
    return None


def is_adapter(name: str) -> bool:
    """Whether a parameter or module name belongs to a LoRA adapter."""
    return adapter_layer(name) is not None


def node_path(layer: str) -> str:
    """The adapter's path in the layer tree and in layers.jsonl: ``X.lora``."""
    return f"{layer}.{LORA}" if layer else LORA


def layer_pattern(layer: str) -> str:
    """The pattern that selects the adapter of ``layer`` (what the Layers tab sends): ``lora:X``."""
    return f"{LORA}:{layer}"


def split_pattern(pattern: Any) -> tuple[bool, str | None]:
    """``(True, inner)`` for ``lora`` (inner None) and ``lora:INNER``; ``(False, None)`` otherwise."""
    if not isinstance(pattern, str):
        return False, None
    if pattern == LORA:
        return True, None
    if pattern.startswith(LORA + ":") and len(pattern) > len(LORA) + 1:
        return True, pattern[len(LORA) + 1:]
    return False, None


def inert_params(names: Iterable[str]) -> set[str]:
    """Parameters PEFT manages itself, which must never be made trainable:

    - the frozen original inside a ``modules_to_save`` wrapper (not in the forward pass while the
      adapter is active);
    - the base weights of an adapted ``MultiheadAttention`` (``X.base_layer.in_proj_weight`` and its
      ``out_proj`` weight): PEFT merges the adapter into them for each forward pass and registers
      them anew afterwards, so an optimizer could never hold them.
    """
    names = list(names)
    wrappers = {n.split(".modules_to_save.", 1)[0] for n in names if ".modules_to_save." in n}
    prefixes = tuple(f"{w}.original_module." for w in wrappers)
    out = {n for n in names if prefixes and n.startswith(prefixes)}
    attention = {n[: -len(".base_layer.in_proj_weight")] for n in names if n.endswith(".base_layer.in_proj_weight")}
    for layer in attention:
        out.add(f"{layer}.base_layer.in_proj_weight")
        out.add(f"{layer}.base_layer.out_proj.base_layer.weight")
    return out & set(names)


def base_name(name: str) -> str:
    """A parameter's name in the model before PEFT wrapped its layer (``X.base_layer.weight`` ->
    ``X.weight``; ``X.original_module.weight`` -> ``X.weight``)."""
    parts = [p for p in name.split(".") if p not in ("base_layer", "original_module")]
    return ".".join(parts)


def needs_base(ckpt: Mapping[str, Any] | None) -> bool:
    """Whether a checkpoint holds adapters without their base weights (which come from a file)."""
    record = (ckpt or {}).get(RECORD_KEY)
    base = record.get("base") if isinstance(record, Mapping) else None
    return isinstance(base, Mapping) and base.get("stored") is False
