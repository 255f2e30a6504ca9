"""Distributed training on the CPU: real `ftui run --nproc 2` processes (torchrun, gloo, DDP).

Each test starts real workers: a finished run whose ranks end with identical weights and whose
validation figures equal a single-process evaluation of its checkpoint; a module frozen through
`ftui ctl` mid-run (no hang, unchanged afterwards); a SIGINT that stops both ranks at the same step,
then resumes with two processes and with one; a rank killed mid-run fails the run naming it; a
LoRA run whose adapter is frozen live (the others train on).
"""

from __future__ import annotations

import json
import os
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
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _config(tmp_path: Path, name: str, **sections) -> Path:
    raw = tiny_raw(tmp_path, name, **sections)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def ftui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(predicate, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def events(run: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    return [e for e in rows if kind is None or e.get("kind") == kind]


def steps_logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return max((r["step"] for r in rows if r.get("split") == "train"), default=0)


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _in_sync(run: Path) -> dict:
    """The end-of-fit comparison of every rank's weights (gathered to rank 0)."""
    checks = [e for e in events(run) if "in_sync" in e]
    assert checks, events(run)
    return checks[-1]


def ctl(run: Path, *args: str) -> tuple[int, str]:
    done = ftui("ctl", str(run), *args, "--timeout", "60", timeout=90)
    return done.returncode, done.stdout + done.stderr


def test_two_processes_finish_in_sync_and_validate_like_one(tmp_path: Path) -> None:
    from core.training.evaluate import evaluate_checkpoint

    # 61 validation samples: the shards are 31 and 30, nothing padded or counted twice
    cfg = _config(tmp_path, "pair", data={"shapes": {"image_size": 16, "train_size": 192, "val_size": 61,
                                                     "test_size": 16, "classes": ["circle", "square", "triangle"],
                                                     "difficulty": 0.2}},
                  trainer={"accumulate_grad_batches": 2},  # the first batch of each pair stays local (no_sync)
                  # frozen at the start (DDP leaves stage1 out), unfrozen by the schedule at epoch 2 (re-wrap)
                  finetune={"freeze": ["stage1"], "schedule": [{"epoch": 1, "unfreeze": "stage1", "lr": 0.005}]})
    done = ftui("run", str(cfg), "--nproc", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "pair"
    info = read_json(run / "run.json")
    assert info["status"] == "finished" and info["world_size"] == 2 and info["backend"] == "gloo"
    sync = _in_sync(run)
    assert sync["in_sync"] is True and len(sync["state_hashes"]) == 2
    assert sync["state_hashes"][0] == sync["state_hashes"][1]
    assert not (run / "errors").exists()
    rewraps = [e for e in events(run, "ddp") if "re-wrapped" in e["message"]]
    assert [(e["epoch"], e["step"]) for e in rewraps] == [(1, 3)]

    ckpt = _load(run / "checkpoints" / "last.pt")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 2 * 3  # 96 samples a rank: 6 batches of 16, 3 steps an epoch
    assert not any(k.startswith("module.") for k in ckpt["model"])

    vals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last_val = [r for r in vals if r["split"] == "val"][-1]
    assert sum(map(sum, last_val["confusion"])) == 61
    single = evaluate_checkpoint(run / "checkpoints" / "last.pt", split="val").metrics
    assert last_val["confusion"] == single["confusion"]
    assert last_val["acc"] == single["acc"]
    assert last_val["loss"] == pytest.approx(single["loss"], rel=1e-6)
    assert last_val["f1_macro"] == pytest.approx(single["f1_macro"], abs=1e-12)


def test_freeze_through_ftui_ctl_under_two_processes(tmp_path: Path) -> None:
    # 20 batches a rank an epoch: the freeze lands mid-epoch, where the loop must pick up the new DDP
    cfg = _config(
        tmp_path, "steer2",
        data={"shapes": {"image_size": 16, "train_size": 640, "val_size": 32, "test_size": 16,
                         "classes": ["circle", "square", "triangle"], "difficulty": 0.2}},
        optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.0},
        schedule={"name": "none"},
        trainer={"epochs": 500, "max_steps": 2000, "devices": 2},  # devices: 2 launches like --nproc 2
        logging={"every_n_steps": 1, "flush_seconds": 0.1, "layer_stats": False},
    )
    proc = _start("run", str(cfg), "--quiet")
    run = tmp_path / "steer2"
    try:
        _wait(lambda: (run / "metrics.jsonl").exists() and steps_logged(run) >= 3, proc)
        # paused, every rank waits at the same step while rank 0 keeps serving commands
        assert ctl(run, "pause")[0] == 0
        assert read_json(run / "run.json").get("paused") is True
        code, out = ctl(run, "freeze", "stage1")
        assert code == 0 and "froze stage1" in out, out
        freeze_step = [e for e in events(run, "control") if e.get("command") == "freeze"][-1]["step"]
        assert ctl(run, "checkpoint")[0] == 0
        shutil.copy(run / "checkpoints" / "last.pt", tmp_path / "after_freeze.pt")
        assert ctl(run, "resume")[0] == 0
        _wait(lambda: steps_logged(run) >= freeze_step + 8, proc)
        code, out = ctl(run, "stop")
        assert code == 0, out
        assert proc.wait(timeout=60) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_json(run / "run.json")["status"] == "stopped"
    # every rank re-wrapped its model in a new DDP at the same step, and no rank failed
    rewraps = [e for e in events(run, "ddp") if "re-wrapped" in e["message"]]
    assert len(rewraps) == 1 and rewraps[0]["step"] == freeze_step
    assert not (run / "errors").exists()

    after, final = _load(tmp_path / "after_freeze.pt"), _load(run / "checkpoints" / "last.pt")
    assert final["step"] >= freeze_step + 8
    stage1 = [k for k in final["model"] if k.startswith("stage1.") and "running" not in k and "num_batches" not in k]
    assert stage1 and all(torch.equal(after["model"][k], final["model"][k]) for k in stage1)
    head = [k for k in final["model"] if k.startswith("head")]
    assert head and not all(torch.equal(after["model"][k], final["model"][k]) for k in head)
    # rank 1 holds the same weights as rank 0 at the end, so its stage1 did not move either
    assert _in_sync(run)["in_sync"] is True


def test_sigint_stops_both_ranks_then_resumes_with_two_and_with_one(tmp_path: Path) -> None:
    # 640 samples: 20 batches a rank an epoch with two processes, 40 with one
    cfg = _config(
        tmp_path, "intr",
        data={"shapes": {"image_size": 16, "train_size": 640, "val_size": 32, "test_size": 16,
                         "classes": ["circle", "square", "triangle"], "difficulty": 0.2}},
        schedule={"name": "none"},
        trainer={"epochs": 50},
        logging={"every_n_steps": 1, "flush_seconds": 0.1, "layer_stats": False},
    )
    proc = _start("run", str(cfg), "--nproc", "2", "--quiet")
    run = tmp_path / "intr"
    try:
        _wait(lambda: (run / "metrics.jsonl").exists() and steps_logged(run) >= 4, proc)
        proc.send_signal(signal.SIGINT)  # as Ctrl-C does to `ftui run`
        assert proc.wait(timeout=60) == 130, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    info = read_json(run / "run.json")
    assert info["status"] == "interrupted" and "SIGINT" in (info.get("stop_reason") or "")
    assert _in_sync(run)["in_sync"] is True  # both ranks stopped after the same optimizer step
    ckpt = _load(run / "checkpoints" / "last.pt")
    step, epoch, batch = ckpt["step"], ckpt["epoch"], ckpt["batch_idx"]
    assert step >= 4 and step == epoch * 20 + batch and ckpt["world_size"] == 2
    alone = tmp_path / "alone"
    shutil.copytree(run, alone)

    # two processes again: the exact position, a few more steps
    done = ftui("run", str(cfg), "--resume", str(run), "--nproc", "2", "--set", f"trainer.max_steps={step + 5}")
    assert done.returncode == 0, done.stdout + done.stderr
    resumed = events(run, "resumed")[-1]
    assert (resumed["epoch"], resumed["batch"], resumed["step"]) == (epoch, batch, step)
    final = _load(run / "checkpoints" / "last.pt")
    assert final["step"] == step + 5 and read_json(run / "run.json")["status"] == "finished"
    assert _in_sync(run)["in_sync"] is True

    # one process: the shards differ, so it goes on at the next epoch boundary, in 1-process steps
    target = (epoch + 1) * 40 + 3
    done = ftui("run", str(cfg), "--resume", str(alone), "--set", f"trainer.max_steps={target}")
    assert done.returncode == 0, done.stdout + done.stderr
    warning = [e for e in events(alone, "warning") if "2-process checkpoint" in e["message"]]
    assert warning and warning[-1]["skipped_batches"] == batch
    resumed = events(alone, "resumed")[-1]
    assert (resumed["epoch"], resumed["batch"]) == ((epoch + 1, 0) if batch else (epoch, 0))
    final = _load(alone / "checkpoints" / "last.pt")
    assert final["world_size"] == 1 and final["step"] == target
    assert read_json(alone / "run.json")["status"] == "finished"


def test_a_rank_killed_mid_run_fails_the_run_naming_it(tmp_path: Path) -> None:
    import psutil

    cfg = _config(tmp_path, "crash", trainer={"epochs": 500},
                  logging={"every_n_steps": 1, "flush_seconds": 0.1, "layer_stats": False})
    proc = _start("run", str(cfg), "--nproc", "2", "--quiet")
    run = tmp_path / "crash"
    try:
        _wait(lambda: (run / "metrics.jsonl").exists() and steps_logged(run) >= 2, proc)
        workers = psutil.Process(proc.pid).children(recursive=True)
        victim = next(w for w in workers if w.environ().get("RANK") == "1")
        victim.kill()  # as the OOM killer would: no message, no error file
        out = proc.communicate(timeout=90)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out
    info = read_json(run / "run.json")
    assert info["status"] == "failed"
    assert info["error"].startswith("rank 1 failed (killed by SIGKILL)"), info["error"]
    assert "rank 1 failed (killed by SIGKILL)" in out
    assert any(e.get("rank") == 1 for e in events(run, "error"))


def test_lora_trains_under_two_processes_and_an_adapter_freezes_live(tmp_path: Path) -> None:
    """LoRA on a small ViT (PEFT's attention and MLP adapters) under DDP: an adapter frozen through
    `ftui ctl freeze lora:X` stops moving on every rank (re-wrapped at one step), the others train."""
    from core.config import ModelConfig
    from core.models import build_model

    vit = {"name": "vit_b_16", "kwargs": {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 16,
                                          "mlp_dim": 32}}
    torch.manual_seed(0)
    base = tmp_path / "base.pt"
    torch.save(build_model(ModelConfig(**vit), 3, (3, 16, 16)).model.state_dict(), base)
    layer = "encoder.layers.encoder_layer_0.mlp.0"
    cfg = _config(
        tmp_path, "lora2",
        data={"shapes": {"image_size": 16, "train_size": 640, "val_size": 32, "test_size": 16,
                         "classes": ["circle", "square", "triangle"], "difficulty": 0.2}},
        model={**vit, "weights": str(base)},
        finetune={"lora": {"target": ["encoder"], "rank": 2}},
        optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.0},
        schedule={"name": "none"},
        trainer={"epochs": 500, "max_steps": 2000, "devices": 2},
        logging={"every_n_steps": 1, "flush_seconds": 0.1, "layer_stats": False},
    )
    proc = _start("run", str(cfg), "--quiet")
    run = tmp_path / "lora2"
    try:
        _wait(lambda: (run / "metrics.jsonl").exists() and steps_logged(run) >= 3, proc, timeout=120)
        assert ctl(run, "pause")[0] == 0
        code, out = ctl(run, "freeze", f"lora:{layer}")
        assert code == 0 and f"froze {layer}.lora" in out, out
        freeze_step = [e for e in events(run, "control") if e.get("command") == "freeze"][-1]["step"]
        assert ctl(run, "checkpoint")[0] == 0
        shutil.copy(run / "checkpoints" / "last.pt", tmp_path / "after_freeze.pt")
        assert ctl(run, "resume")[0] == 0
        _wait(lambda: steps_logged(run) >= freeze_step + 6, proc)
        assert ctl(run, "stop")[0] == 0
        assert proc.wait(timeout=60) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    info = read_json(run / "run.json")
    assert info["status"] == "stopped" and info["world_size"] == 2
    rewraps = [e for e in events(run, "ddp") if "re-wrapped" in e["message"]]
    assert len(rewraps) == 1 and rewraps[0]["step"] == freeze_step
    assert not (run / "errors").exists()
    after, final = _load(tmp_path / "after_freeze.pt"), _load(run / "checkpoints" / "last.pt")
    assert final["step"] >= freeze_step + 6 and final["lora"]["base"]["stored"] is False
    mine = [k for k in final["model"] if k.startswith(f"{layer}.lora_")]
    others = [k for k in final["model"] if ".lora_" in k and k not in mine]
    assert mine and all(torch.equal(after["model"][k], final["model"][k]) for k in mine)
    assert others and not any(torch.equal(after["model"][k], final["model"][k]) for k in others)
    assert _in_sync(run)["in_sync"] is True  # rank 1's adapters match rank 0's: its frozen one stayed too


def test_skip_mode_with_accumulation_keeps_ranks_identical_and_test_counts_once(tmp_path: Path) -> None:
    """Issue 23, items 3 and 4: only rank 1 meets a bad batch, the one whose backward steps. Before, both
    ranks skipped that backward (and its all-reduce) and stepped on their own local gradients: the
    weights drifted apart. And trainer.test() summed every rank's full pass (counts x world size)."""
    out = tmp_path / "found.json"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "tests" / "fixtures" / "ddp_skip_worker.py"), str(out), str(tmp_path / "runs")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads(out.read_text())
    assert found["status"] == "finished" and found["params_finite"] and found["nonfinite_skipped"] == 1
    rank0, rank1 = found["step_hashes"]  # the weights at the start, then after each of the 4 steps
    assert len(rank0) == 5 and rank0 == rank1  # identical after every step, not only at the end
    assert rank0[0] == rank0[1] != rank0[2]  # the first step, with rank 1's bad batch, was skipped on both
    assert found["final_hashes"][0] == found["final_hashes"][1]
    assert found["test_count"] == found["test_size"] == 21
