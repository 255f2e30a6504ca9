"""The looking-before-training commands on the user's code (`ftui data preview`, `ftui model show`,
`ftui config check`), and user datasets that travel to a fresh process (spawn / forkserver workers)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from byo_support import byo_config, byo_raw
from core.config import load_config
from core.data import build_data
from tui.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_configs"
runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_preview_and_model_show_of_named_inputs() -> None:
    preview = runner.invoke(app, ["data", "preview", str(SAMPLES / "byo_text.yaml"), "--n", "3"], env={"COLUMNS": "140"})
    assert preview.exit_code == 0, preview.output
    text = _flat(preview.output)
    assert "keywords.py:make_keywords · custom" in text and "sports │ 1,500" in text
    assert "input_ids: (48,) int64" in text and "attention_mask: (48,) bool" in text
    shown = runner.invoke(app, ["model", "show", str(SAMPLES / "byo_text.yaml"), "--depth", "3"], env={"COLUMNS": "140"})
    assert shown.exit_code == 0, shown.output
    text = _flat(shown.output)
    assert "text_encoder.py:TextEncoder · input input_ids 48, attention_mask 48" in text
    assert "0 (TransformerEncoderLayer)" in text and "head (Linear) ◀ head" in text and "Head: head (Linear, output 4)" in text


def test_config_check_names_the_code_without_importing_it_and_finds_a_missing_file(tmp_path: Path) -> None:
    config = byo_config(tmp_path, "check")
    ok = runner.invoke(app, ["config", "check", str(config)])
    assert ok.exit_code == 0 and "names your code (imported when it runs, not now): model.name models.py:TinyNet" in _flat(ok.output)
    (tmp_path / "models.py").unlink()
    missing = runner.invoke(app, ["config", "check", str(config)])
    assert missing.exit_code == 2 and f"model.name: {tmp_path / 'models.py'} does not exist" in _flat(missing.output)
    # --set values are relative to the current directory, the file's to the config's folder
    cfg = load_config(config, ["data.collate=./col.py:collate"])
    assert cfg.data.collate == f"{Path.cwd() / 'col.py'}:collate" and cfg.data.source == f"{tmp_path / 'data.py'}:make_data"


def test_a_user_dataset_unpickles_in_a_fresh_process(tmp_path: Path) -> None:
    config = byo_config(tmp_path, "spawn")
    bundle = build_data(load_config(config).data, seed=3)
    payload = tmp_path / "train.pkl"
    payload.write_bytes(pickle.dumps(bundle.train))
    code = (
        "import json, pickle\n"
        f"split = pickle.loads(open({str(payload)!r}, 'rb').read())\n"
        "x, y = split[(5, 2)]\n"
        "print(json.dumps([type(split.base).__module__, list(x.shape), y, float(x.sum())]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    module, shape, label, total = json.loads(done.stdout)
    x, y = bundle.train[(5, 2)]  # the same item: a function of (seed, epoch, index) in any process
    assert module.startswith("_ftui_code_data_") and shape == [3, 8, 8] and label == y and total == float(x.sum())


def test_workers_started_by_spawn_read_user_data(tmp_path: Path) -> None:
    from core.data import build_loader

    raw = byo_raw(tmp_path, "workers", data={"num_workers": 1, "persistent_workers": False})
    config = tmp_path / "workers.yaml"
    byo_config(tmp_path, "unused")
    config.write_text(yaml.safe_dump(raw))
    cfg = load_config(config)
    bundle = build_data(cfg.data, seed=3)
    loader = build_loader(bundle.train, cfg.data, split="train", seed=3)
    loader.loader.multiprocessing_context = "spawn"  # how macOS and Python 3.14's Linux default start workers
    with loader:
        first = next(iter(loader))
    same = build_loader(bundle.train, cfg.data.model_copy(update={"num_workers": 0}), split="train", seed=3)
    with same:
        expected = next(iter(same))
    assert first[0].shape == (16, 3, 8, 8) and (first[0] == expected[0]).all() and (first[1] == expected[1]).all()


BAG_PY = '''
from torch import nn


class Bag(nn.Module):
    def __init__(self, vocab_size, num_classes):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1))
'''


def test_tensorboard_reads_the_graph_of_a_model_with_named_inputs(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from core.training.trainer import Trainer

    (tmp_path / "bag.py").write_text(BAG_PY)
    keywords = SAMPLES / "byo" / "keywords.py"
    raw = byo_raw(tmp_path, "bag", data={"source": f"{keywords}:make_keywords", "collate": f"{keywords}:collate",
                                         "kwargs": {"train_size": 32, "val_size": 16, "test_size": 0}},
                  model={"name": "./bag.py:Bag", "kwargs": {}}, trainer={"epochs": 1, "device": "cpu"},
                  logging={"tensorboard": True, "progress": "none", "system": False})
    config = tmp_path / "bag.yaml"
    config.write_text(yaml.safe_dump(raw))
    trainer = Trainer(load_config(config))
    trainer.fit()
    ea = EventAccumulator(str(trainer.run.path / "tb"))
    ea.Reload()
    assert ea.Tags()["graph"] and any("embed" in node.name for node in ea.Graph().node)
    assert trainer.data.test is None  # an empty test split is no test split
