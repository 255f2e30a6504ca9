"""Pilot tests of the dashboard on the recorded run and on runs that change or break while watched."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tui.app import FtuiApp
from tui.screens.dashboard import DashboardScreen
from tui.widgets.metric_plot import MetricPlot
from support.app import screen_text, wait_loaded

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"
REPO = Path(__file__).resolve().parent.parent


def synthetic_run(tmp_path: Path) -> Path:
    """The synthetic recorded run (has a test split and a warning event) written under ``tmp_path``."""
    spec = importlib.util.spec_from_file_location("make_recorded_run", FIXTURE.parent / "make_recorded_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(tmp_path / "synthetic")






def copy_run(tmp_path: Path, name: str = "run") -> Path:
    run = tmp_path / name
    shutil.copytree(FIXTURE, run)
    return run


def rewrite_info(run: Path, **fields) -> None:
    info = json.loads((run / "run.json").read_text())
    info.update(fields)
    (run / "run.json").write_text(json.dumps(info))


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.asyncio
async def test_dashboard_shows_every_view_of_the_recorded_run() -> None:
    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await wait_loaded(pilot, screen)
        text = screen_text(app)
        assert "recorded_run" in text and "finished" in text
        # started/ended in run.json are 59.7 s apart
        assert "epoch 3/3" in text and "step 72/72" in text and "elapsed 1:00" in text and "ETA done" in text
        assert "loss" in text and "accuracy" in text and "learning rate" in text
        await pilot.press("2")
        text = screen_text(app)
        assert "f1_macro" in text and "0.4740" in text  # final val acc, also the best
        await pilot.press("3")
        text = screen_text(app)
        assert "val: rows = true class" in text and "circle" in text and "star" in text
        await pilot.press("4")
        text = screen_text(app)
        assert "saved best.pt" in text and "+1:00 finished" in text
        await pilot.press("5")
        assert "finished: recorded_run" in screen_text(app)
        await pilot.press("6")
        text = screen_text(app)
        assert "system" in text and "no NVIDIA GPU recorded" in text and "of 2 cores" in text


@pytest.mark.asyncio
async def test_dashboard_of_a_run_with_a_test_split(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path)
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_loaded(pilot, app.screen)
        assert "elapsed 0:36" in screen_text(app)
        await pilot.press("2")
        # test acc of the synthetic run is 0.75 (225 of 300 on the confusion matrix's diagonal)
        text = screen_text(app)
        assert "test" in text and "0.7500" in text
        await pilot.press("3")
        assert "press v for test" in screen_text(app)
        await pilot.press("v")
        assert "test: rows = true class" in screen_text(app)
        await pilot.press("4")
        assert "val/acc below 0.9" in screen_text(app)


@pytest.mark.asyncio
async def test_plot_keys_change_the_drawing_and_resizing_never_crashes() -> None:
    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_loaded(pilot, screen)
        assert "step" in screen_text(app)
        await pilot.press("l", "e", "x")
        await pilot.pause()
        opts = screen.plot_options
        assert (opts.log_y, opts.smoothing, opts.x_axis) == (True, 0.6, "epoch")
        assert "loss (log) EMA 0.6" in screen_text(app)
        await pilot.press("x")
        assert screen.plot_options.x_axis == "time"
        assert "minutes" in screen_text(app)
        for size in ((200, 60), (40, 10), (20, 5), (80, 24), (150, 45)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            screen_text(app)
        # wide terminals put the three plots in one row
        assert screen.has_class("-wide")
        plots = list(screen.query(MetricPlot))
        assert len({p.region.y for p in plots}) == 1


@pytest.mark.asyncio
async def test_a_million_points_redraw_quickly() -> None:
    import time

    import numpy as np

    from tui.downsample import Series

    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = app.screen
        await wait_loaded(pilot, screen)
        n = 1_000_000
        steps = np.arange(n, dtype=float)
        big = Series()
        big.extend(np.column_stack([steps, steps / 1e5, 1.8e9 + steps, 2.0 + np.sin(steps / 5e3)]))
        screen.state.series[("train", "loss")] = big
        screen.state.version += 1
        await pilot.press("e")  # smoothing on: the EMA of all points is computed once, then extended
        start = time.perf_counter()
        for _ in range(3):
            screen.state.version += 1
            screen.redraw()
            screen_text(app)  # renders the plots at their size
        assert (time.perf_counter() - start) / 3 < 1.0
        plot = app.query_one("#plot-loss", MetricPlot)
        points, x_max = plot.drawn["train"]
        assert x_max == n - 1  # the whole run is drawn...
        assert points <= 2 * plot.size.width + 2  # ...as about two points per column


@pytest.mark.asyncio
async def test_corrupt_lines_are_counted_and_shown_as_a_warning(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write("garbage\n[1, 2]\n")
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_loaded(pilot, app.screen)
        assert "3 corrupt line(s)" in screen_text(app)
        assert "finished" in screen_text(app)


@pytest.mark.asyncio
async def test_a_failed_run_shows_its_error_prominently(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    rewrite_info(run, status="failed", error="non-finite loss (nan) at step 57: lower optim.lr")
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, app.screen)
        text = screen_text(app)
        assert "Training failed: non-finite loss (nan) at step 57" in text
        assert "failed" in text


@pytest.mark.asyncio
async def test_live_updates_and_a_deleted_run_directory(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    started = 1_800_000_000.0
    live = {"status": "running", "ended": None, "pid": os.getpid(), "host": socket.gethostname(), "started": started}
    rewrite_info(run, **live, step=30)
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_loaded(pilot, screen)
        screen.redraw(clock=started + 60)
        # 30 of 72 steps in 60 s: 42 steps left at 2 s each
        assert "running" in screen_text(app) and "elapsed 1:00  ETA 1:24" in screen_text(app)
        with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": 36, "epoch": 1, "time": started + 70, "split": "train", "loss": 0.0123}) + "\n")
        rewrite_info(run, **live, step=36)
        for _ in range(200):  # both: a poll may fall between the two writes
            await pilot.pause(0.05)
            if screen.state.latest.get(("train", "loss")) == 0.0123 and screen.state.info.get("step") == 36:
                break
        screen.redraw(clock=started + 72)
        assert "step 36/72" in screen_text(app) and "ETA 1:12" in screen_text(app)
        shutil.rmtree(run)
        for _ in range(100):
            await pilot.pause(0.05)
            if screen.state.deleted:
                break
        screen.redraw()
        await pilot.pause()
        assert "Run directory deleted" in screen_text(app)
        await pilot.press("2")  # still usable
        assert "0.0123" in screen_text(app)


@pytest.mark.asyncio
async def test_a_run_deleted_before_its_dashboard_opens(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    app = FtuiApp(tmp_path, watch=run)
    shutil.rmtree(run)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_loaded(pilot, app.screen)
        assert "Run directory deleted" in screen_text(app)


@pytest.mark.asyncio
async def test_help_and_command_palette_list_the_actions() -> None:
    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_loaded(pilot, app.screen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Log y (l)" in titles and "X axis (x)" in titles and "Smooth (e)" in titles
        assert not any(t.startswith("Stop") for t in titles)  # a finished run cannot be stopped
        await pilot.press("question_mark")
        await pilot.pause()
        text = screen_text(app)
        assert "Help" in text and "Cycle the plots' x axis" in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


def test_the_app_never_imports_torch() -> None:
    # A fresh interpreter: other tests of this session may have imported torch already.
    code = f"""
