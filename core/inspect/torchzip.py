"""Read a PyTorch zip checkpoint's structure without importing torch.

``torch.load`` needs ``import torch``, which alone costs ~2 s of CPU and ~640 MB of RSS (CUDA
wheel) — far more than a summary needs. :func:`read_torch_zip` unpickles ``<archive>/data.pkl``
with a restricted unpickler whose ``find_class`` hands out only the stand-ins defined here:
tensors become :class:`TensorRecord` (dtype, shape, stride, storage key and offset), dtypes,
devices and sizes become small look-alikes, and nothing named in the pickle is ever imported or
called. The allowlist is a subset of ``torch.load(weights_only=True)``'s default one
(``torch/_weights_only_unpickler.py``), so whatever this reader accepts, safe loading accepts too.

Anything else — another global, a quantized, sparse or nested tensor, a big-endian file, a
missing storage record — raises :class:`NotUnderstood`, and the caller falls back to
``torch.load``, which then gives its own exact answer (a load, or a refusal naming the globals).
"""

from __future__ import annotations

import functools
import pickle
import threading
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
import zipfile
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Bytes per element of the dtypes this reader understands (as torch's ``element_size()``).
DTYPE_SIZES: dict[str, int] = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "complex128": 16, "complex64": 8, "complex32": 4,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1,
    "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1,
}
# torch's legacy typed storage classes (``torch.FloatStorage`` ...), as pickled by torch.save.
STORAGE_DTYPES: dict[str, str] = {
    "BFloat16Storage": "bfloat16", "BoolStorage": "bool", "ByteStorage": "uint8", "CharStorage": "int8",
    "ComplexDoubleStorage": "complex128", "ComplexFloatStorage": "complex64", "DoubleStorage": "float64",
    "FloatStorage": "float32", "HalfStorage": "float16", "IntStorage": "int32", "LongStorage": "int64",
    "ShortStorage": "int16",
}
# NumPy types that hold these dtypes' values exactly (bfloat16 is widened to float32 by hand).
_NUMPY = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4", "int16": "<i2",
          "int8": "i1", "uint64": "<u8", "uint32": "<u4", "uint16": "<u2", "uint8": "u1", "bool": "?"}


class NotUnderstood(Exception):
    """The file uses something this reader does not model; the caller falls back to torch.load."""


class _Sealed:
    """Refuses pickle's BUILD: without this, BUILD would write into an instance's ``__dict__``
    (frozen or not) — and the dtype stand-ins are shared by every load in the process."""

    def __setstate__(self, state: Any) -> None:
        raise NotUnderstood(f"BUILD on {type(self).__name__}")


@dataclass(frozen=True)
class DtypeRecord(_Sealed):
    """Stands in for a ``torch.dtype`` value (``repr`` as torch's: ``torch.float32``)."""

    name: str

    def __repr__(self) -> str:
        return f"torch.{self.name}"

    __str__ = __repr__


@dataclass(frozen=True)
class DeviceRecord(_Sealed):
    """Stands in for a ``torch.device`` (``repr`` as torch's: ``device(type='cuda', index=0)``)."""

    type: str
    index: int | None = None

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"


@dataclass(frozen=True)
class StorageClass(_Sealed):
    """Stands in for a storage class named in a persistent id (``None`` dtype: untyped bytes)."""

    dtype: str | None


@dataclass
class StorageRef(_Sealed):
    """One ``data/<key>`` record of the archive; its bytes are read only when a value is asked for."""

    path: Path
    entry: str
    dtype: str
    numel: int
    _data: bytes | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self) -> bytes:
        """The record's bytes (cached: only small tensors' values are ever read)."""
        with self._lock:
            if self._data is None:
                with zipfile.ZipFile(self.path) as archive:
                    self._data = archive.read(self.entry)
            return self._data


@dataclass(frozen=True)
class TensorRecord(_Sealed):
    """A tensor's metadata, read from the pickle: what the summary needs, without its data."""

    dtype: str  # torch's name without the prefix: "float32", "bfloat16"...
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage: StorageRef
    offset: int  # storage offset, in elements

    def numel(self) -> int:
        """Number of elements (as ``Tensor.numel()``)."""
        count = 1
        for size in self.shape:
            count *= size
        return count

    def element_size(self) -> int:
        """Bytes per element (as ``Tensor.element_size()``)."""
        return DTYPE_SIZES[self.dtype]

    def is_complex(self) -> bool:
        """As ``Tensor.is_complex()``."""
        return self.dtype.startswith("complex")

    def tolist(self) -> Any:
        """The values as nested lists of Python numbers, exactly as ``Tensor.tolist()`` gives them."""
        return _values(self)

    def item(self) -> Any:
        """The single value of a one-element tensor (as ``Tensor.item()``)."""
        if self.numel() != 1:
            raise ValueError(f"a tensor with {self.numel()} elements cannot be converted to a scalar")
        value = self.tolist()
        while isinstance(value, list):
            value = value[0]
        return value


