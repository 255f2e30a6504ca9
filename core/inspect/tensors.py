"""Named tensors behind one interface, whether they sit in a loaded dict, a torch zip or safetensors files.

The summary needs only names, shapes, dtypes and sizes (:class:`TensorInfo`), which every source
knows without torch; data is read by :meth:`TensorSource.get` when a statistic, a diff or an
export asks for it, and only then is torch imported.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from core.errors import CheckpointError
from core.inspect.torchzip import TensorRecord

if TYPE_CHECKING:
    import torch

# safetensors dtype codes -> torch dtype names and bytes per element.
_ST_DTYPES: dict[str, tuple[str, float]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
    "C64": ("complex64", 8),
}


@dataclass(frozen=True)
class TensorInfo:
    """What the summary knows about a tensor without reading its data."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    numel: int
    nbytes: int

    def as_dict(self) -> dict:
        """JSON form (the ``tensors`` entries of the summary)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "numel": self.numel, "bytes": self.nbytes}


def is_tensor(obj: Any) -> bool:
    """A torch tensor or a :class:`TensorRecord` stand-in, checked without importing torch.

    A torch tensor can only exist once torch is imported, so ``sys.modules`` is enough to tell.
    """
    if isinstance(obj, TensorRecord):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def dtype_name(dtype: Any) -> str:
    """``torch.float32`` (or a record's ``"float32"``) -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def info_of(name: str, tensor: Any) -> TensorInfo:
    """Describe a tensor or a :class:`TensorRecord` from its metadata only (no data is read)."""
    shape = tuple(int(s) for s in tensor.shape)
    numel = int(tensor.numel())
    return TensorInfo(name, shape, dtype_name(tensor.dtype), numel, numel * tensor.element_size())


class TensorSource:
    """Named tensors: cheap :meth:`info` for every name, :meth:`get` reads the data."""

    def names(self) -> list[str]:
        """Tensor names in file order."""
        raise NotImplementedError

    def info(self, name: str) -> TensorInfo:
        """Shape, dtype and size of one tensor."""
        raise NotImplementedError

    def get(self, name: str) -> torch.Tensor:
        """The tensor itself (on the CPU)."""
        raise NotImplementedError

    def infos(self) -> list[TensorInfo]:
        """Every tensor's info, in order."""
        return [self.info(n) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in set(self.names())

    def __len__(self) -> int:
        return len(self.names())


class DictTensors(TensorSource):
    """Tensors of a state dict loaded with ``torch.load`` (memory-mapped where possible)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._tensors = dict(tensors)

    def names(self) -> list[str]:
        return list(self._tensors)

    def info(self, name: str) -> TensorInfo:
        return info_of(name, self._tensors[name])

    def get(self, name: str) -> torch.Tensor:
        return self._tensors[name]


class RecordTensors(TensorSource):
    """Tensors of a torch zip read by :mod:`core.inspect.torchzip`: infos from the records, data
    from ``torch.load`` on the first :meth:`get` (memory-mapped, so only touched tensors are read)."""

    def __init__(self, records: Mapping[str, TensorRecord], load: Callable[[], Mapping[str, torch.Tensor]]) -> None:
        """Args:
        records: tensor name -> its record, in file order.
        load: loads the same weights as torch tensors (called once, when data is first needed).
        """
        self._records = dict(records)
        self._load = load
        self._tensors: Mapping[str, torch.Tensor] | None = None
        self._lock = threading.Lock()  # the app computes statistics in worker threads

    def names(self) -> list[str]:
        return list(self._records)

    def info(self, name: str) -> TensorInfo:
        return info_of(name, self._records[name])

    def get(self, name: str) -> torch.Tensor:
        with self._lock:
            if self._tensors is None:
                self._tensors = self._load()
        return self._tensors[name]


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (8-byte little-endian length, then JSON), checked the
    way ``safe_open`` checks it, without importing torch.

    Raises:
        CheckpointError: truncated file, or a header that is not valid safetensors.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        (header_len,) = struct.unpack("<Q", head) if len(head) == 8 else (size,)
        if header_len > size - 8:
            raise CheckpointError(
                f"{path} is truncated: its safetensors header says {header_len} bytes of header follow, but the file "
                f"is only {size} bytes long. Copy or export it again."
            )
        text = fh.read(header_len)
    try:
        header = json.loads(text)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        _check_layout(header, size - 8 - header_len)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}). It may be truncated or corrupt; copy it again or re-export it."
        ) from exc
    return header


def _check_layout(header: dict[str, Any], data_size: int) -> None:
    """Tensors must tile the data section exactly, each as large as its shape and dtype say."""
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is not None and not (isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values())):
                raise ValueError("__metadata__ is not an object of strings")
            continue
        start, end = (int(x) for x in entry["data_offsets"])
        numel = 1
        for dim in entry["shape"]:
            numel *= int(dim)
        size = _ST_DTYPES.get(str(entry["dtype"]), ("", 0))[1]
        if size and end - start != numel * size:
            raise ValueError(f"tensor '{name}' has {end - start} bytes for {numel} elements of {entry['dtype']}")
        spans.append((start, end, name))
    position = 0
    for start, end, name in sorted(spans):
        if start != position or end < start:
            raise ValueError(f"tensor '{name}' has invalid data offsets [{start}, {end}]")
        position = end
    if position != data_size:
        raise ValueError(f"the header describes {position} bytes of tensor data, the file holds {data_size}")


def safetensors_metadata(header: Mapping[str, Any]) -> dict[str, str]:
    """The ``__metadata__`` of a header (string values, as safetensors keeps them)."""
    meta = header.get("__metadata__") or {}
    return {str(k): v for k, v in meta.items()}


class SafetensorsTensors(TensorSource):
    """Tensors of one or more safetensors files, known from their headers until asked for."""

    def __init__(self, files: Mapping[str, Path], headers: Mapping[Path, Mapping[str, Any]] | None = None) -> None:
        """Read the headers (unless given).

        Args:
            files: tensor name -> the file that holds it (one file for a single-file checkpoint).
            headers: already read headers by file (see :func:`read_safetensors_header`).
        """
        self._file_of = dict(files)
        self._infos: dict[str, TensorInfo] = {}
        headers = dict(headers or {})
        by_file: dict[Path, list[str]] = {}
        for name, file in self._file_of.items():
            by_file.setdefault(file, []).append(name)
        for file, wanted in by_file.items():
            header = headers.get(file) or read_safetensors_header(file)
            for name in wanted:
                entry = header.get(name) if name != "__metadata__" else None
                if entry is None:
                    raise CheckpointError(
                        f"{file}: the shard index names tensor '{name}' in this file, but the file does "
                        "not hold it. The index and the shards disagree; download or copy the shards again."
                    )
                code = str(entry["dtype"])
                dtype, size = _ST_DTYPES.get(code, (code.lower(), 0))
                shape = tuple(int(s) for s in entry["shape"])
                numel = 1
                for s in shape:
                    numel *= s
                self._infos[name] = TensorInfo(name, shape, dtype, numel, int(numel * size))

    def names(self) -> list[str]:
        return list(self._file_of)

    def info(self, name: str) -> TensorInfo:
        return self._infos[name]

    def get(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        file = self._file_of[name]
        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                return handle.get_tensor(name)
        except Exception as exc:
            raise CheckpointError(f"{file}: cannot read tensor '{name}' ({exc}). The file may be truncated.") from exc