import asyncio, sys
from pathlib import Path
from tui.app import FtuiApp
async def main():
    app = FtuiApp({str(FIXTURE.parent)!r}, watch=Path({str(FIXTURE)!r}))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            if app.screen.loaded:
                break
            await pilot.pause(0.02)
        assert app.screen.loaded
        for key in "123456lex":
            await pilot.press(key)
        await pilot.press("question_mark")
        await pilot.pause()
    home = FtuiApp({str(FIXTURE.parent)!r})
    async with home.run_test(size=(100, 30)) as pilot:
        while not home.screen.scanned:
            await pilot.pause(0.02)
        await pilot.press("enter")
        while not getattr(home.screen, "loaded", False):
            await pilot.pause(0.02)
        await pilot.press("escape", "n")
        await pilot.pause(0.5)  # the machine panel has sampled
asyncio.run(main())
assert "torch" not in sys.modules, "the dashboard imported torch"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


@pytest.mark.asyncio
async def test_leaving_the_dashboard_of_an_active_run_says_how_to_come_back(tmp_path: Path) -> None:
    run = copy_run(tmp_path, "going")
    rewrite_info(run, name="going", status="running", ended=None, pid=os.getpid(), host=socket.gethostname())
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.press("q")
    assert app.exit_note() == f"going keeps running in the background. Come back with: ftui watch {run}"
    rewrite_info(run, status="finished", ended=1.0)
    assert app.exit_note() is None


