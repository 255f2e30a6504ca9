"""Export a checkpoint's model weights as safetensors (with metadata) or as a plain state dict.

:func:`write_weights` is the one writer of weights files (``ftui export``, and the merged weights of
``ftui export --merge``, core.lora.export).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import __version__
from core.errors import CheckpointError
from core.inspect.loading import LoadedCheckpoint
from core.inspect.summary import summarize

if TYPE_CHECKING:
    import torch

EXPORT_FORMATS = ("safetensors", "state_dict")
_SUFFIX = {"safetensors": ".safetensors", "state_dict": ".state_dict.pt"}


def default_export_path(ckpt: LoadedCheckpoint, fmt: str) -> Path:
    """Beside the checkpoint: ``best.pt`` -> ``best.safetensors`` / ``best.state_dict.pt``."""
    base = ckpt.path if ckpt.path.is_file() else ckpt.path / ckpt.path.name
    return base.with_name(base.stem + _SUFFIX[fmt])


def export_metadata(ckpt: LoadedCheckpoint) -> dict[str, str]:
    """The safetensors header metadata: every value a string, structured ones JSON-encoded."""
    summary = summarize(ckpt)
    arch = summary.get("architecture") or {}
    data = summary.get("data") or {}
    meta: dict[str, Any] = {
        "format": "pt",  # what Hugging Face loaders expect in a torch safetensors file
        "ftui_export": "1",
        "ftui_version": summary.get("ftui_version") or __version__,
        "exported_by": f"ftui {__version__}",
        "source": ckpt.path.name,
        "source_format": ckpt.format,
        "architecture": arch.get("name"),
        "head": arch.get("head"),
        "class_names": data.get("class_names"),
        "normalization": data.get("normalization"),
        "input_shape": data.get("input_shape"),
        "task": data.get("task"),
        "epoch": summary.get("epoch"),
        "step": summary.get("step"),
        "removed_prefix": wrapper_prefix(ckpt) or None,
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items() if v is not None}


def wrapper_prefix(ckpt: LoadedCheckpoint) -> str:
    """The prefix a wrapper put on every key: DDP's ``module.``, or a LightningModule's attribute
    (``model.``) when all weights sit under one; exports drop it so the bare model loads them."""
    names = ckpt.weights.names()
    if not names:
        return ""
    firsts = {n.split(".", 1)[0] for n in names}
    if len(firsts) != 1 or any("." not in n for n in names):
        return ""
    first = next(iter(firsts))
    return f"{first}." if first == "module" or ckpt.format == "lightning" else ""


def _weights(ckpt: LoadedCheckpoint) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under the bare model's names."""
    prefix = wrapper_prefix(ckpt)
    return {name.removeprefix(prefix): ckpt.weights.get(name) for name in ckpt.weights.names()}


def _own_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, each with its own storage (safetensors refuses shared or strided ones)."""
    import torch  # here, not at the top: a mistyped --format is refused without torch's start-up

    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in tensors.items():
        t = tensor.detach()
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        shared = key in seen and storage.nbytes() > 0
        seen.add(key)
        if shared or not t.is_contiguous() or t.storage_offset() != 0 or t.nbytes != storage.nbytes():
            t = t.clone(memory_format=torch.contiguous_format)
        out[name] = t
    return out


def export_weights(ckpt: LoadedCheckpoint, fmt: str, out: Path | None = None) -> Path:
    """Write the model weights of ``ckpt`` to ``out`` (default: beside it) and return the path.

    Raises:
        CheckpointError: unknown format, no weights, or ``out`` is the source file.
    """
    if fmt not in EXPORT_FORMATS:
        raise CheckpointError(
            f"--format {fmt!r} is not an export format for {ckpt.path}. Use one of: {', '.join(EXPORT_FORMATS)}."
        )
    if len(ckpt.weights) == 0:
        raise CheckpointError(f"{ckpt.path} holds no model weights to export.")
    out = Path(out) if out is not None else default_export_path(ckpt, fmt)
    return write_weights(_weights(ckpt), fmt, out, source=ckpt, sources=ckpt.files)


def write_weights(
    tensors: dict[str, torch.Tensor], fmt: str, out: Path, *, source: LoadedCheckpoint,
    sources: list[Path], extra: dict[str, str] | None = None,
) -> Path:
    """Write ``tensors`` as safetensors (with the metadata of ``source``, plus ``extra``) or a plain
    state dict, atomically; ``sources`` are files ``out`` must not be.

    Raises:
        CheckpointError: ``out`` is a source file or a directory.
    """
    if any(out.resolve() == Path(f).resolve() for f in sources):
        raise CheckpointError(f"--out {out} is the checkpoint being exported; choose another output path.")
    if out.is_dir():
        raise CheckpointError(f"--out {out} is a directory; give a file path such as {out / ('model' + _SUFFIX[fmt])}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = _own_storage(tensors)
    # Write beside the target and rename, so a crash never leaves a half-written export.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(tmp), metadata={**export_metadata(source), **(extra or {})})
        else:
            import torch

            torch.save(tensors, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
