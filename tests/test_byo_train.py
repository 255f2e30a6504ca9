"""User models and data train like the built-ins: fine-tuning by pattern, the layer tree, checkpoints
that record their code, evaluation through the one rebuild path, exact resume; named inputs with a
collate function and data facts; head surgery on a user model; timm models with local weights only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from byo_support import MODEL_PY, byo_config, byo_raw, write_code
from core.config import load_config
from core.errors import ModelError
from core.models import blocks, build_model
from core.training.callback import Callback
from core.training.checkpoint import load_file
from core.training.evaluate import evaluate_checkpoint
from core.training.rebuild import CodeNotTrusted
from core.training.trainer import Trainer
from support.training import StopAt, params_of

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_configs" / "byo"


class Snapshot(Callback):
    """The parameters when training starts and after every epoch."""

    def __init__(self) -> None:
        self.at: dict[str, dict[str, torch.Tensor]] = {}

    def on_train_start(self, trainer: Any) -> None:
        self.at["start"] = params_of(trainer.model)

    def on_train_epoch_end(self, trainer: Any) -> None:
        self.at[f"epoch{trainer.epoch}"] = params_of(trainer.model)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in a if k.startswith(prefix) and "running" not in k and "num_batches" not in k]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


def test_a_user_model_trains_with_fine_tuning_by_pattern_and_records_its_code(tmp_path: Path) -> None:
    config = byo_config(tmp_path, "tuned", finetune={
        "freeze": ["features"], "head_lr": 0.05,
        "schedule": [{"epoch": 1, "unfreeze": "features.0", "lr": 0.002}],
    }, logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                "layer_stats": True, "layer_stats_depth": 1})
    cfg = load_config(config)
    assert cfg.model.name == f"{tmp_path / 'models.py'}:TinyNet"  # resolved next to the config file
    snap = Snapshot()
    trainer = Trainer(cfg, callbacks=[snap])
    trainer.fit()
    assert trainer.status == "finished"
    # frozen in epoch 0: bitwise unchanged; features.0 unfrozen at epoch 1: moved; the rest trained all along
    assert _same(snap.at["start"], snap.at["epoch0"], "features.")
    assert not _same(snap.at["epoch0"], snap.at["epoch1"], "features.0.")
    assert _same(snap.at["start"], snap.at["epoch1"], "features.1.")  # BatchNorm of a frozen module, never unfrozen
    assert not _same(snap.at["start"], snap.at["epoch0"], "classifier.")
    assert blocks(trainer.model, "classifier") == ["features.0", "features.1", "body", "classifier"]

    run = trainer.run.path
    tree = json.loads((run / "model.json").read_text())
    by_path = {m["path"]: m for m in tree["modules"]}
    assert tree["name"] == "models.py:TinyNet" and tree["head"] == "classifier" and tree["input_shape"] == [3, 8, 8]
    assert by_path["classifier"]["is_head"] and by_path["classifier"]["lr"] == 0.05
    assert by_path["features.0"]["output_shape"] == [8, 8, 8] and by_path["features.0"]["lr"] == 0.002
    assert by_path["features.1"]["frozen"] is True
    last = json.loads((run / "layers.jsonl").read_text().splitlines()[-1])["layers"]
    assert set(last) == {"features", "body", "classifier"} and last["classifier"]["grad_norm"] > 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["name"] == f"{tmp_path / 'models.py'}:TinyNet"

    ckpt = load_file(run / "checkpoints" / "best.pt")
    code = ckpt["code"]
    assert code["model"]["path"] == str(tmp_path / "models.py") and len(code["model"]["sha256"]) == 64
    assert code["model"]["kwargs"] == {"width": 8}
    assert code["model"]["facts"] == {"num_classes": 3, "input_shape": [3, 8, 8]}
    assert code["data"]["name"] == f"{tmp_path / 'data.py'}:make_data" and code["data"]["facts"] == {"seed": 3}

    with pytest.raises(CodeNotTrusted):
        evaluate_checkpoint(run / "checkpoints" / "last.pt", split="val")
    result = evaluate_checkpoint(run / "checkpoints" / "last.pt", split="val", trust_code=True)
    assert result.metrics["acc"] == trainer.callback_metrics["val/acc"]
    assert result.code == [f"model.name {tmp_path / 'models.py'}:TinyNet", f"data.source {tmp_path / 'data.py'}:make_data"]


def test_resume_of_a_user_model_run_is_bitwise_exact(tmp_path: Path) -> None:
    write_code(tmp_path)

    def cfg(name: str) -> Any:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(byo_raw(tmp_path, name, trainer={"epochs": 3, "device": "cpu", "cpu_threads": 1})))
        return load_config(path)

    straight = Trainer(cfg("straight"))
    straight.fit()
    first = Trainer(cfg("split"), callbacks=[StopAt(8)])  # epoch 2 of 3, after its 2nd of 6 batches
    first.fit()
    assert first.status == "stopped" and first.position == (1, 2)
    run = first.run.path
    second = Trainer(cfg("split"), run_dir=run)
    second.fit(resume_from=run / "checkpoints" / "last.pt")
    assert second.status == "finished" and second.global_step == straight.global_step == 18
    a, b = params_of(straight.model), params_of(second.model)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert second.callback_metrics["val/loss"] == straight.callback_metrics["val/loss"]


def test_named_inputs_a_collate_function_and_data_facts(tmp_path: Path) -> None:
    raw = byo_raw(tmp_path, "text",
                  data={"source": f"{SAMPLES / 'keywords.py'}:make_keywords", "collate": f"{SAMPLES / 'keywords.py'}:collate",
                        "kwargs": {"train_size": 64, "val_size": 32, "test_size": 32, "max_len": 24}},
                  model={"name": f"{SAMPLES / 'text_encoder.py'}:TextEncoder", "kwargs": {"dim": 16, "depth": 2, "heads": 2}},
                  finetune={"freeze": [{"last": 3}], "unfreeze": ["head"]},
                  trainer={"epochs": 1, "device": "cpu", "cpu_threads": 1})
    seen: list[Any] = []

    class Batches(Callback):
        def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
            seen.append(batch)

    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(raw))
    trainer = Trainer(load_config(path), callbacks=[Batches()])
    trainer.fit()
    assert trainer.status == "finished"
    model = trainer.model
    assert model.tokens.num_embeddings == trainer.data.meta["vocab_size"] == 225  # a fact from the data's meta
    assert model.positions.num_embeddings == 24
    inputs, labels = seen[0]
    assert set(inputs) == {"input_ids", "attention_mask"} and labels.shape == (16,)
    widths = {b[0]["input_ids"].shape[1] for b in seen}
    assert all(w == int(b[0]["attention_mask"].sum(1).max()) for w, b in zip(widths, seen))  # trimmed per batch
    assert blocks(model, "head")[-3:] == ["encoder.layers.1", "norm", "head"]
    assert trainer.finetuner.frozen_modules() == ["encoder.layers.1", "norm"]
    tree = json.loads((trainer.run.path / "model.json").read_text())
    assert tree["input_shape"] == {"input_ids": [24], "attention_mask": [24]}
    assert next(m for m in tree["modules"] if m["path"] == "head")["output_shape"] == [4]
    ckpt = load_file(trainer.run.path / "checkpoints" / "last.pt")
    assert ckpt["code"]["collate"]["attr"] == "collate" and ckpt["data"]["meta"] == {"vocab_size": 225, "max_len": 24}
    assert ckpt["code"]["model"]["facts"]["vocab_size"] == 225


def test_a_head_of_another_class_count_is_replaced_or_named(tmp_path: Path) -> None:
    fixed = MODEL_PY.replace("def __init__(self, num_classes, input_shape, width=8):",
                             "def __init__(self, input_shape, width=8, num_outputs=10):").replace(
        "nn.Linear(16, num_classes)", "nn.Linear(16, num_outputs)")
    write_code(tmp_path, model=fixed)
    cfg = load_config(byo_config(tmp_path, "tenway", write=False))
    trainer = Trainer(cfg, record=False, default_callbacks=False)
    trainer.setup()
    assert trainer.built.head_path == "classifier" and trainer.model.classifier.out_features == 3
    assert "head 'classifier' replaced: 10 -> 3 classes" in trainer.built.notes
    named = load_config(byo_config(tmp_path, "named", write=False, model={"head": "body.0"}))
    built = build_model(named.model, 3, (3, 8, 8))
    assert built.head_path == "body.0" and built.model.body[0].out_features == 3


def _fake_hub_cache(root: Path, repo: str, state: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abcd")
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


def test_timm_models_take_weights_from_the_local_cache_or_a_file_and_never_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timm = pytest.importorskip("timm")
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    raw = byo_raw(tmp_path, "timm", model={"name": "timm/test_convnext", "kwargs": {}, "weights": "pretrained"},
                  data={"kwargs": {"n_train": 32, "n_val": 16, "side": 32}},
                  trainer={"epochs": 1, "device": "cpu", "max_steps": 2})
    write_code(tmp_path)
    path = tmp_path / "timm.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    with pytest.raises(ModelError, match="are not on this machine .* and ftui never downloads"):
        build_model(cfg.model, 3, (3, 32, 32))

    torch.manual_seed(1)
    pretrained = timm.create_model("test_convnext").state_dict()  # 1000 classes, as on the hub
    file = _fake_hub_cache(cache, "timm/test_convnext.r160_in1k", pretrained)
    built = build_model(cfg.model, 3, (3, 32, 32))
    assert built.head_path == "head.fc" and built.model.head.fc.out_features == 3
    assert torch.equal(built.model.state_dict()["stem.0.weight"], pretrained["stem.0.weight"])
    assert any(str(file) in note for note in built.notes)
    gray = build_model(cfg.model.model_copy(update={"weights": str(file)}), 3, (1, 32, 32))  # a file: timm adapts the stem
    assert gray.model.stem[0].in_channels == 1
    torch.testing.assert_close(gray.model.stem[0].weight[:, 0], pretrained["stem.0.weight"].sum(1))

    trainer = Trainer(cfg)
    trainer.fit()
    ckpt = load_file(trainer.run.path / "checkpoints" / "last.pt")
    assert ckpt["code"]["model"]["kind"] == "timm" and ckpt["code"]["model"]["name"] == "timm/test_convnext"
    assert json.loads((trainer.run.path / "model.json").read_text())["head"] == "head.fc"
