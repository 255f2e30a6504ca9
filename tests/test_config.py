"""Config loading: typed schema, overrides, and a clear error (exit 2, no traceback) for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.config import Config, config_from_dict, config_schema, config_to_yaml, load_config
from core.errors import ConfigError
from tui.cli import app

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "sample_configs" / "quickstart.yaml"
runner = CliRunner()


def write(tmp_path: Path, text: str | bytes, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def check(path: Path | str, *extra: str):
    return runner.invoke(app, ["config", "check", str(path), *extra])


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_sample_configs_are_valid() -> None:
    for path in sorted((ROOT / "sample_configs").glob("*.yaml")):
        cfg = load_config(path)
        assert isinstance(cfg, Config)
        assert cfg.run.name


def test_defaults_and_name_from_stem(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "trainer:\n  epochs: 3\n", "my exp.yaml"))
    assert cfg.trainer.epochs == 3
    assert cfg.data.source == "shapes"
    assert cfg.run.name == "my-exp"


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(
        QUICKSTART,
        ["optim.lr=0.01", "trainer.epochs=3", "data.augment.hflip=0.25", "model.channels=[8, 16]",
         "trainer.precision=16-mixed", "model.kwargs.dropout=0.2"],
    )
    assert cfg.optim.lr == pytest.approx(0.01)
    assert cfg.trainer.epochs == 3 and isinstance(cfg.trainer.epochs, int)
    assert cfg.data.augment.hflip == 0.25
    assert cfg.model.channels == [8, 16]
    assert cfg.trainer.precision == "16-mixed"
    assert cfg.model.kwargs == {"dropout": 0.2}


def test_precision_accepts_yaml_int(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "trainer:\n  precision: 32\n")).trainer.precision == "32"


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_config(QUICKSTART, ["optim.lr=0.02"])
    again = load_config(write(tmp_path, config_to_yaml(cfg)))
    assert again == cfg


def test_config_from_dict() -> None:
    cfg = config_from_dict({"optim": {"lr": 0.5}}, ["trainer.epochs=2"])
    assert cfg.optim.lr == 0.5 and cfg.trainer.epochs == 2
    with pytest.raises(ConfigError, match="optim.lr"):
        config_from_dict({"optim": {"lr": -1}})


def test_schema_is_json_schema_with_descriptions() -> None:
    schema = config_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"run", "data", "model", "finetune", "optim", "schedule", "trainer", "logging"}
    optim = schema["$defs"]["OptimConfig"]
    assert optim["additionalProperties"] is False
    assert optim["properties"]["lr"]["exclusiveMinimum"] == 0
    # every field of every section says what it is
    for name, definition in schema["$defs"].items():
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{key} has no description"


def test_cli_check_show_schema() -> None:
    result = check(QUICKSTART)
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    result = runner.invoke(app, ["config", "show", str(QUICKSTART), "--set", "optim.lr=0.05"])
    assert result.exit_code == 0, result.output
    assert "lr: 0.05" in result.output
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "ftui run configuration"


# ------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    assert_user_error(check(tmp_path / "nope.yaml"), "nope.yaml", "not found")


def test_empty_file(tmp_path: Path) -> None:
    assert_user_error(check(write(tmp_path, "\n# only a comment\n")), "cfg.yaml", "empty")


def test_list_instead_of_mapping(tmp_path: Path) -> None:
    assert_user_error(check(write(tmp_path, "- data\n- model\n")), "cfg.yaml", "mapping", "list")


def test_tabs_invalid_yaml(tmp_path: Path) -> None:
    result = check(write(tmp_path, "optim:\n\tlr: 0.1\n"))
    assert_user_error(result, "cfg.yaml", "line 2", "tabs")


def test_invalid_yaml_syntax(tmp_path: Path) -> None:
    assert_user_error(check(write(tmp_path, "optim:\n  lr: [0.1\n")), "cfg.yaml", "invalid YAML", "line")


def test_unknown_top_level_section(tmp_path: Path) -> None:
    result = check(write(tmp_path, "optimizer:\n  lr: 0.1\n"))
    assert_user_error(result, "cfg.yaml", "optimizer", "unknown key", "line 1", "did you mean 'optim'")


def test_unknown_nested_key(tmp_path: Path) -> None:
    result = check(write(tmp_path, "trainer:\n  epochs: 2\n  epocs: 3\n"))
    assert_user_error(result, "trainer.epocs", "line 3", "did you mean 'epochs'")


def test_string_where_number_expected(tmp_path: Path) -> None:
    result = check(write(tmp_path, "optim:\n  lr: fast\n"))
    assert_user_error(result, "optim.lr", "line 2", '"fast"')


def test_negative_learning_rate(tmp_path: Path) -> None:
    result = check(write(tmp_path, "optim:\n  lr: -0.1\n"))
    assert_user_error(result, "optim.lr", "greater than 0", "-0.1")


def test_zero_batch_size(tmp_path: Path) -> None:
    result = check(write(tmp_path, "data:\n  batch_size: 0\n"))
    assert_user_error(result, "data.batch_size", "line 2", "greater than or equal to 1")


def test_set_without_equals() -> None:
    assert_user_error(check(QUICKSTART, "--set", "optim.lr"), "optim.lr", "KEY=VALUE")


def test_set_unknown_key() -> None:
    assert_user_error(check(QUICKSTART, "--set", "optim.learning_rate=0.1"), "optim.learning_rate", "unknown key")


def test_set_bad_value() -> None:
    assert_user_error(check(QUICKSTART, "--set", "optim.lr=-3"), "optim.lr", "from --set")


def test_config_path_is_directory(tmp_path: Path) -> None:
    assert_user_error(check(tmp_path), str(tmp_path), "directory")


def test_config_not_utf8(tmp_path: Path) -> None:
    result = check(write(tmp_path, "run:\n  notes: caf\xe9\n".encode("latin-1")))
    assert_user_error(result, "cfg.yaml", "UTF-8", "line 2")


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "config", "check", str(tmp_path / "nope.yaml")])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
