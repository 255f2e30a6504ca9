"""timm models by name (``model.name: timm/<name>``), with pretrained weights from local files only.

``timm.create_model`` builds the model with the data's class count (``num_classes``) and input
channels (``in_chans``); models with a fixed input size (ViTs) get the data's side as ``img_size``.
Pretrained weights never come from the network: ``model.weights: pretrained`` takes timm's default
weights for the name (or the tag in it, ``timm/convnext_atto.d2_in1k``) from the local Hugging Face
cache or torch hub cache, and a file path is handed to timm as ``pretrained_cfg_overlay=dict(file=...)``,
so timm's own loader remaps the checkpoint, adapts the input stem and drops a classifier of another
class count. An ftui checkpoint given as weights is loaded by ftui (``load_weights``).

timm is an optional extra: ``pip install 'ftui[timm]'``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from torch import nn

from core.config import ModelConfig
from core.errors import ModelError
from core.models.weights import cached_weights_path, is_weights_path

PREFIX = "timm/"
PRETRAINED = "pretrained"
# Files a timm weights repository on the Hugging Face hub holds, in the order timm prefers them.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def is_timm_name(name: str) -> bool:
    """Whether ``model.name`` asks for a timm model."""
    return name.startswith(PREFIX)


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ModelError(
            "model.name: timm models need the timm package, which is not installed. Fix: pip install 'ftui[timm]'."
        ) from None
    return timm


def build_timm(
    cfg: ModelConfig, num_classes: int, input_shape: tuple[int, ...], notes: list[str]
) -> tuple[nn.Module, str, dict[str, Any], bool]:
    """Create ``cfg.name``; returns the model, its head path, a record for checkpoints, and whether
    ``cfg.weights`` was loaded here (an ftui checkpoint is left to the caller)."""
    timm = _timm()
    name = cfg.name[len(PREFIX):]
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f"closest: {', '.join('timm/' + c for c in close)}" if close else "see timm.list_models()"
        raise ModelError(f"model.name: timm has no model '{arch}' ({hint}). Fix: correct the name after 'timm/'.")
    if len(input_shape) != 3:
        raise ModelError(
            f"model.name: {cfg.name} needs image input (channels, height, width), but the data gives {input_shape}."
        )
    channels, height, _ = input_shape
    kwargs: dict[str, Any] = dict(cfg.kwargs)
    kwargs.setdefault("num_classes", num_classes)
    kwargs.setdefault("in_chans", channels)
    default_cfg = _pretrained_cfg(timm, name)
    if default_cfg.get("fixed_input_size") and "img_size" not in kwargs:
        size = tuple(default_cfg.get("input_size") or ())[-1:]
        if size and size[0] != height:
            kwargs["img_size"] = height  # position embeddings sized (or resampled, when pretrained) for the data
    weights_file, loaded_here = _weights_source(cfg, timm, name, default_cfg)
    extra: dict[str, Any] = {}
    if weights_file is not None:
        extra = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(weights_file)}}
    try:
        model = timm.create_model(name, **extra, **kwargs)
    except TypeError as exc:
        raise ModelError(f"model.kwargs: timm's {arch} rejected {kwargs} ({exc}). Fix: correct model.kwargs.") from None
    except (RuntimeError, ValueError, KeyError, AssertionError) as exc:
        what = f"the weights {weights_file}" if weights_file is not None else f"the arguments {kwargs}"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"model: timm could not build {cfg.name} with {what}: {text[:300]}. Fix: check that the weights belong "
            "to this architecture (model.weights) and the arguments (model.kwargs)."
        ) from None
    if weights_file is not None:
        notes.append(f"pretrained weights: {weights_file} (loaded by timm; classifier and input stem adapted to the data)")
    if "img_size" in kwargs and "img_size" not in cfg.kwargs:
        notes.append(f"img_size={kwargs['img_size']} for the data's input size")
    head_path = _classifier(model)
    record = {"kind": "timm", "name": cfg.name, "timm_version": getattr(timm, "__version__", None),
              "kwargs": dict(cfg.kwargs), "weights": str(weights_file) if weights_file is not None else None}
    return model, head_path, record, loaded_here


def _pretrained_cfg(timm: Any, name: str) -> dict[str, Any]:
    try:
        found = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown tag after the dot
        raise ModelError(f"model.name: timm/{name}: {exc} Fix: drop the tag or use one of timm.list_pretrained().") from None
    return found.to_dict() if found is not None else {}


def _weights_source(cfg: ModelConfig, timm: Any, name: str, default_cfg: dict[str, Any]) -> tuple[Path | None, bool]:
    weights = cfg.weights
    if weights is None:
        return None, False
    if weights == PRETRAINED:
        return _cached_pretrained(cfg.name, default_cfg), True
    if not is_weights_path(weights):
        raise ModelError(
            f"model.weights: '{weights}' is not a weights file and timm models take no torchvision weights names. "
            f"Fix: use 'pretrained' (timm's default weights for {cfg.name}, from the local cache) or a file path."
        )
    path = Path(weights)
    if not path.exists():
        raise ModelError(f"model.weights: {path} does not exist. Fix: give the path of a .safetensors/.pth file.")
    if _is_ftui_checkpoint(path):
        return None, False  # ftui's load_weights reads it (and reports what matched)
    return path, True


def _is_ftui_checkpoint(path: Path) -> bool:
    if path.suffix == ".safetensors" or path.is_dir():
        return False
    try:
        from core.inspect import load_checkpoint

        return load_checkpoint(path).format == "ftui"
    except Exception:  # noqa: BLE001 - not ours: timm reads it
        return False


def _cached_pretrained(model_name: str, default_cfg: dict[str, Any]) -> Path:
    """The local file of timm's default weights for the name: Hugging Face cache, then torch hub cache."""
    if not default_cfg:
        raise ModelError(
            f"model.weights: timm has no pretrained weights for {model_name}. Fix: drop model.weights or give a file."
        )
    hub_id = default_cfg.get("hf_hub_id")
    looked: list[str] = []
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
            from huggingface_hub.constants import HF_HUB_CACHE
        except ImportError:
            try_to_load_from_cache, HF_HUB_CACHE = None, "the Hugging Face cache"  # type: ignore[assignment]
        filenames = [default_cfg["hf_hub_filename"]] if default_cfg.get("hf_hub_filename") else list(_HUB_FILES)
        if try_to_load_from_cache is not None:
            for filename in filenames:
                found = try_to_load_from_cache(repo_id=hub_id, filename=filename)
                if isinstance(found, str):
                    return Path(found)
        looked.append(f"{filenames[0]} of {hub_id} in {HF_HUB_CACHE}")
    url = default_cfg.get("url")
    if url:
        cached = cached_weights_path(url)
        if cached.is_file():
            return cached
        looked.append(f"{cached}")
    raise ModelError(
        f"model.weights: the pretrained weights of {model_name} are not on this machine ({'; '.join(looked)}) and "
        "ftui never downloads. Fix: copy the weights file there (HF_HUB_CACHE / TORCH_HOME select the caches) or "
        "give its path: model.weights: path/to/model.safetensors."
    )


def _classifier(model: nn.Module) -> str:
    """The head timm declares for the model (``pretrained_cfg['classifier']``), if it exists."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    declared = cfg.get("classifier") if isinstance(cfg, dict) else None
    names = [declared] if isinstance(declared, str) else list(declared or [])
    modules = dict(model.named_modules())
    for name in names:
        module = modules.get(name)
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return name
    from core.models.heads import find_head

    return find_head(model)
