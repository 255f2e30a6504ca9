"""Bad and hostile files: a clear message naming the file, exit 2, no traceback, no code run."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tui.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


class TouchOnLoad:
    """Unpickling this calls ``Path(target).touch()``: code execution that leaves a visible trace."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def assert_user_error(result, path: Path, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


@pytest.fixture()
def good_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "good.pt"
    torch.save({"w": torch.arange(1000, dtype=torch.float32)}, path)
    return path.read_bytes()


def test_truncated_file(tmp_path: Path, good_bytes: bytes) -> None:
    path = tmp_path / "truncated.pt"
    path.write_bytes(good_bytes[: len(good_bytes) // 2])
    for flags in ([], ["--json"], ["--plain"]):
        assert_user_error(runner.invoke(app, ["inspect", str(path), *flags]), path, "truncated")


def test_corrupt_zip_member(tmp_path: Path, good_bytes: bytes) -> None:
    data = bytearray(good_bytes)
    data[30:90] = b"\0" * 60  # inside the first member's header: the archive's index still looks fine
    path = tmp_path / "damaged.pt"
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert_user_error(result, path, "cannot be read as a PyTorch checkpoint", "corrupt")
    assert "refused by safe loading" not in result.output  # damage is not reported as a security refusal


def test_empty_text_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert_user_error(runner.invoke(app, ["inspect", str(empty)]), empty, "empty")
    text = tmp_path / "weights.pth"
    text.write_text("these are my notes, not weights\n")
    assert_user_error(runner.invoke(app, ["inspect", str(text), "--json"]), text, "not a checkpoint")
    missing = tmp_path / "nope.pt"
    assert_user_error(runner.invoke(app, ["inspect", str(missing)]), missing, "does not exist")


def test_pickle_without_tensors_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save({"a": [1, 2, 3], "b": "text"}, path)
    assert_user_error(runner.invoke(app, ["inspect", str(path), "--json"]), path, "holds no tensors")


def test_broken_safetensors_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)  # 12 of 16 data bytes missing
    assert_user_error(runner.invoke(app, ["inspect", str(path), "--json"]), path, "safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(len(header).to_bytes(8, "little") + header[:20])  # cut inside the header
    assert_user_error(runner.invoke(app, ["inspect", str(cut)]), cut, "truncated")


@pytest.mark.parametrize("flags", [[], ["--json"], ["--plain"]])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, flags: list[str]) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": TouchOnLoad(target)}, path)
    result = runner.invoke(app, ["inspect", str(path), *flags])
    assert_user_error(result, path, "pathlib", "getattr", "--unsafe")
    assert not target.exists()
    # diff and export use the same loader.
    assert_user_error(runner.invoke(app, ["diff", str(path), str(path)]), path, "pathlib")
    assert_user_error(runner.invoke(app, ["export", str(path)]), path, "pathlib")
    assert not target.exists()


def test_malicious_legacy_pickle_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned-legacy"
    path = tmp_path / "evil_legacy.pt"
    torch.save({"payload": TouchOnLoad(target)}, path, _use_new_zipfile_serialization=False)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert_user_error(result, path, "getattr")
    assert not target.exists()


def test_unsafe_flag_loads_after_a_warning(tmp_path: Path) -> None:
    """--unsafe really unpickles (the harmless payload touches a file in tmp) and says so loudly."""
    target = tmp_path / "touched"
    path = tmp_path / "trusted.pt"
    torch.save({"model": {"w": torch.ones(3)}, "payload": TouchOnLoad(target)}, path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "inspect", str(path), "--unsafe", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert target.exists()
    assert "WARNING" in proc.stderr and "weights_only=False" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["unsafe"] is True and summary["weights_key"] == "model" and summary["tensors"][0]["shape"] == [3]
