"""Pretrained weights: state-dict files, ftui checkpoints, and torchvision's local cache.

Files are read without executing pickled code (``torch.load(weights_only=True)`` or safetensors).
Keys are matched after stripping wrapper prefixes (``module.`` from DataParallel/DDP, ``_orig_mod.``
from ``torch.compile``); tensors whose shape differs from the model's are dropped and reported, and
the rest is loaded with ``strict=False``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ModelError

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
#: Pretrained weights must cover at least this fraction of the model's values outside the head;
#: below it the file was saved from another architecture or size, and "fine-tuning" would train
#: mostly from scratch (``model.weights_strict: false`` accepts that on purpose).
MIN_LOADED_FRACTION = 0.5
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """What loading a state dict into a model did."""

    source: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)  # key, file, model
    head_path: str | None = None
    stripped_prefix: str = ""
    body_values: int = 0  # values (numel) of the model's state outside the head
    body_loaded: int = 0  # of which the file provided

    @property
    def loaded_fraction(self) -> float:
        """The fraction of the model's values outside the head that came from the file."""
        return self.body_loaded / self.body_values if self.body_values else 1.0

    @property
    def clean(self) -> bool:
        """Nothing went unloaded, except the head after a change of classes."""
        return not (self.missing or self.mismatched or self.unexpected) or (self.head_only and not self.unexpected)

    @property
    def head_only(self) -> bool:
        """True when every missing or mismatched key belongs to the head (expected after a class change)."""
        keys = self.missing + [k for k, _, _ in self.mismatched]
        return bool(keys) and self.head_path is not None and all(_under(k, self.head_path) for k in keys)

    def summary(self) -> str:
        """One line for logs and the console."""
        text = (
            f"loaded {len(self.matched)} tensors from {self.source}; missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, shape-mismatched {len(self.mismatched)}"
        )
        if self.stripped_prefix:
            text += f" (stripped prefix '{self.stripped_prefix}')"
        if self.head_only:
            text += f"; the head '{self.head_path}' was not loaded, as expected after a change of classes"
        elif self.mismatched or self.missing:
            shown = [k for k, _, _ in self.mismatched][:3] + self.missing[:3]
            more = " ..." if len(shown) < len(self.missing) + len(self.mismatched) else ""
            text += f"; not loaded: {', '.join(shown)}{more}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for events and checkpoints)."""
        return {
            "source": self.source,
            "matched": len(self.matched),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [{"key": k, "file": f, "model": m} for k, f, m in self.mismatched],
            "head_path": self.head_path,
            "head_only": self.head_only,
            "stripped_prefix": self.stripped_prefix,
            "loaded_fraction": round(self.loaded_fraction, 4),
            "summary": self.summary(),
        }


def _under(key: str, path: str) -> bool:
    return key == path or key.startswith(path + ".")


