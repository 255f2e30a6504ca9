"""`ftui inspect` on every supported format, with files the tests create from real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from typer.testing import CliRunner

from core.inspect import load_checkpoint, summarize
from tui.cli import app

runner = CliRunner()


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def trained_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """A real AdamW after one step, so the optimizer state holds exp_avg / exp_avg_sq tensors."""
    opt = torch.optim.AdamW(
        [{"params": model[0].parameters(), "lr": 1e-4, "name": "backbone"},
         {"params": list(model[1].parameters()) + list(model[4].parameters()), "lr": 1e-3, "name": "head"}],
        weight_decay=0.01,
    )
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return opt


def ftui_checkpoint(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    return {
        "format": "ftui-checkpoint/1",
        "ftui_version": "0.1.0",
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": {"last_epoch": 4, "base_lrs": [1e-4, 1e-3]},
        "scaler": None,
        "epoch": 4,
        "step": 40,
        "rng": {"torch": torch.get_rng_state()},
        "config": {"model": {"name": "tiny_cnn"}, "optim": {"name": "adamw", "lr": 1e-3}},
        "data": {"class_names": ["circle", "square", "star"], "normalization": {"mean": [0.5] * 3, "std": [0.2] * 3},
                 "input_shape": [3, 8, 8], "task": "image", "source": "shapes", "fitted": {}},
        "finetune": {"frozen": ["0"], "groups": [{"name": "backbone", "lr": 1e-4}, {"name": "head", "lr": 1e-3}]},
        "metrics": {"history": {"val/acc": [0.4, 0.6, 0.8], "val/loss": [1.0, 0.7, 0.5], "train/loss": [1.1, 0.8, 0.6]},
                    "best": {"metric": "val/acc", "value": 0.8, "epoch": 3}},
        "model_tree": {"name": "tiny_cnn", "head": "4", "modules": [
            {"path": "0", "type": "Conv2d", "params": 112, "trainable": False, "frozen": True, "output_shape": [4, 6, 6]},
            {"path": "1", "type": "BatchNorm2d", "params": 8, "trainable": True, "frozen": False},
            {"path": "4", "type": "Linear", "params": 435, "trainable": True, "frozen": False}]},
    }


@pytest.fixture(scope="module")
def ftui_ckpt(tmp_path_factory) -> Path:
    model = tiny_model()
    path = tmp_path_factory.mktemp("ftui") / "last.pt"
    torch.save(ftui_checkpoint(model, trained_optimizer(model)), path)
    return path


def test_ftui_checkpoint_summary(ftui_ckpt: Path) -> None:
    s = summarize(load_checkpoint(ftui_ckpt))
    assert (s["format"], s["container"], s["weights_key"]) == ("ftui", "torch-zip", "model")
    assert s["ftui_version"] == "0.1.0" and s["epoch"] == 4 and s["step"] == 40
    assert s["architecture"] == {"name": "tiny_cnn", "head": "4", "num_classes": 3, "source": "checkpoint"}
    # conv 4*3*3*3+4 = 112, bn 4+4 (+ 4+4+1 buffers), linear 144*3+3 = 435
    assert s["weights"]["params"] == 112 + 8 + 435
    assert s["weights"]["numel"] == 112 + 8 + 9 + 435
    assert s["weights"]["count"] == 2 + 5 + 2
    frozen = {t["name"]: t["frozen"] for t in s["tensors"]}
    assert frozen["0.weight"] is True and frozen["4.weight"] is False
    # BatchNorm statistics are buffers: neither trained nor frozen, whatever their module is
    buffers = {t["name"] for t in s["tensors"] if t["buffer"]}
    assert buffers == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert all(frozen[name] is None for name in buffers) and frozen["1.weight"] is not None
    modules = {m["path"]: m for m in s["modules"]}
    assert modules["0"]["type"] == "Conv2d" and modules["0"]["frozen"] is True and modules["0"]["params"] == 112
    opt = s["optimizer"]
    assert opt["type"] == "adamw" and opt["type_source"] == "config"
    assert [(g["name"], g["lr"], g["params"]) for g in opt["groups"]] == [("backbone", 1e-4, 2), ("head", 1e-3, 4)]
    # AdamW keeps step, exp_avg and exp_avg_sq per parameter: 6 parameters with state.
    assert opt["params_with_state"] == 6 and opt["state_tensors"] == 18
    assert opt["state_bytes"] == 6 * 4 + 2 * 4 * (112 + 8 + 435)
    assert s["data"]["class_names"] == ["circle", "square", "star"]
    assert s["metrics"]["history"]["val/acc"] == [0.4, 0.6, 0.8]
    assert s["best"] == {"metric": "val/acc", "value": 0.8, "epoch": 3}
    assert s["scheduler"]["last_epoch"] == 4
    assert s["other_keys"] == []
    json.dumps(s, allow_nan=False)  # strict JSON


def test_ftui_checkpoint_json_and_plain_cli(ftui_ckpt: Path) -> None:
    result = runner.invoke(app, ["inspect", str(ftui_ckpt), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == 1 and data["format"] == "ftui" and data["weights"]["count"] == 9
    result = runner.invoke(app, ["inspect", str(ftui_ckpt), "--plain"])
    assert result.exit_code == 0, result.output
    for needle in ("tiny_cnn", "adamw", "backbone", "circle, square, star", "val/acc", "frozen", "4.weight"):
        assert needle in result.stdout, needle


def test_lightning_checkpoint(tmp_path: Path) -> None:
    model = tiny_model()
    opt = trained_optimizer(model)
    path = tmp_path / "epoch=2-step=30.ckpt"
    torch.save({
        "epoch": 2, "global_step": 30, "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "loops": {}, "optimizer_states": [opt.state_dict()], "lr_schedulers": [{"last_epoch": 2}],
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}":
                      {"monitor": "val_loss", "best_model_score": torch.tensor(0.25), "best_model_path": "x.ckpt"}},
        "hyper_parameters": {"lr": 0.001, "num_classes": 3},
    }, path)
    s = summarize(load_checkpoint(path))
    assert s["format"] == "lightning" and s["weights_key"] == "state_dict"
    assert s["epoch"] == 2 and s["step"] == 30
    assert s["best"]["metric"] == "val_loss" and s["best"]["value"] == pytest.approx(0.25)
    assert "model.4.weight" in {t["name"] for t in s["tensors"]}
    assert s["optimizer"]["type"] == "adamw" and s["optimizer"]["type_source"] == "guess"
    assert s["lightning"]["version"] == "2.4.0" and s["lightning"]["hyper_parameters"] == {"lr": 0.001, "num_classes": 3}
    assert s["scheduler"] == {"last_epoch": 2}


def test_torchvision_resnet18_state_dict(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(num_classes=3, weights=None).state_dict(), path)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["format"] == "state_dict" and s["weights_key"] is None
    assert s["architecture"] == {"name": "resnet18", "head": "fc", "num_classes": 3, "source": "guess"}
    # resnet18 with 3 classes: 11,176,512 parameters + 1,539 for the head (torchvision's own count).
    assert s["weights"]["params"] == sum(p.numel() for p in resnet18(num_classes=3, weights=None).parameters())
    assert s["optimizer"] is None and s["data"] is None and s["tensors"][0]["frozen"] is None


def test_resnet50_shapes_recognised_without_data(tmp_path: Path) -> None:
    """The guess uses key names and shapes only; safetensors headers are enough."""
    from torchvision.models import resnet50

    state = resnet50(weights=None).state_dict()
    path = tmp_path / "r50.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    s = summarize(load_checkpoint(path))
    assert s["architecture"]["name"] == "resnet50" and s["architecture"]["num_classes"] == 1000


def test_safetensors_single_file_is_read_from_header(tmp_path: Path) -> None:
    model = tiny_model().half()
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path), metadata={"architecture": "tiny_cnn", "class_names": '["a", "b", "c"]'})
    ckpt = load_checkpoint(path)
    s = summarize(ckpt)
    assert s["format"] == "safetensors" and s["metadata"]["architecture"] == "tiny_cnn"
    assert s["architecture"]["name"] == "tiny_cnn" and s["architecture"]["num_classes"] == 3
    assert s["data"] == {"class_names": ["a", "b", "c"]}
    assert s["weights"]["dtypes"] == {"float16": 8, "int64": 1}
    assert s["weights"]["bytes"] == 2 * (112 + 8 + 8 + 435) + 8
    info = {t["name"]: t for t in s["tensors"]}
    assert info["4.weight"]["shape"] == [3, 144] and info["4.weight"]["bytes"] == 3 * 144 * 2
    assert torch.equal(ckpt.weights.get("4.weight"), model.state_dict()["4.weight"])


def test_sharded_safetensors_directory(tmp_path: Path) -> None:
    state = tiny_model().state_dict()
    names = list(state)
    shard_a, shard_b = names[:4], names[4:]
    save_file({k: state[k] for k in shard_a}, str(tmp_path / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file({k: state[k] for k in shard_b}, str(tmp_path / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    weight_map = {k: "model-00001-of-00002.safetensors" for k in shard_a} | {k: "model-00002-of-00002.safetensors" for k in shard_b}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 123}, "weight_map": weight_map}))
    result = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["format"] == "safetensors-sharded" and len(s["files"]) == 2
    assert {t["name"] for t in s["tensors"]} == set(names)
    assert s["file_size"] == sum(p.stat().st_size for p in tmp_path.glob("*.safetensors"))
    ckpt = load_checkpoint(tmp_path / "model.safetensors.index.json")
    assert torch.equal(ckpt.weights.get(names[-1]), state[names[-1]])
    # A shard that is gone is named in the error.
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    result = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "model-00002-of-00002.safetensors" in result.output


def test_legacy_format_and_nested_state_dict(tmp_path: Path) -> None:
    state = tiny_model().state_dict()
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    s = summarize(load_checkpoint(legacy))
    assert s["container"] == "torch-legacy" and s["weights"]["count"] == 9
    nested = tmp_path / "nested.bin"
    torch.save({"model_state_dict": state, "epoch": 7, "note": "mine"}, nested)
    s = summarize(load_checkpoint(nested))
    assert s["format"] == "state_dict" and s["weights_key"] == "model_state_dict" and s["epoch"] == 7
    assert s["other_keys"] == ["note"]


def test_run_directory_opens_last_checkpoint(tmp_path: Path, ftui_ckpt: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(ftui_ckpt.read_bytes())
    assert load_checkpoint(tmp_path).format == "ftui"


def test_summary_of_large_file_does_not_read_tensor_data(tmp_path: Path) -> None:
    """Memory-mapped: summarising 128 MiB of weights leaves resident memory nearly unchanged."""
    import psutil

    path = tmp_path / "big.pt"
    torch.save({f"block{i}.weight": torch.zeros(2048, 2048) for i in range(8)}, path)  # 8 x 16 MiB
    proc = psutil.Process()
    before = proc.memory_info().rss
    s = summarize(load_checkpoint(path))
    grown = proc.memory_info().rss - before
    assert s["weights"]["bytes"] == 8 * 2048 * 2048 * 4
    assert grown < 32 * 2**20, f"summary made {grown / 2**20:.0f} MiB resident"
