"""`ftui run --resume RUN`: the run's own config is the truth; a resume may change how long and how a
run goes on (recorded), never its model, data or optimizer layout (refused, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from core.runs import read_json
from support.training import tiny_raw
from tui.cli import app

runner = CliRunner()


def _yaml(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def _events(run: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e["kind"] == kind]


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != "run.lock"}


def test_resume_without_a_config_continues_with_the_runs_own(tmp_path: Path) -> None:
    # started with --set trainer.epochs=3 and ended early; the config file itself says 2 epochs
    cfg = _yaml(tmp_path / "r.yaml", tiny_raw(tmp_path, "r", trainer={"epochs": 2}))
    first = runner.invoke(app, ["run", str(cfg), "--set", "trainer.epochs=3", "--set", "trainer.max_steps=4",
                                "--quiet"])
    assert first.exit_code == 0, first.output
    run = tmp_path / "r"
    # what the summary of an ended run and `ftui ctl` suggest, run as printed: no CONFIG needed
    resumed = runner.invoke(app, ["run", "--resume", str(run), "--set", "trainer.max_steps=12"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.splitlines()[0] == f"r: resuming {run} from last.pt"
    info = read_json(run / "run.json")
    assert info["status"] == "finished" and info["step"] == 12 and info["epochs"] == 3  # not the file's 2
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["epochs"] == 3 and saved["trainer"]["max_steps"] == 12
    (changed,) = _events(run, "config")
    assert changed["changes"] == {"trainer.max_steps": [4, 12]} and changed["step"] == 4
    assert info["config_changes"][-1]["changes"] == {"trainer.max_steps": [4, 12]}
    assert "warning: resumed with a changed config: trainer.max_steps 4 -> 12" in resumed.output


def test_a_config_that_changes_how_long_a_run_goes_is_said_and_recorded(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path / "r.yaml", tiny_raw(tmp_path, "r", trainer={"epochs": 2}))
    assert runner.invoke(app, ["run", str(cfg), "--set", "trainer.epochs=6", "--set", "trainer.max_steps=4",
                               "--quiet"]).exit_code == 0
    run = tmp_path / "r"
    # the case: the config file, not the run's config — its 2 epochs are a change, said and kept
    resumed = runner.invoke(app, ["run", str(cfg), "--resume", "r", "--set", f"run.root={tmp_path}"])
    assert resumed.exit_code == 0, resumed.output
    flat = " ".join(resumed.output.split())
    assert "changed: trainer.epochs 6 -> 2, trainer.max_steps 4 -> None on this resume (recorded in the run)" in flat
    info = read_json(run / "run.json")
    assert info["epochs"] == 2 and info["config_changes"][-1]["changes"] == {
        "trainer.epochs": [6, 2], "trainer.max_steps": [4, None]}


def test_a_resume_that_would_change_the_model_data_or_optimizer_layout_is_refused(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path / "r.yaml", tiny_raw(tmp_path, "r", trainer={"epochs": 2, "max_steps": 3}))
    assert runner.invoke(app, ["run", str(cfg), "--quiet"]).exit_code == 0
    run = tmp_path / "r"
    before = _files(run)
    for override, shown in [
        ("data.batch_size=32", "data.batch_size: 16 -> 32"),
        ("model.dropout=0.5", "model.dropout: 0.2 -> 0.5"),
        ("optim.name=sgd", "optim.name: 'adamw' -> 'sgd'"),
        ("run.seed=8", "run.seed: 7 -> 8"),
    ]:
        result = runner.invoke(app, ["run", "--resume", str(run), "--set", override, "--set", "trainer.max_steps=5"])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        flat = " ".join(result.output.split())
        assert "the config would change the model, the data or the optimizer's layout" in flat and shown in flat
        assert "trainer.max_steps" not in flat.split("layout")[1].split("Nothing")[0]  # a safe key is not listed
        assert f"`ftui run --resume {run}`" in flat
        assert _files(run) == before  # nothing written


def test_a_new_lr_on_resume_moves_the_groups_at_the_configs_rate_not_those_changed_since() -> None:
    from core.config import FinetuneConfig, ModelConfig, OptimConfig
    from core.finetune import FineTuner
    from core.models import build_model

    model = build_model(ModelConfig(name="simple_cnn", channels=[4, 8]), 3, (3, 16, 16)).model
    then = FineTuner(model, FinetuneConfig(head_lr=0.05), OptimConfig(lr=0.01, weight_decay=0.01), "head")
    then.setup()
    then.build_optimizer()
    then.set_lr("head", 0.02)  # changed while it trained (set-lr): keeps its rate
    now = FineTuner(model, FinetuneConfig(head_lr=0.05), OptimConfig(lr=0.001, weight_decay=0.01), "head")
    moved = then.follow_config_lrs(then.config_base_lrs(), now.config_base_lrs())
    assert moved == ["default", "default/no_decay"]
    rates = {g["name"]: g["base_lr"] for g in then.groups_summary()}
    assert rates == {"default": 0.001, "default/no_decay": 0.001, "head": 0.02, "head/no_decay": 0.02}
    assert {g["name"]: g["lr"] for g in then.optimizer.param_groups}["default"] == 0.001  # the optimizer too
