"""The README's walk after the quickstart, and every command ftui suggests on the way, run as printed.

A person copies the README's commands in order: the quickstart, the app, the steering of
`finetune_shapes` (in the background, from `ftui ctl`), then eval, explain, diff, inspect, compress,
export, runs and compare. Each runs here exactly as printed — its words as the shell splits them, in
this process so that torch is imported once — from a fresh copy of `sample_configs/` whose two samples
are shrunk (fewer, smaller samples and epochs) so that the walk takes seconds; the app and the
dashboards run as processes in a 120x40 pseudo-terminal and are quit with `q`; `--detach` starts a real
background run that `ftui ctl` steers. On the way, the commands ftui
itself prints — `--detach`'s "stop it", `ftui ctl`'s fix for a run that is not running — are run as
printed too. (The sweep line is checked by `ftui sweep`'s own parser here; tests/test_sweep_e2e.py runs
sweeps.)
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from core.runs import read_json
from support.app import screen_text, wait_for, wait_loaded
from tui.app import FtuiApp
from tui.cli import app

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _block(marker: str) -> list[str]:
    """The command lines of the README's code block after ``<!-- marker -->``, comments left out."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", text, re.S).group(1)
    return [line.split("  #")[0].strip() for line in body.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}


def _argv(line: str) -> list[str]:
    argv = shlex.split(line)
    assert argv[0] == "ftui", line
    return [sys.executable, "-m", "tui.cli", *argv[1:]]


def run(line: str, cwd: Path, *, ok: bool = True) -> Result:
    """``line`` as the shell splits it, in this process (one torch import for the whole walk), from ``cwd``."""
    argv = shlex.split(line)
    assert argv[0] == "ftui", line
    here = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, argv[1:], env={"COLUMNS": "120"})
    finally:
        os.chdir(here)
    if ok:
        assert done.exit_code == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    return done


