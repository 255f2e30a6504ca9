"""``ftui run``: headless training with Rich progress, plain lines when not on a terminal.

Exit codes (DESIGN.md): 0 finished or stopped, 1 failed, 2 bad input, 130/143 interrupted.

With ``--nproc N`` (or ``trainer.devices: N``) this process becomes a launcher: it creates the run
directory, then starts N workers through torchrun's engine (``python -m torch.distributed.run
--standalone``), each running ``ftui run CONFIG --run-dir DIR``; see ``docs/distributed.md``. A process
that torchrun started (``RANK``/``WORLD_SIZE`` set) always trains, whatever ``--nproc`` says.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from core.errors import ConfigError, RunError, TrainingFailed, UserError


def run_command(
    config: Path, overrides: list[str], *, name: str | None, resume: str | None, detach: bool,
    nproc: int | None, quiet: bool, run_dir: Path | None = None,
) -> int:
    """Train from a config; returns the exit code."""
    from core.config import load_config, set_run_name

    cfg = load_config(config, overrides)
    if name:
        set_run_name(cfg, name)
    from core.training.distributed import DistEnv, launched_by_torchrun

    worker = launched_by_torchrun()
    n = nproc if nproc is not None else cfg.trainer.devices
    console = Console(highlight=False, soft_wrap=True, markup=False)  # paths and names are text
    if detach:
        extra = ["--nproc", str(n)] if n > 1 else []
        return _detach(config, overrides, name=name, resume=resume, quiet=quiet, console=console, extra=extra)
    if n > 1 and not worker:
        return _launch_workers(config, overrides, n, cfg=cfg, name=name, resume=resume, quiet=quiet, run_dir=run_dir,
                               console=console)
    if worker and nproc is None:
        # the world size is torchrun's; trainer.devices only told the launcher how many to start
        cfg.trainer.devices = 1
    rank = DistEnv.from_env().rank

    resume_ckpt: Path | None = None
    if resume is not None:
        run_dir, resume_ckpt = _resume_target(resume, cfg.run.root)
        if name is None:
            cfg.run.name = run_dir.name
    if quiet or rank != 0:
        cfg.logging.progress = "none"

    from core.training import distributed
    from core.training.trainer import Trainer

    try:
        trainer = Trainer(cfg, run_dir=run_dir)
        try:
            trainer.fit(resume_from=resume_ckpt)
        except TrainingFailed as exc:
            if rank == 0:
                _summary(trainer, console)
            tb = getattr(exc, "traceback", None)
            if tb and os.environ.get("FTUI_DEBUG", "") not in ("", "0"):
                sys.stderr.write(tb)
            raise
        if rank == 0:
            _summary(trainer, console)
        return trainer.exit_code
    finally:
        distributed.destroy_process_group()


def _resume_target(spec: str, root: str) -> tuple[Path, Path]:
    """The run directory and its checkpoint to resume from (``last.pt``)."""
    from core.runs import resolve_run

    candidate = Path(spec)
    if candidate.is_file() and candidate.suffix == ".pt":
        # a checkpoint path inside a run: runs/<name>/checkpoints/last.pt
        run_dir = candidate.parent.parent
        if not (run_dir / "run.json").is_file():
            raise RunError(
                f"--resume {spec}: this checkpoint is not inside a run directory (runs/<name>/checkpoints/). "
                "Fix: pass the run's name or directory; to start a new run from these weights set model.weights."
            )
        _refuse_live(run_dir, spec)
        return run_dir, candidate
    run_dir = resolve_run(spec, root)
    _refuse_live(run_dir, spec)
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        raise RunError(
            f"--resume {spec}: {ckpt} does not exist, so there is nothing to resume from (the run stopped before "
            "its first checkpoint, or trainer.checkpoint.save_last is off). Fix: start a new run instead."
        )
    return run_dir, ckpt


def _refuse_live(run_dir: Path, spec: str) -> None:
    """Two processes must never train into one run directory."""
    from core.runs import live_status, read_json

    info = read_json(run_dir / "run.json") or {}
    if live_status(info) in ("created", "running"):
        raise RunError(
            f"--resume {spec}: {run_dir} is still {info.get('status')} (pid {info.get('pid')} on {info.get('host')}). "
            f"Fix: stop it first (`ftui ctl {run_dir} stop`, or Ctrl-C in its terminal), then resume."
        )


def _detach(config: Path, overrides: list[str], *, name: str | None, resume: str | None, quiet: bool,
            console: Console, extra: list[str] | None = None) -> int:
    from core.launch import launch_detached

    if resume is not None:
        raise UserError(
            "--detach with --resume is not supported yet. Fix: resume in the foreground under nohup or tmux: "
            f"`nohup ftui run {config} --resume {resume} &`."
        )
    extra = (extra or []) + (["--quiet"] if quiet else [])
    path = launch_detached(config, overrides, name=name, extra_args=extra)
    console.print(f"started {path.name} in the background")
    console.print(f"  run directory: {path}")
    console.print(f"  output:        {path / 'stdout.log'}")
    console.print(f"  watch it:      ftui watch {path}")
    console.print(f"  stop it:       ftui ctl {path} stop")
    return 0


def _launch_workers(
    config: Path, overrides: list[str], nproc: int, *, cfg: Any, name: str | None, resume: str | None, quiet: bool,
    run_dir: Path | None, console: Console,
) -> int:
    """Start ``nproc`` local workers through torchrun's engine on one run directory; returns the exit code.

    The run directory exists before the workers start (created here, or the one being resumed), so
    every rank agrees on it. The workers run in their own session: a Ctrl-C reaches this launcher
    only, which hands it to torchrun's agent once, which hands it to each worker once; the workers
    agree on it at the next step and rank 0 saves last.pt. If the workers end without recording an
    outcome (killed, crashed), the run is marked failed here with what they left.
    """
    import torch

    from core.config import config_to_yaml
    from core.runs import CONFIG_YAML, RunWriter

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.trainer.device != "cpu" and gpus and nproc > gpus:
        # one process per GPU; found here, before any run directory or worker exists
        raise ConfigError(
            f"--nproc / trainer.devices: {nproc} processes but {gpus} CUDA GPU(s) are visible. Fix: use at most "
            f"--nproc {gpus} (one process per GPU), or train on the CPU with --set trainer.device=cpu."
        )
    args: list[str] = []
    if resume is not None:
        run_dir, _ = _resume_target(resume, cfg.run.root)
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
    root = str(Path(__file__).resolve().parents[2])  # the project root, so workers import tui and core
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    os.environ["PYTHONUNBUFFERED"] = "1"
    return _torchrun(["--standalone", "--nproc-per-node", str(nproc), "-m", "tui.cli", "run",
                      str(Path(config).resolve()), *args], Path(run_dir))


def _torchrun(argv: list[str], run_dir: Path) -> int:
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
    return _launcher_outcome(run_dir, received, failure)


def _launcher_outcome(run_dir: Path, received: int | None, failure: tuple[int, str] | None) -> int:
    """The launcher's exit code from the run's recorded status; records a failure the workers could not."""
    from rich.markup import escape

    from core.runs import RUN_JSON, RunWriter, read_json
    from core.training.distributed import PEER_FAILURE, read_rank_errors
    from tui.cli import print_error

    info = read_json(run_dir / RUN_JSON) or {}
    status, error = info.get("status"), str(info.get("error") or "")
    unrecorded = status in ("created", "running")
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
        print_error(escape(message))
        return 1
    if status == "interrupted":
        return 143 if received == signal.SIGTERM else 130
    return {"finished": 0, "stopped": 0, "pruned": 0}.get(str(status), 1)


def _summary(trainer: Any, console: Console) -> None:
    """The final summary: status, best metric, last metrics, paths (printed even with --quiet)."""
    m = trainer.callback_metrics
    lines = [f"{trainer.status}: {trainer.cfg.run.name if trainer.run is None else trainer.run.name}"
             + (f" ({trainer.stop_reason})" if trainer.stop_reason else "")]
    epoch, batch = trainer.position
    lines.append(f"  progress:   epoch {epoch}/{trainer.cfg.trainer.epochs}"
                 + (f" + {batch} batches" if batch else "") + f", step {trainer.global_step}, "
                 f"{trainer.train_seconds:.1f}s training")
    if "val/acc" in m:
        lines.append(f"  last val:   loss {m.get('val/loss', float('nan')):.4f}  acc {m['val/acc']:.4f}  "
                     f"f1 {m.get('val/f1_macro', float('nan')):.4f}")
    if trainer.best is not None:
        best = trainer.best
        lines.append(f"  best:       {best['metric']} = {best['value']:.4f} (epoch {best['epoch'] + 1}, step {best['step']})")
    if trainer.nonfinite_skipped:
        lines.append(f"  skipped:    {trainer.nonfinite_skipped} batches with a non-finite loss")
    if trainer.run is not None:
        ckpts = trainer.run.path / "checkpoints"
        lines.append(f"  run:        {trainer.run.path}")
        for fname in ("best.pt", "last.pt"):
            if (ckpts / fname).is_file():
                lines.append(f"  {fname + ':':<11} {ckpts / fname}")
        if trainer.status == "interrupted" and (ckpts / "last.pt").is_file():
            lines.append(f"  resume:     ftui run {trainer.run.path / 'config.yaml'} --resume {trainer.run.path}")
    console.print("\n".join(lines), markup=False, highlight=False)
