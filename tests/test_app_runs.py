"""Pilot tests of the many-runs app: filter as you type, sort, mark and compare, delete, rename, tag;
event markers on the dashboard's and the compare screen's plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.runs import TRASH_DIR, read_meta
from runs_helpers import make_run, make_running
from support.app import screen_text, wait_for
from tui.app import FtuiApp
from tui.markers import event_kind, legend, markers
from tui.screens.compare import CompareScreen
from tui.screens.home import HomeScreen
from tui.widgets.metric_plot import MetricPlot
from tui.widgets.overlay_plot import OverlayPlot
from tui.widgets.runs_table import RunsTable


def three_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    make_run(root, "base", lr=0.01, best=0.47, created=1.8e9)
    make_run(root, "fast", lr=0.1, best=0.52, created=1.8e9 + 10)
    make_run(root, "slow", lr=0.001, best=0.31, created=1.8e9 + 20)
    return root


async def home(pilot, app: FtuiApp) -> HomeScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen) and app.screen.scanned)
    return app.screen


def shown(app: FtuiApp) -> list[str]:
    return [e.name for e in app.screen.query_one(RunsTable).runs.values()]


@pytest.mark.asyncio
async def test_the_runs_table_shows_hparams_and_filters_as_you_type(tmp_path: Path) -> None:
    root = three_runs(tmp_path)
    app = FtuiApp(root, config_dirs=[])
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await home(pilot, app)
        text = screen_text(app)
        assert "optim.lr" in text and "best val/acc" in text and "3 of 3 runs" in text
        assert shown(app) == ["slow", "fast", "base"]
        await pilot.press("slash")
        for key in "optim.lr<0.05":
            await pilot.press(key)
        assert shown(app) == ["slow", "base"]  # updated on every keystroke
        assert "2 of 3 runs  ·  filter: optim.lr<0.05" in screen_text(app)
        await pilot.press("space", "f", "i", "n")  # a second term: a word
        assert shown(app) == ["slow", "base"]
        await pilot.press("enter")  # keeps the filter, back to the table
        assert app.focused is screen.query_one(RunsTable)
        await pilot.press("escape")
        assert shown(app) == ["slow", "fast", "base"] and "filter" not in screen_text(app)
        await pilot.press("slash", "z", "z", "z")
        assert shown(app) == [] and "no run matches" in screen_text(app)
        await pilot.press("escape")

        await pilot.press("o")  # sort by a column, picked from a list
        await pilot.pause()
        options = app.screen.query_one("#choose-list")
        options.highlighted = [o.id for o in options.options].index("best")
        await pilot.press("enter")
        await pilot.pause()
        assert shown(app) == ["fast", "base", "slow"] and "sorted by best ▼" in screen_text(app)
        screen.set_sort("best")  # the same column again: reversed
        assert shown(app) == ["slow", "base", "fast"]
        screen.set_sort("optim.lr")
        assert shown(app) == ["slow", "base", "fast"]


@pytest.mark.asyncio
async def test_marking_two_runs_and_comparing_them(tmp_path: Path) -> None:
    root = three_runs(tmp_path)
    app = FtuiApp(root, config_dirs=[])
    async with app.run_test(size=(120, 40)) as pilot:
        await home(pilot, app)
        await pilot.press("c")  # nothing marked yet: says what to do
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("space", "space")  # marks slow, then fast (the cursor moves down)
        assert "2 marked" in screen_text(app)
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await wait_for(pilot, lambda: screen.loaded)
        await pilot.pause()
        text = screen_text(app)
        assert "Comparing: ━━ slow  ━━ fast" in text
        for plot in screen.query(OverlayPlot):
            assert set(plot.drawn) == {"slow", "fast"}, plot.id
            # the recorded run saved checkpoints at steps 24, 48 and 72: markers in each run's colour
            assert [m.x for m in plot.drawn_markers["slow"]] == [24.0, 48.0, 72.0]
        assert "C checkpoint" in text
        await pilot.press("x")
        assert screen.query_one("#overlay-val-acc", OverlayPlot).drawn["fast"][1] == pytest.approx(3.0)  # epochs
        await pilot.press("2")
        text = screen_text(app)
        assert "best val/acc" in text and "0.3100" in text and "0.5200" in text
        assert "optim.lr" in text and "0.001" in text and "0.1" in text
        await pilot.press("3")
        await pilot.pause()
        text = screen_text(app)
        assert text.count("rows = true class") == 2 and "circle" in text
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


@pytest.mark.asyncio
async def test_compare_sets_aside_a_run_of_another_task(tmp_path: Path) -> None:
    root = three_runs(tmp_path)
    make_run(root, "table", lr=0.01, task="tabular", dataset="csv", class_names=["no", "yes"], created=1.7e9)
    app = FtuiApp(root, config_dirs=[])
    async with app.run_test(size=(120, 40)) as pilot:
        await home(pilot, app)
        app.push_screen(CompareScreen([root / "base", root / "table", root / "fast"]))
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        await pilot.press("2")
        text = " ".join(screen_text(app).split())
        assert "not compared: table" in text and "table is a tabular run (csv) and base an image run" in text
        assert set(screen.query_one("#overlay-val-loss", OverlayPlot).drawn) == {"base", "fast"}


@pytest.mark.asyncio
async def test_delete_asks_moves_to_the_trash_and_refuses_a_running_run(tmp_path: Path) -> None:
    root = three_runs(tmp_path)
    make_running(root / "slow")
    app = FtuiApp(root, config_dirs=[])
    async with app.run_test(size=(120, 40)) as pilot:
        await home(pilot, app)
        table = app.screen.query_one(RunsTable)
        assert table.selected().name == "slow"
        await pilot.press("d")  # running: refused, and the message says why
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen) and (root / "slow").is_dir()
        notes = [n.message for n in app._notifications]
        assert any("cannot delete a running run" in m and "trainer keeps writing" in m for m in notes)
        await pilot.press("m")  # nor renamed
        await pilot.pause()
        assert any("cannot rename a running run" in n.message for n in app._notifications)

        await pilot.press("down", "space", "space", "up", "up", "space")  # marks fast, base and slow
        await pilot.press("d")
        await pilot.pause()
        text = screen_text(app)
        assert "Delete 2 run(s)?" in text and "Skipped (still running)" in text
        await pilot.press("n")
        assert (root / "fast").is_dir()
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: shown(app) == ["slow"])
        assert (root / TRASH_DIR / "fast").is_dir() and (root / TRASH_DIR / "base").is_dir()
        assert any("ftui runs restore" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_rename_tag_and_archive_from_the_table(tmp_path: Path) -> None:
    root = three_runs(tmp_path)
    app = FtuiApp(root, config_dirs=[])
    async with app.run_test(size=(120, 40)) as pilot:
        await home(pilot, app)
        await pilot.press("m")
        await pilot.pause()
        box = app.screen.query_one("#prompt-input")
        box.value = "base"  # taken: the dialog says so and stays open
        await pilot.press("enter")
        await pilot.pause()
        assert "base exists already" in screen_text(app)
        box.value = "slow-lr1e-3"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "slow-lr1e-3" in shown(app))
        assert not (root / "slow").exists()
        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#prompt-input").value = "low-lr baseline"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "baseline" in screen_text(app))
        assert read_meta(root / "slow-lr1e-3").tags == ("low-lr", "baseline")
        await pilot.press("slash", *"tag=baseline", "enter")
        assert shown(app) == ["slow-lr1e-3"]
        await pilot.press("escape", "a")  # archived: hidden until A
        await wait_for(pilot, lambda: "slow-lr1e-3" not in shown(app))
        assert "1 archived hidden (A shows)" in screen_text(app)
        await pilot.press("A")
        await wait_for(pilot, lambda: "slow-lr1e-3" in shown(app))


def test_markers_come_from_events_and_merge_per_step() -> None:
    info = {"started": 100.0, "steps_per_epoch": 10}
    events = [
        {"kind": "started", "step": 0, "time": 100.0},
        {"kind": "unfreeze", "step": 20, "time": 130.0, "modules": ["stage1"]},
        {"kind": "lr", "step": 20, "time": 130.0},
        {"kind": "paused", "step": 25, "time": 140.0},
        {"kind": "resumed", "step": 25, "time": 200.0},  # un-paused: no checkpoint named
        {"kind": "checkpoint", "step": 30, "time": 210.0},
        {"kind": "resumed", "step": 30, "time": 400.0, "checkpoint": "last.pt"},
        {"kind": "freeze", "step": 35, "time": 420.0},
    ]
    assert [event_kind(e) for e in events] == [None, "unfreeze", "lr", "paused", "unpaused", "checkpoint",
                                               "resumed", "freeze"]
    found = markers(events, "step", info)
    assert [(m.x, m.letters, m.line) for m in found] == [
        (20.0, "UL", True), (25.0, "PG", True), (30.0, "RC", True), (35.0, "F", True)]
    assert [m.x for m in markers(events, "epoch", info)] == [2.0, 2.5, 3.0, 3.5]
    assert markers(events, "time", info)[0].x == pytest.approx(0.5)  # minutes since the start
    assert [m.x for m in markers(events, "step", info, (21, 31))] == [25.0, 30.0]
    assert legend(found) == "U unfreeze · F freeze · L lr change · P pause · G go on (un-pause) · " \
                            "R resumed from a checkpoint · C checkpoint"


@pytest.mark.asyncio
async def test_the_dashboard_marks_what_was_done_to_the_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, "steered")
    with open(run / "events.jsonl", "a") as fh:
        for event in ({"kind": "unfreeze", "step": 30, "epoch": 1, "time": 1.8e9 + 20, "modules": ["stage1"]},
                      {"kind": "lr", "step": 40, "epoch": 1, "time": 1.8e9 + 25, "groups": []},
                      {"kind": "paused", "step": 50, "epoch": 2, "time": 1.8e9 + 30}):
            fh.write(json.dumps({"message": "", **event}) + "\n")
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        await pilot.pause()
        plot = screen.query_one("#plot-loss", MetricPlot)
        assert [(m.x, m.letters) for m in plot.drawn_markers] == [
            (24.0, "C"), (30.0, "U"), (40.0, "L"), (48.0, "C"), (50.0, "P"), (72.0, "C")]
        assert "U unfreeze · L lr change · P pause · C checkpoint" in screen_text(app)
        await pilot.press("k")
        await pilot.pause()
        assert plot.drawn_markers == [] and "U unfreeze" not in screen_text(app)
        for size in ((40, 12), (20, 6), (120, 40)):  # markers at any size, log scale too
            await pilot.resize_terminal(*size)
            await pilot.press("k", "l")
            await pilot.pause()
            screen_text(app)