def is_weights_path(value: str) -> bool:
    """Whether ``model.weights`` names a file (rather than a torchvision weights name)."""
    return value.lower().endswith(WEIGHT_SUFFIXES) or "/" in value or "\\" in value or Path(value).exists()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a model state dict from a weights file or a checkpoint, safely, onto the CPU.

    Accepts ``.safetensors`` files (or a directory of shards), plain state dicts, ftui checkpoints
    (``format`` and ``model`` keys), Lightning checkpoints (``state_dict``) and dicts with
    ``model``/``model_state_dict``/``state_dict`` entries.

    Raises:
        ModelError: missing file, unreadable file, pickled code, or no tensors inside.
    """
    return read_weights(path)[0]


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """:func:`read_state_dict`, and the compression record when the file is a compressed ftui checkpoint.

    The record (``checkpoint["compression"]``, see ``core.compress.record``) says how the tensor shapes
    differ from the model its config builds; None for every other file.
    """
    path = Path(path)
    if not path.exists():
        _raise_missing(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return _read_safetensors(path), None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # a class or function reference, not data
            raise ModelError(
                f"model.weights: {path} contains pickled Python objects that ftui will not execute "
                f"(weights_only loading refused them). Re-save it as a plain state dict "
                f"(torch.save(model.state_dict(), path)) or as .safetensors, or inspect it with "
                f"`ftui inspect {path} --unsafe` if you trust its source."
            ) from None
        raise ModelError(f"model.weights: {path} is not a readable PyTorch file ({_first_line(exc)}).") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelError(f"model.weights: {path} is not a readable PyTorch file ({_first_line(exc)}).") from None
    _refuse_adapters(obj, path)
    state = _extract_state_dict(obj)
    if not state:
        raise ModelError(
            f"model.weights: {path} holds no tensors under a state-dict key (looked at the top level and "
            f"'model', 'state_dict', 'model_state_dict'); save it with torch.save(model.state_dict(), path)."
        )
    record = obj.get("compression") if isinstance(obj, Mapping) and "format" in obj and "model" in obj else None
    return state, record if isinstance(record, dict) else None


def _raise_missing(path: Path) -> None:
    """Raise the message for a weights path that does not exist."""
    raise ModelError(
        f"model.weights: {path} does not exist; give the path of a .pt/.pth/.safetensors state dict or an "
        f"ftui checkpoint, or a torchvision weights name such as IMAGENET1K_V1."
    )


def _refuse_adapters(obj: Any, path: Path) -> None:
    """A LoRA checkpoint names its layers the adapted way (``X.base_layer.weight``) and may hold the
    adapters only: starting from it means merging it first."""
    if not (isinstance(obj, Mapping) and "format" in obj and "model" in obj and isinstance(obj.get("lora"), Mapping)):
        return
    from core.usercode import named_code

    config = obj.get("config") if isinstance(obj.get("config"), Mapping) else {}
    trust = " --trust-code" if named_code(dict(config)) else ""
    stem = path.with_name(path.stem + ".merged.safetensors")
    raise ModelError(
        f"model.weights: {path} is a LoRA checkpoint (adapters beside a base model), not plain weights. Fix: merge "
        f"it first with `ftui export {path} --merge{trust}`, then set model.weights to the file it writes ({stem})."
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    if not files:
        raise ModelError(f"model.weights: the directory {path} holds no .safetensors files.")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file), device="cpu"))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(
                f"model.weights: {file} is not a readable safetensors file ({_first_line(exc)})."
            ) from None
    return state


def _tensors(obj: Any) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        return {}
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _extract_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        return {}
    if "format" in obj and "model" in obj:  # an ftui checkpoint
        return _tensors(obj["model"])
    for key in ("state_dict", "model_state_dict", "model"):
        inner = _tensors(obj.get(key))
        if inner:
            return inner
    return _tensors(obj)


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _align_prefix(state: dict[str, torch.Tensor], model_keys: set[str]) -> tuple[dict[str, torch.Tensor], str]:
    """Strip a shared first component (Lightning's ``model.``, ``net.``) when that matches more keys."""
    best, best_prefix = len(model_keys & state.keys()), ""
    firsts = {k.split(".", 1)[0] + "." for k in state if "." in k}
    for prefix in sorted(firsts):
        hits = sum(1 for k in state if k.startswith(prefix) and k[len(prefix):] in model_keys)
        if hits > best:
            best, best_prefix = hits, prefix
    if not best_prefix:
        return state, ""
    return {k[len(best_prefix):]: v for k, v in state.items() if k.startswith(best_prefix)}, best_prefix


def align_keys(state: dict[str, torch.Tensor], model_keys: set[str]) -> tuple[dict[str, torch.Tensor], str]:
    """The file's keys as the model names them: wrapper prefixes stripped, a shared first component
    (Lightning's ``model.``) dropped when that matches more keys; returns the prefix dropped."""
    return _align_prefix(_strip_wrappers(state), model_keys)


def apply_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], *, source: str, head_path: str | None = None,
    strict: bool = False,
) -> LoadReport:
    """Load the tensors that fit into ``model`` and report the rest.

    Raises:
        ModelError: when not a single tensor matches (the file is for another architecture), or,
            with ``strict``, when less than :data:`MIN_LOADED_FRACTION` of the model's values outside
            the head would load.
    """
    own = model.state_dict()
    state, prefix = align_keys(state, set(own))
    report = LoadReport(source=source, head_path=head_path, stripped_prefix=prefix)
    loadable: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(own[key].shape):
            report.mismatched.append((key, list(tensor.shape), list(own[key].shape)))
        else:
            loadable[key] = tensor
    report.matched = sorted(loadable)
    report.missing = [k for k in own if k not in loadable and k not in {m for m, _, _ in report.mismatched}]
    if not loadable:
        sample = ", ".join(list(state)[:4])
        raise ModelError(
            f"model.weights: no tensor in {source} matches the model (file keys look like: {sample}; the "
            f"model's like: {', '.join(list(own)[:4])}). Check model.name against the architecture the "
            f"weights were saved from."
        )
    body = {k: v for k, v in own.items() if head_path is None or not _under(k, head_path)}
    report.body_values = sum(v.numel() for v in body.values())
    report.body_loaded = sum(v.numel() for k, v in body.items() if k in loadable)
    if strict and report.loaded_fraction < MIN_LOADED_FRACTION:
        raise ModelError(_mismatch_message(report))
    model.load_state_dict(loadable, strict=False)
    return report


