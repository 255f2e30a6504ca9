"""The bring-your-own samples from a fresh copy of sample_configs/, with the commands their headers
print, exactly: each trains to high accuracy, and its checkpoint evaluates only with --trust-code."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _commands(config: Path) -> list[str]:
    """`ftui ...` commands in the header comment (`# Run it:   ftui run ...`, `# Then:     ftui eval ...`)."""
    header = [line for line in config.read_text().splitlines() if line.startswith("#")]
    return [m.group(1).strip() for line in header if (m := re.match(r"#\s+(?:Run it:|Then:)\s+(ftui .+)$", line))]


def _ftui(line: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    assert argv[0] == "ftui"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "tui.cli", *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("sample", ["byo_convmixer", "byo_text"])
def test_a_sample_trains_to_high_accuracy_with_its_own_commands(tmp_path: Path, sample: str) -> None:
    shutil.copytree(ROOT / "sample_configs", tmp_path / "sample_configs")
    run_it, then = _commands(tmp_path / "sample_configs" / f"{sample}.yaml")
    assert run_it == f"ftui run sample_configs/{sample}.yaml"
    assert then == f"ftui eval runs/{sample}/checkpoints/best.pt --trust-code"
    trained = _ftui(run_it, tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    best = float(re.search(r"best:\s+val/acc = ([0-9.]+)", trained.stdout).group(1))
    assert best >= 0.95, trained.stdout
    refused = _ftui(then.removesuffix(" --trust-code"), tmp_path)
    assert refused.returncode == 2 and f"run `{then}`" in " ".join(refused.stderr.split())
    evaluated = _ftui(then, tmp_path)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    accuracy = float(re.search(r"accuracy\s*│\s*([0-9.]+)", evaluated.stdout).group(1))
    assert accuracy >= 0.95
