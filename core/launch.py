"""Starting training processes: detached from the caller, as local DDP workers, or resuming a run.

* :func:`launch` / :func:`launch_detached` (``ftui run --detach``, the app, ``ftui sweep``) and
  :func:`launch_resume`: the config is validated here first, so bad input is reported to the caller;
  the run directory is created here (status ``created``) so the caller knows where to look at once;
  then ``ftui run ... --run-dir DIR`` is started in its own session with its output in
  ``DIR/stdout.log``. Closing the caller, or losing its SSH connection (SIGHUP), never reaches the run.
* :func:`launch_workers` (``ftui run --nproc N``): creates the run directory (or takes the one being
  resumed), starts N workers through torchrun's engine (``python -m torch.distributed.run
  --standalone``), each running ``ftui run CONFIG --run-dir DIR``, and records an outcome the workers
  could not record themselves; see ``docs/distributed.md``.
* :func:`resume_target`: the run directory and checkpoint ``--resume`` continues, refusing a live run.

Importing this module imports neither torch nor Textual; torch is imported by the functions that need it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import config_to_yaml, load_config, set_run_name
from core.errors import ConfigError, RunError
from core.runs import (
    ACTIVE_STATUSES, CHECKPOINT_DIR, CONFIG_JSON, CONFIG_YAML, RUN_JSON, STDOUT_LOG, RunMeta, RunStatus, RunWriter,
    live_status, read_json, resolve_run, write_meta,
)


@dataclass
class Launched:
    """A run started in the background: its directory and its process (to wait on, or signal)."""

    path: Path
    process: subprocess.Popen


def launch(
    config: Path | str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    name: str | None = None,
    root: Path | str | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
    info: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> Launched:
    """Validate ``config``, create the run directory and start training in the background.

    ``info`` adds fields to the new ``run.json`` (a sweep records its trial there); ``tags`` start
    the run's ``meta.json``. Raises :class:`core.errors.ConfigError` for a bad config.
    """
    config = Path(config)
    cfg = load_config(config, overrides)
    if name:
        set_run_name(cfg, name)
    run_root = Path(root) if root is not None else Path(cfg.run.root)
    writer = RunWriter.create(run_root, cfg.run.name or "run", launcher_pid=os.getpid(), **(info or {}))
    writer.write_text(CONFIG_YAML, config_to_yaml(cfg))
    writer.write_json(CONFIG_JSON, cfg.model_dump(mode="json"))
    if tags:
        write_meta(writer.path, RunMeta(tags=tuple(tags)))
    cmd = [sys.executable, "-m", "tui.cli", "run", str(config.resolve()), "--run-dir", str(writer.path.resolve())]
    for item in overrides:
        cmd += ["--set", item]
    cmd += list(extra_args)
    process = _start(cmd, writer.path)
    writer.update(pid=process.pid)
    return Launched(writer.path, process)


def launch_resume(run_dir: Path | str, extra_args: list[str] | tuple[str, ...] = ()) -> Launched:
    """Resume a stopped or interrupted run in the background from its ``last.pt`` (its own config)."""
    run_dir = Path(run_dir).resolve()
    cmd = [sys.executable, "-m", "tui.cli", "run", str(run_dir / CONFIG_YAML), "--resume", str(run_dir), *extra_args]
    return Launched(run_dir, _start(cmd, run_dir))


def launch_detached(
    config: Path | str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    name: str | None = None,
    root: Path | str | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
) -> Path:
    """:func:`launch`, for callers that only need the run directory."""
    return launch(config, overrides, name=name, root=root, extra_args=extra_args).path


def _start(cmd: list[str], run_dir: Path) -> subprocess.Popen:
    log = open(run_dir / STDOUT_LOG, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        log.close()


def resume_target(spec: str, root: str | Path) -> tuple[Path, Path]:
    """The run directory and its checkpoint to resume from (``last.pt``, or a ``.pt`` inside the run).

    Raises :class:`RunError` when there is nothing to resume, or when the run is still active: two
    processes must never train into one run directory.
    """
    candidate = Path(spec)
    if candidate.is_file() and candidate.suffix == ".pt":
        # a checkpoint path inside a run: runs/<name>/checkpoints/last.pt
        run_dir = candidate.parent.parent
        if not (run_dir / RUN_JSON).is_file():
            raise RunError(
                f"--resume {spec}: this checkpoint is not inside a run directory (runs/<name>/checkpoints/). "
                "Fix: pass the run's name or directory; to start a new run from these weights set model.weights."
            )
        _refuse_live(run_dir, spec)
        return run_dir, candidate
    run_dir = resolve_run(spec, root)
    _refuse_live(run_dir, spec)
    ckpt = run_dir / CHECKPOINT_DIR / "last.pt"
    if not ckpt.is_file():
        raise RunError(
            f"--resume {spec}: {ckpt} does not exist, so there is nothing to resume from (the run stopped before "
            "its first checkpoint, or trainer.checkpoint.save_last is off). Fix: start a new run instead."
        )
    return run_dir, ckpt


def _refuse_live(run_dir: Path, spec: str) -> None:
    info = read_json(run_dir / RUN_JSON) or {}
    if live_status(info) in ACTIVE_STATUSES:
        raise RunError(
            f"--resume {spec}: {run_dir} is still {info.get('status')} (pid {info.get('pid')} on {info.get('host')}). "
            f"Fix: stop it first (`ftui ctl {run_dir} stop`, or Ctrl-C in its terminal), then resume."
        )


@dataclass
class LaunchOutcome:
    """How the workers' run ended: the exit code, and the message to print when it failed unrecorded."""

    exit_code: int
    run_dir: Path
    message: str | None = None


