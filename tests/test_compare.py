"""`ftui compare`: final metrics and config differences, and what cannot be compared."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from core.compare import compare
from runs_helpers import make_run
from tui.cli import app

runner = CliRunner()


def test_compare_prints_results_and_the_config_keys_that_differ(tmp_path: Path) -> None:
    make_run(tmp_path, "a", lr=0.01, best=0.47)
    make_run(tmp_path, "b", lr=0.003, best=0.55)
    result = runner.invoke(app, ["compare", "a", "b", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0] + (" " + line.split()[1] if len(line.split()) > 3 else ""): line.split()[-2:]
             for line in result.output.splitlines() if line.strip()}
    assert lines["best val/acc"] == ["0.4700", "0.5500"]
    # the recorded run's last validation: what `final` shows
    assert lines["final val/acc"] == ["0.4740", "0.4740"]
    assert lines["optim.lr"] == ["0.01", "0.003"]
    assert "data.batch_size" not in result.output  # the same in both: not a difference

    data = json.loads(runner.invoke(app, ["compare", "a", "b", "--root", str(tmp_path), "--json"]).output)
    assert data["differing_keys"] == ["optim.lr"] and data["not_compared"] == []
    a, b = data["runs"]
    assert (a["name"], a["config"], a["best"]["value"]) == ("a", {"optim.lr": 0.01}, 0.47)
    assert a["final"]["val/acc"] == b["final"]["val/acc"] and a["final"]["train/loss"] > 0
    assert a["classes"][:2] == ["circle", "square"] and a["task"] == "image"


def test_runs_of_another_task_are_set_aside_with_the_reason_and_the_rest_compared(tmp_path: Path) -> None:
    make_run(tmp_path, "img1", lr=0.01)
    make_run(tmp_path, "img2", lr=0.02)
    make_run(tmp_path, "table", lr=0.01, task="tabular", dataset="csv", class_names=["no", "yes"])
    result = runner.invoke(app, ["compare", "img1", "table", "img2", "--root", str(tmp_path)])
    assert result.exit_code == 2
    out = result.output
    assert "img1" in out.splitlines()[0] and "img2" in out.splitlines()[0]  # the rest is compared
    assert "table is a tabular run (csv) and img1 an image run (shapes)" in out
    assert "Fix: compare runs of one task" in out and "ftui compare img1 img2" in out and "Traceback" not in out
    comparison = compare([tmp_path / "img1", tmp_path / "table"])
    assert [r.name for r in comparison.runs] == ["img1"] and comparison.excluded[0][0].name == "table"


def test_different_classes_compare_with_a_note(tmp_path: Path) -> None:
    make_run(tmp_path, "six", lr=0.01)
    make_run(tmp_path, "four", lr=0.01, class_names=["circle", "square", "triangle", "cross"], num_classes=4)
    comparison = compare([tmp_path / "six", tmp_path / "four"])
    assert [r.name for r in comparison.runs] == ["six", "four"]
    assert "different class sets" in comparison.notes[0]


def test_compare_needs_two_known_runs(tmp_path: Path) -> None:
    make_run(tmp_path, "a")
    one = runner.invoke(app, ["compare", "a", "--root", str(tmp_path)])
    assert one.exit_code == 2 and "at least two runs" in one.output
    typo = runner.invoke(app, ["compare", "a", "aa", "--root", str(tmp_path)])
    assert typo.exit_code == 2 and "no such run" in typo.output and "Traceback" not in typo.output
