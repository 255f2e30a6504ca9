"""Checkpoint files: weights_only-readable content, RNG round trip, atomic writes under SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CheckpointError
from core.training.checkpoint import capture_rng, load_file, remove_stale_temps, restore_rng, save_file
from core.training.trainer import Trainer
from support.training import tiny_cfg

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = {"format", "ftui_version", "model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng",
                 "config", "data", "finetune", "metrics", "model_tree"}


def test_trainer_checkpoint_follows_the_contract_and_loads_weights_only(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path, trainer={"epochs": 1}))
    trainer.fit()
    path = trainer.run.path / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True, map_location="cpu")  # no pickled classes anywhere
    assert CONTRACT_KEYS <= ckpt.keys()
    assert ckpt["data"]["class_names"] == ["circle", "square", "triangle"]
    assert ckpt["config"]["model"]["name"] == "simple_cnn"
    assert ckpt["metrics"]["history"]["val/acc"] and ckpt["model_tree"]["modules"]
    assert ckpt["finetune"]["groups"] and "RecorderCallback" in ckpt["callbacks"]
    model_keys = set(trainer.model.state_dict())
    assert set(ckpt["model"]) == model_keys  # the unwrapped model: no "_orig_mod." / "module." prefixes
    assert ckpt["epoch"] == 1 and ckpt["step"] == trainer.global_step


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_file({"format": 1, "model": {}, "rng": capture_rng()}, tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(load_file(tmp_path / "rng.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_bad_checkpoints_raise_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_file(tmp_path / "missing.pt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_file(torn)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an ftui checkpoint"):
        load_file(tmp_path / "plain.pt")


WRITER = textwrap.dedent(
    """
    import sys, torch
    from core.training.checkpoint import save_file
    path = sys.argv[1]
    big = torch.zeros(48 * 1024 * 1024 // 4)  # 48 MB: each write takes a while
    i = 0
    while True:
        i += 1
        save_file({"format": 1, "model": {"w": big + i}, "i": i}, path)
        print(i, flush=True)
    """
)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_file_loadable(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # one complete write
        assert first.strip() == "1"
        deadline = time.monotonic() + 60
        temps: list[Path] = []
        while time.monotonic() < deadline and not temps:
            temps = [p for p in tmp_path.glob(".last.pt.*.tmp") if p.stat().st_size > 0]
            time.sleep(0.002)
        assert temps, "never caught the writer mid-write"
        proc.send_signal(signal.SIGKILL)  # mid-write: the temp file exists and is partly written
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = load_file(target)
    assert ckpt["i"] >= 1 and float(ckpt["model"]["w"][0]) == ckpt["i"]
    remove_stale_temps(tmp_path)  # what the next run does with the torn temp file
    assert not list(tmp_path.glob(".*.tmp"))
