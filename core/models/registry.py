"""Building a model by name: the built-ins, torchvision's classification registry, timm, and user code."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from core.config import ModelConfig
from core.errors import ModelError
from core.usercode import is_code_name, is_object_name
from core.models import heads
from core.models.simple import mlp, simple_cnn
from core.models.timm_models import build_timm, is_timm_name
from core.models.user import build_user_model
from core.models.weights import LoadReport, apply_state_dict, is_weights_path, read_weights, torchvision_weights

BUILTIN = {"simple_cnn": simple_cnn, "mlp": mlp}
#: the config keys that shape each builtin (model.kwargs is for torchvision, timm and your own code)
BUILTIN_OPTIONS = {
    "simple_cnn": "model.channels, model.batch_norm, model.dropout",
    "mlp": "model.hidden, model.norm, model.batch_norm, model.dropout",
}
# Models whose auxiliary classifiers would change the train-mode output to a tuple.
_AUX_LOGITS = ("googlenet", "inception_v3")
# torchvision's ViT builders fix these arguments; given in model.kwargs, they size a ViT of that family
# (e.g. vit_b_16 with patch_size 4 and 4 layers for small images) built from torchvision's VisionTransformer.
_VIT_ARCH_KEYS = ("patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim")
_VIT_SHAPES = {
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_l_16": (16, 24, 16, 1024, 4096),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_h_14": (14, 32, 16, 1280, 5120),
}


@dataclass
class BuiltModel:
    """A model ready for training, and how it was made."""

    model: nn.Module
    name: str
    head_path: str
    load_report: LoadReport | None = None
    notes: list[str] = field(default_factory=list)  # head replaced, stem adapted, head dropout
    code: dict[str, Any] | None = None  # what built it, for checkpoint["code"]["model"] (user code, timm)
    # the structured-pruning record replayed on it (core.compress.record); checkpoints carry it on
    compression: dict[str, Any] | None = None


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """Names of torchvision's classification models."""
    import torchvision.models
    from torchvision.models import list_models

    return tuple(list_models(module=torchvision.models))


def available_models() -> list[str]:
    """Every name ``model.name`` accepts besides ``timm/<name>`` and code names (``./models.py:Net``)."""
    return [*BUILTIN, *torchvision_names()]


