"""Start a training run detached from the caller (torch-free).

Used by ``ftui run --detach``, by the app and by ``ftui sweep``. The config is validated here first,
so bad input is reported to the caller; the run directory is created here (status ``created``) so
the caller knows where to look at once; then ``ftui run ... --run-dir DIR`` is started in its own
session with its output in ``DIR/stdout.log``. Closing the caller, or losing its SSH connection
(SIGHUP), never reaches the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import config_to_yaml, load_config, set_run_name
from core.runs import CONFIG_JSON, CONFIG_YAML, STDOUT_LOG, RunMeta, RunWriter, write_meta


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
