"""core.models: registry, head surgery, weights loading, patterns and the layer tree, on real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from core.config import LayerPattern, ModelConfig
from core.errors import ModelError
from core.models import blocks, build_model, load_weights, model_tree, select
from core.models.heads import DropoutLinear
from core.models.weights import cached_weights_path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_resnet18_head_replaced_for_class_count() -> None:
    built = build_model(ModelConfig(name="resnet18"), 7, (3, 32, 32))
    assert built.head_path == "fc"
    assert isinstance(built.model.fc, nn.Linear) and built.model.fc.out_features == 7
    built.model.eval()
    assert built.model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    assert built.load_report is None


def test_mobilenet_head_is_classifier_last_and_head_dropout_reuses_its_dropout() -> None:
    built = build_model(ModelConfig(name="mobilenet_v3_small"), 4, (3, 32, 32), head_dropout=0.35)
    assert built.head_path == "classifier.3"
    assert built.model.classifier[3].out_features == 4
    assert built.model.classifier[2].p == 0.35  # the existing Dropout before the head, no key change
    assert "classifier.3.weight" in built.model.state_dict()


def test_head_dropout_without_a_dropout_keeps_the_head_keys() -> None:
    built = build_model(ModelConfig(name="resnet18"), 3, (3, 32, 32), head_dropout=0.5)
    head = built.model.fc
    assert isinstance(head, DropoutLinear) and head.p == 0.5
    assert {"fc.weight", "fc.bias"} <= set(built.model.state_dict())
    head.train()
    x = torch.ones(1000, 512)
    # Training-mode dropout zeroes about half the inputs; eval mode is the plain Linear.
    assert not torch.equal(head(x), nn.functional.linear(x, head.weight, head.bias))
    head.eval()
    assert torch.equal(head(x), nn.functional.linear(x, head.weight, head.bias))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 45, 37)])
def test_simple_cnn_fits_any_input(shape: tuple[int, int, int]) -> None:
    cfg = ModelConfig(name="simple_cnn", channels=[4, 8, 8, 8], dropout=0.1)
    built = build_model(cfg, 5, shape)
    assert built.head_path == "head"
    built.model.eval()
    assert built.model(torch.randn(2, *shape)).shape == (2, 5)


def test_mlp_layer_norm_and_image_flattening() -> None:
    built = build_model(ModelConfig(name="mlp", hidden=[16, 8], norm="layer"), 3, (1, 4, 4))
    model = built.model
    assert isinstance(model.flatten, nn.Flatten)
    assert isinstance(model.block1[1], nn.LayerNorm) and model.block1[0].in_features == 16
    assert model.head.in_features == 8 and model.head.out_features == 3
    assert model(torch.randn(5, 1, 4, 4)).shape == (5, 3)


def test_unknown_model_lists_close_names() -> None:
    with pytest.raises(ModelError) as err:
        build_model(ModelConfig(name="resnet19"), 3, (3, 32, 32))
    assert "resnet18" in str(err.value) and "model.name" in str(err.value)


def test_model_that_does_not_fit_the_data_or_bad_kwargs_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="mlp"):
        build_model(ModelConfig(name="simple_cnn"), 3, (12,))
    with pytest.raises(ModelError, match="model.kwargs"):
        build_model(ModelConfig(name="resnet18", kwargs={"bogus": 1}), 3, (3, 32, 32))
    with pytest.raises(ModelError, match="weights file"):
        build_model(ModelConfig(name="simple_cnn", weights="IMAGENET1K_V1"), 3, (3, 32, 32))


def test_weights_file_report_head_mismatch_expected(tmp_path: Path) -> None:
    source = build_model(ModelConfig(name="resnet18"), 10, (3, 32, 32)).model
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # as saved from DataParallel
    path = tmp_path / "r18.pth"
    torch.save(state, path)

    built = build_model(ModelConfig(name="resnet18", weights=str(path)), 3, (3, 32, 32))
    report = built.load_report
    assert report is not None
    assert sorted(k for k, _, _ in report.mismatched) == ["fc.bias", "fc.weight"]
    assert ("fc.weight", [10, 512], [3, 512]) in report.mismatched
    assert report.missing == [] and report.unexpected == []
    assert len(report.matched) == len(state) - 2
    assert report.head_only and "expected" in report.summary()
    assert torch.equal(built.model.conv1.weight, source.conv1.weight)
    assert torch.equal(built.model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert not torch.equal(built.model.fc.weight[:3], source.fc.weight[:3])
    json.dumps(report.to_dict())


def test_weights_from_safetensors_ftui_checkpoint_and_lightning(tmp_path: Path) -> None:
    cfg = ModelConfig(name="simple_cnn", channels=[4, 8])
    source = build_model(cfg, 3, (3, 16, 16)).model
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"format": 1, "model": {f"_orig_mod.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "c.pt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1}, tmp_path / "l.ckpt")
    for name in ("w.safetensors", "c.pt", "l.ckpt"):
        target = build_model(cfg, 3, (3, 16, 16)).model
        report = load_weights(target, tmp_path / name, head_path="head")
        assert len(report.matched) == len(state) and not (report.missing or report.unexpected or report.mismatched)
        for key, value in state.items():
            assert torch.equal(target.state_dict()[key], value), (name, key)
    assert report.stripped_prefix == "model."


def test_a_head_called_head_is_named_once_in_the_load_report(tmp_path: Path) -> None:
    cfg = ModelConfig(name="simple_cnn", channels=[4, 8])
    torch.save(build_model(cfg, 6, (3, 16, 16)).model.state_dict(), tmp_path / "six.pt")
    report = load_weights(build_model(cfg, 4, (3, 16, 16)).model, tmp_path / "six.pt", head_path="head")
    assert "; the head 'head' was not loaded, as expected after a change of classes" in report.summary()
    assert "head head" not in report.summary()


class _Payload:
    """A class the weights-only unpickler must refuse."""


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, path)
    model = build_model(ModelConfig(name="simple_cnn", channels=[4]), 2, (3, 8, 8)).model
    with pytest.raises(ModelError, match="pickled"):
        load_weights(model, path)
    with pytest.raises(ModelError, match="does not exist"):
        load_weights(model, tmp_path / "nope.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable PyTorch file"):
        load_weights(model, tmp_path / "garbage.pt")


def test_weights_for_another_architecture_are_an_error(tmp_path: Path) -> None:
    torch.save({"encoder.w": torch.zeros(3)}, tmp_path / "other.pt")
    model = build_model(ModelConfig(name="simple_cnn", channels=[4]), 2, (3, 8, 8)).model
    with pytest.raises(ModelError, match="no tensor"):
        load_weights(model, tmp_path / "other.pt")


def test_torchvision_weights_only_from_local_cache(tmp_path: Path) -> None:
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        cfg = ModelConfig(name="resnet18", weights="IMAGENET1K_V1")
        with pytest.raises(ModelError) as err:
            build_model(cfg, 4, (3, 32, 32))
        text = str(err.value)
        assert "resnet18-f37072fd.pth" in text and str(tmp_path / "hub" / "checkpoints") in text
        # Put a stand-in file where torchvision's cache expects it: no network is touched.
        reference = build_model(ModelConfig(name="resnet18"), 1000, (3, 32, 32)).model
        cached = cached_weights_path("https://download.pytorch.org/models/resnet18-f37072fd.pth")
        cached.parent.mkdir(parents=True)
        torch.save(reference.state_dict(), cached)
        built = build_model(cfg.model_copy(update={"weights": "DEFAULT"}), 4, (3, 32, 32))
        assert torch.equal(built.model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
        assert built.model.fc.out_features == 4
        assert any("1000 -> 4" in note for note in built.notes)
        with pytest.raises(ModelError, match="IMAGENET1K_V1"):
            build_model(cfg.model_copy(update={"weights": "IMAGENET9K"}), 4, (3, 32, 32))
    finally:
        torch.hub.set_dir(old)


def test_grayscale_input_adapts_the_stem() -> None:
    built = build_model(ModelConfig(name="resnet18"), 10, (1, 28, 28))
    assert built.model.conv1.in_channels == 1
    built.model.eval()
    assert built.model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_patterns_and_blocks() -> None:
    model = build_model(ModelConfig(name="resnet18"), 3, (3, 32, 32)).model
    assert blocks(model, "fc") == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert select(model, LayerPattern(last=3), "fc").modules == ["layer3", "layer4", "fc"]
    assert select(model, {"last": 1}, "fc").params == ["fc.weight", "fc.bias"]
    backbone = select(model, "backbone", "fc")
    assert backbone.modules == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    assert len(backbone.params) == len(list(model.parameters())) - 2
    assert select(model, "layer4.*", "fc").modules == ["layer4.0", "layer4.1"]
    assert select(model, "layer4.1.conv2", "fc").params == ["layer4.1.conv2.weight"]
    with pytest.raises(ModelError) as err:
        select(model, "layer5", "fc", where="finetune.freeze[0]")
    assert "finetune.freeze[0]" in str(err.value) and "layer4" in str(err.value) and "conv1" in str(err.value)
    with pytest.raises(ModelError, match="without parameters"):
        select(model, "relu", "fc")
    mobilenet = build_model(ModelConfig(name="mobilenet_v3_small"), 3, (3, 32, 32)).model
    assert blocks(mobilenet, "classifier.3")[-3:] == ["features.12", "classifier.0", "classifier.3"]


def test_model_tree_shapes_params_and_mode() -> None:
    cfg = ModelConfig(name="simple_cnn", channels=[4, 6])
    model = build_model(cfg, 5, (3, 12, 10)).model
    model.stage1.requires_grad_(False)
    model.train()
    lrs = {f"head.{n}": 0.01 for n, _ in model.head.named_parameters()}
    lrs.update({f"stage2.{n}": 0.001 for n, _ in model.stage2.named_parameters()})
    tree = model_tree(model, (3, 12, 10), "head", lrs=lrs, name="simple_cnn")
    json.dumps(tree)
    assert model.training  # the mode is restored after the eval-mode forward pass
    rows = {m["path"]: m for m in tree["modules"]}
    # Hand computation: conv 3->4 (3x3, no bias) + BN(4) + conv 4->4 + BN(4).
    assert rows["stage1"]["params"] == 3 * 4 * 9 + 8 + 4 * 4 * 9 + 8
    assert rows["stage1"]["own_params"] == 0 and rows["stage1.0"]["own_params"] == 108
    assert rows["stage1"]["frozen"] and rows["stage1"]["trainable"] == 0 and rows["stage1"]["lr"] is None
    assert rows["stage1"]["output_shape"] == [4, 6, 5] and rows["stage2"]["output_shape"] == [6, 3, 2]
    assert rows["pool"]["output_shape"] == [6]
    assert rows["head"]["output_shape"] == [5] and rows["head"]["is_head"] and rows["head"]["params"] == 6 * 5 + 5
    assert rows["head"]["lr"] == 0.01 and rows["stage2"]["lr"] == 0.001
    assert rows["stage1.0"]["depth"] == 2 and rows["stage1"]["order"] < rows["head"]["order"]
    total = sum(p.numel() for p in model.parameters())
    assert tree["total_params"] == total and tree["trainable_params"] == total - rows["stage1"]["params"]
    assert tree["head"] == "head" and tree["input_shape"] == [3, 12, 10] and tree["forward_error"] is None
    model.stage1[1].eval()  # a frozen BatchNorm inside a training model keeps its own mode
    model_tree(model, (3, 12, 10), "head")
    assert model.training and not model.stage1[1].training
    model.eval()
    model_tree(model, (3, 12, 10), "head")
    assert not model.training and not model.head.training


def test_model_tree_names_each_modules_groups_and_the_lr_a_frozen_part_would_get() -> None:
    from core.config import FinetuneConfig, OptimConfig
    from core.finetune import FineTuner

    model = build_model(ModelConfig(name="simple_cnn", channels=[4, 6]), 5, (3, 12, 10)).model
    tuner = FineTuner(model, FinetuneConfig(freeze=["stage1"], head_lr=0.05), OptimConfig(lr=0.01, weight_decay=0.01), "head")
    tuner.setup()
    tuner.build_optimizer()
    tuner.unfreeze("stage1.0", lr=0.001)
    tree = model_tree(model, (3, 12, 10), "head", lrs=tuner.param_lrs(), groups=tuner.param_groups())
    json.dumps(tree)
    rows = {m["path"]: m for m in tree["modules"]}
    assert tree["groups"] == {"default": 0.01, "default/no_decay": 0.01, "head": 0.05, "head/no_decay": 0.05,
                              "unfrozen:stage1.0": 0.001}
    assert rows["head"]["groups"] == ["head", "head/no_decay"] and rows["head"]["frozen_groups"] == []
    assert rows["head"]["frozen_lr"] is None
    # stage1: its conv trains in the new group, the rest is frozen and would train at the default rate
    assert rows["stage1"]["groups"] == ["unfrozen:stage1.0"] and rows["stage1"]["lr"] == 0.001
    assert rows["stage1"]["frozen_groups"] == ["default/no_decay", "default"] and rows["stage1"]["frozen_lr"] == 0.01
    assert rows["stage1.1"]["frozen"] and rows["stage1.1"]["groups"] == [] and rows["stage1.1"]["lr"] is None
