"""`ftui diff` on the real trainer's start and end checkpoints of a fine-tune: the frozen stage is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from typer.testing import CliRunner

from core.config import config_from_dict
from core.training.callback import Callback
from tui.cli import app


class SaveAtStart(Callback):
    """Writes the checkpoint the fine-tune starts from, before the first optimizer step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_start(self, trainer) -> None:
        trainer.save_checkpoint(self.path)


def test_diff_of_real_fine_tune_start_and_end(tmp_path: Path) -> None:
    cfg = config_from_dict({
        "run": {"name": "ft", "root": str(tmp_path), "seed": 0},
        "data": {"source": "shapes", "image_size": 16, "batch_size": 32, "num_workers": 0,
                 "shapes": {"classes": ["circle", "square", "star"], "image_size": 16, "train_size": 96,
                            "val_size": 32, "test_size": 0}},
        "model": {"name": "simple_cnn", "channels": [8, 16], "batch_norm": True},
        "finetune": {"freeze": ["stage1"], "bn": "freeze"},
        "optim": {"name": "sgd", "lr": 0.05},
        "trainer": {"epochs": 1, "device": "cpu"},
        "logging": {"tensorboard": False, "system": False, "layer_stats": False, "progress": "none"},
    })
    from core.training.trainer import Trainer

    start = tmp_path / "start.pt"
    run_dir = tmp_path / "ft"
    Trainer(cfg, callbacks=[SaveAtStart(start)]).fit()  # records under run.root/run.name
    end = run_dir / "checkpoints" / "last.pt"
    assert start.exists() and end.exists()

    runner = CliRunner()
    result = runner.invoke(app, ["diff", str(start), str(end), "--json"])
    assert result.exit_code == 0, result.output
    modules = {m["module"]: m for m in json.loads(result.stdout)["modules"]}
    assert modules["stage1"]["status"] == "unchanged" and modules["stage1"]["frozen"] is True
    assert modules["head"]["status"] == "changed" and modules["head"]["frozen"] is False
    # parameters and buffers apart: stage2's weights moved less than its BatchNorm statistics
    import torch

    a, b = (torch.load(p, weights_only=True)["model"] for p in (start, end))
    params = {n for g in torch.load(end, weights_only=True)["finetune"]["groups"] for n in g["params"]}

    def rel(names):
        return float(sum((b[n].double() - a[n].double()).pow(2).sum() for n in names)
                     / sum(a[n].double().pow(2).sum() for n in names)) ** 0.5

    stage2 = [n for n in a if n.startswith("stage2.")]
    assert modules["stage2"]["rel_change"] == pytest.approx(rel([n for n in stage2 if n in params]))
    floats = [n for n in stage2 if n not in params and b[n].is_floating_point()]
    assert floats and modules["stage2"]["buffer_rel_change"] == pytest.approx(rel(floats))
    kinds = {t["name"]: t["kind"] for t in json.loads(result.stdout)["tensors"]}
    assert kinds["stage2.1.num_batches_tracked"] == kinds["stage2.1.running_var"] == "buffer"
    assert kinds["stage2.1.weight"] == kinds["stage2.0.weight"] == "parameter"
    plain = runner.invoke(app, ["diff", str(start), str(end)], env={"COLUMNS": "80"}).stdout
    assert "\nBuffers (running statistics, counters) (unchanged ones left out)\n" in plain  # its title on one line
    parameters, buffers = plain.split("Buffers (running statistics, counters)")
    assert "stage2.1.weight" in parameters and "running_var" not in parameters
    assert "stage2.1.num_batches_tracked" in buffers  # whole, not broken mid-word at 80 columns
    shown = runner.invoke(app, ["inspect", str(end)], env={"COLUMNS": "120"}).stdout
    assert "simple_cnn (checkpoint, head 'head', 3 classes)" in shown and "head head" not in shown
    inspected = json.loads(runner.invoke(app, ["inspect", str(end), "--json"]).stdout)
    assert inspected["format"] == "ftui" and inspected["architecture"]["name"] == "simple_cnn"
    assert inspected["data"]["class_names"] == ["circle", "square", "star"]
    assert {m["path"]: m["frozen"] for m in inspected["modules"] if m["depth"] == 1}["stage1"] is True
