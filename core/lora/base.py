"""The base model of a LoRA run: the weights file it came from, and which parameters checkpoints
leave to that file.

When ``model.weights`` names a file (a state dict, a safetensors file or folder, an ftui checkpoint,
or a torchvision weights name from the local cache), a LoRA checkpoint does not hold a second copy
of the base: it records the file (path, SHA-256, size) and stores every tensor except the
parameters that are still bitwise those of the file. Which ones those are is decided by value, once,
when the model is built (:func:`params_from_file`), so whatever built the model (ftui, torchvision,
timm's remapping loader, user code) a tensor is only left out when the file really holds it; the
fine-tuner's record of every parameter that ever trained (``FineTuner.touched``) keeps those in.
Buffers (BatchNorm statistics) are always stored.

Reading a checkpoint back (resume, eval, export) finds the file again (:func:`locate`): the
configured path, else the recorded absolute one, and refuses a file whose SHA-256 differs unless the
user named another base on purpose (``--base``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config import ModelConfig
from core.errors import CheckpointError
from core.models.weights import align_keys, is_weights_path, read_state_dict

_CHUNK = 1 << 22


@dataclass
class BaseReference:
    """The weights file a LoRA run's base came from."""

    source: str  # model.weights as configured (a path, or a torchvision weights name)
    path: str  # the file (or safetensors folder) read, absolute
    sha256: str
    bytes: int

    def record(self, *, omitted: int, omitted_params: int) -> dict[str, Any]:
        """The checkpoint's ``lora.base`` entry."""
        return {"stored": False, "source": self.source, "path": self.path, "sha256": self.sha256,
                "bytes": self.bytes, "omitted_tensors": omitted, "omitted_params": omitted_params}


def base_file(cfg: ModelConfig) -> Path | None:
    """The file ``model.weights`` loads, or None (no weights, timm's ``pretrained``, user code's own)."""
    weights = cfg.weights
    if not weights or weights == "pretrained":
        return None
    if is_weights_path(weights):
        return Path(weights)
    if cfg.name.startswith("timm/") or ":" in cfg.name:
        return None
    from core.models.weights import cached_weights_path, torchvision_weights

    return cached_weights_path(torchvision_weights(cfg.name, weights).url)


def digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, or of a folder's ``*.safetensors`` shards (names and contents)."""
    h = hashlib.sha256()
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    size = 0
    for file in files:
        if path.is_dir():
            h.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
    return h.hexdigest(), size


def reference(cfg: ModelConfig, path: Path) -> BaseReference:
    """The record of the base file ``path`` that ``cfg.weights`` named."""
    sha, size = digest(path)
    return BaseReference(source=str(cfg.weights), path=str(path.resolve()), sha256=sha, bytes=size)


def params_from_file(model: nn.Module, path: Path) -> tuple[set[str], dict[str, list[int]]]:
    """The model's parameters whose values are bitwise the file's tensors of the same name, and the
    shape of every tensor the file holds (under the model's names), for messages."""
    own = dict(model.named_parameters())
    state, _ = align_keys(read_state_dict(path), set(model.state_dict()))
    equal = set()
    for name, tensor in state.items():
        param = own.get(name)
        if param is None or tuple(param.shape) != tuple(tensor.shape):
            continue
        if torch.equal(param.detach().cpu(), tensor.to(param.dtype)):
            equal.add(name)
    return equal, {name: list(t.shape) for name, t in state.items()}


def locate(record: dict[str, Any], configured: str | None, *, checkpoint: Any) -> tuple[str, list[str]]:
    """The base file to rebuild a checkpoint on, checked; returns the ``model.weights`` value and notices.

    ``configured`` is ``model.weights`` of the config in use. When it is the recorded source (the
    checkpoint's own config), the file must be the one the adapters were trained on (same SHA-256),
    found at that path or at the recorded absolute one. When the user named another base (``--base``,
    ``--set model.weights=...``), that file is used, and a different SHA-256 is only a notice.

    Raises:
        CheckpointError: the file is gone, or is not the one the adapters were trained on.
    """
    recorded = str(record.get("path") or "")
    source = str(record.get("source") or recorded)
    chosen = configured is not None and configured != source
    if configured is not None and not is_weights_path(configured):  # a torchvision weights name: its cached file
        return configured, _check_sha(Path(recorded), record, chosen, checkpoint) if recorded else []
    if chosen:
        path = Path(str(configured))
        if not path.exists():
            raise CheckpointError(f"the base {path} does not exist. Fix: check the path given for the base weights.")
        return str(path), _check_sha(path, record, True, checkpoint)
    mismatch: CheckpointError | None = None
    for candidate in dict.fromkeys(c for c in (configured, recorded) if c):
        path = Path(candidate)
        if not path.exists():
            continue
        try:
            return str(path), _check_sha(path, record, False, checkpoint)
        except CheckpointError as exc:
            mismatch = mismatch or exc
    if mismatch is not None:
        raise mismatch
    raise CheckpointError(
        f"{checkpoint}: holds LoRA adapters whose base weights are not in it but in {source} (sha256 "
        f"{str(record.get('sha256'))[:12]}, {record.get('bytes')} bytes), and that file is gone"
        + (f" (also from {recorded})" if recorded and recorded != source else "")
        + ". Fix: put the file back, or name where it is now: --base PATH for ftui eval/export, "
        "--set model.weights=PATH for ftui run --resume."
    )


def _check_sha(path: Path, record: dict[str, Any], chosen: bool, checkpoint: Any) -> list[str]:
    if not path.exists():
        return []
    sha, _ = digest(path)
    want = str(record.get("sha256") or "")
    if not want or sha == want:
        return []
    message = (f"the base {path} is not the file the adapters of {checkpoint} were trained on (sha256 {sha[:12]} now, "
               f"{want[:12]} recorded)")
    if chosen:
        return [message + "; using it because it was named as the base"]
    raise CheckpointError(
        message + ". Fix: restore the original base file; to apply the adapters to another base on purpose, name "
        "it with --base PATH (ftui eval/export) or --set model.weights=PATH (ftui run --resume)."
    )
