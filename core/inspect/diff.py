"""Compare the weights of two checkpoints tensor by tensor, per top-level module, and (LoRA
checkpoints) per adapter: the update each adapter makes to its layer (``core.lora.compare``).

Parameters and buffers are kept apart: BatchNorm's running statistics move with every batch a model
sees in train mode (a frozen layer's too, unless ``bn: freeze``), and ``num_batches_tracked`` is a
counter, so mixed into a module's change they would hide how far its weights moved. A tensor is a
buffer when the checkpoint's fine-tuning record does not list it among the parameters (ftui
checkpoints), else when its name is a known buffer's or it holds integers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from core.inspect.loading import LoadedCheckpoint

STATUSES = ("unchanged", "changed", "shape_changed", "added", "removed")
KINDS = ("parameter", "buffer")


@dataclass
class TensorDiff:
    """One tensor's comparison; ``rel_change`` is ||a-b|| / ||a|| (None unless ``changed``)."""

    name: str
    status: str  # one of STATUSES
    shape_a: tuple[int, ...] | None
    shape_b: tuple[int, ...] | None
    dtype_a: str | None
    dtype_b: str | None
    rel_change: float | None = None
    max_abs_change: float | None = None
    kind: str = "parameter"  # "parameter" or "buffer" (running statistics, counters)

    @property
    def module(self) -> str:
        """The top-level module ("" for a tensor at the root)."""
        return self.name.split(".", 1)[0] if "." in self.name else ""


@dataclass
class ModuleDiff:
    """Counts per status for one top-level module, and the relative change of its parameters and,
    apart, of its floating-point buffers."""

    module: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    rel_change: float | None = None  # sqrt(sum ||a-b||^2) / sqrt(sum ||a||^2) over compared parameters
    max_rel_change: float | None = None  # the largest parameter's rel_change
    buffer_rel_change: float | None = None  # the same over floating-point buffers (running statistics)
    frozen: bool | str | None = None  # the module's frozen flag in B (else A), when the checkpoint says

    @property
    def status(self) -> str:
        """"unchanged" when every tensor is bitwise equal, else the most telling status."""
        compared = {k for k, v in self.counts.items() if v}
        if compared <= {"unchanged"}:
            return "unchanged"
        if compared == {"added"}:
            return "added"
        if compared == {"removed"}:
            return "removed"
        return "changed"


@dataclass
class DiffReport:
    """The comparison of A and B."""

    a: str
    b: str
    tensors: list[TensorDiff]
    modules: list[ModuleDiff]
    compression: dict[str, Any] | None = None  # what ftui compress did between A and B (see compression_between)
    adapters: dict[str, Any] | None = None  # LoRA updates ΔW per adapted layer (core.lora.compare)

    def counts(self) -> dict[str, int]:
        """Tensors per status."""
        out = dict.fromkeys(STATUSES, 0)
        for t in self.tensors:
            out[t.status] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON form (documented in docs/inspect.md)."""
        return {
            "a": self.a,
            "b": self.b,
            "counts": self.counts(),
            "modules": [
                {"module": m.module, "status": m.status, "frozen": m.frozen, "counts": m.counts,
                 "rel_change": m.rel_change, "max_rel_change": m.max_rel_change,
                 "buffer_rel_change": m.buffer_rel_change}
                for m in self.modules
            ],
            "tensors": [
                dict(asdict(t), shape_a=list(t.shape_a) if t.shape_a is not None else None,
                     shape_b=list(t.shape_b) if t.shape_b is not None else None)
                for t in self.tensors
            ],
            "compression": self.compression,
            "adapters": self.adapters,
        }


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bytes (NaNs in the same places count as equal, unlike ``torch.equal``)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.contiguous(), b.contiguous()
    if a.numel() == 0:
        return True
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def compare_tensors(name: str, a: torch.Tensor, b: torch.Tensor) -> tuple[TensorDiff, float, float]:
    """Compare two tensors of one name; also returns ||a-b||^2 and ||a||^2 for module totals."""
    info = dict(shape_a=tuple(a.shape), shape_b=tuple(b.shape), dtype_a=str(a.dtype).removeprefix("torch."),
                dtype_b=str(b.dtype).removeprefix("torch."))
    if a.shape != b.shape:
        return TensorDiff(name, "shape_changed", **info), 0.0, 0.0
    if _bitwise_equal(a, b):
        # Its norm still counts in the module's total, or a module's change would look too large.
        base = a.detach().to(torch.float64).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        return TensorDiff(name, "unchanged", **info), 0.0, float(base.pow(2).sum())
    x = a.detach().to(torch.float64)
    y = b.detach().to(torch.float64)
    delta = (x - y).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    diff_sq = float(delta.pow(2).sum())
    base_sq = float(x.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).pow(2).sum())
    rel = math.sqrt(diff_sq / base_sq) if base_sq > 0 else (math.inf if diff_sq > 0 else 0.0)
    max_abs = float(delta.abs().max()) if delta.numel() else 0.0
    return TensorDiff(name, "changed", rel_change=_finite(rel), max_abs_change=max_abs, **info), diff_sq, base_sq


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def diff_checkpoints(a: LoadedCheckpoint, b: LoadedCheckpoint) -> DiffReport:
    """Compare the model weights of ``a`` and ``b``, one tensor in memory at a time."""
    names_a, names_b = a.weights.names(), b.weights.names()
    in_b = set(names_b)
    in_a = set(names_a)
    order = names_a + [n for n in names_b if n not in in_a]
    params = _parameter_names(a) | _parameter_names(b)
    tensors: list[TensorDiff] = []
    # per module and kind: [sum ||a-b||^2, sum ||a||^2]; counters (integer buffers) add nothing
    sums: dict[tuple[str, str], list[float]] = {}
    for name in order:
        if name not in in_b:
            i = a.weights.info(name)
            result = TensorDiff(name, "removed", i.shape, None, i.dtype, None)
            sq = (0.0, 0.0)
        elif name not in in_a:
            i = b.weights.info(name)
            result = TensorDiff(name, "added", None, i.shape, None, i.dtype)
            sq = (0.0, 0.0)
        else:
            result, *sq = compare_tensors(name, a.weights.get(name), b.weights.get(name))
        result.kind = _kind(name, result.dtype_a or result.dtype_b, params)
        tensors.append(result)
        if result.kind == "buffer" and _is_integer(result.dtype_a or result.dtype_b):
            continue
        acc = sums.setdefault((result.module, result.kind), [0.0, 0.0])
        acc[0] += sq[0]
        acc[1] += sq[1]
    modules: dict[str, ModuleDiff] = {}
    for t in tensors:
        m = modules.setdefault(t.module, ModuleDiff(t.module))
        m.counts[t.status] += 1
        if t.rel_change is not None and t.kind == "parameter":
            m.max_rel_change = max(m.max_rel_change or 0.0, t.rel_change)
    for key, m in modules.items():
        if m.counts["changed"] or m.counts["unchanged"]:
            m.rel_change = _relative(sums.get((key, "parameter")))
            m.buffer_rel_change = _relative(sums.get((key, "buffer")))
    frozen = _top_level_frozen(a)
    frozen.update({k: v for k, v in _top_level_frozen(b).items() if v is not None})
    for key, m in modules.items():
        m.frozen = frozen.get(key)
    return DiffReport(str(a.path), str(b.path), tensors, list(modules.values()),
                      compression=compression_between(a.raw or {}, b.raw or {}), adapters=_adapters(a, b))


def _relative(sums: list[float] | None) -> float | None:
    """sqrt(sum ||a-b||^2 / sum ||a||^2); None when nothing of the kind was compared."""
    if sums is None:
        return None
    diff_sq, base_sq = sums
    return _finite(math.sqrt(diff_sq / base_sq)) if base_sq > 0 else (0.0 if diff_sq == 0 else None)


def _parameter_names(ckpt: LoadedCheckpoint) -> set[str]:
    """The parameters an ftui checkpoint's fine-tuning record lists (every parameter is in a group)."""
    groups = ((ckpt.raw or {}).get("finetune") or {}).get("groups") if isinstance(ckpt.raw, dict) else None
    if not isinstance(groups, list):
        return set()
    return {str(n) for g in groups if isinstance(g, dict) for n in g.get("params") or []}