def _values(record: TensorRecord) -> Any:
    """Decode a tensor's elements from its storage bytes (NumPy where it is exact, else torch)."""
    import numpy as np

    raw = record.storage.read()
    if record.dtype in _NUMPY:
        base = np.frombuffer(raw, dtype=_NUMPY[record.dtype])
    elif record.dtype == "bfloat16":  # the top half of a float32: widening is exact
        base = (np.frombuffer(raw, dtype="<u2").astype("<u4") << 16).view("<f4")
    elif record.dtype == "float8_e5m2":  # the top byte of a float16
        base = (np.frombuffer(raw, dtype="u1").astype("<u2") << 8).view("<f2")
    elif record.dtype == "float8_e4m3fn":
        base = _e4m3fn_table()[np.frombuffer(raw, dtype="u1")]
    else:
        import torch  # complex32 and the rarer float8 kinds: never worth a table of their own

        flat = torch.frombuffer(bytearray(raw), dtype=getattr(torch, record.dtype))
        return torch.as_strided(flat, record.shape, record.stride, record.offset).tolist()
    view = np.lib.stride_tricks.as_strided(
        base[record.offset:], shape=record.shape, strides=[s * base.itemsize for s in record.stride], writeable=False
    )
    return view.tolist()


@functools.lru_cache(maxsize=1)
def _e4m3fn_table() -> Any:
    """float8_e4m3fn's 256 values as float32 (exponent bias 7, no infinities, NaN at S.1111.111)."""
    import numpy as np

    values = []
    for bits in range(256):
        sign = -1.0 if bits & 0x80 else 1.0
        exponent, mantissa = (bits >> 3) & 0xF, bits & 0x7
        if exponent == 0xF and mantissa == 0x7:
            values.append(float("nan"))
        elif exponent == 0:
            values.append(sign * mantissa / 8 * 2.0**-6)
        else:
            values.append(sign * (1 + mantissa / 8) * 2.0 ** (exponent - 7))
    return np.array(values, dtype="<f4")


# --- the stand-ins that find_class hands out ------------------------------------------------------

def _rebuild_tensor(storage: Any, offset: int, shape: Any, stride: Any, *_ignored: Any) -> TensorRecord:
    if not isinstance(storage, StorageRef):
        raise NotUnderstood(f"a tensor over {type(storage).__name__}")
    dims, steps = tuple(int(s) for s in shape), tuple(int(s) for s in stride)
    return TensorRecord(storage.dtype, dims, steps, storage, int(offset))


def _rebuild_tensor_v3(storage: Any, offset: int, shape: Any, stride: Any, requires_grad: Any, hooks: Any,
                       dtype: Any, *_ignored: Any) -> TensorRecord:
    if not isinstance(dtype, DtypeRecord) or dtype.name not in DTYPE_SIZES:
        raise NotUnderstood(f"tensor dtype {dtype!r}")
    record = _rebuild_tensor(storage, offset, shape, stride)
    return TensorRecord(dtype.name, record.shape, record.stride, record.storage, record.offset)


def _rebuild_parameter(data: Any, *_ignored: Any) -> TensorRecord:
    if not isinstance(data, TensorRecord):
        raise NotUnderstood(f"a parameter over {type(data).__name__}")
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> TensorRecord:
    # torch pickles a Tensor/Parameter that carries Python attributes this way; the summary
    # ignores the attributes, as it ignores requires_grad. Subclasses are not modelled.
    if not any(new_type is t for t in (_TENSOR, _PARAMETER)) or not any(func is f for f in _REBUILDERS):
        raise NotUnderstood("a tensor subclass")
    return _rebuild_parameter(func(*args))


def _size(dims: Any = ()) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


def _device(kind: Any, index: Any = None) -> DeviceRecord:
    if not isinstance(kind, str):
        raise NotUnderstood("a device")
    name, _, suffix = kind.partition(":")
    if suffix and index is None:
        index = int(suffix)
    return DeviceRecord(name, None if index is None else int(index))


def _encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode``, which protocol-2 pickles use for ``bytes``: strings only."""
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise NotUnderstood("_codecs.encode of a non-string")
    return text.encode(encoding)


class _Marker(_Sealed):
    """A class named in the pickle that only serves as an argument (``torch.Tensor``...)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        raise NotUnderstood(f"a call of {self.name}")