@pytest.mark.asyncio
async def test_the_lr_plot_draws_every_group_with_a_legend(tmp_path: Path) -> None:
    # a stage unfrozen half-way at a tenth of the rate: its own line, not hidden in the max over groups
    run = copy_run(tmp_path)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        if "lrs" in row and row["step"] >= 40:
            lr = row["lrs"]["default"] / 10
            row["lrs"].update({"unfrozen:stage3": lr, "unfrozen:stage3/no_decay": lr})
        if "lrs" in row and row["step"] >= 60:  # the head's modules moved to groups of their own: its group ends
            row["lrs"] = {k: v for k, v in row["lrs"].items() if not k.startswith("head")}
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    head_until = max(r["step"] for r in rows if "head" in r.get("lrs", {}))
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot, app.screen)
        plot = app.query_one("#plot-lr", MetricPlot)
        text = screen_text(app)
        assert list(plot.drawn) == ["default", "head", "unfrozen:stage3"]  # a twin /no_decay group is not drawn
        assert plot.drawn["unfrozen:stage3"][1] == 72 and "unfrozen:stage3" in text and "⢕⢕ head" in text
        await pilot.press("2")
        text = screen_text(app)
        assert "lr/unfrozen:stage3" in text and "4.000e-09" in text and "/no_decay" not in text
        # its last value is not a rate anything trains at now: the row says until when it was
        assert f"lr/head (until step {head_until})" in text and "lr/default (until" not in text, text
    # a run recorded without group rates: its `lr` (the max over the groups), labelled as such
    for row in rows:
        row.pop("lrs", None)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot, app.screen)
        assert list(app.query_one("#plot-lr", MetricPlot).drawn) == ["max over groups"]


