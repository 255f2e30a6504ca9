"""LoRA adapters on a built model, through Hugging Face PEFT: inject, save, restore, merge.

``apply_lora`` turns ``finetune.lora`` into a ``peft.LoraConfig`` over the exact layers that
:mod:`core.lora.targets` resolved (a regular expression of their full paths, so PEFT adapts those and
nothing else) and calls ``peft.get_peft_model``. PEFT injects the adapters *in place*: the model keeps
its class and its module paths (the trainer, the fine-tuner's patterns, the head path, DDP and the
layer tree go on working on it), and :class:`LoraAdapters` keeps the ``PeftModel`` around it for what
PEFT does best: ``save_pretrained`` (the adapter directory others load), ``merge_and_unload`` and
``unload``. Only the base layers are frozen here; ``finetune.freeze``/``unfreeze`` apply afterwards.

PEFT is an optional extra (its import pulls in transformers: about 5 s on a small CPU); nothing here
imports it before a run asks for LoRA.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config import LoraConfig
from core.errors import CheckpointError, UserError
from core.lora import names
from core.lora.base import BaseReference, params_from_file, reference
from core.lora.targets import Target, resolve

RECORD_VERSION = 1
PIP_HINT = "pip install 'ftui[lora]'"


class LoraUnavailable(UserError):
    """LoRA was asked for, but PEFT is not installed."""


def require_peft(where: str = "finetune.lora") -> Any:
    """The ``peft`` module, or :class:`LoraUnavailable` (exit 2) with the pip command."""
    try:
        import peft
    except ImportError:
        raise LoraUnavailable(
            f"{where}: LoRA adapters come from Hugging Face PEFT, which is not installed. Fix: {PIP_HINT} "
            "(or remove finetune.lora from the config)."
        ) from None
    return peft


@dataclass
class LoraAdapters:
    """The adapters of one model, and what checkpoints need to know about its base.

    Attributes:
        model: the adapted model (trained in place; its module paths are the base model's).
        peft_model: the ``peft.PeftModel`` wrapping it (save_pretrained, merge_and_unload, unload).
        cfg: the ``finetune.lora`` section.
        targets: the adapted layers.
        modules_to_save: the modules that train fully.
        base: the weights file of the base, when it came from one (checkpoints then omit it).
        from_base: parameters whose values were bitwise the base file's when the model was built.
        base_shapes: every tensor shape the base file holds (model names), for messages.
    """

    model: nn.Module
    peft_model: Any
    cfg: LoraConfig
    targets: list[Target]
    modules_to_save: list[str]
    base: BaseReference | None = None
    from_base: set[str] = field(default_factory=set)
    base_shapes: dict[str, list[int]] = field(default_factory=dict)

    # -- checkpoints --------------------------------------------------------------------------

    def omitted(self, touched: set[str]) -> set[str]:
        """Parameters a checkpoint leaves to the base file: still the file's (never trained)."""
        return self.from_base - touched if self.base is not None else set()

    def state_dict(self, touched: set[str]) -> dict[str, torch.Tensor]:
        """``checkpoint["model"]``: every tensor except the base file's untouched parameters."""
        skip = self.omitted(touched)
        return {k: v for k, v in self.model.state_dict().items() if k not in skip}

    def load_state_dict(self, state: dict[str, Any], *, source: Any) -> None:
        """Load a LoRA checkpoint's tensors; every tensor it leaves out must have come from the base.

        Raises:
            CheckpointError: the checkpoint does not fit this adapted model, or the base file does not
                hold a tensor the checkpoint left to it (another model's weights: the layer is named).
        """
        own = self.model.state_dict()
        unexpected = [k for k in state if k not in own]
        wrong = [(k, list(state[k].shape), list(own[k].shape)) for k in state
                 if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
        if unexpected or wrong:
            detail = (f"unexpected tensors {', '.join(unexpected[:3])}" if unexpected else
                      f"{wrong[0][0]} has shape {wrong[0][1]} in the checkpoint, {wrong[0][2]} in the model")
            raise CheckpointError(
                f"{source}: its LoRA weights do not fit the adapted model of this config ({detail}). Fix: use the "
                "config the run was trained with (its config.yaml), or leave --config out."
            )
        absent = [k for k in own if k not in state and k not in self.from_base]
        if absent:
            raise CheckpointError(self._absent_message(absent, source))
        self.model.load_state_dict(state, strict=False)

    def _absent_message(self, absent: list[str], source: Any) -> str:
        name = absent[0]
        layer = names.base_name(name.rsplit(".", 1)[0]) if "." in name else name
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        if self.base is None:
            return (f"{source}: {name}{more} is missing from the checkpoint. Fix: the file is not a complete LoRA "
                    "checkpoint; use the run's last.pt or best.pt.")
        own_shape = list(self.model.state_dict()[name].shape)
        in_file = self.base_shapes.get(name)
        found = (f"has shape {in_file} in the base file {self.base.path}, but the adapters were trained on a base of "
                 f"shape {own_shape}") if in_file is not None else f"is not in the base file {self.base.path}"
        return (f"{source}: layer {layer}: {name}{more} {found}. The checkpoint keeps only the adapters; its base must "
                "be the weights they were trained on. Fix: use the base the run started from (its model.weights), "
                "or a base of the same architecture.")

    def record(self, touched: set[str]) -> dict[str, Any]:
        """``checkpoint["lora"]``: the adapter config, the layers, the sizes and the base reference (JSON-safe)."""
        params = dict(self.model.named_parameters())
        adapter = {n: p for n, p in params.items() if names.is_adapter(n)}
        omitted = self.omitted(touched)
        base: dict[str, Any]
        if self.base is not None:
            base = self.base.record(omitted=len(omitted), omitted_params=sum(params[n].numel() for n in omitted))
        else:
            base = {"stored": True}
        peft = require_peft()
        return {
            "version": RECORD_VERSION,
            "library": {"name": "peft", "version": str(peft.__version__)},
            "rank": self.cfg.rank,
            "alpha": self.alpha,
            "dropout": self.cfg.dropout,
            "target": [pattern_json(p) for p in self.cfg.target],
            "modules_to_save": list(self.modules_to_save),
            "layers": {t.path: {"type": t.type, "shape": t.shape, "max_rank": t.max_rank,
                                "params": sum(p.numel() for n, p in adapter.items() if _inside(n, t.path))}
                       for t in self.targets},
            "adapter_params": sum(p.numel() for p in adapter.values()),
            "adapter_bytes": sum(p.numel() * p.element_size() for p in adapter.values()),
            "trainable_params": sum(p.numel() for p in params.values() if p.requires_grad),
            "total_params": sum(p.numel() for p in params.values()),
            "base": base,
            "peft_config": _jsonable(self.peft_model.peft_config[names.ADAPTER_NAME].to_dict()),
        }

    @property
    def alpha(self) -> float:
        return float(self.cfg.alpha if self.cfg.alpha is not None else self.cfg.rank)

    # -- what PEFT does with them -----------------------------------------------------------------

    def save_pretrained(self, out: Path) -> Path:
        """PEFT's adapter directory: ``adapter_config.json`` + ``adapter_model.safetensors``."""
        self.peft_model.save_pretrained(str(out))
        return out

    def merged(self) -> nn.Module:
        """The model with every adapter merged into its base layer (PEFT's ``merge_and_unload``);
        the adapted model is consumed."""
        return self.peft_model.merge_and_unload(safe_merge=True)

    def unloaded(self) -> nn.Module:
        """The base model without the adapters (PEFT's ``unload``); the adapted model is consumed."""
        return self.peft_model.unload()


def _inside(param: str, layer: str) -> bool:
    """Whether adapter parameter ``param`` belongs to the adapter(s) of target ``layer`` (a
    MultiheadAttention target also holds its ``out_proj``'s adapter)."""
    owner = names.adapter_layer(param) or ""
    return owner == layer or owner.startswith(layer + ".")


def pattern_json(pattern: Any) -> Any:
    """A pattern as JSON (a string, or ``{"last": N}``)."""
    if hasattr(pattern, "model_dump"):
        return pattern.model_dump()
    return pattern


def _jsonable(value: Any) -> Any:
    """Plain JSON values (weights_only loading refuses PEFT's enums)."""
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def apply_lora(model: nn.Module, cfg: LoraConfig, head_path: str, *, base_file: Path | None = None,
               model_cfg: Any = None) -> LoraAdapters:
    """Inject ``cfg``'s adapters into ``model`` in place (its base layers frozen) and return them.

    Args:
        model: the built model, base weights loaded.
        cfg: the ``finetune.lora`` section.
        head_path: the classifier head's module path.
        base_file: the weights file the base came from (``core.lora.base.base_file``): checkpoints then
            leave the parameters that are still the file's to it.
        model_cfg: the ``model`` section (recorded with the base reference).

    Raises:
        LoraUnavailable: PEFT is not installed.
        ModelError / ConfigError: bad targets or rank (see :func:`core.lora.targets.resolve`).
    """
    peft = require_peft()
    targets, save = resolve(model, cfg, head_path)
    from_base_before: set[str] = set()
    shapes: dict[str, list[int]] = {}
    base = None
    if base_file is not None:
        from_base_before, file_shapes = params_from_file(model, base_file)
        base = reference(model_cfg, base_file)
    peft_config = peft.LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha if cfg.alpha is not None else cfg.rank,
        lora_dropout=cfg.dropout,
        target_modules="^(" + "|".join(re.escape(t.path) for t in targets) + ")$",
        modules_to_save=save or None,
        bias="none",
    )
    peft_model = peft.get_peft_model(model, peft_config, adapter_name=names.ADAPTER_NAME)
    # the base's parameters now sit under X.base_layer / X.original_module (adapters and trained copies are new)
    renamed = {names.base_name(n): n for n, _ in model.named_parameters()
               if not names.is_adapter(n) and ".modules_to_save." not in n}
    from_base = {renamed[n] for n in from_base_before if n in renamed}
    if base_file is not None:
        shapes = {renamed.get(n, n): s for n, s in file_shapes.items()}
    return LoraAdapters(model=model, peft_model=peft_model, cfg=cfg, targets=targets, modules_to_save=save,
                        base=base, from_base=from_base, base_shapes=shapes)
