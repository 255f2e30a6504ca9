"""Datasets from the user's code: ``data.source: ./data.py:make_data`` or ``ftui.run(data=...)``.

The callable gets ``data.kwargs`` (plus ``seed`` when its signature names it) and returns the
*splits*: a mapping or an object with ``train``, ``val``, optional ``test``, and ``class_names``
(or ``num_classes``), and optionally ``meta`` (JSON-safe facts such as ``vocab_size`` that model
callables receive by name) — :class:`DataSplits` is such an object. Each split is a map-style
dataset (``len`` and ``[index]``) whose items are ``(inputs, label)``: inputs a tensor, a tuple of
tensors or a dict of named tensors, the label an int in ``[0, num_classes)``.

Every split is wrapped in :class:`UserSplit`, which takes the ``(index, epoch)`` keys of ftui's
sampler, checks each item and label, and runs ``__getitem__`` with torch's generator seeded from
``(seed, epoch, index)`` — so random transforms that draw from torch (torchvision's do) give the
same sample whatever the worker count, and a resumed run sees exactly the batches the uninterrupted
one saw. ftui's loaders, epoch seeding and DDP sharding then work as on the built-in sources.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.utils.data

from core.config import DataConfig
from core.data.bundle import DataBundle
from core.data.seeding import mix_seed
from core.errors import DataError
from core.usercode import (
    CodeBound, call_with_facts, code_files_of, file_sha256, is_object_name, load, object_name,
)

SPLITS = ("train", "val", "test")


@dataclass
class DataSplits:
    """What a data callable returns (a dict with the same keys works too).

    Attributes:
        train: map-style dataset of ``(inputs, label)`` items.
        val: validation dataset.
        test: optional test dataset.
        class_names: label names, index = label (or give ``num_classes``).
        num_classes: number of classes when there are no names (they become "0", "1", ...).
        meta: JSON-safe facts about the data (``vocab_size``, ``max_len``...) that model callables
            receive when their signature names them; stored in checkpoints.
    """

    train: Any
    val: Any
    test: Any = None
    class_names: Sequence[str] | None = None
    num_classes: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def build_user_data(cfg: DataConfig, seed: int, *, obj: Any = None) -> DataBundle:
    """Call the data callable (or take ``obj`` from the Python API) and wrap its splits.

    Raises:
        DataError: import or call failures, a result without splits, items that are not
            ``(inputs, label)``, or labels out of range.
    """
    record: dict[str, Any]
    if obj is not None:
        label = getattr(obj, "__name__", None) if callable(obj) and not _looks_like_splits(obj) else None
        label = label or "data from Python"
        result = obj
        if callable(obj) and not _looks_like_splits(obj):
            result, _ = call_with_facts(obj, dict(cfg.kwargs), {"seed": seed}, key="data.source", label=label)
        record = {"kind": "object", "name": object_name(obj)}
        source = _source_file(obj if callable(obj) and not _looks_like_splits(obj) else type(obj))
        if source is not None:
            record.update(path=str(source), sha256=file_sha256(source), files={str(source): file_sha256(source)})
    elif is_object_name(cfg.source):
        raise DataError(
            f"data.source: {cfg.source} stands for data that was given as a Python object to ftui.run(); a config "
            "cannot rebuild it. Fix: pass the data again from Python (ftui.run(..., data=...) or "
            "ftui.evaluate(..., data=...)), or name its code in the config: data.source: ./data.py:make_data."
        )
    else:
        code = load(cfg.source, key="data.source")
        label = code.name.short
        files = tuple(Path(f) for f in code.files())
        result, used = call_with_facts(code.obj, dict(cfg.kwargs), {"seed": seed}, key="data.source", label=label,
                                       files=files)
        record = code.record(cfg.kwargs, {k: v for k, v in used.items() if k == "seed"})
    splits = _splits(result, label)
    class_names = _class_names(result, label)
    meta = _meta(result, label)
    collate, collate_record = _collate(cfg)
    wrapped = {
        name: UserSplit(ds, split=name, num_classes=len(class_names), seed=seed, collate_fn=collate, owner=label)
        for name, ds in splits.items() if ds is not None and len(ds) > 0  # an empty test split is no test split
    }
    inputs, _ = wrapped["train"].probe()
    wrapped["val"].probe()
    if "test" in wrapped:
        wrapped["test"].probe()
    input_shape = _shape_of(inputs)
    counts = {name: _class_counts(ds, len(class_names)) for name, ds in wrapped.items()}
    info = {
        "source": label,
        "sizes": {name: len(ds) for name, ds in wrapped.items()},
        "class_counts": {name: c for name, c in counts.items() if c is not None},
        "augmented": False,
    }
    code_record = {"data": record}
    if collate_record is not None:
        code_record["collate"] = collate_record
    return DataBundle(
        train=wrapped["train"],
        val=wrapped["val"],
        test=wrapped.get("test"),
        class_names=class_names,
        input_shape=input_shape,
        task=_task(inputs),
        normalization=None,
        fitted={},
        info=info,
        meta=meta,
        code=code_record,
    )


def _looks_like_splits(obj: Any) -> bool:
    return isinstance(obj, Mapping) or hasattr(obj, "train")


def _source_file(obj: Any) -> Path | None:
    import inspect

    try:
        found = inspect.getsourcefile(obj)
    except (TypeError, OSError):
        return None
    path = Path(found).resolve() if found else None
    return path if path is not None and path.is_file() else None


def _get(result: Any, key: str) -> Any:
    if isinstance(result, Mapping):
        return result.get(key)
    return getattr(result, key, None)


def _splits(result: Any, label: str) -> dict[str, Any]:
    if not (isinstance(result, Mapping) or hasattr(result, "train")):
        raise DataError(
            f"data.source: {label} returned a {type(result).__name__}; ftui needs the splits: a dict (or an object) with "
            "train, val, optional test, and class_names. Fix: return {'train': ..., 'val': ..., 'class_names': [...]} "
            "(or ftui.DataSplits(train, val, class_names=[...]))."
        )
    if isinstance(result, Mapping):
        unknown = [k for k in result if k not in (*SPLITS, "class_names", "num_classes", "meta")]
        if unknown:
            raise DataError(
                f"data.source: {label} returned unknown key(s) {', '.join(map(str, unknown))}. Fix: return only train, "
                "val, test, class_names (or num_classes) and meta."
            )
    splits = {name: _get(result, name) for name in SPLITS}
    for name in ("train", "val"):
        if splits[name] is None:
            raise DataError(
                f"data.source: {label} returned no '{name}' split. Fix: return both train and val datasets "
                "(split off a validation set in your code, e.g. with torch.utils.data.random_split and a seeded "
                "generator)."
            )
    for name, ds in splits.items():
        if ds is None:
            continue
        if isinstance(ds, torch.utils.data.IterableDataset) or not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
            raise DataError(
                f"data.source: the {name} split of {label} is a {type(ds).__name__}, not a map-style dataset. Fix: "
                "give it __len__ and __getitem__ (ftui shards, shuffles and resumes by index)."
            )
        if len(ds) == 0 and name != "test":
            raise DataError(f"data.source: the {name} split of {label} is empty. Fix: give it samples.")
    return splits


def _class_names(result: Any, label: str) -> list[str]:
    names, count = _get(result, "class_names"), _get(result, "num_classes")
    if names is not None:
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or not names:
            raise DataError(
                f"data.source: class_names from {label} must be a non-empty list of strings (given: {names!r:.60}). "
                "Fix: return class_names=['cat', 'dog', ...]."
            )
        names = [str(n) for n in names]
        if count is not None and int(count) != len(names):
            raise DataError(
                f"data.source: {label} returned {len(names)} class_names but num_classes={count}. Fix: return one."
            )
        if len(set(names)) != len(names):
            raise DataError(f"data.source: class_names from {label} repeat a name. Fix: make every name unique.")
        return names
    if isinstance(count, int) and not isinstance(count, bool) and count >= 2:
        return [str(i) for i in range(count)]
    raise DataError(
        f"data.source: {label} returned neither class_names nor num_classes (>= 2). Fix: add "
        "'class_names': [...] (or 'num_classes': N) to what it returns."
    )


def _meta(result: Any, label: str) -> dict[str, Any]:
    import json

    meta = _get(result, "meta") or {}
    if not isinstance(meta, Mapping):
        raise DataError(f"data.source: meta from {label} must be a dict of facts (given: {type(meta).__name__}).")
    reserved = [k for k in meta if k in ("num_classes", "input_shape", "class_names", "seed")]
    if reserved:
        raise DataError(
            f"data.source: meta from {label} sets {', '.join(reserved)}, which ftui derives itself. Fix: remove them."
        )
    try:
        return json.loads(json.dumps(dict(meta)))
    except (TypeError, ValueError):
        raise DataError(
            f"data.source: meta from {label} must hold numbers, strings, lists and dicts only (it is stored in "
            "checkpoints). Fix: keep tensors and objects out of it."
        ) from None


def _collate(cfg: DataConfig) -> tuple[Callable[..., Any] | None, dict[str, Any] | None]:
    if cfg.collate is None or is_object_name(cfg.collate):
        return None, None
    code = load(cfg.collate, key="data.collate")
    return code.obj, code.record({})


class UserSplit(torch.utils.data.Dataset):
    """A split of a user dataset as ftui's loaders need it (see the module docstring).

    Args:
        base: the user's map-style dataset.
        split: ``train``, ``val`` or ``test`` (for messages).
        num_classes: labels must lie in ``[0, num_classes)``.
        seed: seed of the per-sample generator (with the epoch and the index).
        collate_fn: the user's collate function, used by ``build_loader`` (None: torch's).
        owner: how the data is named in messages (``data.py:make_data``).
    """

    def __init__(self, base: Any, *, split: str, num_classes: int, seed: int,
                 collate_fn: Callable[..., Any] | None = None, owner: str = "the dataset") -> None:
        self.base = base
        self.split = split
        self.num_classes = int(num_classes)
        self.seed = int(seed)
        self.collate_fn = collate_fn
        self.owner = owner
        targets = getattr(base, "targets", None)
        self.targets: list[int] | None = None
        if targets is not None:
            try:
                self.targets = [int(t) for t in targets]
            except (TypeError, ValueError):
                self.targets = None
        if self.targets is not None and len(self.targets) == len(base):
            bad = next(((i, t) for i, t in enumerate(self.targets) if not 0 <= t < self.num_classes), None)
            if bad is not None:
                raise DataError(self._label_message(bad[0], bad[1]))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        generator = torch.random.default_generator
        state = generator.get_state()
        generator.manual_seed(mix_seed(self.seed, epoch, index))
        try:
            item = self.base[index]
        finally:
            generator.set_state(state)
        return self._check(item, index)

    def _check(self, item: Any, index: int) -> tuple[Any, int]:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(
                f"data.source: {self.split}[{index}] of {self.owner} is {_describe(item)}; ftui needs (inputs, label) "
                "pairs. Fix: return (inputs, label) from __getitem__ (inputs a tensor, a tuple or a dict of tensors)."
            )
        inputs, label = item
        if not _is_inputs(inputs):
            raise DataError(
                f"data.source: the inputs of {self.split}[{index}] of {self.owner} are {_describe(inputs)}; ftui needs a "
                "tensor, a tuple of tensors or a dict of named tensors. Fix: convert them in __getitem__ (e.g. "
                "torch.as_tensor)."
            )
        try:
            value = int(label)
            exact = float(label) == value
        except (TypeError, ValueError, RuntimeError):
            exact = False
            value = -1
        if not exact or isinstance(label, bool):
            raise DataError(
                f"data.source: the label of {self.split}[{index}] of {self.owner} is {_describe(label)}; ftui needs an "
                "integer class index. Fix: return the label as an int."
            )
        if not 0 <= value < self.num_classes:
            raise DataError(self._label_message(index, value))
        return inputs, value

    def _label_message(self, index: int, value: int) -> str:
        return (
            f"data.source: {self.split}[{index}] of {self.owner} has label {value}, outside [0, {self.num_classes}) "
            f"for the {self.num_classes} classes. Fix: return labels from 0 to {self.num_classes - 1}, or more "
            "class_names."
        )

    def probe(self) -> tuple[Any, int]:
        """The first item, checked (build time: a bad dataset fails before training starts)."""
        try:
            return self[0]
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's dataset: its line, exit 2
            from core.usercode import user_frame

            where = user_frame(exc)
            raise DataError(
                f"data.source: reading {self.split}[0] of {self.owner} raised {type(exc).__name__}: {exc}"
                f"{f' ({where})' if where else ''}. Fix: correct the dataset's __getitem__ (--debug shows the traceback)."
            ) from exc

    def __reduce__(self) -> Any:
        # Workers started by spawn or forkserver re-import the user's files before unpickling.
        files = code_files_of(self.base) + (code_files_of(self.collate_fn) if self.collate_fn is not None else [])
        if not files:
            return super().__reduce__()
        return _rebuild_split, (CodeBound(self.__dict__, files),)


def _rebuild_split(bound: CodeBound) -> UserSplit:
    split = UserSplit.__new__(UserSplit)
    split.__dict__.update(bound.obj)
    return split


def _is_inputs(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return bool(value) and all(isinstance(v, torch.Tensor) for v in value)
    return False


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, Mapping):
        return f"a dict with keys {', '.join(map(str, list(value)[:6]))}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} ({', '.join(type(v).__name__ for v in value[:4])})"
    return f"a {type(value).__name__} ({value!r:.40})"


def _shape_of(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor):
        return tuple(int(s) for s in inputs.shape)
    if isinstance(inputs, Mapping):
        return {k: tuple(int(s) for s in v.shape) for k, v in inputs.items()}
    return [tuple(int(s) for s in v.shape) for v in inputs]


def _task(inputs: Any) -> str:
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
        if inputs.dim() == 3:
            return "image"
        if inputs.dim() == 1:
            return "tabular"
    return "custom"


def _class_counts(split: UserSplit, num_classes: int) -> list[int] | None:
    """Samples per class when the dataset lists its labels (``targets``); None otherwise (not read)."""
    if split.targets is None:
        return None
    counts = Counter(split.targets)
    return [int(counts.get(c, 0)) for c in range(num_classes)]
