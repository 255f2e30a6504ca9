"""layers.jsonl from a real run: units at the configured depth, frozen units flat, SGD updates by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from core.training.callbacks.layer_stats import unit_of
from core.training.trainer import Trainer
from support.training import tiny_cfg


def test_units_are_modules_cut_at_the_depth() -> None:
    assert unit_of("stage1.0.weight", 2) == "stage1.0"
    assert unit_of("stage1.0.weight", 1) == "stage1"
    assert unit_of("head.bias", 2) == "head"  # a shallower leaf module is its own unit
    assert unit_of("encoder.layers.encoder_layer_0.mlp.0.weight", 2) == "encoder.layers"
    assert unit_of("class_token", 2) == "class_token"  # held by the root itself


def test_a_real_run_records_sane_per_layer_statistics(tmp_path: Path) -> None:
    lr = 0.05
    cfg = tiny_cfg(
        tmp_path, "stats",
        optim={"name": "sgd", "lr": lr, "momentum": 0.0, "weight_decay": 0.0},
        schedule={"name": "none", "warmup_epochs": 0},
        finetune={"freeze": ["stage1"]},
        trainer={"epochs": 1},
        logging={"every_n_steps": 2, "layer_stats": True, "layer_stats_depth": 2, "progress": "none",
                 "system": False, "tensorboard": False},
    )
    trainer = Trainer(cfg)
    trainer.fit()
    records = [json.loads(line) for line in (trainer.run.path / "layers.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6] and all(r["depth"] == 2 and r["epoch"] == 0 for r in records)
    units = ["stage1.0", "stage1.1", "stage1.3", "stage1.4", "stage2.0", "stage2.1", "stage2.3", "stage2.4", "head"]
    for record in records:
        assert list(record["layers"]) == units  # parameter-less modules (ReLU, pooling) have no entry
        for unit, stats in record["layers"].items():
            if unit.startswith("stage1."):
                assert stats["frozen"] is True and stats["grad_norm"] == 0.0 and stats["update_ratio"] == 0.0
                assert stats["weight_norm"] == records[0]["layers"][unit]["weight_norm"]  # never moves
            else:
                assert stats["frozen"] is False and stats["grad_norm"] > 0 and stats["weight_norm"] > 0
                # plain SGD: ||w' - w|| = lr * ||g||, so the ratio is lr * ||g|| / ||w|| (||w|| before
                # the step; the recorded norm is after it, which differs by at most the ratio itself)
                expected = lr * stats["grad_norm"] / stats["weight_norm"]
                assert stats["update_ratio"] == pytest.approx(expected, rel=0.05), unit
                assert 1e-5 < stats["update_ratio"] < 0.5

    # the last record is the final model: weight norms by hand
    model = trainer.model
    for unit in units:
        module = model.get_submodule(unit)
        norm = math.sqrt(sum(float(p.detach().pow(2).sum()) for p in module.parameters()))
        assert records[-1]["layers"][unit]["weight_norm"] == pytest.approx(norm, rel=1e-3), unit


def test_layer_stats_off_writes_nothing(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, "quiet", trainer={"epochs": 1, "max_steps": 2},
                   logging={"layer_stats": False, "progress": "none", "system": False, "tensorboard": False})
    trainer = Trainer(cfg)
    trainer.fit()
    assert trainer.status == "finished" and not (trainer.run.path / "layers.jsonl").exists()


class ScaledTrainer(Trainer):
    """A real trainer whose loss is scaled by an enabled GradScaler (what 16-mixed does on a GPU;
    the CPU has no float16 autocast, but the scaler itself works there)."""

    def setup(self, ckpt=None, *, weights_only=False) -> None:
        super().setup(ckpt, weights_only=weights_only)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, enabled=True)


def test_gradient_norms_are_unscaled_under_a_loss_scaler(tmp_path: Path) -> None:
    def run(cls: type[Trainer], name: str) -> list[dict]:
        cfg = tiny_cfg(tmp_path, name, trainer={"epochs": 1, "max_steps": 4},
                       logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False})
        trainer = cls(cfg)
        trainer.fit()
        return [json.loads(line) for line in (trainer.run.path / "layers.jsonl").read_text().splitlines()]

    plain, scaled = run(Trainer, "plain"), run(ScaledTrainer, "scaled")
    assert [r["step"] for r in scaled] == [2, 4]
    for a, b in zip(plain, scaled):
        for unit, stats in a["layers"].items():
            # scaling by a power of two is exact: the same gradients, not 65536 times larger
            assert b["layers"][unit]["grad_norm"] == pytest.approx(stats["grad_norm"], rel=1e-3), unit
            assert b["layers"][unit]["update_ratio"] == pytest.approx(stats["update_ratio"], rel=1e-3), unit
