"""`ftui sweep` end to end on the quickstart (tiny sizes): real trial processes, Optuna reading the study.

The trials' parameters are enqueued in the study first (Optuna's own `enqueue_trial`, which `ftui
sweep` honours like any Optuna search does), so which trial the pruner stops does not depend on the
sampler's draws: a learning rate of 1e-5 never leaves chance accuracy on the quickstart.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from core.runs import CONFIG_JSON, RUN_JSON, read_json, read_meta
from core.sweep.runner import Sweep, SweepOptions
from core.sweep.space import parse_space

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "sample_configs" / "quickstart.yaml"
TINY = ["data.shapes.train_size=640", "data.shapes.val_size=120", "data.shapes.test_size=60", "data.batch_size=32",
        "data.num_workers=0", "model.channels=[8,16]", "logging.every_n_steps=5", "logging.tensorboard=false",
        "logging.system=false", "logging.layer_stats=false"]
PARAM = "optim.lr=loguniform:1e-5:1e-1"


def sweep_argv(root: Path, storage: str, name: str, trials: int, epochs: int, pruner: str) -> list[str]:
    argv = ["sweep", str(QUICKSTART), "--param", PARAM, "--trials", str(trials), "--storage", storage,
            "--name", name, "--root", str(root), "--pruner", pruner, "--set", f"trainer.epochs={epochs}"]
    for item in TINY:
        argv += ["--set", item]
    return argv


def create_study(root: Path, storage: str, name: str, epochs: int, pruner: str, lrs: list[float]) -> None:
    """Create the study as `ftui sweep` does and enqueue the trials' learning rates."""
    options = SweepOptions(config=QUICKSTART, params=parse_space([PARAM]), trials=len(lrs), storage=storage,
                           name=name, pruner=pruner, root=root, overrides=[*TINY, f"trainer.epochs={epochs}"])
    Sweep(options, say=lambda line: None).prepare()
    study = optuna.load_study(study_name=name, storage=storage)
    for lr in lrs:
        study.enqueue_trial({"optim.lr": lr})


def ftui(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", *argv]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_four_trial_sweep_reports_to_optuna_and_prunes_a_hopeless_trial(tmp_path: Path) -> None:
    root, storage = tmp_path / "runs", f"sqlite:///{tmp_path / 'sweep.db'}"
    # keep a trial only while it is at least as good as every completed trial at the same epoch
    pruner = "percentile:percentile=100,n_startup_trials=2,n_warmup_steps=2"
    create_study(root, storage, "qs", 6, pruner, [0.01, 0.02, 1e-5, 0.01])
    done = subprocess.run(ftui(*sweep_argv(root, storage, "qs", 4, 6, pruner)), cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trial 2 pruned at epoch 2" in done.stdout, done.stdout

    # Optuna's own reading of the storage
    study = optuna.load_study(study_name="qs", storage=storage)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.COMPLETE]
    for trial in trials:
        run = Path(trial.user_attrs["ftui_run"])
        info = read_json(run / RUN_JSON)
        assert info["sweep"]["study"] == "qs" and info["sweep"]["trial"] == trial.number
        assert trial.value == info["best"]["value"]  # the run's best metric, exactly
        assert trial.params["optim.lr"] == json.loads((run / CONFIG_JSON).read_text())["optim"]["lr"]
        assert "sweep:qs" in read_meta(run).tags
        assert info["status"] == ("pruned" if trial.number == 2 else "finished")
    pruned = trials[2]
    assert sorted(pruned.intermediate_values) == list(range(1, len(pruned.intermediate_values) + 1))
    assert 2 <= len(pruned.intermediate_values) < 6  # stopped well before its sixth epoch
    info = read_json(Path(pruned.user_attrs["ftui_run"]) / RUN_JSON)
    assert info["epoch"] < 6 and info["stop_reason"].startswith("pruned by sweep qs (PercentilePruner)")
    assert study.best_trial.number in (0, 3) and trials[0].value == trials[3].value  # same lr, same seed

    # the trials compare (real runs: their metrics.columns sidecar read as NumPy columns)
    from core.compare import compare

    runs = [Path(t.user_attrs["ftui_run"]) for t in trials[:2]]
    comparison = compare(runs)
    last_val = [json.loads(line) for line in (runs[1] / "metrics.jsonl").read_text().splitlines()
                if '"split":"val"' in line][-1]
    assert comparison.differing == ["optim.lr"]
    assert comparison.runs[1].final["val/acc"] == last_val["acc"] and comparison.runs[1].confusion["val"]

    # ... and the app shows it as pruned: in the runs table and in the sweep view
    from support.app import screen_text, wait_for
    from tui.app import FtuiApp
    from tui.screens.sweep import SweepScreen

    app = FtuiApp(root, config_dirs=[])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.scanned)
        rows = [line for line in screen_text(app).splitlines() if "qs-t002" in line]
        assert rows and "pruned" in rows[0]
        table = app.screen.query_one("#runs")
        table.move_cursor(row=list(table.runs).index(str(root / "qs-t002")))
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loaded)
        view = app.screen.view
        assert view.source == "storage" and [t.state for t in view.trials] == ["complete", "complete", "pruned",
                                                                               "complete"]
        text = screen_text(app)
        assert "2 pruned" not in text and "1 pruned" in text and "3 complete" in text
        assert any("pruned" in line and "qs-t002" in line for line in text.splitlines())


@pytest.mark.slow
def test_a_stopped_sweep_marks_its_trial_and_resumes_it_with_the_printed_command(tmp_path: Path) -> None:
    root, storage = tmp_path / "runs", f"sqlite:///{tmp_path / 'sweep.db'}"
    create_study(root, storage, "stop", 4, "none", [0.01, 0.02])
    proc = subprocess.Popen(ftui(*sweep_argv(root, storage, "stop", 2, 4, "none")), cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = root / "stop-t000"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        metrics = first / "metrics.jsonl"
        if metrics.is_file() and '"split":"val"' in metrics.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "trial 0 interrupted (marked" in out
    info = read_json(first / RUN_JSON)
    assert info["status"] == "interrupted" and (first / "checkpoints" / "last.pt").is_file()
    trial = optuna.load_study(study_name="stop", storage=storage).trials[0]
    assert trial.state == TrialState.RUNNING and trial.user_attrs["ftui_status"] == "interrupted"
    reported = dict(trial.intermediate_values)
    assert reported and not (root / "stop-t001").exists()

    command = out.split("resume with: ")[1].splitlines()[0]
    argv = shlex.split(command)
    assert argv[:2] == ["ftui", "sweep"]
    again = subprocess.run(ftui(*argv[1:]), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "trial 0 resumed" in again.stdout
    study = optuna.load_study(study_name="stop", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    resumed = study.trials[0]
    info = read_json(first / RUN_JSON)
    assert info["status"] == "finished" and info["resumes"] == 1 and resumed.value == info["best"]["value"]
    # the epochs reported before the stop were kept; the rest followed, each once
    assert sorted(resumed.intermediate_values) == [1, 2, 3, 4]
    assert all(resumed.intermediate_values[k] == v for k, v in reported.items())
