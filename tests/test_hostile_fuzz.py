"""Fuzz tests (issue 16): no control file can end a run, and no config file makes the loader do
anything but load or refuse it with exit 2.

Hypothesis generates random bytes, random JSON and YAML nesting, random sizes and alias fans;
``derandomize=True`` makes every run draw the same examples (seeded, no example database), and the
example counts keep the module to a few seconds. The documented outcomes:

- a control file is answered ``ok`` or ``error`` in events.jsonl (a line of bounded length) and
  leaves ``control/`` (to ``done/`` or ``rejected/``); polling never raises;
- a config is a :class:`~core.config.Config` or a :class:`~core.errors.ConfigError` (exit 2), and
  ``ftui config check`` exits 0 or 2 without a traceback.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from core import control
from core.config import Config, config_from_dict, load_config
from core.errors import ConfigError
from support.training import tiny_raw
from tui.cli import app

FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.sampled_from(["all", "head", "backbone", "stage1", "stage2", "*", "", "[/]", "nan"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
# "pause" is left out: a paused callback waits in poll() for a resume, as it should
names = st.one_of(st.sampled_from([c for c in control.COMMANDS if c != "pause"]), st.text(max_size=20), json_values)
arg_dicts = st.one_of(
    st.fixed_dictionaries({}, optional={"pattern": json_values, "group": json_values, "lr": json_values}),
    json_values,
)
commands = st.fixed_dictionaries(
    {"command": names},
    optional={"id": st.one_of(st.text(max_size=100), json_values), "args": arg_dicts, "time": json_values,
              "sender": json_values},
)


@st.composite
def control_files(draw: Any) -> bytes:
    """A command file: a JSON command, random bytes, deep nesting, or a large one."""
    kind = draw(st.sampled_from(["command", "command", "bytes", "deep", "large", "json"]))
    if kind == "command":
        return json.dumps(draw(commands)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.integers(1, 40_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        return ('{"command":"freeze","args":{"pattern":' + inner + "}}").encode()
    if kind == "large":
        filler = "x" * draw(st.integers(60_000, 200_000))
        return json.dumps({"command": "set-lr", "args": {"group": filler, "lr": 0.1}}).encode()
    return json.dumps(draw(json_values)).encode()


# --------------------------------------------------------------------------------------------------
# The control-file parser and the trainer's side of it, on a real trainer
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_trainer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real trainer whose run is open and whose ControlCallback polls control/ (as between steps)."""
    from core.training.callbacks import ControlCallback
    from core.training.trainer import Trainer

    root = tmp_path_factory.mktemp("fuzz-run")
    cfg = config_from_dict(tiny_raw(root, "fuzz", trainer={"epochs": 1, "max_steps": 2}))
    trainer = Trainer(cfg)
    trainer.fit()  # a real run: model, finetuner, optimizer, run directory
    trainer.run = type(trainer.run).reopen(trainer.run.path)
    callback = next(cb for cb in trainer.callbacks if isinstance(cb, ControlCallback))
    yield trainer, callback
    trainer.run.close()


@settings(FUZZ, max_examples=60)
@given(files=st.lists(control_files(), min_size=1, max_size=4))
def test_no_control_file_ends_a_run(live_trainer: Any, files: list[bytes]) -> None:
    trainer, callback = live_trainer
    run = trainer.run.path
    tail = control.answers_tail(run)
    for i, data in enumerate(files):
        parsed = control.read_command(_write(run, i, data))
        assert (parsed.obj is None) != (parsed.problem is None)  # read_command itself never raises
    trainer.should_stop = False
    handled = callback.poll(trainer, force=True)  # what the trainer does between steps
    assert handled == len(files) and not callback.paused
    answers = [e for e in tail.poll() if e.get("kind") == "control"]
    assert len(answers) == len(files) and all(a["status"] in ("ok", "error") for a in answers)
    assert all(len(json.dumps(a)) < 4000 for a in answers)  # bounded, whatever the file held
    assert not [p for p in (run / "control").iterdir() if p.is_file() and p.suffix == ".json"]
    assert any(p.requires_grad for p in trainer.model.parameters())  # never frozen to nothing


def _write(run: Path, index: int, data: bytes) -> Path:
    """A command file as a client leaves it, old enough that an unreadable one is not waited for."""
    path = run / "control" / f"{time.time_ns():020d}-{index:08d}.json"
    path.write_bytes(data)
    past = time.time() - 10
    os.utime(path, (past, past))
    return path


@settings(FUZZ, max_examples=200)
@given(data=control_files())
def test_the_parser_bounds_what_it_reads(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "cmd.json"
    path.write_bytes(data)
    parsed = control.read_command(path)
    if len(data) > control.MAX_COMMAND_BYTES:
        assert parsed.obj is None and parsed.final and "larger than" in (parsed.problem or "")
    if parsed.obj is not None:
        assert isinstance(parsed.obj, dict)
        json.dumps(control.bounded(parsed.obj.get("args")))  # what an answer echoes always serialises


# --------------------------------------------------------------------------------------------------
# The config loader
# --------------------------------------------------------------------------------------------------

SECTIONS = {name: list(field.annotation.model_fields) for name, field in Config.model_fields.items()}
config_keys = st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=10))


@st.composite
def config_trees(draw: Any) -> Any:
    """Mostly real section and key names with random values, sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    tree: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        keys = st.one_of(st.sampled_from(SECTIONS[section]), st.text(max_size=8))
        values = st.one_of(json_values, st.floats(), st.sampled_from([".inf", "-1", "0", "1e-3"]))
        tree[section] = draw(st.dictionaries(keys, values, max_size=5))
    return tree


@st.composite
def config_texts(draw: Any) -> bytes:
    """A config file: YAML of a tree, with anchors and aliases, nested deep, large, or random bytes."""
    kind = draw(st.sampled_from(["tree", "tree", "aliases", "deep", "large", "bytes", "mutated"]))
    if kind == "tree":
        return yaml.safe_dump(draw(config_trees()), allow_unicode=True).encode()
    if kind == "aliases":  # a fan of aliases: width ** levels values once expanded
        width, levels = draw(st.integers(1, 12)), draw(st.integers(1, 9))
        lines = ["model:", "  kwargs:", "    l0: &l0 [1, 2]"]
        lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
        return ("\n".join(lines) + "\n").encode()
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        return ("model:\n  kwargs:\n    x: " + "[" * depth + "]" * depth + "\n").encode()
    if kind == "large":
        return ("run:\n  notes: '" + "y" * draw(st.integers(500_000, 1_200_000)) + "'\n").encode()
    if kind == "mutated":
        text = bytearray(yaml.safe_dump(draw(config_trees())).encode())
        for position, byte in draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)):
            if text:
                text[position % len(text)] = byte
        return bytes(text)
    return draw(st.binary(max_size=400))


@settings(FUZZ, max_examples=200)
@given(data=config_texts())
def test_the_config_loader_loads_or_refuses_with_exit_2(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert exc.exit_code == 2 and str(path) in str(exc)
    else:
        assert isinstance(cfg, Config)


@settings(FUZZ, max_examples=25)
@given(data=config_texts(), override=st.text(max_size=30))
def test_config_check_exits_0_or_2_without_a_traceback(tmp_path: Path, data: bytes, override: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["config", "check", str(path), "--set", f"model.kwargs.k={override}"])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))
