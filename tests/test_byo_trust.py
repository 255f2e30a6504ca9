"""User code named in a checkpoint is never imported by reading it, and only with consent by running it.

One real `ftui run` process trains a model from a file that writes a marker file whenever it is
imported. This test process never imported it; then `ftui inspect` (JSON and plain), `ftui diff`,
`ftui export`, the app's home screen, the run's dashboard and the checkpoint inspector read the
run and the checkpoint: the marker never appears. `ftui eval` refuses (exit 2) and names the files
and the command; the command exactly as printed runs the code (marker written) and evaluates. A
changed model file then resumes with a warning that names it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from byo_support import MODEL_PY, byo_raw, write_code
from core.usercode import file_sha256, module_name_for
from tui.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MARKED = MODEL_PY + '''
import os as _os
from pathlib import Path as _Path

with open(_Path(__file__).with_name("imported.marker"), "a") as _fh:
    _fh.write(f"imported by pid {_os.getpid()}\\n")
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("trust")
    write_code(folder, model=MARKED)
    config = folder / "marked.yaml"
    config.write_text(yaml.safe_dump(byo_raw(folder, "marked", trainer={"epochs": 2, "device": "cpu", "cpu_threads": 1},
                                             logging={"tensorboard": False, "system": False, "progress": "none",
                                                      "every_n_steps": 2})))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tui.cli", "run", str(config)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    marker = folder / "imported.marker"
    assert marker.is_file()  # training imported it (in its own process)
    marker.unlink()
    run = folder / "runs" / "marked"
    return {"folder": folder, "config": config, "run": run, "marker": marker,
            "best": run / "checkpoints" / "best.pt", "last": run / "checkpoints" / "last.pt"}


def _not_imported(trained: dict) -> None:
    assert not trained["marker"].exists(), trained["marker"].read_text()
    models = trained["folder"] / "models.py"
    assert module_name_for(models, file_sha256(models)) not in sys.modules


def test_reading_a_checkpoint_never_imports_the_code_it_names(trained: dict, tmp_path: Path) -> None:
    out = runner.invoke(app, ["inspect", str(trained["best"]), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    model_code = next(c for c in summary["code"] if c["role"] == "model")
    assert model_code["name"] == f"{trained['folder'] / 'models.py'}:TinyNet"
    assert model_code["sha256"] and model_code["kwargs"] == {"width": 8}
    assert model_code["facts"] == {"num_classes": 3, "input_shape": [3, 8, 8]}
    plain = runner.invoke(app, ["inspect", str(trained["best"]), "--plain"], env={"COLUMNS": "200"})
    text = " ".join(plain.output.split())
    assert plain.exit_code == 0 and "models.py:TinyNet" in text and "[recorded, not imported]" in text
    diff = runner.invoke(app, ["diff", str(trained["best"]), str(trained["last"]), "--json"])
    assert diff.exit_code == 0, diff.output
    export = runner.invoke(app, ["export", str(trained["best"]), "--out", str(tmp_path / "w.safetensors")])
    assert export.exit_code == 0 and (tmp_path / "w.safetensors").is_file()
    _not_imported(trained)


@pytest.mark.asyncio
async def test_the_app_never_imports_the_code_a_run_names(trained: dict) -> None:
    from tui.app import FtuiApp
    from tui.inspect_app import InspectApp
    from tui.screens.dashboard import DashboardScreen

    home = FtuiApp(trained["run"].parent, config_dirs=[trained["folder"]])
    async with home.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
    dashboard = FtuiApp(trained["run"].parent, watch=trained["run"])
    async with dashboard.run_test(size=(120, 40)) as pilot:
        screen = dashboard.screen
        assert isinstance(screen, DashboardScreen)
        for _ in range(100):
            if screen.state.model is not None:
                break
            await pilot.pause(0.05)
        assert any(m["path"] == "classifier" and m["is_head"] for m in screen.state.model["modules"])
        await pilot.press("7")  # the Layers tab
        await pilot.pause(0.3)
    inspector = InspectApp(trained["best"])
    async with inspector.run_test(size=(120, 40)) as pilot:
        for _ in range(100):
            if inspector.screen.summary is not None:
                break
            await pilot.pause(0.05)
        assert inspector.screen.summary["code"][0]["attr"] == "TinyNet"
        await pilot.press("l")
        await pilot.pause(0.3)
    _not_imported(trained)


def test_eval_runs_the_code_only_with_consent(trained: dict) -> None:
    refused = runner.invoke(app, ["eval", str(trained["best"])])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    text = " ".join(refused.output.split())
    assert f"model.name: {trained['folder'] / 'models.py'}:TinyNet" in text
    assert f"data.source: {trained['folder'] / 'data.py'}:make_data" in text
    _not_imported(trained)
    command = re.search(r"run `([^`]+)`", text).group(1)
    assert command == f"ftui eval {trained['best']} --trust-code"
    argv = shlex.split(command)
    agreed = runner.invoke(app, argv[1:])  # exactly as printed (in this process: `ftui` is tui.cli's app)
    assert agreed.exit_code == 0, agreed.output
    said = " ".join(agreed.output.split())
    assert f"running your code: model.name {trained['folder'] / 'models.py'}:TinyNet" in said
    assert "test split, 32 samples" in said and "accuracy" in said
    assert trained["marker"].read_text().count("imported by pid") == 1


def test_resume_after_the_model_file_changed_warns_naming_it(trained: dict, tmp_path: Path) -> None:
    models = trained["folder"] / "models.py"
    models.write_text(models.read_text() + "\n# a comment added after training\n")
    raw = byo_raw(trained["folder"], "marked", trainer={"epochs": 3, "device": "cpu", "cpu_threads": 1},
                  logging={"tensorboard": False, "system": False, "progress": "plain", "every_n_steps": 2})
    config = trained["folder"] / "marked3.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["run", str(config), "--resume", str(trained["run"])])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"code changed since the checkpoint was written: {models}" in text
    events = [json.loads(line) for line in (trained["run"] / "events.jsonl").read_text().splitlines()]
    warning = next(e for e in events if e["kind"] == "warning" and "code changed" in e["message"])
    assert warning["path"] == str(models) and warning["sha256_then"] != warning["sha256_now"]