def build_model(
    cfg: ModelConfig,
    num_classes: int,
    input_shape: tuple[int, ...] | dict[str, Any],
    *,
    head_dropout: float = 0.0,
    facts: dict[str, Any] | None = None,
    model: Any = None,
    compression: dict[str, Any] | None = None,
) -> BuiltModel:
    """Build ``cfg.name`` for ``num_classes`` classes and inputs of ``input_shape`` (without batch).

    Pretrained weights (``cfg.weights``) are loaded before the head is sized for the data, except
    weights files, which are loaded into the final model so a head of another class count is
    reported as an expected mismatch.

    Args:
        facts: what the data knows, for user callables that name it (``DataBundle.facts()``);
            default: ``num_classes`` and ``input_shape``.
        model: an ``nn.Module`` or a callable returning one, given from Python (``ftui.run(model=...)``);
            it replaces ``cfg.name``.
        compression: the compression record of the checkpoint being restored. A model that was
            pruned structurally has other tensor shapes than its config builds: this record (else the
            one of a weights file that is a compressed ftui checkpoint) is replayed on the built model
            before any weights are loaded.

    Raises:
        ModelError: unknown model name, unusable weights, user code that fails, or a model that does
            not fit the data.
    """
    if not isinstance(input_shape, dict):
        input_shape = tuple(int(s) for s in input_shape)
    facts = dict(facts) if facts is not None else {"num_classes": num_classes, "input_shape": input_shape}
    notes: list[str] = []
    code: dict[str, Any] | None = None
    weights_file = cfg.weights if cfg.weights and is_weights_path(cfg.weights) else None
    user = model is not None or is_code_name(cfg.name) or is_object_name(cfg.name)
    if user or cfg.name in BUILTIN:
        if cfg.weights and not weights_file:
            raise ModelError(
                f"model.weights: '{cfg.weights}' is a torchvision weights name, but {cfg.name} is not a torchvision "
                f"model; give the path of a weights file or an ftui checkpoint instead."
            )
    if user:
        built = build_user_model(cfg, facts, obj=model)
        net, name, code = built.model, built.name, built.record
        head_path = _head_of(net, cfg.head, name)
        _size_head(net, head_path, num_classes, notes)
    elif cfg.name in BUILTIN:
        if cfg.kwargs:  # unknown keys are errors: a builtin would silently ignore them
            raise ModelError(
                f"model.kwargs: {cfg.name} is built into ftui and takes no keyword arguments (got "
                f"{', '.join(map(str, cfg.kwargs))}); its options are {BUILTIN_OPTIONS[cfg.name]}. "
                "Fix: remove model.kwargs."
            )
        net, name = BUILTIN[cfg.name](cfg, num_classes, _image_or_flat(input_shape, cfg.name)), cfg.name
        head_path = _head_of(net, cfg.head, name) if cfg.head else "head"
    elif is_timm_name(cfg.name):
        net, head_path, code, loaded = build_timm(cfg, num_classes, _image_or_flat(input_shape, cfg.name), notes)
        name = cfg.name
        if loaded:
            weights_file = None
        if cfg.head:
            head_path = _head_of(net, cfg.head, name)
    else:
        net, head_path = _torchvision(
            cfg, num_classes, _image_or_flat(input_shape, cfg.name), None if weights_file else cfg.weights, notes
        )
        name = cfg.name
        if cfg.head and cfg.head != head_path:
            head_path = _head_of(net, cfg.head, name)
            _size_head(net, head_path, num_classes, notes)
    state, file_record = read_weights(weights_file) if weights_file else (None, None)
    if head_dropout > 0:
        notes.append(heads.set_head_dropout(net, head_path, head_dropout))
    structure = _structure(compression if compression is not None else file_record)
    if structure is not None:
        from core.compress.structure import example_input, replay

        replay(net, structure, example_input(input_shape))
        notes.append(f"pruned structure replayed: {len(structure['steps'])} step(s) from the checkpoint's record")
    report = None
    if state is not None:
        report = apply_state_dict(net, state, source=str(weights_file), head_path=head_path, strict=cfg.weights_strict)
    return BuiltModel(model=net, name=name, head_path=head_path, load_report=report, notes=notes, code=code,
                      compression=structure)


