"""core.finetune: freezing, BatchNorm policy, per-layer lrs, unfreezing schedule and resumable state,
checked on real torchvision models trained for a few steps on the CPU."""

from __future__ import annotations

import io
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.config import FinetuneConfig, ModelConfig, OptimConfig
from core.errors import ConfigError, ModelError
from core.finetune import FineTuner
from core.models import build_model


def resnet(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(name="resnet18"), num_classes, (3, 32, 32)).model


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 32, 32, generator=gen), torch.randint(0, 3, (4,), generator=gen)


def train(model: nn.Module, tuner: FineTuner, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    x, y = batch(seed)
    for _ in range(steps):
        model.train()
        tuner.apply_bn_policy()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def group_of(opt: torch.optim.Optimizer, param: torch.Tensor) -> dict:
    return next(g for g in opt.param_groups if any(p is param for p in g["params"]))


def test_frozen_backbone_is_bitwise_unchanged_with_adamw_decay_and_frozen_bn() -> None:
    model = resnet()
    tuner = FineTuner(model, FinetuneConfig(freeze=["backbone"], bn="freeze"), OptimConfig(weight_decay=0.5), "fc")
    tuner.setup()
    opt = tuner.build_optimizer()
    before = snapshot(model)
    train(model, tuner, opt, 3)
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith("fc."):
            assert not torch.equal(after[key], value), key  # the head trained
        else:
            assert torch.equal(after[key], value), key  # weights, BN running stats and counters
    assert tuner.frozen_modules() == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("fc."))


def test_bn_train_policy_keeps_updating_running_stats() -> None:
    model = resnet()
    tuner = FineTuner(model, FinetuneConfig(freeze=["backbone"], bn="train"), OptimConfig(), "fc")
    tuner.setup()
    opt = tuner.build_optimizer()
    before = model.bn1.running_mean.clone()
    train(model, tuner, opt, 1)
    assert not torch.equal(model.bn1.running_mean, before)
    assert torch.equal(model.bn1.weight, torch.ones(64))  # frozen affine parameters did not move


def test_freeze_and_unfreeze_between_steps_switch_bn_modes() -> None:
    model = resnet()
    tuner = FineTuner(model, FinetuneConfig(bn="freeze"), OptimConfig(), "fc")
    model.train()
    tuner.freeze("layer1")
    assert not model.layer1[0].bn1.training and model.layer2[0].bn1.training and model.training
    tuner.unfreeze("layer1")
    assert model.layer1[0].bn1.training
    model.eval()
    tuner.freeze("all")
    assert tuner.frozen_modules() == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    tuner.unfreeze("all")
    assert tuner.frozen_modules() == []
    assert not model.layer2[0].bn1.training  # an evaluating model is left in eval mode


def test_freezing_mid_training_drops_grads_so_adamw_neither_moves_nor_decays() -> None:
    model = resnet()
    tuner = FineTuner(model, FinetuneConfig(), OptimConfig(name="adamw", lr=0.01, weight_decay=0.5), "fc")
    opt = tuner.build_optimizer()
    train(model, tuner, opt, 1)  # layer4 now has Adam moments and a gradient
    assert model.layer4[0].conv1.weight.grad is not None
    assert tuner.freeze("layer4") == ["layer4"]
    assert model.layer4[0].conv1.weight.grad is None
    frozen = {k: v.clone() for k, v in model.layer4.state_dict().items() if "running" not in k and "num_batches" not in k}
    state_before = opt.state[model.layer4[0].conv1.weight]["exp_avg"].clone()
    x, y = batch(2)
    model.train()
    opt.step()  # a step right after freezing, before any new backward
    F.cross_entropy(model(x), y).backward()
    opt.step()
    for key, value in frozen.items():
        assert torch.equal(model.layer4.state_dict()[key], value), key
    assert torch.equal(opt.state[model.layer4[0].conv1.weight]["exp_avg"], state_before)


