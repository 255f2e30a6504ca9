"""End to end on real `ftui run` processes, steered with real `ftui ctl` processes.

Freeze a module mid-run: after the acknowledged step its parameters never change again while the
others do; unfreeze it with a new lr: it changes again, in a group with that lr. Pause, resume,
checkpoint, stop, refusals, and a signal while paused.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from core.runs import read_json
from support.training import tiny_raw

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _start(tmp_path: Path, name: str, **sections) -> tuple[subprocess.Popen, Path]:
    raw = tiny_raw(tmp_path, name, **sections)
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "run", str(cfg)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / name
    _wait(lambda: (read_json(run / "run.json") or {}).get("status") == "running" or proc.poll() is not None)
    assert proc.poll() is None, proc.stdout.read()
    return proc, run


def _wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def ctl(run: Path, *args: str) -> tuple[int, str]:
    """`ftui ctl RUN ARGS...` as a user types it; (exit code, output)."""
    done = subprocess.run([sys.executable, "-m", "tui.cli", "ctl", str(run), *args, "--timeout", "30"], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def answers(run: Path) -> list[dict]:
    lines = (run / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("kind") == "control"]


def steps_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return max((r["step"] for r in rows if r.get("split") == "train"), default=0)


def _params(ckpt: dict, prefix: str) -> dict[str, torch.Tensor]:
    """Parameters (not BatchNorm running statistics) under ``prefix``."""
    names = [n for g in ckpt["finetune"]["groups"] for n in g["params"]]
    return {n: ckpt["model"][n] for n in names if n.startswith(prefix)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_freeze_then_unfreeze_through_ftui_ctl_on_a_real_run(tmp_path: Path) -> None:
    proc, run = _start(
        tmp_path, "steer",
        optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.0},
        schedule={"name": "none"},
        trainer={"epochs": 500, "max_steps": 400},
        logging={"every_n_steps": 1, "flush_seconds": 0.1, "layer_stats": False},
    )
    try:
        _wait(lambda: steps_logged(run) >= 3)
        assert ctl(run, "pause")[0] == 0
        assert (read_json(run / "run.json") or {}).get("paused") is True

        code, out = ctl(run, "freeze", "stage1")
        assert code == 0 and "ok — froze stage1" in out
        freeze_step = answers(run)[-1]["step"]
        assert ctl(run, "checkpoint")[0] == 0
        shutil.copy(run / "checkpoints" / "last.pt", tmp_path / "after_freeze.pt")
        # refused without harm, while paused
        code, out = ctl(run, "freeze", "stage9")
        assert code == 1 and "refused" in out and "matches no module" in out
        # 500x the run's lr is refused without --force, and the command ftui prints for it runs as printed
        code, out = ctl(run, "set-lr", "head", "5")
        assert code == 1 and "500x the run's largest base learning rate (0.01)" in out
        suggested = next(line for line in out.splitlines() if line.startswith("If you mean it: "))
        assert suggested == f"If you mean it: ftui ctl {run} set-lr head 5 --force"
        assert json.loads((run / "model.json").read_text())["groups"]["head"] == 0.01  # nothing changed
        argv = shlex.split(suggested.removeprefix("If you mean it: "))
        done = subprocess.run([sys.executable, "-m", "tui.cli", *argv[1:]], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "lr of head set to 5" in done.stdout
        assert json.loads((run / "model.json").read_text())["groups"]["head"] == 5.0
        assert ctl(run, "set-lr", "head", "0.01")[0] == 0
        assert ctl(run, "resume")[0] == 0
        assert (read_json(run / "run.json") or {}).get("paused") is False

        _wait(lambda: steps_logged(run) >= freeze_step + 8)
        assert ctl(run, "pause")[0] == 0
        assert ctl(run, "checkpoint")[0] == 0
        shutil.copy(run / "checkpoints" / "last.pt", tmp_path / "before_unfreeze.pt")
        code, out = ctl(run, "unfreeze", "stage1", "--lr", "0.05")
        assert code == 0 and "unfroze stage1 at lr 0.05" in out
        model_json = json.loads((run / "model.json").read_text())
        stage1 = next(m for m in model_json["modules"] if m["path"] == "stage1")
        assert stage1["frozen"] is False and stage1["lr"] == 0.05  # model.json rewritten before the answer
        assert ctl(run, "resume")[0] == 0

        resumed = steps_logged(run)
        _wait(lambda: steps_logged(run) >= resumed + 8)
        code, out = ctl(run, "stop")
        assert code == 0 and "stopping" in out
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    info = read_json(run / "run.json")
    assert info["status"] == "stopped" and "control command" in info["stop_reason"]

    after_freeze = _load(tmp_path / "after_freeze.pt")
    before_unfreeze = _load(tmp_path / "before_unfreeze.pt")
    final = _load(run / "checkpoints" / "last.pt")
    assert after_freeze["step"] == freeze_step  # paused: the checkpoint is the acknowledged step
    assert "stage1" in after_freeze["finetune"]["frozen"]
    assert before_unfreeze["step"] > after_freeze["step"]
    # frozen: stage1 never moved while the rest trained
    assert _same(_params(after_freeze, "stage1."), _params(before_unfreeze, "stage1."))
    assert not _same(_params(after_freeze, "stage2."), _params(before_unfreeze, "stage2."))
    assert not _same(_params(after_freeze, "head."), _params(before_unfreeze, "head."))
    # unfrozen: it moves again, from its own group at the requested lr
    assert final["step"] > before_unfreeze["step"]
    assert not _same(_params(before_unfreeze, "stage1."), _params(final, "stage1."))
    assert final["finetune"]["frozen"] == []
    groups = final["finetune"]["groups"]
    optim_groups = final["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == [g["name"] for g in optim_groups]
    unfrozen = {n for g in groups if g["name"].startswith("unfrozen:stage1") for n in g["params"]}
    assert unfrozen == set(_params(final, "stage1."))
    for group in optim_groups:
        if group["name"].startswith("unfrozen:stage1"):
            assert group["base_lr"] == 0.05 and group["lr"] == pytest.approx(0.05)  # schedule none: factor 1
        else:
            assert group["lr"] == pytest.approx(0.01)
    kinds = [(a["command"], a["status"]) for a in answers(run)]
    assert kinds == [("pause", "ok"), ("freeze", "ok"), ("checkpoint", "ok"), ("freeze", "error"),
                     ("set-lr", "error"), ("set-lr", "ok"), ("set-lr", "ok"), ("resume", "ok"),
                     ("pause", "ok"), ("checkpoint", "ok"), ("unfreeze", "ok"), ("resume", "ok"), ("stop", "ok")]
    assert sorted(os.listdir(run / "control")) == ["done"] and len(os.listdir(run / "control" / "done")) == 13


def test_sigterm_while_paused_interrupts_with_a_checkpoint(tmp_path: Path) -> None:
    proc, run = _start(tmp_path, "held", trainer={"epochs": 500, "max_steps": 400},
                       logging={"every_n_steps": 1, "flush_seconds": 0.1})
    try:
        _wait(lambda: steps_logged(run) >= 2)
        assert ctl(run, "pause")[0] == 0
        step = (read_json(run / "run.json") or {})["step"]
        time.sleep(0.5)
        assert steps_logged(run) <= step  # held
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    info = read_json(run / "run.json")
    assert info["status"] == "interrupted" and info["paused"] is False and info["step"] == step
    assert _load(run / "checkpoints" / "last.pt")["step"] == step
