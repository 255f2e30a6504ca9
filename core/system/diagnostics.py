"""Torch-free analysis of recent telemetry and train metrics: what slows a run down or threatens it.

:func:`diagnose` reads ``system.jsonl`` records and ``metrics.jsonl`` rows (the trainer logs
``data_wait``, the fraction of step time spent waiting for the next batch, in its train rows) and
returns :class:`Finding` objects with a message and the config settings to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

GIB = 1024**3


@dataclass(frozen=True)
class Suggestion:
    """A config key and what to do with it."""

    key: str
    advice: str

    def __str__(self) -> str:
        return f"{self.key}: {self.advice}"


@dataclass(frozen=True)
class Finding:
    """One diagnosis: ``kind`` is stable for programs, ``message`` is for people."""

    kind: str  # "input_bottleneck" | "gpu_memory_full"
    level: str  # "warning" | "info"
    message: str
    suggestions: tuple[Suggestion, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "kind": self.kind,
            "level": self.level,
            "message": self.message,
            "suggestions": [{"key": s.key, "advice": s.advice} for s in self.suggestions],
        }


@dataclass(frozen=True)
class Thresholds:
    """When a finding fires."""

    window: float = 60.0  # seconds of recent history considered
    data_wait: float = 0.3  # mean fraction of step time waiting for data (GPU runs)
    data_wait_cpu: float = 0.5  # the same without GPU figures (CPU runs): loaders share the cores
    gpu_util_low: float = 50.0  # mean GPU utilisation (%) below which waiting for data is the limit
    cpu_saturated: float = 90.0  # system CPU % at which more workers cannot help
    memory_full: float = 0.95  # used / total GPU memory
    min_rows: int = 2  # train rows with data_wait needed
    min_samples: int = 2  # telemetry samples needed for a GPU-utilisation verdict


def diagnose(
    samples: Iterable[dict[str, Any]],
    metrics: Iterable[dict[str, Any]],
    thresholds: Thresholds = Thresholds(),
) -> list[Finding]:
    """Findings over the last ``thresholds.window`` seconds of samples and train metrics."""
    samples = [s for s in samples if _num(s.get("time")) is not None]
    rows = [m for m in metrics if m.get("split") == "train" and _num(m.get("time")) is not None]
    times = [s["time"] for s in samples] + [m["time"] for m in rows]
    if not times:
        return []
    since = max(times) - thresholds.window
    samples = [s for s in samples if s["time"] >= since]
    rows = [m for m in rows if m["time"] >= since]
    findings: list[Finding] = []
    memory = _memory_full(samples, thresholds)
    bottleneck = _input_bottleneck(samples, rows, thresholds, memory_tight=bool(memory))
    if bottleneck is not None:
        findings.append(bottleneck)
    findings.extend(memory)
    return findings


def _input_bottleneck(
    samples: list[dict[str, Any]], rows: list[dict[str, Any]], th: Thresholds, *, memory_tight: bool
) -> Finding | None:
    waits = [w for w in (_num(m.get("data_wait")) for m in rows) if w is not None]
    if len(waits) < th.min_rows:
        return None
    wait = sum(waits) / len(waits)
    utils = [
        u
        for s in samples
        for g in (s.get("gpus") or [])
        if (u := _num(g.get("util"))) is not None
    ]
    on_gpu = len(utils) >= th.min_samples
    if on_gpu:
        util = sum(utils) / len(utils)
        if wait < th.data_wait or util >= th.gpu_util_low:
            return None
        message = (
            f"The input pipeline is the bottleneck: the trainer waited for data {wait:.0%} of each step "
            f"while GPU utilisation averaged {util:.0f}% over the last {th.window:.0f} s."
        )
    else:
        if wait < th.data_wait_cpu:
            return None
        message = (
            f"The input pipeline is the bottleneck: the trainer waited for data {wait:.0%} of each step "
            f"over the last {th.window:.0f} s."
        )
    latest = samples[-1] if samples else {}
    workers = latest.get("workers")
    cores = _num(latest.get("cpu_count"))
    cpus = [c for c in (_num(s.get("cpu_percent")) for s in samples) if c is not None]
    cpu = sum(cpus) / len(cpus) if cpus else None
    suggestions: list[Suggestion] = []
    if cpu is not None and cpu >= th.cpu_saturated:
        message += (
            f" The CPU is saturated ({cpu:.0f}% of {int(cores or 0) or 'all'} cores), so more workers will not "
            "help: make each sample cheaper."
        )
        suggestions += [
            Suggestion("data.augment", "lighter augmentation (fewer or cheaper transforms)"),
            Suggestion("data.image_size", "smaller images, or store the dataset pre-resized"),
        ]
    else:
        if isinstance(workers, int):
            target = max(2, workers * 2)
            if cores:
                target = min(target, int(cores))
            if workers == 0:
                message += " Batches are loaded in the training process itself (no workers)."
            if target > workers:
                suggestions.append(Suggestion("data.num_workers", f"{workers} → {target}"))
        else:
            suggestions.append(Suggestion("data.num_workers", f"raise it (up to the {int(cores or 0) or 'CPU'} cores)"))
        if isinstance(workers, int) and workers > 0:
            suggestions += [
                Suggestion("data.persistent_workers", "true (no worker restart each epoch)"),
                Suggestion("data.prefetch_factor", "4 (more batches ready per worker)"),
            ]
    if on_gpu:
        suggestions.append(Suggestion("data.pin_memory", "true (faster, asynchronous copies to the GPU)"))
    if not memory_tight:
        suggestions.append(Suggestion("data.batch_size", "larger batches amortise per-batch overhead"))
    return Finding("input_bottleneck", "warning", message, tuple(suggestions))


def _memory_full(samples: list[dict[str, Any]], th: Thresholds) -> list[Finding]:
    if not samples:
        return []
    findings = []
    for gpu in samples[-1].get("gpus") or []:
        used, total = _num(gpu.get("mem_used")), _num(gpu.get("mem_total"))
        if used is None or not total:
            continue
        frac = used / total
        if frac < th.memory_full:
            continue
        label = f"GPU {gpu.get('index')}" + (f" ({gpu['name']})" if gpu.get("name") else "")
        message = (
            f"{label} memory is {frac:.0%} full ({used / GIB:.1f} of {total / GIB:.1f} GiB): "
            "a larger batch or a memory spike may run out of memory."
        )
        reserved = _num(gpu.get("torch_reserved"))
        if reserved is not None and used - reserved > 0.1 * total:
            message += f" {(used - reserved) / GIB:.1f} GiB of it is held outside this run's PyTorch allocator."
        findings.append(
            Finding(
                "gpu_memory_full",
                "warning",
                message,
                (
                    Suggestion("data.batch_size", "smaller"),
                    Suggestion("trainer.accumulate_grad_batches", "raise it to keep the effective batch size"),
                    Suggestion("trainer.precision", "bf16-mixed (or 16-mixed) halves activation memory"),
                ),
            )
        )
    return findings


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
