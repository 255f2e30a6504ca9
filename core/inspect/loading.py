"""Open a checkpoint or weights file safely and say what it is.

Torch zip files are first read without torch (:mod:`core.inspect.torchzip`: a restricted
unpickler whose allowlist is a subset of ``weights_only=True``'s, with stand-ins for tensors), so
a summary needs neither ``import torch`` nor the tensors' data. Whatever that reader does not
model — other globals, legacy files, unusual tensors, damage — goes to
``torch.load(weights_only=True)`` (memory-mapped for zip files whose entries are stored), which
loads it or refuses it with the globals' names; nothing pickled is ever executed. ``unsafe=True`` is the only way to run
pickled code, and the caller must have warned the user. Safetensors files are read from their
JSON headers only.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.inspect.formats import classify
from core.inspect.tensors import (
    DictTensors,
    RecordTensors,
    SafetensorsTensors,
    TensorSource,
    read_safetensors_header,
    safetensors_metadata,
)
from core.inspect.torchzip import NotUnderstood, read_torch_zip

INDEX_SUFFIX = ".safetensors.index.json"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
_UNSUPPORTED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


@dataclass
class LoadedCheckpoint:
    """An opened checkpoint: its format, its weights and (for torch files) the whole loaded object."""

    path: Path
    format: str  # "ftui", "lightning", "state_dict", "module", "safetensors", "safetensors-sharded"
    container: str  # "torch-zip", "torch-legacy", "safetensors", "safetensors-sharded"
    files: list[Path]
    file_size: int
    created: str  # modification time of the (newest) file, ISO 8601 UTC
    weights: TensorSource
    weights_key: str | None = None
    # The loaded object of a torch file: torch.load's (memory-mapped tensors), or torchzip's with
    # TensorRecord stand-ins for tensors (the summary treats both alike).
    raw: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata
    unsafe: bool = False


def load_checkpoint(path: str | Path, *, unsafe: bool = False) -> LoadedCheckpoint:
    """Open a checkpoint, a weights file or a sharded safetensors directory.

    Args:
        path: a ``.pt``/``.pth``/``.bin``/``.ckpt``/``.safetensors`` file, a directory with a
            ``*.safetensors.index.json`` (or a single weights file, or a run's ``checkpoints/last.pt``),
            or the index file itself.
        unsafe: allow pickled code (``weights_only=False``). Never set this without asking the user.

    Raises:
        CheckpointError: missing, empty, truncated, corrupt or unknown file, or one that needs
            globals that safe loading refuses (listed in the message).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist. Check the path (relative paths start at the current directory).")
    if path.is_dir():
        path = _resolve_directory(path)
    if path.name.endswith(INDEX_SUFFIX):
        return _load_sharded(path)
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the save was interrupted or the copy failed. Save or copy it again.")
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"PK\x03\x04"):
        return (None if unsafe else _load_torch_zip_records(path)) or _load_torch(path, "torch-zip", unsafe)
    if head.startswith(b"\x80"):  # a pickle: torch's legacy (pre-1.6) format
        return _load_torch(path, "torch-legacy", unsafe)
    if _looks_like_safetensors(head, size):
        return _load_safetensors(path)
    raise CheckpointError(
        f"{path} is not a checkpoint: it is neither a PyTorch file (zip or pickle) nor a safetensors file "
        f"(it starts with {head[:12]!r}). Pass a file written by torch.save, Lightning, safetensors or ftui."
    )


def _mtime(paths: list[Path]) -> str:
    newest = max(p.stat().st_mtime for p in paths)
    return _dt.datetime.fromtimestamp(newest, tz=_dt.timezone.utc).isoformat(timespec="seconds")


def _resolve_directory(path: Path) -> Path:
    """The file to open for a directory: a shard index, a run's last checkpoint or the only weights file."""
    indexes = sorted(path.glob(f"*{INDEX_SUFFIX}"))
    if len(indexes) == 1:
        return indexes[0]
    preferred = path / "model.safetensors.index.json"
    if preferred.exists():
        return preferred
    run_ckpt = path / "checkpoints" / "last.pt"
    if run_ckpt.is_file():
        return run_ckpt
    candidates = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(p.name for p in candidates[:8]) or "no weights files"
    raise CheckpointError(
        f"{path} is a directory without a model.safetensors.index.json ({found}). "
        "Pass one file, or a sharded safetensors directory with its index."
    )


