"""The fit loop: hook order, divergence handling, early stopping, limits, accumulation, evaluation."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from core.errors import TrainingFailed
from core.training.callback import Callback
from core.training.checkpoint import load_file
from core.training.trainer import Trainer
from support.training import HookRecorder, tiny_cfg

TWO_BATCHES = {"shapes": {"image_size": 16, "train_size": 32, "val_size": 32, "test_size": 20,
                          "classes": ["circle", "square", "triangle"]}}

STEP_HOOKS = ["on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
              "on_before_zero_grad", "on_train_batch_end"]


def test_callback_order_of_a_short_fit(tmp_path: Path) -> None:
    rec = HookRecorder()
    trainer = Trainer(tiny_cfg(tmp_path, data=TWO_BATCHES, trainer={"epochs": 1}), callbacks=[rec],
                      record=False, default_callbacks=False)
    trainer.fit()
    names = [(h, d) for h, d in rec.calls]
    expected = (
        [("setup", "fit"), ("on_fit_start", None), ("on_train_start", None), ("on_train_epoch_start", None)]
        + [(h, 0 if h in ("on_train_batch_start", "on_train_batch_end") else None) for h in STEP_HOOKS]
        + [(h, 1 if h in ("on_train_batch_start", "on_train_batch_end") else None) for h in STEP_HOOKS]
        + [("on_log", "train")]  # every_n_steps=2: after the 2nd step
        + [("on_validation_start", None), ("on_validation_epoch_start", None),
           ("on_validation_batch_end", 0), ("on_validation_batch_end", 1), ("on_log", "val"),
           ("on_validation_epoch_end", None), ("on_validation_end", None), ("on_train_epoch_end", None),
           ("on_train_end", None), ("on_fit_end", None), ("teardown", "fit")]
    )
    assert names == expected
    assert trainer.status == "finished" and trainer.global_step == 2


def test_absurd_lr_fails_with_step_and_epoch_and_keeps_finite_best(tmp_path: Path) -> None:
    # epoch 1 trains the head normally; at epoch 2 the backbone is unfrozen with an absurd lr
    cfg = tiny_cfg(tmp_path, optim={"name": "sgd", "lr": 0.05}, trainer={"epochs": 3},
                   finetune={"freeze": ["backbone"], "schedule": [{"epoch": 1, "unfreeze": "backbone", "lr": 1e8}]})
    trainer = Trainer(cfg)
    with pytest.raises(TrainingFailed, match=r"non-finite loss \(NaN or inf\) at step \d+, epoch \d+"):
        trainer.fit()
    info = json.loads((trainer.run.path / "run.json").read_text())
    assert info["status"] == "failed" and "non-finite loss" in info["error"]
    assert trainer.exit_code == 1
    for name in ("best.pt", "last.pt"):
        ckpt = load_file(trainer.run.path / "checkpoints" / name)
        assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())
    best = load_file(trainer.run.path / "checkpoints" / "best.pt")
    assert best["epoch"] == 1  # written after the first (healthy) epoch only
    events = [json.loads(line) for line in (trainer.run.path / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "unfreeze" for e in events)
    assert any(e["kind"] == "warning" and "non-finite weights" in e["message"] for e in events)


class PoisonBatch(Callback):
    """Puts a NaN into the input of batch ``index`` of every epoch (a corrupt sample)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.index:
            batch[0][0, 0, 0, 0] = float("nan")  # on the CPU the trainer uses this very tensor


def test_skip_mode_skips_and_counts_nonfinite_batches(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2, "on_nonfinite": "skip"})
    trainer = Trainer(cfg, callbacks=[PoisonBatch(1)])
    trainer.fit()
    assert trainer.status == "finished"
    assert trainer.nonfinite_skipped == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    # the skipped batches left no trace in BatchNorm's running statistics either (issue 16)
    assert all(torch.isfinite(b).all() for b in trainer.model.buffers() if b.is_floating_point())
    assert math.isfinite(trainer.callback_metrics["val/loss"])
    rows = [json.loads(line) for line in (trainer.run.path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows if r["split"] == "train")
    assert json.loads((trainer.run.path / "run.json").read_text())["nonfinite_skipped"] == 2


def test_fail_mode_names_the_poisoned_step(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path, trainer={"epochs": 1}, logging={"every_n_steps": 4}),
                      callbacks=[PoisonBatch(2)], record=False)
    with pytest.raises(TrainingFailed, match="at step 3, epoch 1"):
        trainer.fit()


