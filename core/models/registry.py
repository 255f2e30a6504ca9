"""Building a model by name: the built-ins and torchvision's classification registry."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from core.config import ModelConfig
from core.errors import ModelError
from core.models import heads
from core.models.simple import mlp, simple_cnn
from core.models.weights import LoadReport, is_weights_path, load_weights, torchvision_weights

BUILTIN = {"simple_cnn": simple_cnn, "mlp": mlp}
# Models whose auxiliary classifiers would change the train-mode output to a tuple.
_AUX_LOGITS = ("googlenet", "inception_v3")


@dataclass
class BuiltModel:
    """A model ready for training, and how it was made."""

    model: nn.Module
    name: str
    head_path: str
    load_report: LoadReport | None = None
    notes: list[str] = field(default_factory=list)  # head replaced, stem adapted, head dropout


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """Names of torchvision's classification models."""
    import torchvision.models
    from torchvision.models import list_models

    return tuple(list_models(module=torchvision.models))


def available_models() -> list[str]:
    """Every name ``model.name`` accepts."""
    return [*BUILTIN, *torchvision_names()]


def build_model(
    cfg: ModelConfig, num_classes: int, input_shape: tuple[int, ...], *, head_dropout: float = 0.0
) -> BuiltModel:
    """Build ``cfg.name`` for ``num_classes`` classes and inputs of ``input_shape`` (without batch).

    Pretrained weights (``cfg.weights``) are loaded before the head is sized for the data, except
    weights files, which are loaded into the final model so a head of another class count is
    reported as an expected mismatch.

    Raises:
        ModelError: unknown model name, unusable weights, or a model that does not fit the data.
    """
    input_shape = tuple(int(s) for s in input_shape)
    notes: list[str] = []
    weights_file = cfg.weights if cfg.weights and is_weights_path(cfg.weights) else None
    if cfg.name in BUILTIN:
        if cfg.weights and not weights_file:
            raise ModelError(
                f"model.weights: '{cfg.weights}' is a torchvision weights name, but {cfg.name} is built into "
                f"ftui; give the path of a weights file or an ftui checkpoint instead."
            )
        model = BUILTIN[cfg.name](cfg, num_classes, input_shape)
        head_path = "head"
    else:
        model, head_path = _torchvision(cfg, num_classes, input_shape, None if weights_file else cfg.weights, notes)
    report = load_weights(model, weights_file, head_path=head_path) if weights_file else None
    if head_dropout > 0:
        notes.append(heads.set_head_dropout(model, head_path, head_dropout))
    return BuiltModel(model=model, name=cfg.name, head_path=head_path, load_report=report, notes=notes)


def _torchvision(
    cfg: ModelConfig, num_classes: int, input_shape: tuple[int, ...], weights_name: str | None, notes: list[str]
) -> tuple[nn.Module, str]:
    from torchvision.models import get_model

    if cfg.name not in torchvision_names():
        close = difflib.get_close_matches(cfg.name, available_models(), n=5, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else f"e.g. {', '.join(available_models()[:6])}"
        raise ModelError(
            f"model.name: unknown model '{cfg.name}' ({hint}). Use simple_cnn, mlp or a torchvision "
            f"classification model name."
        )
    if len(input_shape) != 3:
        raise ModelError(
            f"model.name: {cfg.name} needs image input (channels, height, width), but the data gives shape "
            f"{input_shape}; use model.name: mlp for tabular data."
        )
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    if cfg.name in _AUX_LOGITS:
        kwargs.setdefault("aux_logits", False)
    if cfg.name.startswith("vit_") and weights_name is None and "image_size" not in kwargs:
        # ViT's position embeddings are sized for one input side; build them for the data's.
        kwargs["image_size"] = input_shape[-1]
    try:
        if weights_name:
            model = get_model(cfg.name, weights=torchvision_weights(cfg.name, weights_name), **kwargs)
        else:
            model = get_model(cfg.name, weights=None, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ModelError(f"model.kwargs: {cfg.name} rejected the keyword arguments {kwargs} ({exc}).") from None
    except (ValueError, AssertionError) as exc:
        raise ModelError(f"model: cannot build {cfg.name} with {kwargs or 'default arguments'}: {exc}") from None
    if weights_name:
        notes.append(f"pretrained weights: {weights_name}")
    head_path = heads.find_head(model)
    old_classes = heads.head_classes(model.get_submodule(head_path))
    if heads.replace_head(model, head_path, num_classes):
        notes.append(f"head {head_path} replaced: {old_classes} -> {num_classes} classes")
    stem = heads.adapt_input_channels(model, input_shape[0])
    if stem:
        notes.append(stem)
    return model, head_path