_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """Safetensors: an 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < header_len <= _MAX_HEADER


def _load_safetensors(path: Path) -> LoadedCheckpoint:
    header = read_safetensors_header(path)  # plain JSON: safe_open(framework="pt") would import torch
    names = sorted(k for k in header if k != "__metadata__")  # safe_open lists names sorted
    weights = SafetensorsTensors({name: path for name in names}, {path: header})
    return LoadedCheckpoint(
        path=path,
        format="safetensors",
        container="safetensors",
        files=[path],
        file_size=path.stat().st_size,
        created=_mtime([path]),
        weights=weights,
        metadata=safetensors_metadata(header),
    )


def _load_sharded(index: Path) -> LoadedCheckpoint:
    try:
        spec = json.loads(index.read_text(encoding="utf-8"))
        weight_map = spec["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{index} is not a valid shard index ({exc}); it needs a JSON object with a 'weight_map' "
            "of tensor name -> shard file. Copy the index again."
        ) from exc
    files = {name: index.parent / str(shard) for name, shard in weight_map.items()}
    shards = sorted(set(files.values()))
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise CheckpointError(
            f"{index} names shard files that are missing: {', '.join(missing[:8])}. Copy every shard into {index.parent}."
        )
    headers = {shard: read_safetensors_header(shard) for shard in shards}
    weights = SafetensorsTensors(files, headers)
    metadata: dict[str, str] = {}
    meta = spec.get("metadata")
    if isinstance(meta, dict):
        metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    for key, value in safetensors_metadata(headers[shards[0]]).items():
        metadata.setdefault(key, value)
    return LoadedCheckpoint(
        path=index.parent,
        format="safetensors-sharded",
        container="safetensors-sharded",
        files=shards,
        file_size=sum(p.stat().st_size for p in shards),
        created=_mtime(shards),
        weights=weights,
        metadata=metadata,
    )


def _load_torch_zip_records(path: Path) -> LoadedCheckpoint | None:
    """The torch-free path for a zip file; None when torch.load must decide (see the module doc)."""
    try:
        obj = read_torch_zip(path)
        layout = classify(obj, path)
    except (NotUnderstood, CheckpointError):  # torch.load then gives today's exact answer or message
        return None

    def load() -> dict[str, Any]:
        """The same weights as torch tensors (memory-mapped), for statistics, diffs and exports."""
        loaded = _load_torch(path, "torch-zip", False)
        return {name: loaded.weights.get(name) for name in loaded.weights.names()}

    return LoadedCheckpoint(
        path=path,
        format=layout.format,
        container="torch-zip",
        files=[path],
        file_size=path.stat().st_size,
        created=_mtime([path]),
        weights=RecordTensors(layout.weights, load),
        weights_key=layout.weights_key,
        raw=obj,
    )


def _load_torch(path: Path, container: str, unsafe: bool) -> LoadedCheckpoint:
    zipped = container == "torch-zip"
    if zipped and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is truncated or corrupt: it starts like a PyTorch zip file but its end record is missing "
            "(the save was interrupted or the copy is incomplete). Save or copy it again."
        )
    import torch  # here only: it costs ~2 s and ~640 MB, which the torchzip path avoids

    try:
        # mmap keeps the summary of a large file cheap: tensor data is read only when touched.
        obj = torch.load(path, weights_only=not unsafe, mmap=zipped and _all_stored(path), map_location="cpu")
    except Exception as exc:
        names = unsafe_globals(path, exc) if not unsafe and _is_unpickling_refusal(exc) else []
        if names:
            raise CheckpointError(
                f"{path} was refused by safe loading: it needs these Python globals, which could run code when "
                f"unpickled: {', '.join(names)}. Nothing was executed. If you trust the file's "
                "source, pass --unsafe; better, re-save its state dict with torch.save(model.state_dict())."
            ) from exc
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {_reason(exc)}). "
            "It is truncated, corrupt or not a checkpoint; save or copy it again."
        ) from exc
    layout = classify(obj, path)
    raw = obj if isinstance(obj, dict) else None
    return LoadedCheckpoint(
        path=path,
        format=layout.format,
        container=container,
        files=[path],
        file_size=path.stat().st_size,
        created=_mtime([path]),
        weights=DictTensors(layout.weights),
        weights_key=layout.weights_key,
        raw=raw,
        unsafe=unsafe,
    )


def _all_stored(path: Path) -> bool:
    """Whether every entry of the archive is stored uncompressed.

    ``torch.load(mmap=True)`` maps each tensor record's bytes as they lie in the file, so a file
    re-zipped with compression (``ZIP_DEFLATED``) would give compressed bytes as weights — garbage
    that looks like numbers. Such a file is read without mmap, which inflates every record.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    except (OSError, zipfile.BadZipFile):
        return False  # torch.load without mmap then reports the damage in its own words


def _is_unpickling_refusal(exc: BaseException) -> bool:
    import pickle

    return isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in str(exc).lower()


def unsafe_globals(path: Path, exc: BaseException | None = None) -> list[str]:
    """The globals that keep ``path`` from loading with ``weights_only=True``, found without unpickling."""
    import torch

    names: list[str] = []
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        # Legacy (non-zip) files: torch names the first refused global in its error message.
        names = _UNSUPPORTED_GLOBAL.findall(str(exc or ""))
    return sorted(dict.fromkeys(names))


def _reason(exc: BaseException) -> str:
    """The informative line of a torch error (its unpickler explains itself after a long preamble)."""
    text = str(exc)
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if found:
        return found.group(1).strip().splitlines()[0][:200]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else "no details"