@pytest.mark.asyncio
async def test_pause_and_stop_are_one_path_in_every_tab(tmp_path: Path) -> None:
    from core import control

    run = copy_run(tmp_path)
    rewrite_info(run, status="running", ended=None, pid=os.getpid(), host=socket.gethostname())
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        screen = app.screen
        await wait_loaded(pilot, screen)
        for tab in "1234567":
            await pilot.press(tab)
            await pilot.pause()
            # at 80 columns too, every tab's footer says that p and s work there
            footer = screen_text(app).splitlines()[-1]
            assert "p Pause" in footer and "s Stop" in footer, f"tab {tab}: {footer}"
            # the plots' keys only where they act
            assert ("l Log y" in footer and "e Smooth" in footer) == (tab == "1"), f"tab {tab}: {footer}"
            assert ("v Split" in footer) == (tab in "13"), f"tab {tab}: {footer}"
            await pilot.press("p")
            await pilot.pause()
            (path, sent), = control.pending_commands(run)  # nobody trains here: it stays queued
            assert (sent["command"], sent["sender"]) == ("pause", "ftui app"), f"tab {tab}"
            path.unlink()
        assert [p.command for p in screen.control.pending.values()] == ["pause"] * 7
        rewrite_info(run, paused=True, paused_since=2e9)  # a paused run: p says resume, and sends it
        await pilot.pause(1.0)
        screen.redraw()
        await pilot.pause()
        assert "p Resume" in screen_text(app).splitlines()[-1]
        await pilot.press("p")
        await pilot.pause()
        (path, sent), = control.pending_commands(run)
        assert sent["command"] == "resume"
        path.unlink()
        rewrite_info(run, paused=False, paused_since=None)
        for tab in "17":  # the plots tab sent SIGTERM and the layers tab `stop` before: one path now
            await pilot.press(tab, "s")
            await pilot.pause()
            assert "Stop recorded_run?" in screen_text(app) and "ends as stopped" in screen_text(app)
            await pilot.press("y")
            await pilot.pause()
            (path, sent), = control.pending_commands(run)
            assert sent["command"] == "stop", f"tab {tab}"
            path.unlink()
        rewrite_info(run, status="finished", ended=2e9)  # once the run has ended, nothing is offered
        await pilot.pause(1.0)
        screen.redraw()
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "Pause" not in footer and "Resume" not in footer and "Stop" not in footer
        assert not screen.control.pending
        assert any("no answer to: pause" in n.message for n in app._notifications)


@pytest.mark.asyncio
async def test_smoothing_shows_on_a_short_run_and_says_which_lines_it_leaves_raw() -> None:
    # the recorded run has 6 train rows and 3 validations: an EMA used to need more than 20 points
    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot, app.screen)
        loss = app.query_one("#plot-loss", MetricPlot)
        screen_text(app)
        raw = loss.drawn_y["train"]
        await pilot.press("e")
        text = screen_text(app)
        assert loss.smoothed == {"train": True, "val": False}
        smoothed = loss.drawn_y["train"]
        assert smoothed[0] == raw[0] and (smoothed[1:] != raw[1:]).all()  # the line moved
        assert "loss EMA 0.6" in text and "val (raw)" in text
        assert "learning rate EMA" not in text and app.query_one("#plot-lr", MetricPlot).smoothed == {}


@pytest.mark.asyncio
async def test_watching_a_name_whose_newer_namesake_runs_says_so(tmp_path: Path) -> None:
    old = copy_run(tmp_path, "finetune")
    newer = copy_run(tmp_path, "finetune-2")
    created = json.loads((old / "run.json").read_text())["created"]
    rewrite_info(newer, name="finetune-2", status="running", ended=None, pid=os.getpid(), host=socket.gethostname(),
                 created=created + 60)
    app = FtuiApp(tmp_path, watch=old)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.pause(0.3)
        text = " ".join(screen_text(app).split())
        assert f"finetune-2 is a newer run of the same name (running): `ftui watch {tmp_path / 'finetune-2'}`" in text


@pytest.mark.asyncio
async def test_events_tell_one_thing_once(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    t = json.loads((run / "events.jsonl").read_text().splitlines()[-1])["time"]
    extra = [
        {"time": t, "kind": "freeze", "message": "froze stage1", "source": "control", "command_id": "a", "step": 72},
        {"time": t, "kind": "control", "message": "froze stage1", "id": "a", "command": "freeze", "status": "ok"},
        {"time": t, "kind": "control", "message": "freeze 'stage9': matches no module", "id": "b", "command": "freeze",
         "status": "error"},
        {"time": t, "kind": "control", "message": "validated at step 72: loss 1.2, acc 0.5", "id": "c",
         "command": "validate", "status": "ok"},
    ]
    with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in extra)
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.press("4")
        await pilot.pause()
        # live, an epoch's best.pt and last.pt can come in two reads of the run: still one line
        for name in ("best.pt", "last.pt"):
            saved = {"time": t + 1, "kind": "checkpoint", "message": f"saved {name}", "file": name, "step": 96}
            with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(saved) + "\n")
            await pilot.pause(1.2)
        text = screen_text(app)
    lines = [line.strip() for line in text.splitlines()]
    # an epoch's best.pt and last.pt: one line, not two
    assert sum("saved best.pt and last.pt" in line for line in lines) == 4 and not any(
        line.endswith("saved last.pt") or line.endswith("saved best.pt") for line in lines), text
    assert sum("froze stage1" in line for line in lines) == 1  # the freeze, not again as its answer
    # the optimizer's groups as the run started: one line, a group and its no_decay twin as one
    assert sum("lr_group" in line for line in lines) == 1, text
    assert "optimizer groups: default lr 0.01 (4.3K params) · head lr 0.01 (" in " ".join(text.split()), text
    assert any("matches no module" in line for line in lines) and any("validated at step 72" in line for line in lines)