def _kind(name: str, dtype: str | None, params: set[str]) -> str:
    if params:
        return "parameter" if name in params else "buffer"
    from core.inspect.summary import is_buffer

    return "buffer" if is_buffer(name) or _is_integer(dtype) else "parameter"


def _is_integer(dtype: str | None) -> bool:
    return bool(dtype) and not any(word in str(dtype) for word in ("float", "bfloat", "complex"))


def compression_between(a: dict, b: dict) -> dict[str, Any] | None:
    """The compression steps B has and A has not (or the reverse), and the channels they removed.

    ``direction`` is ``"a->b"`` when B was compressed from A (the usual ``ftui diff ORIGINAL VARIANT``),
    ``"b->a"`` when the arguments are the other way round.
    """
    from core.compress import record as rec

    steps_a, steps_b = rec.steps(a.get(rec.RECORD_KEY)), rec.steps(b.get(rec.RECORD_KEY))
    if not steps_a and not steps_b:
        return None
    key = lambda s: (s.get("kind"), s.get("method"), str(s.get("history") or s.get("run") or s.get("amount")))  # noqa: E731
    in_a = {key(s) for s in steps_a}
    in_b = {key(s) for s in steps_b}
    only_b = [s for s in steps_b if key(s) not in in_a]
    only_a = [s for s in steps_a if key(s) not in in_b]
    direction, new = ("a->b", only_b) if only_b or not only_a else ("b->a", only_a)
    return {
        "direction": direction,
        "steps": [rec.describe_step(s) for s in new],
        "channels": rec.channel_changes({"steps": new}),
        "variant_a": (a.get(rec.RECORD_KEY) or {}).get("variant") if isinstance(a.get(rec.RECORD_KEY), dict) else None,
        "variant_b": (b.get(rec.RECORD_KEY) or {}).get("variant") if isinstance(b.get(rec.RECORD_KEY), dict) else None,
    }


def _adapters(a: LoadedCheckpoint, b: LoadedCheckpoint) -> dict[str, Any] | None:
    from core.lora.compare import compare_adapters

    record = lambda c: (c.raw or {}).get("lora") if isinstance((c.raw or {}).get("lora"), dict) else None  # noqa: E731
    return compare_adapters(a.weights, record(a), b.weights, record(b))


def _top_level_frozen(ckpt: LoadedCheckpoint) -> dict[str, bool | str | None]:
    from core.inspect.summary import summarize

    return {m["path"]: m["frozen"] for m in summarize(ckpt)["modules"] if m["depth"] == 1}
