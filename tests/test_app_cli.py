"""`ftui watch` refuses bad input before the app opens: exit 2, a message, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from tui.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"


def test_watching_a_directory_that_is_not_a_run_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["watch", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a run" in result.output and "run.json" in result.output
    assert "Traceback" not in result.output


def test_watching_an_unknown_name_suggests_close_names(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "recorded_run")
    result = CliRunner().invoke(app, ["watch", "recorded_rn", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "no such run" in result.output and "recorded_run" in result.output
