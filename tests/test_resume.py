"""Exact resume: 4 epochs straight equals 2 + resume 2, and an interrupt mid-epoch + resume — bitwise on the CPU.

The tiny config uses dropout (global torch RNG), hflip augmentation (per-sample seeded), AdamW with
weight decay and a cosine schedule with warm-up, so every piece of resumable state matters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from core.training.callback import Callback
from core.training.checkpoint import load_file
from core.training.trainer import Trainer
from support.training import StopAt, params_of, tiny_cfg

EPOCHS = {"epochs": 4}
SMALL = {"shapes": {"image_size": 16, "train_size": 64, "val_size": 32, "test_size": 0,  # 4 batches per epoch
                    "classes": ["circle", "square", "triangle"], "difficulty": 0.2}}


class StopAfterEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch == self.epoch:
            trainer.request_stop("test: stop after epoch")


def _straight(root: Path) -> tuple[dict[str, torch.Tensor], Trainer]:
    trainer = Trainer(tiny_cfg(root, "straight", trainer=EPOCHS, data=SMALL))
    trainer.fit()
    assert trainer.status == "finished"
    return params_of(trainer.model), trainer


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Trainer]:
    return _straight(tmp_path_factory.mktemp("straight"))


def _assert_bitwise(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different}"


def _resume(root: Path, stopper: Callback) -> tuple[dict[str, Any], Trainer]:
    """Run until ``stopper`` stops it, then resume in the same run directory; (checkpoint, resumed)."""
    first = Trainer(tiny_cfg(root, "split", trainer=EPOCHS, data=SMALL), callbacks=[stopper])
    first.fit()
    assert first.status == "stopped"
    run_dir = first.run.path
    ckpt = load_file(run_dir / "checkpoints" / "last.pt")
    second = Trainer(tiny_cfg(root, "split", trainer=EPOCHS, data=SMALL), run_dir=run_dir)
    second.fit(resume_from=run_dir / "checkpoints" / "last.pt")
    assert second.status == "finished"
    return ckpt, second


def test_two_epochs_then_resume_equals_four_straight(tmp_path: Path, straight: Any) -> None:
    expected, straight_trainer = straight
    ckpt, second = _resume(tmp_path, StopAfterEpoch(1))
    assert (ckpt["epoch"], ckpt["batch_idx"], ckpt["step"]) == (2, 0, 8)
    _assert_bitwise(expected, params_of(second.model))
    assert second.global_step == straight_trainer.global_step == 16
    # the optimizer state continued too (Adam moments), not only the weights
    for s1, s2 in zip(straight_trainer.optimizer.state.values(), second.optimizer.state.values()):
        assert torch.equal(s1["exp_avg"], s2["exp_avg"])
    assert second.callback_metrics["val/acc"] == straight_trainer.callback_metrics["val/acc"]
    info = json.loads((second.run.path / "run.json").read_text())
    assert info["status"] == "finished" and info["resumes"] == 1
    kinds = [json.loads(line)["kind"] for line in (second.run.path / "events.jsonl").read_text().splitlines()]
    assert "stopped" in kinds and "resumed" in kinds and kinds[-1] == "finished"


def test_interrupt_mid_epoch_then_resume_equals_straight(tmp_path: Path, straight: Any) -> None:
    expected, _ = straight
    ckpt, second = _resume(tmp_path, StopAt(6))  # epoch 2, after its 2nd of 4 batches
    assert (ckpt["epoch"], ckpt["batch_idx"], ckpt["step"]) == (1, 2, 6)
    _assert_bitwise(expected, params_of(second.model))


def test_stop_before_validation_then_resume_equals_straight(tmp_path: Path, straight: Any) -> None:
    expected, _ = straight
    ckpt, second = _resume(tmp_path, StopAt(8))  # last batch of epoch 2 trained, its validation not run
    assert (ckpt["epoch"], ckpt["batch_idx"]) == (1, 4)
    _assert_bitwise(expected, params_of(second.model))