@pytest.mark.asyncio
async def test_v_says_how_the_test_split_gets_into_the_run_then_shows_it(tmp_path: Path) -> None:
    run = copy_run(tmp_path)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.pt").write_bytes(b"")  # only its name matters here
    app = FtuiApp(tmp_path, watch=run)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = app.screen
        await wait_loaded(pilot, screen)
        await pilot.press("v")
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any(f"`ftui eval {run / 'checkpoints' / 'best.pt'}` evaluates it on the test split and records the "
                   "result in this run" in n for n in notes), notes
        assert "val: rows = true class" in screen_text(app)
        # what `ftui eval` records: a test row with its matrix; v then shows it
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        test = {**rows[-1], "split": "test", "checkpoint": "best.pt"}
        with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(test) + "\n")
        await pilot.pause(1.2)
        await pilot.press("v")
        await pilot.pause()
        assert "test: rows = true class" in screen_text(app) and "(press v for val)" in screen_text(app)


@pytest.mark.asyncio
async def test_every_tab_stays_in_the_tab_bar_at_60_columns() -> None:
    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_loaded(pilot, app.screen)
        bar = screen_text(app).splitlines()[1]
        assert bar.split() == ["1", "Plots", "2", "Metric", "3", "Conf", "4", "Event", "5", "Out", "6", "Sys", "7", "Layer"]
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert "7 Layers" in screen_text(app).splitlines()[1]


@pytest.mark.asyncio
async def test_the_confusion_tab_names_classes_whole_where_they_fit_and_never_cuts_its_figures() -> None:
    for size in ((120, 40), (80, 24), (60, 20)):
        app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
        async with app.run_test(size=size) as pilot:
            await wait_loaded(pilot, app.screen)
            await pilot.press("3")
            await pilot.pause()
            lines = screen_text(app).splitlines()
        header = next(line for line in lines if line.strip().startswith("true \\ pred"))
        if size[0] == 120:  # six classes: room for every name (it read "cir… squ… tri…")
            assert header.split()[3:9] == ["circle", "square", "triangle", "cross", "ring", "star"], header
        # P, R, F1 and n whole at every size (at 60 columns they read "0.…")
        circle = next(line for line in lines if line.strip().startswith("circle"))
        assert circle.split()[-4:] == ["0.35", "0.62", "0.45", "32"], (size, circle)


def test_a_long_event_wraps_under_its_message_not_under_the_time() -> None:
    from rich.console import Console

    from tui.widgets.event_log import event_row

    event = {"kind": "lr_group", "time": 100.0, "message": "optimizer groups: default lr 0.003 (72.3K params) · "
                                                            "head lr 0.003 (390 params)"}
    console = Console(width=80, record=True, color_system=None)
    console.print(event_row(event, 100.0))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert lines[0].startswith("   +0:00 lr_group    optimizer groups:") and len(lines) == 2, lines
    assert lines[1][:21].strip() == "" and "390 params" in lines[1], lines  # under the message's first column