def test_early_stopping_ends_finished_with_reason(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, data=TWO_BATCHES, trainer={
        "epochs": 6, "early_stopping": {"monitor": "val/loss", "mode": "min", "patience": 1, "min_delta": 100.0}})
    trainer = Trainer(cfg)
    trainer.fit()
    assert trainer.status == "finished" and trainer.exit_code == 0
    assert trainer.epoch == 1  # first validation sets the best; the second cannot improve by 100
    assert "early stopping" in trainer.stop_reason
    info = json.loads((trainer.run.path / "run.json").read_text())
    assert info["status"] == "finished" and info["epoch"] == 2 and "early stopping" in info["stop_reason"]


def test_max_steps_accumulation_and_clipping(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 5, "max_steps": 4, "accumulate_grad_batches": 2,
                                      "gradient_clip_val": 0.5})
    grads: list[float] = []

    class GradNorm(Callback):
        def on_before_optimizer_step(self, trainer: Any, optimizer: Any) -> None:
            norms = [p.grad.norm() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            grads.append(float(torch.linalg.vector_norm(torch.stack(norms))))

    trainer = Trainer(cfg, callbacks=[GradNorm()], record=False)
    trainer.fit()
    assert trainer.global_step == 4 and trainer.status == "finished"
    assert trainer.steps_per_epoch == 3  # 6 batches / 2
    assert trainer.position == (1, 2)  # 8 batches trained: epoch 2, after batch 2
    assert "val/acc" in trainer.callback_metrics  # a soft stop still validates
    assert all(g <= 0.5 + 1e-4 for g in grads)


def test_validate_and_test_count_every_sample(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path, data=TWO_BATCHES), record=False, default_callbacks=False)
    val = trainer.validate("val")
    test = trainer.test()
    assert sum(map(sum, val["confusion"])) == 32 and sum(map(sum, test["confusion"])) == 20
    assert 0.0 <= val["acc"] <= 1.0 and val["per_class"]["support"] == [sum(r) for r in val["confusion"]]


class SendSignal(Callback):
    """Sends ``signals`` to this very process after optimizer step ``step`` (what `kill` or Ctrl-C does)."""

    def __init__(self, step: int, *signals: int) -> None:
        self.step, self.signals = step, signals

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            for sig in self.signals:
                os.kill(os.getpid(), sig)


def test_sigterm_finishes_the_step_saves_last_pt_and_exits_143(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path, trainer={"epochs": 3}), callbacks=[SendSignal(3, signal.SIGTERM)])
    trainer.fit()
    assert trainer.status == "interrupted" and trainer.exit_code == 143
    ckpt = load_file(trainer.run.path / "checkpoints" / "last.pt")
    assert (ckpt["epoch"], ckpt["batch_idx"], ckpt["step"]) == (0, 3, 3)
    info = json.loads((trainer.run.path / "run.json").read_text())
    assert info["status"] == "interrupted" and info["stop_reason"] == "received SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is not trainer._on_signal  # handlers restored


def test_second_sigint_leaves_at_once(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path, trainer={"epochs": 3}),
                      callbacks=[SendSignal(2, signal.SIGINT, signal.SIGINT)])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    info = json.loads((trainer.run.path / "run.json").read_text())
    assert info["status"] == "interrupted" and "interrupted twice" in info["error"]
    assert not (trainer.run.path / "checkpoints" / "last.pt").exists()  # no time was taken to save


class RaiseOOM(Callback):
    def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_names_the_batch_size_and_the_fix(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path), callbacks=[RaiseOOM()])
    with pytest.raises(TrainingFailed, match=r"out of memory .* data.batch_size=16.*--set data.batch_size=8"):
        trainer.fit()
    info = json.loads((trainer.run.path / "run.json").read_text())
    assert info["status"] == "failed" and "accumulate_grad_batches" in info["error"]
