"""The dashboard's layer tree: Pilot tests against a real `ftui run` process, and its pure helpers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core import control
from core.runs import read_json
from support.app import screen_text, wait_loaded
from support.training import tiny_raw
from tui.app import FtuiApp
from tui.format import format_count, sparkline
from tui.widgets.layer_tree import LayerTreeView, aggregate_grad_norms

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_grad_norms_of_parents_combine_their_units() -> None:
    record = {"layers": {"a.0": {"grad_norm": 3.0}, "a.1": {"grad_norm": 4.0}, "b": {"grad_norm": 1.0},
                         "c": {"grad_norm": "inf"}, "d": {"weight_norm": 2.0}}}
    norms = aggregate_grad_norms(record)
    assert norms["a"] == 5.0 and norms["a.0"] == 3.0 and norms["b"] == 1.0 and norms["c"] == float("inf")
    assert "d" not in norms


def test_one_count_and_sparkline_form_for_the_tree_and_the_inspector() -> None:
    assert [format_count(n) for n in (268, 45_300, 11_200_000, 1.5e9, None)] == ["268", "45.3K", "11.2M", "1.5B", "—"]
    assert format_count(None, missing="-") == "-" and format_count(float("nan")) == "—"
    assert sparkline([1.0, 10.0, 100.0], log=True) == "▁▅█"  # log scale: norms span decades
    assert sparkline([0.0, 0.0], log=True) == ""  # frozen: nothing to draw
    assert sparkline([2.0, float("nan"), 2.0], log=True) == "▄ ▄"  # a flat line in the middle, gaps kept
    assert sparkline([0, 1, 2, None, 3]) == "▁▃▆ █"  # linear (metric histories in the inspector)


@pytest.mark.asyncio
async def test_a_finished_run_shows_its_tree_read_only(tmp_path: Path) -> None:
    run = tmp_path / "done"
    shutil.copytree(FIXTURE, run)
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.press("7")
        tree = app.screen.query_one(LayerTreeView)
        await _until(pilot, lambda: tree.has_focus and "stage1" in tree.modules)
        text = screen_text(app)
        assert "finished (read-only)  4.4K of 4.4K params trainable  lr now (b: base)" in text
        await pilot.resize_terminal(80, 24)
        await _until(pilot, lambda: "finished (read-only)" in screen_text(app))  # first: never cut at 80 columns
        await pilot.resize_terminal(120, 40)
        # the rate it trained at last (a finished one-cycle run: almost 0), not the base the schedule scaled
        assert "● trains  lr 4e-08" in _line(app, "stage2") and "lr 4e-08" in _line(app, "head")
        await pilot.press("b")
        await _until(pilot, lambda: "● trains  base 0.01" in _line(app, "stage2"))
        assert "base lr (b: now)" in screen_text(app)
        await pilot.press("b")
        await _until(pilot, lambda: "● trains  lr 4e-08" in _line(app, "stage2"))
        while tree.cursor_node is None or tree.cursor_node.data != "stage1":
            await pilot.press("down")
        await pilot.press("space")
        await _until(pilot, lambda: "nothing to control" in screen_text(app))
        assert not (run / "control").exists() or control.pending_commands(run) == []
        assert tree.pending == {}


@pytest.mark.asyncio
async def test_a_run_recorded_without_group_names_shows_base_rates_as_such(tmp_path: Path) -> None:
    run = tmp_path / "old"
    shutil.copytree(FIXTURE, run)
    model = json.loads((run / "model.json").read_text())
    for module in model["modules"]:
        module.pop("groups"), module.pop("frozen_groups")
    (run / "model.json").write_text(json.dumps(model))
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.press("7")
        tree = app.screen.query_one(LayerTreeView)
        await _until(pilot, lambda: "stage1" in tree.modules)
        assert "● trains  base 0.01" in _line(app, "stage2")  # never a base rate passed off as the current one


@pytest.mark.asyncio
async def test_a_command_left_unanswered_by_a_killed_trainer_is_not_pending_forever(tmp_path: Path) -> None:
    run = tmp_path / "killed"
    shutil.copytree(FIXTURE, run)
    info = json.loads((run / "run.json").read_text())
    live = {**info, "status": "running", "ended": None, "pid": os.getpid(), "host": socket.gethostname()}
    (run / "run.json").write_text(json.dumps(live))
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.press("7")
        tree = app.screen.query_one(LayerTreeView)
        await _until(pilot, lambda: tree.has_focus and tree.active)
        await pilot.press("c")  # checkpoint: nobody answers
        assert [p.command for p in tree.pending.values()] == ["checkpoint"]
        assert "⧗ checkpoint…" in screen_text(app)
        (run / "run.json").write_text(json.dumps({**live, "pid": 2**22 + 12345}))  # the process is gone
        await _until(pilot, lambda: not tree.pending and "no answer to: checkpoint" in screen_text(app))
        assert "⧗" not in screen_text(app)


def _line(app: FtuiApp, module: str) -> str:
    """The screen line of a depth-1 module of the tree."""
    for line in screen_text(app).splitlines():
        if f" {module} " in line and ("Sequential" in line or "Linear" in line):
            return line
    raise AssertionError(f"{module} not on screen")


async def _until(pilot, predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
@pytest.mark.asyncio
async def test_space_freezes_from_the_tree_and_the_tree_follows_the_trainer(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path, "live", trainer={"epochs": 500, "max_steps": 3000},
                   logging={"every_n_steps": 1, "flush_seconds": 0.1})
    cfg = tmp_path / "live.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "run", str(cfg)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    run = tmp_path / "live"
    try:
        deadline = time.monotonic() + 60
        while (read_json(run / "run.json") or {}).get("status") != "running":
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        app = FtuiApp(tmp_path, watch=run)
        async with app.run_test(size=(140, 40), notifications=True) as pilot:
            await wait_loaded(pilot, app.screen)
            await pilot.press("7")
            tree = app.screen.query_one(LayerTreeView)
            await _until(pilot, lambda: tree.has_focus and "stage1" in tree.modules and "∇" in _line(app, "stage2"))
            while tree.cursor_node is None or tree.cursor_node.data != "stage1":
                await pilot.press("down")
            assert "● trains" in _line(app, "stage1") and "lr " in _line(app, "stage1")
            await pilot.press("b")  # base rates: what set-lr sets (the schedule scales them)
            await _until(pilot, lambda: "base 0.01" in _line(app, "stage1"))

            # the trainer cannot answer while stopped: the command waits, shown as pending
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                await pilot.press("space")
                (path, sent), = control.pending_commands(run)
                assert sent["command"] == "freeze" and sent["args"] == {"pattern": "stage1"}
                assert sent["sender"] == "ftui app"
                assert "⧗ freeze…" in _line(app, "stage1") and "● trains" in _line(app, "stage1")
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            # model.json is rewritten just before the answer is written: a poll may see one, then the other
            await _until(pilot, lambda: "❄ frozen" in _line(app, "stage1") and tree.answers)
            assert "⧗" not in _line(app, "stage1")
            assert [(a["command"], a["status"]) for a in tree.answers] == [("freeze", "ok")]
            model = json.loads((run / "model.json").read_text())
            assert next(m for m in model["modules"] if m["path"] == "stage1")["frozen"] is True

            await pilot.press("space")  # unfreeze: the dialog shows the rate it gets back; enter keeps it
            await _until(pilot, lambda: "would train in group default at base lr 0.01" in screen_text(app))
            await pilot.press("enter")
            await _until(pilot, lambda: "● trains" in _line(app, "stage1") and len(tree.answers) == 2)

            await pilot.press("l")  # learning rate of the selected module
            await pilot.pause()
            await pilot.press("home", "ctrl+k", *"0.02", "enter")  # replace the current lr
            await _until(pilot, lambda: "base 0.02" in _line(app, "stage1") and len(tree.answers) == 3)
            assert tree.answers[-1]["command"] == "set-lr"
            assert tree.answers[-1]["args"] == {"group": "stage1", "lr": 0.02}

            await pilot.press("p")
            await _until(pilot, lambda: "⏸ paused" in screen_text(app))
            assert (read_json(run / "run.json") or {})["paused"] is True
            assert " paused " in screen_text(app).splitlines()[0]  # the header says so too
            await pilot.press("p")
            await _until(pilot, lambda: "⏸ paused" not in screen_text(app) and len(tree.answers) == 5)

            tree.send("freeze", {"pattern": "stage9"})  # a refusal shows as a notification
            await _until(pilot, lambda: "refused" in screen_text(app))
            assert tree.answers[-1]["status"] == "error"

            await pilot.press("s")
            await pilot.press("y")  # confirm
            assert proc.wait(timeout=60) == 0
        info = read_json(run / "run.json")
        assert info["status"] == "stopped" and info["frozen"] == []
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()


@pytest.mark.asyncio
async def test_unfreeze_shows_the_rate_it_gets_and_a_rate_far_above_the_runs_asks_first(tmp_path: Path) -> None:
    from tui.screens.confirm import ConfirmScreen
    from tui.screens.learning_rate import UnfreezeDialog

    run = tmp_path / "live"
    shutil.copytree(FIXTURE, run)
    model = json.loads((run / "model.json").read_text())
    for module in model["modules"]:
        if module["path"].startswith("stage1") and module["params"]:
            module.update(frozen=True, trainable=0, lr=None, frozen_lr=0.01, frozen_groups=module["groups"], groups=[])
    (run / "model.json").write_text(json.dumps(model))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running", "ended": None, "pid": os.getpid(),
                                              "host": socket.gethostname()}))
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.press("7")
        tree = app.screen.query_one(LayerTreeView)
        await _until(pilot, lambda: tree.has_focus and tree.active and "stage1" in tree.modules)
        while tree.cursor_node is None or tree.cursor_node.data != "stage1":
            await pilot.press("down")

        async def sent() -> dict:
            await _until(pilot, lambda: control.pending_commands(run))
            (path, command), = control.pending_commands(run)  # nobody trains here: it stays queued
            path.unlink()
            return command

        # space on a frozen module says which rate it would train at, and keeps it on enter
        await pilot.press("space")
        await _until(pilot, lambda: isinstance(app.screen, UnfreezeDialog))
        text = screen_text(app)
        assert "stage1 would train in group default at base lr 0.01, 4e-08 now as the schedule scales it" in text
        await pilot.press("enter")
        assert (await sent())["args"] == {"pattern": "stage1"}  # its group's rate: no lr of its own
        # or its own rate
        await pilot.press("space")
        await _until(pilot, lambda: isinstance(app.screen, UnfreezeDialog))
        await pilot.press("ctrl+a", "ctrl+k", *"0.001", "enter")
        assert (await sent())["args"] == {"pattern": "stage1", "lr": 0.001}
        # 50 is 5,000x the run's largest base lr: asked first, sent with force only after a yes
        await pilot.press("down", "l")
        await pilot.pause()
        await pilot.press("ctrl+a", "ctrl+k", *"50", "enter")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "lr 50 is 5,000x the run's largest base learning rate (0.01)" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert control.pending_commands(run) == []
        await pilot.press("l")
        await pilot.pause()
        await pilot.press("ctrl+a", "ctrl+k", *"50", "enter")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        command = await sent()
        assert command["command"] == "set-lr" and command["args"]["lr"] == 50.0 and command["args"]["force"] is True
        # a rate within bounds goes straight out
        await pilot.press("l")
        await pilot.pause()
        await pilot.press("ctrl+a", "ctrl+k", *"0.05", "enter")
        assert "force" not in (await sent())["args"]
