"""The README's "Bring your own model" section, run as a user would: its files written as printed into
an empty folder, then its commands exactly as printed (`ftui run`, `ftui eval --trust-code`,
`python my_script.py`)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _blocks(marker: str) -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    pattern = rf"<!-- {marker}(?:: (\S+))? -->\n```\w*\n(.*?)```"
    return [(m.group(1) or "", m.group(2)) for m in re.finditer(pattern, text, re.S)]


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(line)
    if argv[0] == "ftui":  # the console script, from this checkout
        argv = [sys.executable, "-m", "tui.cli", *argv[1:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_example_runs_as_printed(tmp_path: Path) -> None:
    files = _blocks("byo-file")
    assert [name for name, _ in files] == ["my_models.py", "my_data.py", "my_run.yaml", "my_script.py"]
    for name, body in files:
        (tmp_path / name).write_text(body)
    commands = [line for _, body in _blocks("byo-commands") for line in body.splitlines() if line.strip()]
    assert commands == ["ftui run my_run.yaml", "ftui eval runs/my_run/checkpoints/best.pt --trust-code"]
    trained = _run(commands[0], tmp_path)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "finished: my_run" in trained.stdout
    best = float(re.search(r"best:\s+val/acc = ([0-9.]+)", trained.stdout).group(1))
    assert best > 0.9
    evaluated = _run(commands[1], tmp_path)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert "running your code: model.name" in evaluated.stderr and "accuracy" in evaluated.stdout

    [python] = [line for _, body in _blocks("byo-python") for line in body.splitlines() if line.strip()]
    assert python == "python my_script.py"
    scripted = _run(python, tmp_path)
    assert scripted.returncode == 0, scripted.stdout + scripted.stderr
    assert "finished" in scripted.stdout and str(tmp_path / "runs" / "from_python") in scripted.stdout.replace("\n", "")
    assert float(re.search(r"val accuracy ([0-9.]+)", scripted.stdout).group(1)) > 0.9
