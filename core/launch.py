"""Start a training run detached from the caller (torch-free).

Used by ``ftui run --detach`` and by the app. The config is validated here first, so bad input is
reported to the caller; the run directory is created here (status ``created``) so the caller knows
where to look at once; then ``ftui run ... --run-dir DIR`` is started in its own session with its
output in ``DIR/stdout.log``. Closing the caller, or losing its SSH connection (SIGHUP), never
reaches the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.config import config_to_yaml, load_config
from core.runs import CONFIG_YAML, STDOUT_LOG, RunWriter


def launch_detached(
    config: Path | str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    name: str | None = None,
    root: Path | str | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
) -> Path:
    """Validate ``config``, create the run directory and start training in the background.

    Returns the run directory. Raises :class:`core.errors.ConfigError` for a bad config.
    """
    config = Path(config)
    cfg = load_config(config, overrides)
    if name:
        cfg.run.name = name
    run_root = Path(root) if root is not None else Path(cfg.run.root)
    writer = RunWriter.create(run_root, cfg.run.name or "run", launcher_pid=os.getpid())
    writer.write_text(CONFIG_YAML, config_to_yaml(cfg))
    cmd = [sys.executable, "-m", "tui.cli", "run", str(config.resolve()), "--run-dir", str(writer.path.resolve())]
    for item in overrides:
        cmd += ["--set", item]
    cmd += list(extra_args)
    log = open(writer.path / STDOUT_LOG, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
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
    writer.update(pid=proc.pid)
    return writer.path
