"""The LoRA sample (sample_configs/vit_shapes.yaml, then lora_vit_shapes.yaml) with the commands their
headers print, run exactly as printed from a copy of sample_configs/ whose data and epochs are shrunk
(the full sample takes minutes; its figures are in docs/lora.md and docs/benchmarks.md)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _header_commands(config: Path) -> list[str]:
    """Every `ftui ...` command in the header comment, in order."""
    lines = [line for line in config.read_text().splitlines() if line.startswith("#")]
    return [m.group(1).strip() for line in lines if (m := re.match(r"#\s+(?:\w[\w ]*:)?\s*(ftui .+?)(\s{2,}\(.*)?$", line))]


def _shrink(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    raw["data"]["shapes"].update(train_size=96, val_size=32, test_size=32)
    raw["data"]["num_workers"] = 0
    raw["trainer"]["epochs"] = 1
    raw["model"]["kwargs"].update(num_layers=1)
    path.write_text(yaml.safe_dump(raw))


def _ftui(line: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    assert argv[0] == "ftui"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "tui.cli", *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_lora_sample_runs_with_its_own_commands(tmp_path: Path) -> None:
    samples = tmp_path / "sample_configs"
    samples.mkdir()
    for name in ("vit_shapes.yaml", "lora_vit_shapes.yaml"):
        shutil.copy(ROOT / "sample_configs" / name, samples / name)
    base_cmds = _header_commands(samples / "vit_shapes.yaml")
    lora_cmds = _header_commands(samples / "lora_vit_shapes.yaml")
    assert base_cmds == ["ftui run sample_configs/vit_shapes.yaml", "ftui run sample_configs/lora_vit_shapes.yaml"]
    assert lora_cmds[:2] == base_cmds
    assert lora_cmds[2:] == [
        "ftui watch lora_vit_shapes",
        "ftui ctl lora_vit_shapes freeze lora:encoder.layers.encoder_layer_0",
        "ftui export runs/lora_vit_shapes/checkpoints/best.pt --merge",
        "ftui export runs/lora_vit_shapes/checkpoints/best.pt --format peft",
    ]
    for name in ("vit_shapes.yaml", "lora_vit_shapes.yaml"):
        _shrink(samples / name)
    for command in base_cmds:
        done = _ftui(command, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    # the run names itself first, then its setup phases, then the line that says what trains
    started = next(line for line in done.stdout.splitlines() if "trainable params" in line)
    assert "trainable params of" in started and "LoRA rank 4 on 2 adapters" in started
    for command in lora_cmds[4:]:
        done = _ftui(command, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "checked:" in done.stdout
    checkpoints = tmp_path / "runs" / "lora_vit_shapes" / "checkpoints"
    assert (checkpoints / "best.merged.safetensors").is_file()
    assert (checkpoints / "best.peft" / "adapter_config.json").is_file()
    # the steering command's pattern selects the first block's adapters of this model
    from core.config import load_config
    from core.lora.adapters import apply_lora
    from core.models import build_model, select

    cfg = load_config(samples / "lora_vit_shapes.yaml")
    built = build_model(cfg.model.model_copy(update={"weights": None}), 4, (3, 16, 16))
    apply_lora(built.model, cfg.finetune.lora, built.head_path)
    pattern = lora_cmds[3].split()[-1]
    assert set(select(built.model, pattern, built.head_path).modules) == {
        "encoder.layers.encoder_layer_0.self_attention.lora",
        "encoder.layers.encoder_layer_0.self_attention.base_layer.out_proj.lora",
    }
