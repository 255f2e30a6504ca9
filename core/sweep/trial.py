"""One sweep trial trained here: an ordinary ``ftui run`` followed through its run directory.

The engine knows nothing of Optuna. :class:`TrialRun` reads the run's ``metrics.jsonl`` through
:class:`core.runs.RunReader`; after each validation it reports the objective *so far* (the run's
best monitored value up to that epoch) to the Optuna trial at step = epochs completed, asks the
study's pruner, and when the pruner says so sends the run a ``prune`` control command — the run then
saves ``last.pt`` and ends with status ``pruned``, like a ``stop`` with a reason.

Reporting the best so far (rather than the epoch's own value) makes a trial's reported value at
every step the value the trial would have if it ended there; so a pruned trial's value in Optuna
(Optuna registers the last reported value) equals its run's best, like a completed trial's.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any

from core import control
from core.runs import ACTIVE_STATUSES, METRICS, RUN_JSON, RunReader, live_status, read_json
from core.scalars import to_float
from core.sweep.study import Objective


class TrialRun:
    """Follows one trial's run, reports its validations and prunes it when the pruner says so.

    ``process`` is the ``ftui run`` started for it (None when a trial still training is adopted
    after its sweep process died: then the run's own status says when it ended).
    """

    def __init__(self, trial: Any, path: Path, objective: Objective, process: subprocess.Popen | None = None,
                 *, reported: set[int] | None = None) -> None:
        self.trial = trial
        self.path = Path(path)
        self.objective = objective
        self.process = process
        # decoded rows (no metrics.columns): the validation rows are what is reported
        self.reader = RunReader(self.path, files=(METRICS,), columns=False)
        self.reported: set[int] = set(reported or ())
        self.best: float | None = None
        self.last_epoch: int | None = None
        self.pruned_at: int | None = None
        self.started = time.monotonic()
        self.ended_at: float | None = None
        self.overhead = 0.0
        """Seconds the sweep spent on this trial outside its run (asking, launching, telling)."""

    @property
    def number(self) -> int:
        return int(self.trial.number)

    def poll(self) -> bool:
        """Report what is new and prune if due; True once the run's process has ended."""
        ended = self._ended()
        self._report(self._new_rows())
        if ended:
            self._report(self._new_rows())  # written just before the exit
            self.ended_at = time.monotonic()
        return ended

    def _new_rows(self) -> list[dict[str, Any]]:
        delta = self.reader.poll()
        return delta.metrics if delta is not None else []

    def _ended(self) -> bool:
        if self.process is not None:
            return self.process.poll() is not None
        return live_status(read_json(self.path / RUN_JSON) or {}) not in ACTIVE_STATUSES

    def _report(self, rows: list[dict[str, Any]]) -> None:
        split, key = self.objective.split_key
        new_step = False
        for row in rows:
            if row.get("split") != split:
                continue
            value = to_float(row.get(key))
            if value is None or not math.isfinite(value):
                continue
            if self.best is None or self.objective.better(value, self.best):
                self.best = value
            step = int(row.get("epoch", 0)) + 1  # epochs completed: comparable across batch sizes
            self.last_epoch = step
            if step not in self.reported:
                self.trial.report(self.best, step)
                self.reported.add(step)
                new_step = True
        if new_step and self.pruned_at is None and self.process_alive() and self.trial.should_prune():
            self.pruned_at = self.last_epoch
            pruner = type(self.trial.study.pruner).__name__
            reason = (f"pruned by sweep {self.trial.study.study_name} ({pruner}): {self.objective.metric} "
                      f"{self.best:.4g} after {self.last_epoch} epoch(s) is not promising")
            try:
                control.send(self.path, "prune", {"reason": reason}, sender="ftui sweep")
            except OSError:
                pass  # the run directory vanished: the end of the process tells the rest

    def process_alive(self) -> bool:
        return not self._ended()

    def interrupt(self, signum: int) -> None:
        """Forward a signal to the trial's process (it saves last.pt and ends interrupted)."""
        import os

        pid = self.process.pid if self.process is not None else (read_json(self.path / RUN_JSON) or {}).get("pid")
        if not pid:
            return
        try:
            os.kill(int(pid), signum)
        except OSError:
            pass

    def seconds(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started
