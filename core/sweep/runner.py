"""``ftui sweep``: ask Optuna for parameters, train each trial as an ordinary run, tell Optuna the result.

One sweep process runs up to ``parallel`` trials at a time on this machine; any number of sweep
processes, here or on other machines, can share one study through its RDB storage. The loop is
single-threaded: every :data:`POLL_SECONDS` it follows each trial's run directory
(:class:`core.sweep.trial.TrialRun`), tells Optuna about the trials that ended and starts new ones
until the study holds ``trials`` trials.

Trials and runs point at each other: the run's ``run.json`` has ``sweep`` (study, trial, params,
storage), its ``meta.json`` the tag ``sweep:<study>``, and the Optuna trial the user attributes
``ftui_run`` (the run directory), ``ftui_host``, ``ftui_sweep`` (the sweep process) and
``ftui_status`` (the run's final status).

Stopping (Ctrl-C or SIGTERM): the running trials get SIGINT, save ``last.pt`` and end
``interrupted``; their Optuna trials stay RUNNING, marked ``ftui_status: interrupted``. Running the
same command again resumes them from ``last.pt`` (reporting only epochs not yet reported), adopts
trials still training whose sweep process died, tells Optuna about trials that ended meanwhile, and
goes on until the study has ``trials`` trials.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.config import load_config
from core.errors import ConfigError
from core.launch import launch, launch_resume
from core.runs import ACTIVE_STATUSES, CHECKPOINT_DIR, RUN_JSON, live_status, pid_alive, read_json
from core.sweep.space import Param, check_space
from core.sweep.study import (
    Objective,
    SweepError,
    default_storage,
    make_pruner,
    make_sampler,
    open_storage,
    open_study,
    public_url,
    study_record,
)
from core.sweep.trial import TrialRun

#: Seconds between two looks at the running trials (a pruning decision waits at most this long).
POLL_SECONDS = 0.2


@dataclass
class SweepOptions:
    """What ``ftui sweep`` was asked to do."""

    config: Path
    params: list[Param]
    trials: int
    parallel: int = 1
    overrides: list[str] = field(default_factory=list)
    storage: str | None = None
    name: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    root: Path | None = None

    def command(self, study: str) -> str:
        """The command line that resumes this sweep (or joins it from another machine)."""
        argv = ["ftui", "sweep", str(self.config)]
        for p in self.params:
            argv += ["--param", p.spec]
        argv += ["--trials", str(self.trials)]
        if self.parallel != 1:
            argv += ["--parallel", str(self.parallel)]
        for item in self.overrides:
            argv += ["--set", item]
        argv += ["--name", study]
        if self.storage:
            argv += ["--storage", self.storage]
        if self.sampler != "tpe":
            argv += ["--sampler", self.sampler]
        if self.pruner != "median":
            argv += ["--pruner", self.pruner]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        if self.root is not None:
            argv += ["--root", str(self.root)]
        return shlex.join(argv)


class Sweep:
    """A sweep worker. :meth:`prepare` checks the input and opens the study; :meth:`run` runs it."""

    def __init__(self, options: SweepOptions, say: Callable[[str], None] = print) -> None:
        self.options = options
        self.say = say
        self.study: Any = None
        self.objective: Objective | None = None
        self.storage_url = ""
        self.root = Path("runs")
        self.active: list[TrialRun] = []
        self.to_resume: list[tuple[Any, Path, set[int]]] = []
        self.signal_received: int | None = None
        self._signals = 0
        self.outcomes: list[tuple[int, str, float | None]] = []
        self.overheads: list[float] = []
        """Per trial, seconds spent by the sweep around the run (ask, launch, tell), for the benchmark."""

    # -- setting up -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Validate the config and the search space, open the storage and the study (exit 2 on bad input)."""
        opts = self.options
        if opts.trials < 1 or opts.parallel < 1:
            raise SweepError("--trials and --parallel must be at least 1.")
        cfg = load_config(opts.config, opts.overrides)
        check_space(opts.params, opts.config, opts.overrides)
        monitor, mode = cfg.trainer.checkpoint.monitor, cfg.trainer.checkpoint.mode
        if not monitor.startswith("val/"):
            raise SweepError(
                f"{opts.config}: trainer.checkpoint.monitor is {monitor}, but a sweep's objective is a validation "
                "metric (reported after each validation). Fix: --set trainer.checkpoint.monitor=val/acc (or val/loss "
                "with --set trainer.checkpoint.mode=min)."
            )
        self.objective = Objective(monitor, mode)
        self.root = Path(opts.root) if opts.root is not None else Path(cfg.run.root)
        name = opts.name or f"{cfg.run.name}-sweep"
        self.storage_url = opts.storage or default_storage(self.root, name)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url)
        sampler = make_sampler(opts.sampler, opts.params, opts.seed)
        pruner = make_pruner(opts.pruner)
        record = study_record(opts.config, opts.params, self.objective)
        self.study, created = open_study(name, storage, sampler=sampler, pruner=pruner, record=record,
                                         objective=self.objective)
        done = len(self._counted())
        self.say(f"sweep {name}: {'new study' if created else f'joined ({done} trial(s) so far)'}, "
                 f"{opts.trials} trials, {opts.parallel} at a time; objective {monitor} ({self.objective.direction}); "
                 f"storage {public_url(self.storage_url)}")

    # -- running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Run trials until the study holds ``trials`` of them, or a signal stops the sweep; the exit code."""
        if self.study is None:
            self.prepare()
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._recover()
            forwarded = 0
            while True:
                if self.signal_received is None:
                    self._fill_slots()
                if not self.active:
                    break
                if self.signal_received is not None and forwarded < self._signals:
                    forwarded = self._signals
                    for trial in self.active:
                        trial.interrupt(signal.SIGINT)
                for trial in list(self.active):
                    if trial.poll():
                        self.active.remove(trial)
                        self._finish(trial)
                time.sleep(POLL_SECONDS)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
        return self._summary()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signal_received = signum
        self._signals += 1
        if self._signals == 1:
            self.say("stopping: the running trials save last.pt and end interrupted (Ctrl-C again to hurry them)")

    def _counted(self) -> list[Any]:
        """Trials that use up the budget: finished in any way, or running (here or elsewhere)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
        return self.study.get_trials(deepcopy=False, states=states)

    def _fill_slots(self) -> None:
        while len(self.active) < self.options.parallel and self.to_resume:
            trial, path, reported = self.to_resume.pop(0)
            self._resume(trial, path, reported)
        while len(self.active) < self.options.parallel and len(self._counted()) < self.options.trials:
            self._start_new()

    def _start_new(self) -> None:
        from optuna.trial import TrialState

        clock = time.perf_counter()
        opts = self.options
        trial = self.study.ask({p.key: p.distribution() for p in opts.params})
        params = {p.key: trial.params[p.key] for p in opts.params}
        overrides = [*opts.overrides, *(p.override(params[p.key]) for p in opts.params)]
        name = f"{self.study.study_name}-t{trial.number:03d}"
        info = {"sweep": {"study": self.study.study_name, "trial": trial.number, "params": params,
                          "storage": public_url(self.storage_url), "metric": self.objective.metric,
                          "direction": self.objective.direction}}
        try:
            launched = launch(opts.config, overrides, name=name, root=self.root, info=info,
                              tags=(f"sweep:{self.study.study_name}",))
        except ConfigError as exc:
            # a combination the config rejects (checked ranges make this rare): the trial fails, the sweep goes on
            trial.set_user_attr("ftui_error", str(exc))
            self.study.tell(trial, state=TrialState.FAIL)
            self.say(f"trial {trial.number} failed before starting: {exc}")
            return
        self._own(trial, launched.path)
        run = TrialRun(trial, launched.path, self.objective, launched.process)
        run.overhead = time.perf_counter() - clock
        self.active.append(run)
        shown = "  ".join(f"{k}={_short(v)}" for k, v in params.items())
        self.say(f"trial {trial.number} started: {launched.path}  {shown}")

    def _own(self, trial: Any, path: Path) -> None:
        trial.set_user_attr("ftui_run", str(Path(path).resolve()))
        trial.set_user_attr("ftui_host", socket.gethostname())
        trial.set_user_attr("ftui_sweep", {"host": socket.gethostname(), "pid": os.getpid()})
        trial.set_user_attr("ftui_status", "running")

    def _resume(self, trial: Any, path: Path, reported: set[int]) -> None:
        launched = launch_resume(path)
        self._own(trial, path)
        self.active.append(TrialRun(trial, path, self.objective, launched.process, reported=reported))
        self.say(f"trial {trial.number} resumed: {path}")

    # -- ending a trial -------------------------------------------------------------------------

    def _finish(self, run: TrialRun) -> None:
        from optuna.trial import TrialState

        clock = time.perf_counter()
        trial, info = run.trial, read_json(run.path / RUN_JSON) or {}
        status = str(info.get("status", "unknown"))
        if status in ACTIVE_STATUSES:  # the process died without recording an end
            status = "failed"
            info.setdefault("error", "the training process ended without recording an outcome (see stdout.log)")
        best = info.get("best") if isinstance(info.get("best"), dict) else None
        value = best.get("value") if best else None
        took = f"[{run.seconds():.1f} s]"
        trial.set_user_attr("ftui_status", status)
        if status == "interrupted" and self.signal_received is not None:
            self.outcomes.append((run.number, "interrupted", None))
            self.say(f"trial {run.number} interrupted (marked; resumes from last.pt with the same command) {took}")
            return
        if status == "finished" and isinstance(value, (int, float)):
            self.study.tell(trial, float(value))
            self.outcomes.append((run.number, "complete", float(value)))
            self.say(f"trial {run.number} finished: {self.objective.metric} {value:.4f}{self._best_note(run.number)} {took}")
        elif status in ("pruned", "stopped", "interrupted") and run.reported:
            # stopped or interrupted by hand counts as pruned: Optuna keeps its best so far as its value
            self.study.tell(trial, state=TrialState.PRUNED)
            self.outcomes.append((run.number, "pruned", run.best))
            how = f"at epoch {run.pruned_at}" if status == "pruned" else f"({status} by hand)"
            self.say(f"trial {run.number} pruned {how}: {self.objective.metric} {run.best:.4f} {took}")
        else:
            reason = info.get("error") or (f"ended {status} before its first validation" if status != "finished"
                                           else "finished without a validation result")
            trial.set_user_attr("ftui_error", str(reason))
            self.study.tell(trial, state=TrialState.FAIL)
            self.outcomes.append((run.number, "failed", None))
            self.say(f"trial {run.number} failed: {reason} (see {run.path / 'stdout.log'}) {took}")
        run.overhead += time.perf_counter() - clock
        self.overheads.append(run.overhead)

    def _best_note(self, number: int) -> str:
        try:
            best = self.study.best_trial
        except ValueError:
            return ""
        return " (best so far)" if best.number == number else f" (best: trial {best.number}, {best.value:.4f})"

    # -- resuming a stopped sweep ---------------------------------------------------------------

    def _recover(self) -> None:
        """Pick up this host's trials left RUNNING by a sweep that stopped or died."""
        import optuna
        from optuna.trial import TrialState

        host = socket.gethostname()
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = frozen.user_attrs
            if attrs.get("ftui_host") != host or "ftui_run" not in attrs:
                continue
            owner = attrs.get("ftui_sweep") or {}
            if (attrs.get("ftui_status") != "interrupted" and owner.get("pid") != os.getpid()
                    and pid_alive(owner.get("pid"))):
                continue  # another sweep process on this machine follows it
            path = Path(attrs["ftui_run"])
            # Optuna offers no public handle on an existing trial; this is how ask() builds one
            trial = optuna.Trial(self.study, frozen._trial_id)
            reported = set(frozen.intermediate_values)
            if not (path / RUN_JSON).is_file():
                trial.set_user_attr("ftui_error", f"its run directory {path} is gone")
                self.study.tell(trial, state=TrialState.FAIL)
                self.say(f"trial {frozen.number} failed: its run directory {path} is gone")
                continue
            status = live_status(read_json(path / RUN_JSON) or {})
            if status in ACTIVE_STATUSES:
                self._own(trial, path)
                self.active.append(TrialRun(trial, path, self.objective, None, reported=reported))
                self.say(f"trial {frozen.number} is still training: following {path}")
            elif status in ("interrupted", "lost") and (path / CHECKPOINT_DIR / "last.pt").is_file():
                self.to_resume.append((trial, path, reported))
            else:
                run = TrialRun(trial, path, self.objective, None, reported=reported)
                run.poll()
                self._finish(run)

    # -- the end --------------------------------------------------------------------------------

    def _summary(self) -> int:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        self.say("trials: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
        try:
            best = self.study.best_trial
            params = "  ".join(f"{k}={_short(v)}" for k, v in best.params.items())
            run = best.user_attrs.get("ftui_run", "")
            self.say(f"best: trial {best.number}  {self.objective.metric} {best.value:.4f}  {params}  {run}")
        except ValueError:
            pass
        if self.signal_received is not None:
            interrupted = [t.number for t in trials if t.state == TrialState.RUNNING
                           and t.user_attrs.get("ftui_status") == "interrupted"]
            if interrupted:
                self.say(f"stopped: trial(s) {', '.join(map(str, interrupted))} interrupted and marked.")
            self.say(f"resume with: {self.options.command(self.study.study_name)}")
            return 143 if self.signal_received == signal.SIGTERM else 130
        ran = [o for o in self.outcomes if o[1] != "interrupted"]
        return 1 if ran and all(o[1] == "failed" for o in ran) else 0


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
