"""Comparing runs: which can be compared, their config differences and final metrics (torch-free).

``ftui compare`` prints :class:`Comparison`; the app's compare screen shows the same table beside
the overlaid curves. Runs compare when they solve the same task (``image`` or ``tabular``): the first
run named is the reference, and a run of another task is set aside with the reason, the rest are
compared. Runs of one task with different classes are compared (their losses are both
cross-entropies), with a note that their accuracies count different label sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RunError
from core.run_index import RunEntry, differing_keys, load_entry
from core.runs import METRICS, RunDelta, RunReader
from core.scalars import to_float

#: The results rows of a comparison, in order: (key, label). ``val/acc`` is the last validation's.
RESULT_ROWS: tuple[tuple[str, str], ...] = (
    ("status", "status"),
    ("best", "best"),
    ("val/acc", "final val/acc"),
    ("val/loss", "final val/loss"),
    ("val/f1_macro", "final val/f1_macro"),
    ("train/loss", "final train/loss"),
    ("train/acc", "final train/acc"),
    ("epochs", "epochs"),
    ("step", "steps"),
    ("duration", "duration"),
)


@dataclass
class ComparedRun:
    """One run of a comparison."""

    entry: RunEntry
    final: dict[str, float] = field(default_factory=dict)
    """``split/metric`` -> the last value logged (scalars only)."""
    confusion: dict[str, list[list[float]]] = field(default_factory=dict)
    """split -> the last confusion matrix."""

    def add_delta(self, delta: RunDelta | None) -> None:
        """Fold what a :class:`core.runs.RunReader` poll found: the ``metrics.columns`` block of the first
        poll (format-2 runs), then decoded rows."""
        if delta is None:
            return
        block = delta.metric_columns
        if block is not None:
            for (split, metric), points in block.points.items():
                if len(points.values):
                    self.final[f"{split}/{metric}"] = float(points.values[-1])
            for split, (_, _, matrix) in block.confusion.items():
                self.confusion[split] = matrix
        self.add_metrics(delta.metrics)

    def add_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Fold new ``metrics.jsonl`` rows in (the last value of each metric wins)."""
        for row in rows:
            split = str(row.get("split", "train"))
            for key, value in row.items():
                if key in ("step", "epoch", "time", "split"):
                    continue
                number = to_float(value)
                if number is not None:
                    self.final[f"{split}/{key}"] = number
            confusion = row.get("confusion")
            if isinstance(confusion, list) and confusion and all(isinstance(r, list) for r in confusion):
                self.confusion[split] = confusion

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def task(self) -> str | None:
        task = self.entry.info.get("task")
        return str(task) if task else None

    @property
    def class_names(self) -> list[str]:
        names = self.entry.info.get("class_names")
        return [str(n) for n in names] if isinstance(names, list) else []

    def value(self, key: str) -> Any:
        """A results row's value (see :data:`RESULT_ROWS`)."""
        info = self.entry.info
        if key == "status":
            return self.entry.status
        if key == "best":
            return self.entry.best_value
        if key == "epochs":
            return info.get("epoch")
        if key == "step":
            return info.get("step")
        if key == "duration":
            duration = self.entry.duration()
            return round(duration, 1) if duration is not None else None
        return self.final.get(key)


@dataclass
class Comparison:
    """Runs that compare, those set aside (with why), and what differs between the compared ones."""

    runs: list[ComparedRun]
    excluded: list[tuple[ComparedRun, str]] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def best_metric(self) -> str | None:
        metrics = {r.entry.best_metric for r in self.runs if r.entry.best_metric}
        return metrics.pop() if len(metrics) == 1 else None

    def to_json(self) -> dict[str, Any]:
        """What ``ftui compare --json`` prints."""
        return {
            "runs": [
                {
                    "name": r.name,
                    "path": str(r.entry.path),
                    "status": r.entry.status,
                    "task": r.task,
                    "dataset": r.entry.field("dataset"),
                    "classes": r.class_names,
                    "best": r.entry.info.get("best"),
                    "final": r.final,
                    "epochs": r.entry.info.get("epoch"),
                    "step": r.entry.info.get("step"),
                    "duration": r.value("duration"),
                    "config": {k: r.entry.config.get(k) for k in self.differing},
                }
                for r in self.runs
            ],
            "differing_keys": self.differing,
            "not_compared": [{"name": r.name, "path": str(r.entry.path), "reason": why} for r, why in self.excluded],
            "notes": self.notes,
        }


def load_compared(path: Path | str) -> ComparedRun:
    """Read one run's metrics (only that file) into a :class:`ComparedRun`."""
    reader = RunReader(path, files=(METRICS,))
    run = ComparedRun(load_entry(path))
    run.add_delta(reader.poll())
    return run


def compare(paths: list[Path]) -> Comparison:
    """Compare the runs in ``paths`` (the first is the reference); needs at least two."""
    if len(paths) < 2:
        raise RunError("compare needs at least two runs. Fix: name two or more, e.g. `ftui compare run-a run-b`.")
    loaded = [load_compared(p) for p in paths]
    return comparison_of(loaded)


def comparison_of(loaded: list[ComparedRun]) -> Comparison:
    """Group already loaded runs into a :class:`Comparison` (the first is the reference)."""
    reference = loaded[0]
    runs: list[ComparedRun] = []
    excluded: list[tuple[ComparedRun, str]] = []
    for run in loaded:
        why = incompatibility(reference, run)
        if why is None:
            runs.append(run)
        else:
            excluded.append((run, why))
    notes = []
    class_sets = {tuple(r.class_names) for r in runs if r.class_names}
    if len(class_sets) > 1:
        shown = "; ".join(f"{r.name}: {len(r.class_names)} ({', '.join(r.class_names[:6])}"
                          f"{', ...' if len(r.class_names) > 6 else ''})" for r in runs)
        notes.append(f"the runs classify different class sets ({shown}): losses compare, accuracies count "
                     "different label sets, and each confusion matrix has its own classes.")
    metrics = {r.entry.best_metric for r in runs if r.entry.best_metric}
    if len(metrics) > 1:
        notes.append(f"the runs monitor different metrics for 'best' ({', '.join(sorted(metrics))}).")
    return Comparison(runs, excluded, differing_keys([r.entry for r in runs]), notes)


def incompatibility(reference: ComparedRun, run: ComparedRun) -> str | None:
    """Why ``run`` cannot be compared with ``reference``, or None."""
    if run is reference or reference.task is None or run.task is None or run.task == reference.task:
        return None
    return (f"{run.name} is {_a(run.task)} run ({run.entry.field('dataset')}) and {reference.name} {_a(reference.task)} "
            f"run ({reference.entry.field('dataset')}): their losses and accuracies measure different problems")


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def format_number(value: Any) -> str:
    """A number in a comparison table."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)
