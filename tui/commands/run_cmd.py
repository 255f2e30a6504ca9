"""``ftui run``: headless training with Rich progress, plain lines when not on a terminal.

Exit codes (DESIGN.md): 0 finished or stopped, 1 failed, 2 bad input, 130/143 interrupted.
"""

from __future__ import annotations

import os
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
    from core.config import load_config

    cfg = load_config(config, overrides)
    if name:
        cfg.run.name = name
    if (nproc or 1) > 1 or cfg.trainer.devices > 1:
        n = nproc if (nproc or 1) > 1 else cfg.trainer.devices
        raise ConfigError(
            f"{config}: {n} processes asked for (--nproc / trainer.devices) — distributed training lands with "
            "issue #10. Fix: train with one process for now (drop --nproc, set trainer.devices: 1)."
        )
    console = Console(highlight=False, soft_wrap=True)
    if detach:
        return _detach(config, overrides, name=name, resume=resume, quiet=quiet, console=console)

    resume_ckpt: Path | None = None
    if resume is not None:
        run_dir, resume_ckpt = _resume_target(resume, cfg.run.root)
        if name is None:
            cfg.run.name = run_dir.name
    if quiet:
        cfg.logging.progress = "none"

    from core.training.trainer import Trainer

    trainer = Trainer(cfg, run_dir=run_dir)
    try:
        trainer.fit(resume_from=resume_ckpt)
    except TrainingFailed as exc:
        _summary(trainer, console)
        tb = getattr(exc, "traceback", None)
        if tb and os.environ.get("FTUI_DEBUG", "") not in ("", "0"):
            sys.stderr.write(tb)
        raise
    _summary(trainer, console)
    return trainer.exit_code


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
            console: Console) -> int:
    from core.launch import launch_detached

    if resume is not None:
        raise UserError(
            "--detach with --resume is not supported yet. Fix: resume in the foreground under nohup or tmux: "
            f"`nohup ftui run {config} --resume {resume} &`."
        )
    extra = ["--quiet"] if quiet else []
    path = launch_detached(config, overrides, name=name, extra_args=extra)
    console.print(f"started {path.name} in the background")
    console.print(f"  run directory: {path}")
    console.print(f"  output:        {path / 'stdout.log'}")
    console.print(f"  watch it:      ftui watch {path}")
    console.print(f"  stop it:       ftui ctl {path} stop")
    return 0


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