def test_per_layer_lrs_and_no_decay_groups() -> None:
    model = resnet()
    cfg = FinetuneConfig(lr_groups=[{"match": "layer4", "lr": 1e-4}, {"match": "layer3.*", "lr": 2e-4, "weight_decay": 0.0}], head_lr=1e-2)
    tuner = FineTuner(model, cfg, OptimConfig(name="sgd", lr=1e-3, weight_decay=0.05, nesterov=True), "fc")
    opt = tuner.build_optimizer()
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # each parameter exactly once
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"default", "default/no_decay", "layer4", "layer4/no_decay", "layer3.*", "head", "head/no_decay"}
    assert group_of(opt, model.layer4[1].conv2.weight) is groups["layer4"]
    assert groups["layer4"]["lr"] == groups["layer4"]["base_lr"] == 1e-4 and groups["layer4"]["weight_decay"] == 0.05
    assert group_of(opt, model.layer4[1].bn2.weight) is groups["layer4/no_decay"]
    assert groups["layer4/no_decay"]["weight_decay"] == 0.0
    assert groups["layer3.*"]["lr"] == 2e-4 and groups["layer3.*"]["weight_decay"] == 0.0
    assert group_of(opt, model.fc.weight)["lr"] == 1e-2 and group_of(opt, model.fc.bias) is groups["head/no_decay"]
    assert group_of(opt, model.conv1.weight) is groups["default"] and groups["default"]["lr"] == 1e-3
    summary = {g["name"]: g for g in tuner.groups_summary()}
    assert summary["head"]["params"] == 512 * 3 and summary["head/no_decay"]["params"] == 3
    with pytest.raises(ConfigError, match="momentum"):
        FineTuner(model, FinetuneConfig(), OptimConfig(name="sgd", momentum=0, nesterov=True), "fc").build_optimizer()


def test_layer_decay_from_head_towards_input_on_mobilenet() -> None:
    torch.manual_seed(0)
    built = build_model(ModelConfig(name="mobilenet_v3_small"), 3, (3, 32, 32))
    tuner = FineTuner(built.model, FinetuneConfig(layer_decay=0.5), OptimConfig(name="adam", lr=0.1), built.head_path)
    opt = tuner.build_optimizer()
    assert isinstance(opt, torch.optim.Adam)
    lrs = tuner.param_lrs()
    assert lrs["classifier.3.weight"] == 0.1
    assert lrs["classifier.0.weight"] == 0.05
    assert lrs["features.12.0.weight"] == 0.025
    assert lrs["features.0.0.weight"] == pytest.approx(0.1 * 0.5**14)  # 13 feature stages + classifier.0
    assert {g["name"]: g["lr"] for g in opt.param_groups}["features.11"] == 0.0125


def test_unfreeze_schedule_mid_training_adds_params_with_scheduled_lr() -> None:
    model = resnet()
    cfg = FinetuneConfig(freeze=["backbone"], schedule=[{"epoch": 1, "unfreeze": "layer4", "lr": 1e-5}])
    tuner = FineTuner(model, cfg, OptimConfig(name="adamw", lr=1e-3), "fc")
    tuner.setup()
    opt = tuner.build_optimizer()
    assert tuner.on_epoch_start(0) == []
    train(model, tuner, opt, 2)
    for group in opt.param_groups:  # the trainer's schedule: lr = base_lr * factor
        group["lr"] = group["base_lr"] * 0.5
    head_steps = opt.state[model.fc.weight]["step"].item()
    events = tuner.on_epoch_start(1)
    assert events == [
        {"kind": "unfreeze", "modules": ["layer4"], "lr": 1e-5, "epoch": 1, "pattern": "layer4",
         "groups": ["unfrozen:layer4"]}  # weight_decay 0: no separate no-decay group
    ]
    group = group_of(opt, model.layer4[0].conv1.weight)
    assert group["name"] == "unfrozen:layer4" and group["base_lr"] == 1e-5 and group["lr"] == pytest.approx(5e-6)
    assert group_of(opt, model.fc.weight)["base_lr"] == 1e-3  # the head keeps its own lr
    layer3, layer4 = snapshot(model.layer3), snapshot(model.layer4)
    train(model, tuner, opt, 1)
    assert not torch.equal(model.layer4[0].conv1.weight, layer4["0.conv1.weight"])
    assert all(torch.equal(model.layer3.state_dict()[k], v) for k, v in layer3.items())
    assert opt.state[model.fc.weight]["step"].item() == head_steps + 1  # head's Adam state kept
    assert tuner.on_epoch_start(2) == []  # applied once


