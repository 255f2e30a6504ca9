"""Runs for the many-runs tests, made from the recorded fixture run without training."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import yaml

from core.runs import CONFIG_JSON, RUN_JSON

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"


def make_run(root: Path, name: str, *, lr: float = 0.01, batch_size: int = 64, created: float = 1.8e9,
             best: float | None = 0.47, **info: Any) -> Path:
    """A copy of the recorded run named ``name``, with its config's lr and batch size and run.json fields
    changed (its config.json written; the fixture itself has only config.yaml)."""
    path = root / name
    shutil.copytree(FIXTURE, path)
    run = json.loads((path / RUN_JSON).read_text())
    run.update(name=name, created=created, started=created + 1, ended=created + 61, **info)
    if best is None:
        run["best"] = None
    else:
        run["best"] = {**run["best"], "value": best}
    (path / RUN_JSON).write_text(json.dumps(run))
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["optim"]["lr"] = lr
    config["data"]["batch_size"] = batch_size
    config["run"]["name"] = name
    (path / CONFIG_JSON).write_text(json.dumps(config))
    return path


def make_running(path: Path, pid: int | None = None) -> None:
    """Mark a run as training in a live process on this host (the test's own pid by default)."""
    run = json.loads((path / RUN_JSON).read_text())
    run.update(status="running", ended=None, pid=pid or os.getpid(), host=socket.gethostname())
    (path / RUN_JSON).write_text(json.dumps(run))
