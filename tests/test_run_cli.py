"""`ftui run` and `ftui eval` through the command line: exit codes, signals, plain output, resume, detach."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from core.runs import pid_alive, read_json
from core.training.checkpoint import load_file
from support.training import tiny_raw
from tui.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_bad_config_key_exits_2_naming_the_key_without_traceback(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    raw["trainer"]["epoch"] = 3
    result = runner.invoke(app, ["run", str(_write(tmp_path / "bad.yaml", raw))])
    assert result.exit_code == 2
    assert "trainer.epoch" in result.output and "epochs" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "tiny").exists()  # bad input leaves no run directory behind


def test_unknown_resume_exits_2(tmp_path: Path) -> None:
    # (--nproc launches real workers now: tests/test_distributed.py)
    cfg = _write(tmp_path / "c.yaml", tiny_raw(tmp_path))
    result = runner.invoke(app, ["run", str(cfg), "--resume", "no-such-run"])
    assert result.exit_code == 2 and "no-such-run" in result.output and "Traceback" not in result.output


def test_absurd_lr_exits_1_with_the_nonfinite_message(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path, "diverge", optim={"name": "sgd", "lr": 1e6})
    result = runner.invoke(app, ["run", str(_write(tmp_path / "c.yaml", raw))])
    assert result.exit_code == 1
    assert "non-finite loss" in result.output and "optim.lr" in result.output
    info = read_json(tmp_path / "diverge" / "run.json")
    assert info["status"] == "failed" and "non-finite loss" in info["error"]


@pytest.mark.slow
def test_sigint_saves_last_pt_exits_130_and_resume_finishes(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path, "sig", trainer={"epochs": 200}, logging={"every_n_steps": 1, "progress": "auto"})
    cfg = _write(tmp_path / "sig.yaml", raw)
    run_dir = tmp_path / "sig"
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "run", str(cfg)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metrics = run_dir / "metrics.jsonl"
        _wait_for(lambda: metrics.is_file() and '"split":"val"' in metrics.read_text())  # past one epoch
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    info = read_json(run_dir / "run.json")
    assert info["status"] == "interrupted"
    ckpt = load_file(run_dir / "checkpoints" / "last.pt")
    assert ckpt["step"] == info["step"] and ckpt["epoch"] >= 1
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    # progress 'auto' on a pipe: plain lines, no terminal control codes; the summary says how to resume
    assert "\x1b[" not in out
    assert "epoch 1/200 batch 1/6 step 1/1200" in out and "epoch 1/200: train loss" in out
    assert "--resume" in out

    done = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(cfg), "--resume", "sig", "--quiet",
                           "--set", f"run.root={tmp_path}", "--set", f"trainer.epochs={ckpt['epoch'] + 1}"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "epoch 1/" not in done.stdout  # --quiet: the summary only
    assert "finished: sig" in done.stdout
    info = read_json(run_dir / "run.json")
    assert info["status"] == "finished" and info["resumes"] == 1
    kinds = [json.loads(line)["kind"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert kinds.index("interrupted") < kinds.index("resumed") < kinds.index("finished")


@pytest.mark.slow
def test_detach_starts_in_background_and_eval_reads_the_result(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path, "bg", trainer={"epochs": 1})
    cfg = _write(tmp_path / "bg.yaml", raw)
    result = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(cfg), "--detach"], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "bg"
    assert str(run_dir) in result.stdout and "ftui watch" in result.stdout
    _wait_for(lambda: (read_json(run_dir / "run.json") or {}).get("status") in ("finished", "failed"), 120)
    info = read_json(run_dir / "run.json")
    assert info["status"] == "finished", (run_dir / "stdout.log").read_text()
    _wait_for(lambda: not pid_alive(info["pid"]), 60)  # the summary is printed after the final status
    assert "finished: bg" in (run_dir / "stdout.log").read_text()

    ev = runner.invoke(app, ["eval", str(run_dir / "checkpoints" / "best.pt"), "--split", "test"])
    assert ev.exit_code == 0, ev.output
    assert "confusion matrix" in ev.output and "per class" in ev.output and "circle" in ev.output
    assert "32 samples" in ev.output


def test_resume_refuses_a_run_that_is_still_training(tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    info = {"format": 1, "name": "live", "status": "running", "pid": os.getpid(), "host": socket.gethostname()}
    (run_dir / "run.json").write_text(json.dumps(info))
    cfg = _write(tmp_path / "c.yaml", tiny_raw(tmp_path, "live"))
    result = runner.invoke(app, ["run", str(cfg), "--resume", str(run_dir)])
    assert result.exit_code == 2 and "still running" in result.output and "ftui ctl" in result.output


def test_eval_without_a_test_split_exits_2_with_the_fix(tmp_path: Path) -> None:
    from core.training.trainer import Trainer
    from support.training import tiny_cfg

    shapes = {"image_size": 16, "train_size": 32, "val_size": 16, "test_size": 0, "classes": ["circle", "square"]}
    trainer = Trainer(tiny_cfg(tmp_path, "notest", data={"shapes": shapes}, trainer={"epochs": 1}))
    trainer.fit()
    ckpt = trainer.run.path / "checkpoints" / "last.pt"
    result = runner.invoke(app, ["eval", str(ckpt)])
    assert result.exit_code == 2 and "no test split" in result.output and "--split val" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["eval", str(ckpt), "--split", "val"])
    assert result.exit_code == 0 and "16 samples" in result.output


def test_the_first_lines_name_the_run_and_its_setup_phases_and_say_when_a_name_was_taken(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path, "twice", trainer={"epochs": 1}, logging={"progress": "plain"})
    cfg = _write(tmp_path / "twice.yaml", raw)
    first = runner.invoke(app, ["run", str(cfg)])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[0] == f"twice: starting in {tmp_path / 'twice'}"
    second = runner.invoke(app, ["run", str(cfg)])
    assert second.exit_code == 0, second.output
    lines = second.output.splitlines()
    # before anything slow: the name it gets and why, then each phase as it begins
    assert lines[0] == (f"twice-2: starting in {tmp_path / 'twice-2'} ({tmp_path / 'twice'} is taken, and a run "
                        "directory is never overwritten; give another name with --name)")
    assert lines[1:4] == ["  importing torch and torchvision…", "  building the data (shapes)…",
                          "  building the model (simple_cnn)…"]
    assert lines[4].startswith(f"twice-2: simple_cnn on shapes") and lines[4].endswith(f"→ {tmp_path / 'twice-2'}")
    assert (read_json(tmp_path / "twice-2" / "run.json") or {})["status"] == "finished"
    quiet = runner.invoke(app, ["run", str(cfg), "--quiet"])
    assert quiet.output.splitlines()[0] == "finished: twice-3"  # --quiet: the summary only


def test_eval_of_a_runs_checkpoint_records_its_test_split_in_the_run(tmp_path: Path) -> None:
    from core.runs import RunReader, RunWriter
    from tui.run_state import RunState

    cfg = _write(tmp_path / "ev.yaml", tiny_raw(tmp_path, "ev", trainer={"epochs": 1}))
    assert runner.invoke(app, ["run", str(cfg)]).exit_code == 0
    run = tmp_path / "ev"
    state = RunState()
    state.apply(RunReader(run).poll())
    assert "test" not in state.confusion  # training measures the validation split only
    ev = runner.invoke(app, ["eval", str(run / "checkpoints" / "best.pt")])
    assert ev.exit_code == 0, ev.output
    assert f"recorded in {run} (its dashboard shows the test split: v on the Confusion tab)" in ev.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    test = [r for r in rows if r["split"] == "test"]
    assert len(test) == 1 and test[0]["checkpoint"] == "best.pt" and test[0]["step"] == 6 and test[0]["epoch"] == 0
    assert sum(map(sum, test[0]["confusion"])) == 32
    state = RunState()
    state.apply(RunReader(run).poll())
    assert state.confusion["test"] == test[0]["confusion"] and state.latest[("test", "acc")] == test[0]["acc"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "evaluated" and "test split of best.pt (32 samples)" in events[-1]["message"]
    # a run that is training writes its own files: its evaluation is shown, not recorded
    holder = RunWriter.reopen(run)
    holder.lock()
    try:
        ev = runner.invoke(app, ["eval", str(run / "checkpoints" / "best.pt")])
    finally:
        holder.close()
    assert ev.exit_code == 0 and "not recorded: ev is training" in ev.output
    assert len([line for line in (run / "metrics.jsonl").read_text().splitlines() if '"test"' in line]) == 1
    # another split, or another config, is not the run's test record either
    ev = runner.invoke(app, ["eval", str(run / "checkpoints" / "best.pt"), "--split", "val"])
    assert "not recorded: only the test split" in ev.output