def test_optimizer_state_survives_freeze_unfreeze_and_moves() -> None:
    model = resnet()
    tuner = FineTuner(model, FinetuneConfig(), OptimConfig(name="sgd", lr=0.01, momentum=0.9), "fc")
    opt = tuner.build_optimizer()
    train(model, tuner, opt, 2)
    weight = model.layer2[0].conv1.weight
    buffer = opt.state[weight]["momentum_buffer"].clone()
    tuner.freeze("layer2")
    train(model, tuner, opt, 1)
    assert torch.equal(opt.state[weight]["momentum_buffer"], buffer)
    tuner.unfreeze("layer2", lr=0.001)
    assert group_of(opt, weight)["name"] == "unfrozen:layer2"
    assert torch.equal(opt.state[weight]["momentum_buffer"], buffer)  # state is keyed by parameter
    before = weight.detach().clone()
    model.train()
    opt.zero_grad(set_to_none=True)
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    expected = before - 0.001 * (0.9 * buffer + weight.grad)  # SGD momentum continues from the old buffer
    opt.step()
    assert torch.allclose(weight, expected, atol=1e-7)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_set_lr_by_group_all_and_pattern() -> None:
    model = resnet()
    tuner = FineTuner(model, FinetuneConfig(), OptimConfig(lr=1e-3, weight_decay=0.01), "fc")
    opt = tuner.build_optimizer()
    for group in opt.param_groups:
        group["lr"] = group["base_lr"] * 0.1
    tuner.set_lr("head", 0.02)
    assert group_of(opt, model.fc.weight)["base_lr"] == 0.02 and group_of(opt, model.fc.bias)["base_lr"] == 0.02
    assert group_of(opt, model.fc.weight)["lr"] == pytest.approx(0.002)
    tuner.set_lr("layer3", 5e-4)
    assert group_of(opt, model.layer3[0].conv1.weight)["name"] == "lr:layer3"
    assert group_of(opt, model.layer3[0].bn1.bias)["name"] == "lr:layer3/no_decay"
    tuner.set_lr("all", 1e-4)
    assert {g["base_lr"] for g in opt.param_groups} == {1e-4}
    with pytest.raises(ModelError, match="no parameter group"):
        tuner.set_lr("layer9", 0.1)


def test_bad_patterns_fail_at_setup_naming_the_key() -> None:
    model = resnet()
    cfg = FinetuneConfig(freeze=["backbone"], schedule=[{"epoch": 3, "unfreeze": "layr4"}])
    with pytest.raises(ModelError) as err:
        FineTuner(model, cfg, OptimConfig(), "fc").setup()
    assert "finetune.schedule[0].unfreeze" in str(err.value) and "layer4" in str(err.value)
    with pytest.raises(ModelError, match=r"finetune.lr_groups\[0\].match"):
        FineTuner(model, FinetuneConfig(lr_groups=[{"match": "block9", "lr": 0.1}]), OptimConfig(), "fc")


def test_state_dict_round_trip_restores_frozen_set_groups_and_optimizer() -> None:
    cfg = FinetuneConfig(freeze=["backbone"], schedule=[{"epoch": 1, "unfreeze": {"last": 3}, "lr": 1e-4}])
    optim = OptimConfig(name="adamw", lr=1e-3, weight_decay=0.01)
    model = resnet()
    tuner = FineTuner(model, cfg, optim, "fc")
    tuner.setup()
    opt = tuner.build_optimizer()
    train(model, tuner, opt, 1)
    tuner.on_epoch_start(1)
    tuner.set_lr("head", 3e-3)
    tuner.freeze("layer4.0")
    train(model, tuner, opt, 1)
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(), "finetune": tuner.state_dict()}
    json.dumps(checkpoint["finetune"])
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)

    clone = resnet()
    clone.load_state_dict(loaded["model"])
    resumed = FineTuner(clone, cfg, optim, "fc")
    resumed.setup()
    resumed.load_state_dict(loaded["finetune"])
    clone_opt = resumed.build_optimizer()
    clone_opt.load_state_dict(loaded["optimizer"])
    assert resumed.frozen_modules() == tuner.frozen_modules() == ["conv1", "bn1", "layer1", "layer2", "layer4.0"]
    assert {n: p.requires_grad for n, p in clone.named_parameters()} == {n: p.requires_grad for n, p in model.named_parameters()}
    assert resumed.groups_summary() == tuner.groups_summary()
    assert resumed.on_epoch_start(1) == []  # the schedule step is not applied twice
    train(model, tuner, opt, 1, seed=5)
    train(clone, resumed, clone_opt, 1, seed=5)
    for key, value in model.state_dict().items():
        assert torch.equal(clone.state_dict()[key], value), key
