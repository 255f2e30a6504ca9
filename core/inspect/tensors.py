"""Named tensors behind one interface, whether they sit in a loaded dict or in safetensors files.

The summary needs only names, shapes, dtypes and sizes (:class:`TensorInfo`); data is read by
:meth:`TensorSource.get` when a statistic, a diff or an export asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from core.errors import CheckpointError

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


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def info_of(name: str, tensor: torch.Tensor) -> TensorInfo:
    """Describe a tensor from its metadata only (no data is read, even when memory-mapped)."""
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


class SafetensorsTensors(TensorSource):
    """Tensors of one or more safetensors files, known from their headers until asked for."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        """Read the headers.

        Args:
            files: tensor name -> the file that holds it (one file for a single-file checkpoint).
        """
        from safetensors import safe_open

        self._file_of = dict(files)
        self._infos: dict[str, TensorInfo] = {}
        by_file: dict[Path, list[str]] = {}
        for name, file in self._file_of.items():
            by_file.setdefault(file, []).append(name)
        for file, wanted in by_file.items():
            try:
                with safe_open(str(file), framework="pt", device="cpu") as handle:
                    present = set(handle.keys())
                    for name in wanted:
                        if name not in present:
                            raise CheckpointError(
                                f"{file}: the shard index names tensor '{name}' in this file, but the file does "
                                "not hold it. The index and the shards disagree; download or copy the shards again."
                            )
                        sl = handle.get_slice(name)
                        code = sl.get_dtype()
                        dtype, size = _ST_DTYPES.get(code, (code.lower(), 0))
                        shape = tuple(int(s) for s in sl.get_shape())
                        numel = 1
                        for s in shape:
                            numel *= s
                        self._infos[name] = TensorInfo(name, shape, dtype, numel, int(numel * size))
            except CheckpointError:
                raise
            except Exception as exc:  # safetensors raises its own error types for bad headers
                raise CheckpointError(
                    f"{file} is not a readable safetensors file ({exc}). It may be truncated or corrupt; "
                    "copy it again or re-export it."
                ) from exc

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
