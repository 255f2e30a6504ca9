"""What a sweep looks like from here: its trials, their parameters, values and runs (torch-free).

The Optuna storage is the source of truth (it has the trials of every machine), read when the study's
storage can be opened from here without a password (a SQLite file, or a URL in ``FTUI_SWEEP_STORAGE``);
the local runs of the sweep (``run.json`` ``sweep``) supply run directories and live statuses, and
stand in for the storage when it cannot be read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.run_index import RunEntry

#: The run status -> the trial state it implies, when only the runs are known.
STATE_OF_STATUS = {"finished": "complete", "pruned": "pruned", "stopped": "pruned", "failed": "fail",
                   "running": "running", "created": "running", "interrupted": "running", "lost": "running"}


@dataclass
class TrialRow:
    """One trial: its Optuna state and value, parameters, and the run that trains it (when local)."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run: RunEntry | None = None
    host: str | None = None
    note: str = ""
    """``interrupted`` for a trial a stopped sweep left to resume, or the failure message."""
    intermediate: dict[int, float] = field(default_factory=dict)


@dataclass
class SweepView:
    """A sweep's trials with where the data came from."""

    study: str
    metric: str | None
    direction: str | None
    storage: str | None
    trials: list[TrialRow]
    source: str
    """``storage`` or ``runs`` (the storage could not be read: ``problem`` says why)."""
    problem: str | None = None

    @property
    def best(self) -> TrialRow | None:
        done = [t for t in self.trials if t.state == "complete" and t.value is not None and math.isfinite(t.value)]
        if not done:
            return None
        pick = min if self.direction == "minimize" else max
        return pick(done, key=lambda t: t.value)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def param_keys(self) -> list[str]:
        keys: dict[str, None] = {}
        for t in self.trials:
            keys.update(dict.fromkeys(t.params))
        return list(keys)


def sweep_runs(entries: list[RunEntry], study: str) -> list[RunEntry]:
    """The local runs of a sweep."""
    return [e for e in entries if e.sweep and e.sweep.get("study") == study]


def load_sweep(study: str, entries: list[RunEntry]) -> SweepView:
    """The sweep ``study`` from its storage when readable, else from its local runs."""
    runs = sweep_runs(entries, study)
    by_trial = {int(e.sweep["trial"]): e for e in runs if isinstance(e.sweep.get("trial"), int)}
    first = runs[0].sweep if runs else {}
    metric, direction, storage = first.get("metric"), first.get("direction"), first.get("storage")
    url = os.environ.get("FTUI_SWEEP_STORAGE") or storage
    problem = None
    if url and "***" not in str(url):
        try:
            trials = _from_storage(study, str(url), by_trial)
            return SweepView(study, metric, direction, storage, trials, "storage")
        except Exception as exc:  # noqa: BLE001 - any failure falls back to the runs
            problem = f"{type(exc).__name__}: {exc}"
    else:
        problem = "the storage needs a password: set FTUI_SWEEP_STORAGE to its full URL to read it"
    trials = [
        TrialRow(number=n, state=STATE_OF_STATUS.get(e.status, e.status), value=e.best_value,
                 params=dict(e.sweep.get("params") or {}), run=e, host=e.info.get("host"),
                 note="interrupted" if e.status == "interrupted" else "")
        for n, e in sorted(by_trial.items())
    ]
    return SweepView(study, metric, direction, storage, trials, "runs", problem)


def _from_storage(study: str, url: str, by_trial: dict[int, RunEntry]) -> list[TrialRow]:
    from core.sweep.study import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"{path} does not exist here")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 10}}
                                         if url.startswith("sqlite") else {})
    try:
        loaded = optuna.load_study(study_name=study, storage=storage)
        rows = []
        for t in loaded.get_trials(deepcopy=False):
            attrs = t.user_attrs
            rows.append(TrialRow(
                number=t.number,
                state=t.state.name.lower(),
                value=t.value if t.values is not None and len(t.values) == 1 else None,
                params=dict(t.params),
                run=by_trial.get(t.number),
                host=attrs.get("ftui_host"),
                note="interrupted" if attrs.get("ftui_status") == "interrupted" and t.state.name == "RUNNING"
                else str(attrs.get("ftui_error") or ""),
                intermediate=dict(t.intermediate_values),
            ))
        return rows
    finally:
        storage.remove_session()
        storage.engine.dispose()