def _structure(record: dict[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    from core.compress.record import structural

    return structural(record)


def _image_or_flat(input_shape: tuple[int, ...] | dict[str, Any], name: str) -> tuple[int, ...]:
    if isinstance(input_shape, dict):
        raise ModelError(
            f"model.name: {name} takes one input tensor, but the data yields named inputs ({', '.join(input_shape)}). "
            "Fix: use your own model (model.name: ./models.py:Net) whose forward takes them as keyword arguments."
        )
    return input_shape


def _head_of(model: nn.Module, head: str | None, name: str) -> str:
    """``model.head`` when set (it must exist), else the head found automatically."""
    if not head:
        return heads.find_head(model)
    modules = dict(model.named_modules())
    if head in modules and head:
        if not any(True for _ in modules[head].parameters()):
            raise ModelError(f"model.head: '{head}' of {name} holds no parameters. Fix: name the layer that maps "
                             "features to class scores (a Linear, usually).")
        return head
    layers = [p for p, m in modules.items() if p and isinstance(m, (nn.Linear, nn.Conv2d))]
    close = difflib.get_close_matches(head, [p for p in modules if p], n=3, cutoff=0.5)
    hint = f" Closest: {', '.join(close)}." if close else ""
    shown = ", ".join(reversed(layers[-8:])) or "none"
    raise ModelError(
        f"model.head: '{head}' is not a module of {name}.{hint} Its Linear/Conv layers, last first: {shown}. "
        "Fix: set model.head to one of them."
    )


def _size_head(model: nn.Module, head_path: str, num_classes: int, notes: list[str]) -> None:
    """Give a Linear or 1x1-conv head ``num_classes`` outputs when it has another count."""
    head = model.get_submodule(head_path)
    if not heads._is_head_layer(head):
        return  # another kind of head: the forward check says whether the logits fit
    old = heads.head_classes(head)
    if heads.replace_head(model, head_path, num_classes):
        notes.append(f"head '{head_path}' replaced: {old} -> {num_classes} classes")


def _swallowed_kwargs(name: str, model: nn.Module, kwargs: dict[str, Any]) -> list[str]:
    """Keys of ``kwargs`` that nothing named: a few torchvision models (ConvNeXt, MobileNetV3) take
    ``**kwargs`` in their class and drop the unknown ones, where every other model raises TypeError."""
    import inspect
    import sys

    from torchvision.models import get_model_builder

    init = inspect.signature(type(model).__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in init.values()):
        return []  # an unknown keyword would have raised TypeError
    builder = get_model_builder(name)
    known = set(init) | set(inspect.signature(builder).parameters)
    # builders read some keywords in a helper first (mobilenet_v3's _mobilenet_v3_conf: width_mult...)
    for attr, value in vars(sys.modules[builder.__module__]).items():
        if attr.endswith("_conf") and inspect.isfunction(value):
            known |= set(inspect.signature(value).parameters)
    return [k for k in kwargs if k not in known]


def _torchvision(
    cfg: ModelConfig, num_classes: int, input_shape: tuple[int, ...], weights_name: str | None, notes: list[str]
) -> tuple[nn.Module, str]:
    from torchvision.models import get_model

    if cfg.name not in torchvision_names():
        close = difflib.get_close_matches(cfg.name, available_models(), n=5, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else f"e.g. {', '.join(available_models()[:6])}"
        raise ModelError(
            f"model.name: unknown model '{cfg.name}' ({hint}). Use simple_cnn, mlp, a torchvision "
            f"classification model name, timm/<name>, or your own code (./models.py:Net)."
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
    resized = _VIT_SHAPES.get(cfg.name) if set(kwargs) & set(_VIT_ARCH_KEYS) else None
    if resized is not None and weights_name:
        raise ModelError(
            f"model.kwargs: {', '.join(sorted(set(kwargs) & set(_VIT_ARCH_KEYS)))} change the shape of {cfg.name}, so "
            f"its pretrained weights ({weights_name}) no longer fit. Fix: remove them, or model.weights."
        )
    try:
        if resized is not None:
            from torchvision.models import VisionTransformer

            # torchvision's vit_* builders pin these; a smaller ViT of the same family is the class itself
            model = VisionTransformer(**{**dict(zip(_VIT_ARCH_KEYS, resized)), **kwargs}, num_classes=num_classes)
        elif weights_name:
            model = get_model(cfg.name, weights=torchvision_weights(cfg.name, weights_name), **kwargs)
        else:
            model = get_model(cfg.name, weights=None, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ModelError(f"model.kwargs: {cfg.name} rejected the keyword arguments {kwargs} ({exc}).") from None
    except (ValueError, AssertionError) as exc:
        raise ModelError(f"model: cannot build {cfg.name} with {kwargs or 'default arguments'}: {exc}") from None
    unused = _swallowed_kwargs(cfg.name, model, kwargs)
    if unused:
        raise ModelError(
            f"model.kwargs: {cfg.name} does not take {', '.join(unused)} (its constructor accepts any keyword and "
            f"ignores what it does not know, so the setting would silently do nothing). Fix: remove "
            f"{', '.join(f'model.kwargs.{k}' for k in unused)}."
        )
    if weights_name:
        notes.append(f"pretrained weights: {weights_name}")
    head_path = heads.find_head(model)
    old_classes = heads.head_classes(model.get_submodule(head_path))
    if heads.replace_head(model, head_path, num_classes):
        notes.append(f"head '{head_path}' replaced: {old_classes} -> {num_classes} classes")
    stem = heads.adapt_input_channels(model, input_shape[0])
    if stem:
        notes.append(stem)
    return model, head_path