def launch_workers(
    config: Path, overrides: list[str], nproc: int, *, cfg: Any, resume: str | None, quiet: bool,
    run_dir: Path | None,
) -> LaunchOutcome:
    """Start ``nproc`` local workers through torchrun's engine on one run directory and wait for them.

    The run directory exists before the workers start (created here, or the one being resumed), so
    every rank agrees on it. The workers run in their own session: a Ctrl-C reaches this launcher
    only, which hands it to torchrun's agent once, which hands it to each worker once; the workers
    agree on it at the next step and rank 0 saves last.pt. If the workers end without recording an
    outcome (killed, crashed), the run is marked failed here with what they left.
    """
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.trainer.device != "cpu" and gpus and nproc > gpus:
        # one process per GPU; found here, before any run directory or worker exists
        raise ConfigError(
            f"--nproc / trainer.devices: {nproc} processes but {gpus} CUDA GPU(s) are visible. Fix: use at most "
            f"--nproc {gpus} (one process per GPU), or train on the CPU with --set trainer.device=cpu."
        )
    args: list[str] = []
    if resume is not None:
        run_dir, _ = resume_target(resume, cfg.run.root)
        args += ["--resume", str(run_dir.resolve())]
    elif run_dir is None:
        writer = RunWriter.create(Path(cfg.run.root), cfg.run.name or "run", launcher_pid=os.getpid(), nproc=nproc)
        writer.write_text(CONFIG_YAML, config_to_yaml(cfg))
        run_dir = writer.path
        args += ["--run-dir", str(run_dir.resolve())]
    else:
        args += ["--run-dir", str(Path(run_dir).resolve())]
    for item in overrides:
        args += ["--set", item]
    if quiet:
        args.append("--quiet")
    root = str(Path(__file__).resolve().parents[1])  # the project root, so workers import tui and core
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    os.environ["PYTHONUNBUFFERED"] = "1"
    return _torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "tui.cli", "run",
                      str(Path(config).resolve()), *args], Path(run_dir))


def _torchrun(argv: list[str], run_dir: Path) -> LaunchOutcome:
    """Run torchrun's engine in this process (``torch.distributed.run``) and read the outcome.

    torchrun starts the workers in their own sessions, so a Ctrl-C reaches this process only; the
    agent then sends it to each worker once and waits for them (they agree on it at the next step and
    rank 0 saves last.pt). A failed worker ends the others and comes back as ``ChildFailedError``,
    which names the rank that failed first.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    received: int | None = None
    failure: tuple[int, str] | None = None
    try:
        torchrun.run(torchrun.parse_args(argv))
    except SignalException as exc:
        received = int(exc.sigval)
    except ChildFailedError as exc:
        rank, proc = exc.get_first_failure()
        if proc.exitcode < 0:
            failure = (rank, f"killed by {proc.signal_name()}")
        else:
            text = proc.message if isinstance(proc.message, str) else ""
            detail = "" if not text.strip() or "To enable traceback" in text else f": {text.strip()}"
            failure = (rank, f"exit code {proc.exitcode}{detail}")
    return launcher_outcome(run_dir, received, failure)


def launcher_outcome(run_dir: Path, received: int | None, failure: tuple[int, str] | None) -> LaunchOutcome:
    """The launcher's exit code from the run's recorded status; records a failure the workers could not."""
    from core.training.distributed import PEER_FAILURE, read_rank_errors

    info = read_json(run_dir / RUN_JSON) or {}
    status, error = info.get("status"), str(info.get("error") or "")
    unrecorded = status in ACTIVE_STATUSES
    vague = status == "failed" and PEER_FAILURE in error  # rank 0 saw a peer go away, not why
    if unrecorded or (vague and failure is not None and failure[0] != 0):
        errors = [e for e in read_rank_errors(run_dir) if int(e.get("rank", 0)) != 0]
        if errors:
            message = f"rank {errors[0]['rank']} failed: {errors[0]['message']}"
        elif failure is not None:
            message = f"rank {failure[0]} failed ({failure[1]})"
        elif received is not None:
            message = f"the workers were stopped by {signal.Signals(received).name} before they recorded an outcome"
        else:
            message = "the workers ended without recording an outcome; their output above says why"
        if vague:
            message += f"; rank 0 saw: {error.removeprefix('rank 0: ')}"
        writer = RunWriter.reopen(run_dir)
        writer.log_event("error", message, rank=failure[0] if failure else None)
        writer.set_status("failed", error=message)
        writer.close()
        return LaunchOutcome(RunStatus.FAILED.exit_code or 1, run_dir, message)
    return LaunchOutcome(RunStatus.exit_code_of(status, received), run_dir)
