"""A user model under real processes: `ftui run --nproc 2` (torchrun, gloo, DDP) on a model and a
dataset from the user's files, steered live with `ftui ctl freeze` — the frozen module's weights stay
bitwise unchanged while the rest trains, on both ranks — then evaluated with `ftui eval --trust-code`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from byo_support import byo_raw, write_code
from core.runs import read_json

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def ftui(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def events(run: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e.get("kind") == kind]


def steps_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return max((r["step"] for r in rows if r.get("split") == "train"), default=0)


def _wait(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def ctl(run: Path, *args: str) -> tuple[int, str]:
    done = ftui("ctl", str(run), *args, "--timeout", "60", timeout=90)
    return done.returncode, done.stdout + done.stderr


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_a_user_model_under_two_processes_frozen_live_through_ftui_ctl(tmp_path: Path) -> None:
    write_code(tmp_path)
    raw = byo_raw(tmp_path, "ddp", data={"kwargs": {"n_train": 640, "n_val": 61}},
                  optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.0}, schedule={"name": "none"},
                  trainer={"epochs": 500, "max_steps": 2000, "device": "cpu", "cpu_threads": 1},
                  logging={"every_n_steps": 1, "flush_seconds": 0.1, "layer_stats": False, "progress": "none",
                           "system": False, "tensorboard": False})
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(raw))
    # started from another folder: the config's relative code paths resolve next to the config file
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "run", str(config), "--nproc", "2", "--quiet"], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "runs" / "ddp"
    try:
        _wait(lambda: (run / "metrics.jsonl").exists() and steps_logged(run) >= 3, proc)
        assert ctl(run, "pause")[0] == 0
        code, out = ctl(run, "freeze", "features")
        assert code == 0 and "froze features" in out, out
        freeze_step = [e for e in events(run, "control") if e.get("command") == "freeze"][-1]["step"]
        assert ctl(run, "checkpoint")[0] == 0
        shutil.copy(run / "checkpoints" / "last.pt", tmp_path / "after_freeze.pt")
        assert ctl(run, "resume")[0] == 0
        _wait(lambda: steps_logged(run) >= freeze_step + 8, proc)
        code, out = ctl(run, "stop")
        assert code == 0, out
        assert proc.wait(timeout=90) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    info = read_json(run / "run.json")
    assert info["status"] == "stopped" and info["world_size"] == 2 and info["model"] == "models.py:TinyNet"
    assert not (run / "errors").exists()
    sync = [e for e in events(run, "ddp") if "in_sync" in e][-1]
    assert sync["in_sync"] is True and len(sync["state_hashes"]) == 2

    after, final = _load(tmp_path / "after_freeze.pt"), _load(run / "checkpoints" / "last.pt")
    assert final["step"] >= freeze_step + 8 and final["world_size"] == 2
    frozen = [k for k in final["model"] if k.startswith("features.") and "running" not in k and "num_batches" not in k]
    assert frozen and all(torch.equal(after["model"][k], final["model"][k]) for k in frozen)
    head = [k for k in final["model"] if k.startswith("classifier.")]
    assert not all(torch.equal(after["model"][k], final["model"][k]) for k in head)
    assert final["code"]["model"]["path"] == str(tmp_path / "models.py")

    done = ftui("eval", str(run / "checkpoints" / "last.pt"), "--split", "val", "--trust-code")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "val split, 61 samples" in " ".join(done.stdout.split())
