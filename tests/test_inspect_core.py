"""Tensor statistics, checkpoint diffs and weight exports, checked against hand computation and
against real models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

from core.inspect import diff_checkpoints, export_weights, load_checkpoint, tensor_stats
from tui.cli import app

runner = CliRunner()


def test_tensor_stats_by_hand() -> None:
    t = torch.tensor([1.0, 2.0, 3.0, 4.0, float("nan"), float("inf"), 0.0])
    s = tensor_stats(t, "x")
    # finite values 1, 2, 3, 4, 0: mean 2, squared deviations 1+0+1+4+4 = 10 -> std sqrt(10/5)
    assert s.mean == pytest.approx(2.0) and s.std == pytest.approx(math.sqrt(2.0))
    assert (s.min, s.max, s.abs_mean) == (0.0, 4.0, 2.0)
    assert s.norm == pytest.approx(math.sqrt(30.0))
    assert (s.zeros, s.nan, s.inf, s.numel, s.shape, s.dtype) == (1, 1, 1, 7, (7,), "float32")
    assert json.dumps(s.as_dict(), allow_nan=False)


def test_tensor_stats_of_integer_and_all_nan_tensors() -> None:
    s = tensor_stats(torch.tensor([[2, -4]], dtype=torch.int64))
    assert (s.mean, s.min, s.max, s.abs_mean, s.shape) == (-1.0, -4.0, 2.0, 3.0, (1, 2))
    s = tensor_stats(torch.full((3,), float("nan"), dtype=torch.bfloat16))
    assert s.mean is None and s.nan == 3 and s.dtype == "bfloat16"


def _save(tmp: Path, name: str, state: dict, **extra) -> Path:
    path = tmp / name
    torch.save({"format": 1, "ftui_version": "0.1.0", "model": state, **extra}, path)
    return path


def test_diff_by_hand(tmp_path: Path) -> None:
    a = {"m.w": torch.tensor([3.0, 4.0]), "m.b": torch.tensor([12.0]), "gone": torch.zeros(1), "s": torch.zeros(2)}
    b = {"m.w": torch.tensor([3.0, 4.5]), "m.b": torch.tensor([12.0]), "new": torch.zeros(1), "s": torch.zeros(3)}
    report = diff_checkpoints(load_checkpoint(_save(tmp_path, "a.pt", a)), load_checkpoint(_save(tmp_path, "b.pt", b)))
    by_name = {t.name: t for t in report.tensors}
    assert by_name["m.w"].status == "changed" and by_name["m.w"].rel_change == pytest.approx(0.5 / 5.0)
    assert by_name["m.w"].max_abs_change == pytest.approx(0.5)
    assert by_name["m.b"].status == "unchanged" and by_name["m.b"].rel_change is None
    assert (by_name["gone"].status, by_name["new"].status, by_name["s"].status) == ("removed", "added", "shape_changed")
    module = {m.module: m for m in report.modules}["m"]
    # ||Δ|| = 0.5 over ||a|| = sqrt(3² + 4² + 12²) = 13 for the whole module
    assert module.rel_change == pytest.approx(0.5 / 13.0) and module.status == "changed"
    assert report.counts() == {"unchanged": 1, "changed": 1, "shape_changed": 1, "added": 1, "removed": 1}


def test_diff_of_fine_tune_shows_frozen_backbone_unchanged(tmp_path: Path) -> None:
    """Fine-tune a head on a frozen backbone for a few real steps; diff start and end checkpoints."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    model.add_module("head", nn.Linear(8, 2))
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    finetune = {"frozen": ["backbone"], "frozen_params": [n for n, p in model.named_parameters() if not p.requires_grad]}
    start = _save(tmp_path, "start.pt", {k: v.clone() for k, v in model.state_dict().items()}, finetune=finetune)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    model.train()
    model.backbone.eval()  # frozen BatchNorm keeps its running statistics (the FineTuner's BN policy)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16,))
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    end = _save(tmp_path, "end.pt", model.state_dict(), finetune=finetune)

    result = runner.invoke(app, ["diff", str(start), str(end), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    modules = {m["module"]: m for m in report["modules"]}
    assert modules["backbone"]["status"] == "unchanged" and modules["backbone"]["frozen"] is True
    assert modules["backbone"]["counts"]["unchanged"] == 7  # conv w/b, bn w/b + 3 buffers
    assert modules["head"]["status"] == "changed" and modules["head"]["frozen"] is False
    head_w = {t["name"]: t for t in report["tensors"]}["head.weight"]
    a = torch.load(start, weights_only=True)["model"]["head.weight"]
    b = model.state_dict()["head.weight"]
    assert head_w["rel_change"] == pytest.approx(float((a - b).norm() / a.norm()), rel=1e-6)

    plain = runner.invoke(app, ["diff", str(start), str(end)])
    assert plain.exit_code == 0, plain.output
    assert "backbone" in plain.stdout and "unchanged" in plain.stdout and "head.weight" in plain.stdout
    assert "backbone.0.weight" not in plain.stdout  # unchanged tensors are summarised, not listed


def _ftui_resnet(tmp_path: Path) -> tuple[Path, nn.Module, torch.Tensor]:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=3, weights=None)
    model.train()
    with torch.no_grad():  # move BatchNorm running statistics away from their defaults
        model(torch.randn(4, 3, 32, 32))
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "best.pt"
    torch.save({
        "format": 1, "ftui_version": "0.1.0", "model": model.state_dict(), "epoch": 5, "step": 50,
        "config": {"model": {"name": "resnet18"}},
        "data": {"class_names": ["cat", "dog", "fox"], "normalization": {"mean": [0.485, 0.456, 0.406],
                 "std": [0.229, 0.224, 0.225]}, "input_shape": [3, 32, 32], "task": "image"},
        "model_tree": {"name": "resnet18", "head": "fc", "modules": []},
    }, path)
    with torch.no_grad():
        return path, model, model(x)


def _fresh_resnet_output(state: dict[str, torch.Tensor]) -> torch.Tensor:
    from torchvision.models import resnet18

    fresh = resnet18(num_classes=3, weights=None)
    fresh.load_state_dict(state, strict=True)
    fresh.eval()
    with torch.no_grad():
        return fresh(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


def test_export_safetensors_and_state_dict_give_identical_outputs(tmp_path: Path) -> None:
    ckpt, _model, expected = _ftui_resnet(tmp_path)
    result = runner.invoke(app, ["export", str(ckpt)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "best.safetensors"
    assert out.exists() and str(out) in result.stdout
    assert torch.equal(_fresh_resnet_output(load_file(str(out))), expected)
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["architecture"] == "resnet18" and meta["head"] == "fc" and meta["format"] == "pt"
    assert json.loads(meta["class_names"]) == ["cat", "dog", "fox"]
    assert json.loads(meta["normalization"])["std"] == [0.229, 0.224, 0.225]
    assert json.loads(meta["input_shape"]) == [3, 32, 32] and meta["ftui_version"] == "0.1.0"

    sd_path = tmp_path / "export" / "weights.pt"
    result = runner.invoke(app, ["export", str(ckpt), "--format", "state_dict", "--out", str(sd_path)])
    assert result.exit_code == 0, result.output
    state = torch.load(sd_path, weights_only=True)
    assert set(state) == set(torch.load(ckpt, weights_only=True)["model"])
    assert torch.equal(_fresh_resnet_output(state), expected)
    # The export is itself inspectable, and the inspector reads the metadata back.
    inspected = json.loads(runner.invoke(app, ["inspect", str(out), "--json"]).stdout)
    assert inspected["architecture"]["name"] == "resnet18" and inspected["data"]["class_names"] == ["cat", "dog", "fox"]


def test_export_handles_shared_and_strided_tensors(tmp_path: Path) -> None:
    tied = torch.randn(5, 4)
    state = {"emb.weight": tied, "out.weight": tied, "t": torch.randn(4, 6).t()}
    path = tmp_path / "tied.pth"
    torch.save(state, path)
    out = export_weights(load_checkpoint(path), "safetensors", tmp_path / "tied.safetensors")
    loaded = load_file(str(out))
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_export_refuses_bad_requests(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(2)}, str(path))
    result = runner.invoke(app, ["export", str(path), "--out", str(path)])
    assert result.exit_code == 2 and "is the checkpoint being exported" in result.output
    result = runner.invoke(app, ["export", str(path), "--format", "tflite"])
    assert result.exit_code == 2 and "safetensors, state_dict, onnx" in result.output
    # ONNX needs the model, which only an ftui checkpoint's config can rebuild
    result = runner.invoke(app, ["export", str(path), "--format", "onnx"])
    assert result.exit_code == 2 and "exports the model" in " ".join(result.output.split())
    # A safetensors input can be exported as a plain state dict.
    result = runner.invoke(app, ["export", str(path), "--format", "state_dict"])
    assert result.exit_code == 0 and torch.equal(torch.load(tmp_path / "w.state_dict.pt", weights_only=True)["w"], torch.ones(2))


def test_export_drops_wrapper_prefixes(tmp_path: Path) -> None:
    """Lightning's ``model.`` and DDP's ``module.`` prefixes are removed so the bare model loads the export."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    lightning = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "global_step": 3,
                "pytorch-lightning_version": "2.4.0"}, lightning)
    out = export_weights(load_checkpoint(lightning), "safetensors")
    fresh = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    fresh.load_state_dict(load_file(str(out)), strict=True)
    x = torch.randn(5, 4)
    assert torch.equal(fresh(x), model(x))
    with safe_open(str(out), framework="pt") as fh:
        assert fh.metadata()["removed_prefix"] == "model."
    ddp = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ddp)
    state = torch.load(export_weights(load_checkpoint(ddp), "state_dict"), weights_only=True)
    assert set(state) == set(model.state_dict())
    # An ordinary state dict whose keys share a first module keeps its names.
    plain = tmp_path / "plain.pth"
    torch.save({"backbone.w": torch.ones(1), "backbone.b": torch.ones(1)}, plain)
    assert set(load_file(str(export_weights(load_checkpoint(plain), "safetensors")))) == {"backbone.w", "backbone.b"}


def test_best_metric_reads_with_the_epoch_people_count() -> None:
    from tui.widgets.inspect_render import best_text

    best = {"metric": "val/acc", "value": 0.9575, "epoch": 2, "step": 93, "mode": "max"}
    assert best_text(best) == "val/acc 0.9575 at epoch 3, step 93 (mode=max)"
    assert best_text({"metric": "val_loss", "value": 0.25, "source": "ModelCheckpoint"}) == (
        "val_loss 0.25 (source=ModelCheckpoint)"
    )