def in_terminal(line: str, cwd: Path, expect: str, timeout: float = 60.0) -> str:
    """Run an app command in a 120x40 pseudo-terminal until ``expect`` (a word: the terminal's codes come
    between words) shows, then quit it with q."""
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**_env(), "TERM": "xterm-256color", "LINES": "40"}
    proc = subprocess.Popen(_argv(line), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + timeout
        while expect.encode() not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        os.write(master, b"q")
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:  # keep reading: a full pty blocks the app
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    text = seen.decode(errors="replace")
    assert expect in text, f"{line}: {expect!r} never showed"
    return text


def wait_status(run_dir: Path, statuses: tuple[str, ...], timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_json(run_dir / "run.json") or {}
        if info.get("status") in statuses and info.get("ended"):
            return info
        time.sleep(0.2)
    raise AssertionError(f"{run_dir} never reached {statuses}: {(run_dir / 'stdout.log').read_text()[-2000:]}")


async def _stop_dialog(cwd: Path, run_dir: Path) -> str:
    """The dashboard's stop dialog for the paused ``run_dir``, as text; cancelled (the run goes on)."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        app = FtuiApp(Path("runs"), watch=run_dir)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_loaded(pilot, app.screen)
            await wait_for(pilot, lambda: "paused" in screen_text(app).splitlines()[0], timeout=60)
            await pilot.press("s")
            await wait_for(pilot, lambda: "ends as stopped" in screen_text(app))
            text = " ".join(screen_text(app).replace("│", " ").replace("█", " ").split())
            await pilot.press("n")
            await pilot.pause()
        return text
    finally:
        os.chdir(here)


def _shrink(samples: Path) -> None:
    """The two samples of the walk, small enough for seconds (everything else as printed)."""
    for name, epochs in (("quickstart", 1), ("finetune_shapes", 3)):
        path = samples / f"{name}.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["data"]["shapes"].update(train_size=192, val_size=64, test_size=64)
        raw["data"]["num_workers"] = 0
        raw["trainer"]["epochs"] = epochs
        path.write_text(yaml.safe_dump(raw))


def test_the_readme_walk_and_ftuis_own_suggestions_run_as_printed(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "sample_configs", tmp_path / "sample_configs")
    _shrink(tmp_path / "sample_configs")
    runs = tmp_path / "runs"

    # the quickstart: the last command of the README's first block
    quickstart = _block("main-command")[0].split("&&")[-1].strip()
    assert quickstart == "ftui run sample_configs/quickstart.yaml"
    assert "finished: quickstart" in run(quickstart, tmp_path).stdout

    app, watch = _block("after-quickstart-commands")
    assert (app, watch) == ("ftui", "ftui watch quickstart")
    in_terminal(app, tmp_path, "quickstart")
    in_terminal(watch, tmp_path, "finished")

    # steering: in the background, paused before its first step from "another shell", then let go
    detach, watch_it = _block("steer-commands")
    assert (detach, watch_it) == ("ftui run sample_configs/finetune_shapes.yaml --detach", "ftui watch finetune_shapes")
    started = run(detach, tmp_path).stdout
    assert started.startswith("started finetune_shapes in the background")
    pause, unfreeze, resume = _block("steer-ctl-commands")
    assert "ok — paused at step 0" in run(pause, tmp_path).stdout
    in_terminal(watch_it, tmp_path, "paused")
    printed_watch = re.search(r"watch it: +(ftui watch \S+)", started).group(1)
    in_terminal(printed_watch, tmp_path, "finetune_shapes")  # what --detach prints
    assert "ok — unfroze stage1 at lr 0.0005" in run(unfreeze, tmp_path).stdout
    assert "ok — resumed at step 0" in run(resume, tmp_path).stdout
    finetune = wait_status(runs / "finetune_shapes", ("finished",))
    assert finetune["frozen"] == ["stage2"]  # stage1 unfrozen from the ctl block, stage3 by the schedule

    finished = _block("finished-commands")
    by_verb = {shlex.split(line)[1]: line for line in finished}
    assert list(by_verb) == ["eval", "explain", "diff", "inspect", "compress", "export", "sweep", "runs", "compare"]
    evaluated = run(by_verb["eval"], tmp_path)
    assert "recorded in runs/finetune_shapes" in evaluated.stderr
    run(by_verb["explain"], tmp_path)
    assert "Parameters" in run(by_verb["diff"], tmp_path).stdout
    assert "finetune_shapes" in run(by_verb["inspect"], tmp_path).stdout
    assert "pruned50" in run(by_verb["compress"], tmp_path).stdout
    assert run(by_verb["export"], tmp_path).exit_code == 0
    from core.sweep.space import parse_space

    sweep = shlex.split(by_verb["sweep"])  # its --param and --trials as `ftui sweep` reads them
    assert parse_space([sweep[sweep.index("--param") + 1]]) and int(sweep[sweep.index("--trials") + 1]) == 8
    assert "finetune_shapes" in run(by_verb["runs"], tmp_path).stdout
    assert "quickstart" in run(by_verb["compare"], tmp_path).stdout

    # what ftui prints on the way: the dashboard's stop dialog, --detach's "stop it", then ctl's fix for a
    # run that is not running (the dialog's resume command and ctl's are one command, run as printed)
    again = run("ftui run sample_configs/quickstart.yaml --detach --set trainer.epochs=3", tmp_path).stdout
    assert "its name:      quickstart-2, as runs/quickstart is taken" in again
    assert "ok — paused at step" in run("ftui ctl quickstart-2 pause", tmp_path).stdout  # it waits for us
    dialog = asyncio.run(_stop_dialog(tmp_path, Path("runs/quickstart-2")))
    resume_it = re.search(r"resume it with `([^`]+)`", dialog).group(1)
    stop_it = re.search(r"stop it: +(ftui ctl \S+ stop)", again).group(1)
    assert "ok — stopping at step" in run(stop_it, tmp_path).stdout
    assert wait_status(runs / "quickstart-2", ("stopped",))["status"] == "stopped"
    refused = run("ftui ctl quickstart-2 pause", tmp_path, ok=False)
    assert refused.exit_code == 2
    fix = re.search(r"Fix: resume it with `([^`]+)`", " ".join(refused.stderr.split())).group(1)
    assert fix == resume_it == "ftui run --resume runs/quickstart-2"
    resumed = run(fix, tmp_path)
    assert "finished: quickstart-2" in resumed.stdout
    assert json.loads((runs / "quickstart-2" / "run.json").read_text())["status"] == "finished"
