"""The control channel's client side: command checking, atomic command files, answers, `ftui ctl` exit codes."""

from __future__ import annotations

import json
import os
import shlex
import socket
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import control
from core.runs import RunWriter
from tui.cli import app

runner = CliRunner()


def _live_run(tmp_path: Path, status: str = "running") -> Path:
    """A run directory whose run.json names this (live) process, so it reads as active."""
    writer = RunWriter.create(tmp_path, "live")
    writer.update(status=status, pid=os.getpid(), host=socket.gethostname())
    return writer.path


def test_cli_arguments_are_parsed_and_checked() -> None:
    assert control.parse_cli_args("unfreeze", ["layer4", "--lr", "3e-4"]) == {"pattern": "layer4", "lr": 3e-4}
    assert control.parse_cli_args("unfreeze", ["layer4", "--lr=0.01"]) == {"pattern": "layer4", "lr": 0.01}
    assert control.parse_cli_args("set-lr", ["head", "0.5"]) == {"group": "head", "lr": 0.5}
    assert control.parse_cli_args("pause", []) == {}
    assert control.parse_cli_args("set-lr", ["head", "50", "--force"]) == {"group": "head", "lr": 50.0, "force": True}
    assert control.parse_cli_args("unfreeze", ["--force", "x", "--lr", "1"]) == {"pattern": "x", "lr": 1.0, "force": True}
    for command, argv, needle in [
        ("frezee", [], "Did you mean 'freeze'"),
        ("freeze", [], "missing pattern"),
        ("set-lr", ["head", "-1"], "> 0"),
        ("set-lr", ["head", "nan"], "> 0"),
        ("set-lr", ["head", "fast"], "must be a number"),
        ("unfreeze", ["x", "--momentum", "1"], "unknown option --momentum"),
        ("pause", ["now"], "too many arguments"),
        ("set-lr", ["head", "1", "--force=yes"], "--force takes no value"),
        ("freeze", ["x", "--force"], "unknown option --force"),
    ]:
        with pytest.raises(control.ControlError, match=needle):
            control.parse_cli_args(command, argv)


def test_send_writes_one_atomic_file_in_order_and_mark_done_moves_it(tmp_path: Path) -> None:
    first = control.send(tmp_path, "freeze", {"pattern": "stage1"})
    second = control.send(tmp_path, "pause")
    pending = control.pending_commands(tmp_path)
    assert [p.name for p, _ in pending] == [f"{first.id}.json", f"{second.id}.json"]  # sent order
    assert pending[0][1] == {"id": first.id, "command": "freeze", "args": {"pattern": "stage1"},
                             "time": first.time, "sender": "ftui"}
    assert not [n for n in os.listdir(tmp_path / "control") if n.startswith(".")]  # no temp file left
    (tmp_path / "control" / "zz-broken.json").write_text("{not json")
    assert control.pending_commands(tmp_path)[-1][1] is None
    control.mark_done(pending[0][0])
    assert (tmp_path / "control" / "done" / f"{first.id}.json").is_file()
    assert [p.name for p, _ in control.pending_commands(tmp_path)] == [f"{second.id}.json", "zz-broken.json"]
    with pytest.raises(control.ControlError):
        control.send(tmp_path, "set-lr", {"group": "head", "lr": 0})


def test_wait_for_answer_matches_the_id_and_gives_up_when_the_trainer_is_gone(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, "r", flush_seconds=0.0)
    tail = control.answers_tail(writer.path)
    writer.log_event("control", "other", id="someone-else", status="ok")
    writer.log_event("freeze", "froze x", command_id="abc")  # not an answer
    timer = threading.Timer(0.2, lambda: writer.log_event("control", "froze x", id="abc", status="ok"))
    timer.start()
    answer = control.wait_for_answer(tail, "abc", timeout=5)
    timer.join()
    assert answer is not None and answer["message"] == "froze x" and answer["kind"] == "control"
    t0 = time.monotonic()
    assert control.wait_for_answer(tail, "never", timeout=30, alive=lambda: False) is None
    assert time.monotonic() - t0 < 3  # did not sit out the timeout


def test_ctl_exit_codes_for_bad_input_and_no_answer(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ctl", "no-such-run", "pause", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "no-such-run" in result.output and "Traceback" not in result.output

    run = _live_run(tmp_path)
    result = runner.invoke(app, ["ctl", str(run), "explode"])
    assert result.exit_code == 2 and "unknown command 'explode'" in result.output
    result = runner.invoke(app, ["ctl", str(run), "set-lr", "head", "-0.1"])
    assert result.exit_code == 2 and "lr must be a finite number > 0" in result.output
    assert control.pending_commands(run) == []  # bad input never reaches the trainer

    # nobody serves this run: the command stays queued and ctl exits 1 after the timeout
    result = runner.invoke(app, ["ctl", str(run), "unfreeze", "stage1", "--lr", "0.05", "--timeout", "0.3"])
    assert result.exit_code == 1 and "no answer" in result.output
    (path, obj), = control.pending_commands(run)
    assert obj["command"] == "unfreeze" and obj["args"] == {"pattern": "stage1", "lr": 0.05}
    assert obj["sender"] == "ftui ctl"

    info = json.loads((run / "run.json").read_text())
    info["status"] = "finished"
    (run / "run.json").write_text(json.dumps(info))
    result = runner.invoke(app, ["ctl", str(run), "pause"])
    assert result.exit_code == 2 and "finished" in result.output and "nothing to control" in result.output



def test_ctl_on_a_name_whose_newer_namesake_runs_points_to_it(tmp_path: Path) -> None:
    # `ftui run` twice: the second is finetune-2; `ftui ctl finetune ...` must not quietly miss it
    old = RunWriter.create(tmp_path, "finetune")
    old.update(status="finished", pid=os.getpid(), host=socket.gethostname())
    RunWriter.create(tmp_path, "finetune-other").update(status="running", pid=os.getpid(), host=socket.gethostname())
    new = _live_run(tmp_path)  # another name: not a namesake
    newer = RunWriter.create(tmp_path, "finetune")
    newer.update(status="running", pid=os.getpid(), host=socket.gethostname(), created=old.info["created"] + 1)
    assert newer.path.name == "finetune-2" and new.name == "live"
    result = runner.invoke(app, ["ctl", "finetune", "pause", "--root", str(tmp_path)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "the run is finished, so there is nothing to control; finetune-2 is a newer run of the same name" in message
    suggested = message.split("Fix: `")[1].split("`")[0]
    assert suggested == f"ftui ctl --root {tmp_path} finetune-2 pause"
    # run as printed, it reaches the newer run (nobody answers here: it stays queued)
    again = runner.invoke(app, [*shlex.split(suggested)[1:], "--timeout", "0.2"])
    assert again.exit_code == 1 and "no answer" in again.output
    (_, obj), = control.pending_commands(newer.path)
    assert obj["command"] == "pause"
