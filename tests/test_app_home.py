"""Pilot tests of the home screen: runs table, configs, start form errors, stop, quit note."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tui.app import FtuiApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.home import HomeScreen
from tui.screens.open_checkpoint import OpenCheckpointScreen
from tui.screens.start_run import StartRunScreen
from tui.widgets.config_list import ConfigList
from tui.widgets.machine_panel import MachinePanel
from tui.widgets.runs_table import RunsTable
from support.app import screen_text, wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"






def make_root(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(FIXTURE, root / "recorded_run")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "good.yaml").write_text("trainer:\n  epochs: 1\n")
    (configs / "bad.yaml").write_text("trainer:\n  epochs: 0\n  epochz: 3\n")
    return root, configs


def app_for(root: Path, configs: Path) -> FtuiApp:
    return FtuiApp(root, config_dirs=[configs])


@pytest.mark.asyncio
async def test_home_lists_runs_and_configs_and_opens_a_dashboard(tmp_path: Path) -> None:
    root, configs = make_root(tmp_path)
    app = app_for(root, configs)
    async with app.run_test(size=(120, 30)) as pilot:
        home = app.screen
        assert isinstance(home, HomeScreen)
        await wait_for(pilot, lambda: home.scanned)
        await pilot.pause()
        text = screen_text(app)
        assert "recorded_run" in text and "finished" in text and "simple_cnn" in text and "shapes" in text
        # one metric monitored by every run: its name moves to the header, the cell keeps the value
        assert "3/3 · 72" in text and "best val/acc" in text and "0.4740" in text and "1:00" in text
        assert "configs/bad.yaml" in text or "bad.yaml" in text
        app.query_one(RunsTable).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.loaded)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is home
        # w watches the selected run even while the configs list has the focus
        app.query_one(ConfigList).focus()
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))


@pytest.mark.asyncio
async def test_a_config_that_fails_validation_shows_its_message_in_the_form(tmp_path: Path) -> None:
    root, configs = make_root(tmp_path)
    app = app_for(root, configs)
    async with app.run_test(size=(100, 30)) as pilot:
        home = app.screen
        await wait_for(pilot, lambda: home.scanned)
        # the configs list is sorted: bad.yaml first
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartRunScreen))
        await pilot.press("enter")
        await pilot.pause()
        text = screen_text(app)
        assert isinstance(app.screen, StartRunScreen), "the form must stay open on a bad config"
        assert "bad.yaml" in text and "epochs" in text
        # a bad override on a good config: message, still no run
        app.screen.query_one("#start-config").value = str(configs / "good.yaml")
        app.screen.query_one("#start-overrides").value = "trainer.epochs=zero"
        app.screen.query_one("#start-overrides").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, StartRunScreen)
        assert "trainer.epochs" in screen_text(app)
        app.screen.query_one("#start-overrides").value = "epochs"
        await pilot.press("enter")
        await pilot.pause()
        assert "KEY=VALUE" in screen_text(app)
        app.screen.query_one("#start-overrides").value = ""
        app.screen.query_one("#start-name").value = "bad name!"
        await pilot.press("enter")
        await pilot.pause()
        assert "run.name" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: any(n.message == "No run was started." for n in app._notifications))
        assert app.screen is home  # a cancel is never silent
    assert sorted(p.name for p in root.iterdir()) == ["recorded_run"]


@pytest.mark.asyncio
async def test_the_start_form_opens_on_its_first_open_field_and_tab_runs_down_it(tmp_path: Path) -> None:
    root, configs = make_root(tmp_path)
    app = app_for(root, configs)
    async with app.run_test(size=(80, 24)) as pilot:
        home = app.screen
        await wait_for(pilot, lambda: home.scanned)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, StartRunScreen))
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "start-name"  # the config was picked in the list
        seen = []
        for _ in range(4):
            await pilot.press("tab")
            seen.append(app.focused.id)
        assert seen == ["start-overrides", "start-ok", "start-cancel", "start-config"]


@pytest.mark.asyncio
async def test_stop_asks_the_run_through_its_control_channel_after_confirmation(tmp_path: Path) -> None:
    from core import control

    root, configs = make_root(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = root / "live"
        shutil.copytree(FIXTURE, run)
        info = json.loads((run / "run.json").read_text())
        info.update(name="live", status="running", ended=None, pid=proc.pid, host=socket.gethostname(), created=2e9)
        (run / "run.json").write_text(json.dumps(info))
        app = app_for(root, configs)
        async with app.run_test(size=(120, 30), notifications=True) as pilot:
            home = app.screen
            await wait_for(pilot, lambda: home.scanned)
            table = app.query_one(RunsTable)
            assert table.selected().name == "live"  # newest first
            assert "running" in screen_text(app)
            table.focus()
            await pilot.press("s")
            await pilot.pause()
            assert "Stop live?" in screen_text(app) and "ends as stopped" in screen_text(app)
            await pilot.press("n")
            await pilot.pause()
            assert control.pending_commands(run) == []
            await pilot.press("s")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            # the same stop as the dashboard's: a `stop` command the trainer applies after its step
            (_, sent), = control.pending_commands(run)
            assert sent["command"] == "stop" and sent["sender"] == "ftui app"
            assert "Asked live to stop" in screen_text(app)
            assert proc.poll() is None  # no signal: the trainer ends itself, as `stopped`
            proc.kill()
            proc.wait()
            # run.json still says running, but its pid is gone: the run reads as lost, not active
            assert app.exit_note() is None
            await pilot.press("s")  # a lost run is not offered a stop
            await pilot.pause()
            assert isinstance(app.screen, HomeScreen)
            await wait_for(pilot, lambda: table.selected().status == "lost")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.asyncio
async def test_quit_note_says_which_runs_keep_going(tmp_path: Path) -> None:
    root, configs = make_root(tmp_path)
    run = root / "bg"
    shutil.copytree(FIXTURE, run)
    info = json.loads((run / "run.json").read_text())
    # our own pid is certainly alive: the run reads as running
    import os

    info.update(name="bg", status="running", ended=None, pid=os.getpid(), host=socket.gethostname())
    (run / "run.json").write_text(json.dumps(info))
    app = app_for(root, configs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        await pilot.press("q")
    note = app.exit_note()
    assert note is not None and "bg" in note and f"ftui watch bg --root {root}" in note
    assert "recorded_run" not in note


@pytest.mark.asyncio
async def test_inspect_asks_for_a_path_and_rejects_a_missing_file(tmp_path: Path) -> None:
    root, configs = make_root(tmp_path)
    app = app_for(root, configs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, OpenCheckpointScreen)
        app.screen.query_one("#ckpt-path").value = str(tmp_path / "nope.pt")
        await pilot.press("enter")
        await pilot.pause()
        assert "No such file" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)


@pytest.mark.asyncio
async def test_home_with_no_runs_says_how_to_start_one(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    app = FtuiApp(tmp_path / "missing-root", config_dirs=[configs])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        await pilot.press("w", "s", "n")  # nothing selected, no configs: messages, no crash
        await pilot.pause()
        assert "No runs yet" in screen_text(app)


@pytest.mark.asyncio
async def test_at_80x24_and_60x20_config_names_stay_whole_and_the_machine_panel_keeps_its_figures(
        tmp_path: Path) -> None:
    root, configs = make_root(tmp_path)
    (configs / "imagefolder_example_with_a_long_name.yaml").write_text("trainer:\n  epochs: 1\n")
    for size in ((80, 24), (60, 20)):
        app = app_for(root, configs)
        async with app.run_test(size=size) as pilot:
            home = app.screen
            await wait_for(pilot, lambda: home.scanned and app.query_one(MachinePanel).snapshot is not None)
            await pilot.pause()
            lines = screen_text(app).splitlines()
            # a file name on one line (its folder is the list's title), never broken mid-word: one too long
            # for the list keeps its start and its extension
            assert any("good.yaml" in line for line in lines), size
            assert any(re.search(r"imagefolder_exam\S*…\S*\.yaml ", line) for line in lines), size
            assert not any(line.strip("▊▎ ").startswith(".yaml") for line in lines), size
            assert any(f"{configs.name}/ (n: new run)" in line for line in lines), size
            machine = " ".join(lines[-8:])
            assert "CPU " in machine and " cores" in machine and "RAM " in machine and " GiB" in machine, size


@pytest.mark.asyncio
async def test_a_config_in_two_folders_of_one_name_stays_on_one_line_at_80x24(tmp_path: Path) -> None:
    # a copy of sample_configs/ in the current directory beside the checkout's own: both listed
    root, _ = make_root(tmp_path)
    folders = [tmp_path / where / "sample_configs" for where in ("here", "checkout")]
    for folder in folders:
        folder.mkdir(parents=True)
        for name in ("imagefolder_example", "finetune_shapes", "quickstart"):  # more than the list shows: it scrolls
            (folder / f"{name}.yaml").write_text("trainer:\n  epochs: 1\n")
    app = FtuiApp(root, config_dirs=folders)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        await pilot.pause()
        lines = [line.strip("▊▎ ") for line in screen_text(app).splitlines()]
        listed = [line for line in lines if "imagefolder_example.yaml" in line]
        # each on its own line with the start of its folder, which tells them apart; no folder wrapped below
        assert len(listed) == 2 and listed[0] != listed[1], lines
        assert all(re.search(r"\.yaml  /\S+…", line) for line in listed), listed
        shown = [line for line in lines if ".yaml" in line and "(n: new run)" not in line]
        assert len(shown) >= 3 and all(re.search(r"\.yaml  /\S+…", line) for line in shown), shown
        assert not any(line.startswith(("sample_configs", "/")) for line in lines), lines
        assert any("sample_configs/ +1 more (n: new run)" in line for line in lines), lines


@pytest.mark.asyncio
async def test_at_80x24_the_runs_table_shows_a_long_named_runs_best_value_whole(tmp_path: Path) -> None:
    from runs_helpers import make_run

    root, configs = make_root(tmp_path)
    make_run(root, "quickstart-pruned50-ft", lr=0.005, batch_size=32, best=0.9575, created=2e9)
    app = app_for(root, configs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        await pilot.pause()
        lines = screen_text(app).splitlines()
    (row,) = [line for line in lines if "quickstart-pruned50-ft" in line]
    assert row.split()[1:6] == ["finished", "3/3", "·", "72", "0.9575"], lines  # not 0.957, not pushed off
    assert any(line.split()[:6] == ["name", "status", "epoch", "·", "step", "best"] for line in lines), lines


@pytest.mark.asyncio
async def test_a_long_runs_root_keeps_the_runs_title_on_one_line_at_80x24(tmp_path: Path) -> None:
    deep = tmp_path / "experiments-of-the-vision-team" / "fine-tuning-on-the-new-cluster"
    deep.mkdir(parents=True)
    root, configs = make_root(deep)
    app = app_for(root, configs)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        # the folders that tell this root apart and the key hint, on the first line; nothing wrapped below
        assert lines[0].strip() == "Runs in …/fine-tuning-on-the-new-cluster/runs (enter: watch)", lines[:2]
        assert "name" in lines[1] and "status" in lines[1], lines[:2]
