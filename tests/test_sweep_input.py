"""`ftui sweep` bad input: exit 2 with the fix, before any trial starts (no training here)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from core.sweep.space import SpaceError, parse_param
from tui.cli import app

runner = CliRunner()
CONFIG = str(Path(__file__).resolve().parents[1] / "sample_configs" / "quickstart.yaml")


def sweep(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["sweep", CONFIG, "--trials", "2", "--root", str(tmp_path / "runs"), *args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def test_distributions_parse_into_optuna_distributions() -> None:
    lr = parse_param("optim.lr=loguniform:1e-4:1e-1")
    assert lr.distribution() == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    bs = parse_param("data.batch_size=choice:32,64,128")
    assert bs.distribution() == optuna.distributions.CategoricalDistribution([32, 64, 128])
    assert parse_param("optim.name=choice:adamw,sgd").choices == ("adamw", "sgd")
    assert parse_param("trainer.epochs=int:2:10:2").distribution() == optuna.distributions.IntDistribution(2, 10, step=2)
    assert parse_param("model.channels.0=logint:8:64").distribution().log
    assert parse_param("optim.lr=choice:1e-3,3e-4").override(1e-3) == "optim.lr=0.001"
    with pytest.raises(SpaceError, match="LOW must be below HIGH"):
        parse_param("optim.lr=uniform:0.1:0.01")
    with pytest.raises(SpaceError, match="listed twice"):
        parse_param("data.batch_size=choice:32,32")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--param", "optim.lrr=loguniform:1e-4:1e-1"], ["unknown key 'lrr' in optim", "did you mean 'optim.lr'"]),
        (["--param", "optim.lr=logunif:1e-4:1e-1"],
         ["unknown distribution 'logunif'", "did you mean 'loguniform'", "Accepted forms: loguniform:LOW:HIGH",
          "choice:A,B,C"]),
        (["--param", "optim.lr=uniform:a:b"], ["'a' is not a number", "uniform takes uniform:LOW:HIGH"]),
        (["--param", "optim.lr"], ["expected KEY=DIST", "Accepted forms"]),
        (["--param", "optim.lr=uniform:-0.1:0.1"],
         ["LOW -0.1 is rejected by the config: optim.lr: Input should be greater than 0",
          "Fix: choose a range that optim.lr accepts"]),
        (["--param", "optim.lr=loguniform:0:0.1"], ["a log scale needs LOW > 0"]),
        (["--param", "data.batch_size=uniform:16:64"],
         ["data.batch_size: Input should be a valid integer", "use int:16:64"]),
        (["--param", "optim.name=choice:adamw,lion"], ["choice lion is rejected", "'sgd', 'adam' or 'adamw'"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--set", "optim.lr=0.1"], ["also set with --set"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--param", "optim.lr=uniform:0.1:0.2"], ["given twice"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--storage", "bogus"],
         ["--storage bogus: cannot open the study storage", "Fix: pass sqlite:///path/to/sweep.db"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--storage", "sqlite:////no/such/dir/s.db"],
         ["the directory /no/such/dir does not exist"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--storage", "postgresql://u:secret@db.invalid/s"],
         ["postgresql://u:***@db.invalid/s", "pip install psycopg2-binary"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--pruner", "median:n_startup=2"],
         ["has no option 'n_startup'", "did you mean 'n_startup_trials'"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--pruner", "medain"], ["unknown pruner 'medain'", "'median'"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--sampler", "grid"], ["a grid needs finite values"]),
        (["--param", "optim.lr=loguniform:1e-4:1e-1", "--set", "trainer.checkpoint.monitor=train/loss"],
         ["a sweep's objective is a validation metric"]),
    ],
)
def test_bad_input_exits_2_with_the_fix(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    code, out = sweep(tmp_path, *args)
    assert code == 2, out
    for text in expected:
        assert text in out, (text, out)
    assert "secret" not in out  # a storage password is never printed
    assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if p.name != "sweeps"]


def test_joining_a_study_that_searches_something_else_is_refused(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    from core.sweep.runner import Sweep, SweepOptions
    from core.sweep.space import parse_space

    first = Sweep(SweepOptions(config=Path(CONFIG), params=parse_space(["optim.lr=loguniform:1e-4:1e-1"]), trials=2,
                               storage=storage, name="s", root=tmp_path / "runs"), say=lambda line: None)
    first.prepare()
    code, out = sweep(tmp_path, "--param", "optim.weight_decay=loguniform:1e-6:1e-2", "--storage", storage,
                      "--name", "s")
    assert code == 2 and "study 's' searches something else" in out and "another --name" in out
    # the same search (its params in any order) joins it
    again = Sweep(SweepOptions(config=Path(CONFIG), params=parse_space(["optim.lr=loguniform:1e-4:1e-1"]), trials=2,
                               storage=storage, name="s", root=tmp_path / "runs"), say=lambda line: None)
    again.prepare()
    assert again.study.study_name == "s"