class _Function(_Sealed):
    """One of the functions above, as handed to the pickle (sealed against BUILD, like the rest)."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


_TENSOR = _Marker("torch.Tensor")
_PARAMETER = _Marker("torch.nn.parameter.Parameter")
_REBUILD_TENSOR = _Function(_rebuild_tensor)
_REBUILD_TENSOR_V3 = _Function(_rebuild_tensor_v3)
_REBUILD_PARAMETER = _Function(_rebuild_parameter)
_REBUILDERS = (_REBUILD_TENSOR, _REBUILD_TENSOR_V3, _REBUILD_PARAMETER)

_GLOBALS: dict[str, Any] = {
    # Containers: the same classes torch's safe unpickler hands out (creating them runs no code).
    "collections.OrderedDict": OrderedDict,
    "collections.Counter": Counter,
    "builtins.set": set,
    "builtins.bytearray": bytearray,
    "builtins.complex": complex,
    "_codecs.encode": _Function(_encode),
    "torch.Size": _Function(_size),
    "torch.device": _Function(_device),
    "torch.Tensor": _TENSOR,
    "torch.nn.parameter.Parameter": _PARAMETER,
    "torch._utils._rebuild_tensor": _REBUILD_TENSOR,
    "torch._utils._rebuild_tensor_v2": _REBUILD_TENSOR,
    "torch._utils._rebuild_tensor_v3": _REBUILD_TENSOR_V3,
    "torch._utils._rebuild_parameter": _REBUILD_PARAMETER,
    "torch._utils._rebuild_parameter_with_state": _REBUILD_PARAMETER,
    "torch._tensor._rebuild_from_type_v2": _Function(_rebuild_from_type_v2),
    "torch.storage.UntypedStorage": StorageClass(None),
}
_GLOBALS.update({f"torch.{name}": DtypeRecord(name) for name in DTYPE_SIZES})
_GLOBALS.update({f"torch.{name}": StorageClass(dtype) for name, dtype in STORAGE_DTYPES.items()})


class _Unpickler(pickle.Unpickler):
    """``find_class`` returns stand-ins only; storages resolve to records of the archive."""

    def __init__(self, file: Any, path: Path, prefix: str, entries: dict[str, int]) -> None:
        super().__init__(file, encoding="utf-8")  # torch.load's default for zip files
        self._path = path
        self._prefix = prefix
        self._entries = entries
        self._storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (torch.save writes protocol 2: ``__builtin__.set``), mapped as torch maps them.
        if (module, name) in NAME_MAPPING:
            module, name = NAME_MAPPING[(module, name)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
        found = _GLOBALS.get(f"{module}.{name}")
        if found is None:
            raise NotUnderstood(f"global {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NotUnderstood(f"persistent id {str(pid)[:60]}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, StorageClass) or not isinstance(numel, int):
            raise NotUnderstood(f"storage type {kind!r}")
        key = str(key)
        if key in self._storages:
            return self._storages[key]
        dtype = kind.dtype or "uint8"  # torch.load reads an untyped storage as bytes
        entry = f"{self._prefix}data/{key}"
        if self._entries.get(entry) != numel * DTYPE_SIZES[dtype]:  # missing or truncated: torch says how
            raise NotUnderstood(f"storage record {entry}")
        ref = self._storages[key] = StorageRef(self._path, entry, dtype, numel)
        return ref


def read_torch_zip(path: Path) -> Any:
    """The object a ``torch.save`` zip holds, with :class:`TensorRecord` in place of tensors.

    Raises:
        NotUnderstood: the file needs something this reader does not model (or is damaged);
            read it with ``torch.load`` instead, which gives the definitive answer.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos or "/" not in infos[0].filename:
                raise NotUnderstood("no archive folder")
            prefix = infos[0].filename.split("/", 1)[0] + "/"
            entries = {i.filename: i.file_size for i in infos if i.compress_type == zipfile.ZIP_STORED}
            if f"{prefix}data.pkl" not in entries:
                raise NotUnderstood("no data.pkl")
            order = entries.get(f"{prefix}byteorder")
            if order is not None and archive.read(f"{prefix}byteorder").strip() != b"little":
                raise NotUnderstood("a big-endian file")
            with archive.open(f"{prefix}data.pkl") as fh:
                return _Unpickler(fh, path, prefix, entries).load()
    except NotUnderstood:
        raise
    except Exception as exc:  # a damaged or unusual file: torch.load reports it in its own words
        raise NotUnderstood(f"{type(exc).__name__}: {exc}") from exc