def _mismatch_message(report: LoadReport) -> str:
    """Why a weights file was refused: how little fit, and the first mismatches, file vs model."""
    shown = [f"{k} (file {list(f)}, model {list(m)})" for k, f, m in report.mismatched[:6]]
    more = len(report.mismatched) - len(shown)
    listing = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    missing = f" {len(report.missing)} tensors of the model are not in the file ({', '.join(report.missing[:4])}" + (
        ", ...)." if len(report.missing) > 4 else ").") if report.missing else ""
    return (
        f"model.weights: {report.source} does not fit the model: only "
        f"{report.loaded_fraction:.0%} of its values outside the head ({report.body_loaded:,} of "
        f"{report.body_values:,}) load from it, below the {MIN_LOADED_FRACTION:.0%} that fine-tuning needs. "
        f"{len(report.mismatched)} tensors differ in shape: {listing or 'none'}.{missing} The file was saved from "
        "another architecture or size. Fix: set model.name (and model.channels / model.hidden) to what the weights "
        "were saved from, or set model.weights_strict: false to load what fits and train the rest from scratch."
    )


def load_weights(
    model: nn.Module, source: str | Path, *, head_path: str | None = None, strict: bool = True
) -> LoadReport:
    """Load a weights file or ftui checkpoint into ``model`` (see :func:`read_state_dict`).

    With ``strict``, a file that covers less than :data:`MIN_LOADED_FRACTION` of the model's values
    outside the head is a :class:`ModelError` listing the mismatches (nothing is loaded).
    """
    return apply_state_dict(model, read_state_dict(source), source=str(source), head_path=head_path, strict=strict)


def torchvision_weights(model_name: str, weights_name: str) -> Any:
    """Resolve a torchvision weights enum member and make sure its file is already in the local cache.

    Raises:
        ModelError: unknown weights name, or the file is not cached (names the file and directory).
    """
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(model_name)
    except (ValueError, KeyError):
        raise ModelError(f"model.weights: torchvision has no pretrained weights for {model_name}.") from None
    names = [w.name for w in enum] + ["DEFAULT"]
    if weights_name not in names:
        raise ModelError(
            f"model.weights: '{weights_name}' is not a weights name of {model_name}; choose one of "
            f"{', '.join(names)}, or give the path of a weights file."
        )
    weights = enum[weights_name] if weights_name != "DEFAULT" else enum.DEFAULT
    cached = cached_weights_path(weights.url)
    if not cached.exists():
        raise ModelError(
            f"model.weights: {model_name} {weights.name} is not in the local torch hub cache and ftui never "
            f"downloads. Put the file {cached.name} (from {weights.url}) into {cached.parent}/ "
            f"(or set TORCH_HOME), or give the path of a weights file."
        )
    return weights


def cached_weights_path(url: str) -> Path:
    """Where torch hub keeps the file of a weights URL."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1].split("?", 1)[0]
