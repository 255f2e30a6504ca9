"""End to end: real tiny runs started from the app, watched to the end, and surviving the app's hangup."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.runs import RUN_JSON, STDOUT_LOG, pid_alive, read_json
from tui.app import FtuiApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.home import HomeScreen
from tui.screens.start_run import StartRunScreen
from tui.widgets.runs_table import RunsTable
from support.app import screen_text

REPO = Path(__file__).resolve().parent.parent
#: A run of a few seconds: tiny images, a tiny CNN, no loader workers.
TINY_CONFIG = """\
run:
  name: tiny
data:
  source: shapes
  shapes:
    classes: [circle, square, triangle]
    train_size: 96
    val_size: 48
    test_size: 0
    image_size: 16
  batch_size: 32
  num_workers: 0
model:
  name: simple_cnn
  channels: [4, 8]
trainer:
  epochs: 1
  device: cpu
"""
RUN_TIMEOUT = 240.0

# Real training on a shared 2-core box: generous limits, and every wait reports what it saw.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]




def write_config(tmp_path: Path) -> Path:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "tiny.yaml").write_text(TINY_CONFIG)
    return configs


def process_ended(pid: int, timeout: float = 30.0) -> bool:
    """True once ``pid`` is gone or a zombie (orphans are reaped by whatever PID 1 the container has)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        try:
            if ") Z" in Path(f"/proc/{pid}/stat").read_text():
                return True
        except OSError:
            return True
        time.sleep(0.2)
    return False


def wait_status(run: Path, timeout: float = RUN_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    info: dict = {}
    while time.monotonic() < deadline:
        info = read_json(run / RUN_JSON) or {}
        if info.get("status") not in (None, "created", "running"):
            return info
        time.sleep(0.5)
    raise AssertionError(f"run did not end in {timeout}s: {info.get('status')}; log:\n{(run / STDOUT_LOG).read_text()[-3000:]}")


@pytest.mark.asyncio
async def test_start_a_run_from_home_watch_it_finish_and_read_its_final_metrics(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    configs = write_config(tmp_path)
    app = FtuiApp(root, config_dirs=[configs])
    async with app.run_test(size=(120, 36)) as pilot:
        home = app.screen
        assert isinstance(home, HomeScreen)
        while not home.scanned:
            await pilot.pause(0.05)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, StartRunScreen)
        app.screen.query_one("#start-overrides").value = "--set trainer.epochs=2 optim.lr=0.01"
        app.screen.query_one("#start-name").value = "from-app"
        app.screen.query_one("#start-overrides").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is home
        run = root / "from-app"
        assert (run / RUN_JSON).is_file()
        table = app.query_one(RunsTable)
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            row = table.runs.get(str(run))
            if row is not None and row.status not in ("created", "running"):
                break
            await pilot.pause(0.25)
        row = table.runs[str(run)]
        assert row.status == "finished", (run / STDOUT_LOG).read_text()[-3000:]
        assert "finished" in screen_text(app) and "from-app" in screen_text(app)
        info = read_json(run / RUN_JSON)
        assert info["epoch"] == 2
        # the new run is under the cursor: enter watches it
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DashboardScreen) and screen.path == run
        while not screen.loaded:
            await pilot.pause(0.05)
        screen.redraw()
        text = screen_text(app)
        assert "from-app" in text and "finished" in text and "epoch 2/2" in text
        await pilot.press("2")
        text = screen_text(app)
        final_val_acc = info["metrics"]["val/acc"]
        assert f"{final_val_acc:.4f}" in text
        assert f"{info['metrics']['val/loss']:.4f}" in text
        await pilot.press("5")
        assert "finished" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        # the inspector opens on the run's best checkpoint
        await pilot.press("i")
        await pilot.pause()
        assert app.screen.query_one("#ckpt-path").value.endswith("checkpoints/best.pt")
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "InspectScreen"


APP_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from tui.app import FtuiApp
from tui.screens.start_run import StartRunScreen

root, configs = Path(sys.argv[1]), Path(sys.argv[2])

async def until(pilot, condition, what):
    deadline = time.monotonic() + 120
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}; screen {pilot.app.screen!r}")
        await pilot.pause(0.05)

async def main():
    app = FtuiApp(root, config_dirs=[configs])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.scanned, "the first scan")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, StartRunScreen), "the start form")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, StartRunScreen), "the form to close")
        print(next(root.iterdir()), flush=True)
        while True:  # an app left open, until the connection drops
            await pilot.pause(0.2)

asyncio.run(main())
"""


def test_a_run_started_from_the_app_survives_the_apps_hangup(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    configs = write_config(tmp_path)
    # Its own session, like a login shell over SSH: the hangup goes to the whole process group.
    app = subprocess.Popen(
        [sys.executable, "-c", APP_SCRIPT, str(root), str(configs)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        ready, _, _ = select.select([app.stdout], [], [], 180)
        line = app.stdout.readline().strip() if ready else ""
        if not line:
            os.killpg(app.pid, signal.SIGKILL)
            raise AssertionError(f"the app never reported its run: {app.stderr.read()[-3000:]}")
        run = Path(line)
        os.killpg(app.pid, signal.SIGHUP)
        assert app.wait(timeout=20) == -signal.SIGHUP
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)
    info = wait_status(run)
    assert info["status"] == "finished", (run / STDOUT_LOG).read_text()[-3000:]
    assert process_ended(info["pid"])
    assert (run / "checkpoints" / "last.pt").is_file()
    assert "finished" in (run / STDOUT_LOG).read_text()
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["split"] == "val"
