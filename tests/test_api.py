"""The Python API (`import ftui`): a run from a config and objects records the same run directory as
`ftui run` — control channel included — evaluates and resumes with the same objects, and `import ftui`
stays cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

import ftui
from core.control import send
from core.training.checkpoint import load_file
from tui.cli import app

ROOT = Path(__file__).resolve().parent.parent


class Net(nn.Module):
    """A model defined in a script or notebook, given to ftui.run as an object."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(6, 12), nn.ReLU())
        self.classifier = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def splits() -> ftui.DataSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 6, generator=g)
    y = (x[:, 0] > 0.5).long() + (x[:, 1] > 0).long()
    return ftui.DataSplits(TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:]),
                           class_names=["low", "mid", "high"])


CONFIG = {
    "run": {"name": "notebook", "seed": 1},
    "data": {"batch_size": 16, "num_workers": 0},
    "optim": {"lr": 0.03},
    "trainer": {"epochs": 3, "device": "cpu", "cpu_threads": 1},
    "logging": {"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False},
}


class FreezeFromOutside(ftui.Callback):
    """Sends `freeze features` through the control channel at step 3, as `ftui ctl` would."""

    def __init__(self) -> None:
        self.frozen_at: dict[str, torch.Tensor] | None = None

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == 3 and self.frozen_at is None:
            send(trainer.run.path, "freeze", {"pattern": "features"})
            self.frozen_at = {}
        elif self.frozen_at == {} and trainer.finetuner.frozen_modules() == ["features"]:
            self.frozen_at = {k: v.clone() for k, v in trainer.model.features.state_dict().items()}


def test_a_run_from_objects_records_the_run_directory_and_answers_the_control_channel(tmp_path: Path) -> None:
    steer = FreezeFromOutside()
    torch.manual_seed(0)  # the object is built here, before ftui seeds anything
    result = ftui.run(CONFIG, model=Net(), data=splits(), callbacks=[steer], root=tmp_path)
    assert result.status == "finished" and result.exit_code == 0 and result.path == tmp_path / "notebook"
    assert set(result.checkpoints) == {"best", "last"} and result.metrics["val/acc"] > 0.6
    run = result.path
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["model"] == "Net"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    answer = next(e for e in events if e["kind"] == "control")
    assert answer["command"] == "freeze" and answer["status"] == "ok"
    assert steer.frozen_at and all(torch.equal(v, result.trainer.model.features.state_dict()[k])
                                   for k, v in steer.frozen_at.items())  # frozen from then on: unchanged
    ckpt = load_file(result.checkpoints["last"])
    assert ckpt["config"]["model"]["name"] == "<object test_api.Net>"
    assert ckpt["code"]["model"]["kind"] == "object" and ckpt["code"]["model"]["path"] == __file__

    # the CLI cannot rebuild an object; it says how to evaluate it instead
    refused = CliRunner().invoke(app, ["eval", str(result.checkpoints["best"])])
    assert refused.exit_code == 2 and "ftui.evaluate(" in refused.output and "Traceback" not in refused.output
    evaluation = ftui.evaluate(result.checkpoints["last"], model=Net(), data=splits(), split="val")
    assert evaluation.metrics["acc"] == result.metrics["val/acc"]


def test_a_callable_model_gets_the_data_facts_and_a_run_resumes_with_the_same_objects(tmp_path: Path) -> None:
    built: list[int] = []

    def make(num_classes: int, hidden: int) -> Net:
        built.append(num_classes)
        return Net(num_classes)

    class StopAtStep(ftui.Callback):
        def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if trainer.global_step == 10:
                trainer.request_stop("test")

    config = {**CONFIG, "model": {"kwargs": {"hidden": 12}}}
    first = ftui.run(config, model=make, data=splits, callbacks=[StopAtStep()], root=tmp_path, name="callable")
    assert first.status == "stopped" and built == [3]
    resumed = ftui.run(config, model=make, data=splits, root=tmp_path, resume="callable")
    assert resumed.status == "finished" and resumed.path == first.path and resumed.trainer.global_step == 24
    straight = ftui.run(config, model=make, data=splits, root=tmp_path, name="straight")
    assert all(torch.equal(a, b) for a, b in zip(straight.trainer.model.state_dict().values(),
                                                  resumed.trainer.model.state_dict().values()))


def test_import_ftui_and_config_check_of_code_stay_torch_free() -> None:
    code = (
        "import sys, ftui\n"
        "cfg = ftui.load_config('sample_configs/byo_text.yaml')\n"
        "assert cfg.model.name.endswith('byo/text_encoder.py:TextEncoder'), cfg.model.name\n"
        "from tui import cli\n"
        "sys.argv = ['ftui', 'config', 'check', 'sample_configs/byo_text.yaml']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "bad = [m for m in sys.modules if m in ('torch', 'textual') or m.startswith('_ftui_code_')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "names your code (imported when it runs, not now)" in done.stdout
