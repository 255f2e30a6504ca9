"""``ftui run``: headless training with Rich progress, plain lines when not on a terminal.

Exit codes (README, ``core.runs.RunStatus``): 0 finished or stopped, 1 failed, 2 bad input,
130/143 interrupted.

With ``--nproc N`` (or ``trainer.devices: N``) this process becomes a launcher
(``core.launch.launch_workers``: torchrun's engine, N workers on one run directory; see
``docs/distributed.md``). A process that torchrun started (``RANK``/``WORLD_SIZE`` set) always trains,
whatever ``--nproc`` says.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from core.errors import TrainingFailed, UserError
from core.training.phases import setup_phase_text


def run_command(
    config: Path | None, overrides: list[str], *, name: str | None, resume: str | None, detach: bool,
    nproc: int | None, quiet: bool, run_dir: Path | None = None, runs_root: Path | None = None,
) -> int:
    """Train from a config (a resume without one: the run's own ``config.yaml``); returns the exit code."""
    from core.config import load_config, set_run_name

    own_config = config is None
    if own_config:
        config = _resumed_config(resume, runs_root)
    cfg = load_config(config, overrides)
    if own_config and not any(item.startswith("logging.progress=") for item in overrides):
        # the run's config.yaml holds how its last process printed (--quiet, detached): not this one's choice
        cfg.logging.progress = "auto"
    if name:
        set_run_name(cfg, name)
    from core.training.dist_env import DistEnv, launched_by_torchrun

    worker = launched_by_torchrun()
    n = nproc if nproc is not None else cfg.trainer.devices
    console = Console(emoji=False, highlight=False, soft_wrap=True, markup=False)  # paths and names are text
    if detach:
        extra = ["--nproc", str(n)] if n > 1 else []
        return _detach(config, overrides, name=name, resume=resume, quiet=quiet, console=console, extra=extra,
                       wanted=cfg.run.name or "run")
    if n > 1 and not worker:
        from rich.markup import escape

        from core.launch import launch_workers
        from tui.console import print_error

        outcome = launch_workers(config, overrides, n, cfg=cfg, resume=resume, quiet=quiet, run_dir=run_dir)
        if outcome.message:
            print_error(escape(outcome.message))
        return outcome.exit_code
    if worker and nproc is None:
        # the world size is torchrun's; trainer.devices only told the launcher how many to start
        cfg.trainer.devices = 1
    rank = DistEnv.from_env().rank

    resume_ckpt: Path | None = None
    if resume is not None:
        from core.launch import resume_target

        run_dir, resume_ckpt = resume_target(resume, cfg.run.root)
        if name is None:
            cfg.run.name = run_dir.name
    if quiet or rank != 0:
        cfg.logging.progress = "none"
    if cfg.logging.progress != "none":
        # within a fraction of a second, before torch is imported: which run, where, and why that name
        console.print(_first_line(cfg, run_dir, resume_ckpt))
        console.print(f"  {setup_phase_text('torch', cfg)}…")
        console.file.flush()

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


def _resumed_config(resume: str | None, runs_root: Path | None) -> Path:
    """The config of ``ftui run --resume RUN`` without a CONFIG: the run's own, as it ran."""
    from core.runs import CONFIG_YAML, resolve_run

    if resume is None:
        raise UserError("ftui run: missing CONFIG. Fix: `ftui run CONFIG` (e.g. sample_configs/quickstart.yaml), or "
                        "`ftui run --resume RUN` to continue a run with its own config.")
    run_dir = resolve_run(resume if not resume.endswith(".pt") else str(Path(resume).parent.parent),
                          runs_root or "runs")
    config = run_dir / CONFIG_YAML
    if not config.is_file():
        raise UserError(f"--resume {resume}: {config} is missing, so the run's config is unknown. Fix: pass the config "
                        f"it was started with: `ftui run CONFIG --resume {run_dir}`.")
    return config


def _first_line(cfg: Any, run_dir: Path | None, resume_ckpt: Path | None) -> str:
    """``NAME → runs/NAME``, saying when the name was taken and the run gets ``NAME-2`` instead."""
    from core.runs import free_run_name

    name = cfg.run.name or "run"
    if resume_ckpt is not None and run_dir is not None:
        return f"{run_dir.name}: resuming {run_dir} from {resume_ckpt.name}"
    if run_dir is not None:
        return f"{run_dir.name}: starting in {run_dir}"
    root = Path(cfg.run.root)
    free = free_run_name(root, name)
    if free == name:
        return f"{name}: starting in {root / name}"
    return (f"{free}: starting in {root / free} ({root / name} is taken, and a run directory is never "
            f"overwritten; give another name with --name)")


def _detach(config: Path, overrides: list[str], *, name: str | None, resume: str | None, quiet: bool,
            console: Console, extra: list[str] | None = None, wanted: str = "run") -> int:
    from core.launch import launch_detached

    if resume is not None:
        raise UserError(
            "--detach with --resume is not supported yet. Fix: resume in the foreground under nohup or tmux: "
            f"`nohup ftui run {config} --resume {resume} &`."
        )
    extra = (extra or []) + (["--quiet"] if quiet else [])
    path = launch_detached(config, overrides, name=name, extra_args=extra)
    console.print(f"started {path.name} in the background")
    if path.name != wanted:
        console.print(f"  its name:      {path.name}, as {path.parent / wanted} is taken (a run directory is never "
                      "overwritten; --name gives another)")
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
    if trainer.resume_changes:
        # even with --quiet: a resume that changed the run's config says so
        shown = ", ".join(f"{key} {then!r} -> {now!r}" for key, (then, now) in trainer.resume_changes.items())
        lines.append(f"  changed:    {shown} on this resume (recorded in the run)")
    if trainer.nondeterministic_ops:
        lines.append(f"  not exact:  {', '.join(trainer.nondeterministic_ops)} (no deterministic implementation; "
                     "trainer.deterministic: warn)")
    if trainer.run is not None:
        ckpts = trainer.run.path / "checkpoints"
        lines.append(f"  run:        {trainer.run.path}")
        for fname in ("best.pt", "last.pt"):
            if (ckpts / fname).is_file():
                lines.append(f"  {fname + ':':<11} {ckpts / fname}")
        if trainer.status == "interrupted" and (ckpts / "last.pt").is_file():
            lines.append(f"  resume:     ftui run --resume {trainer.run.path}")
    console.print("\n".join(lines), markup=False, highlight=False)
