"""TensorBoard files written by the trainer, read back with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.training.trainer import Trainer
from support.training import tiny_cfg


def test_scalars_graph_and_hparams_read_back(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2}, logging={"tensorboard": True, "tensorboard_graph": True})
    trainer = Trainer(cfg)
    trainer.fit()
    tb = trainer.run.path / "tb"
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "train/acc", "lr", "val/loss", "val/acc", "val/f1_macro"):
        assert tag in tags["scalars"], tag
    val_acc = acc.Scalars("val/acc")
    assert [e.step for e in val_acc] == [6, 12]
    assert val_acc[-1].value == pytest.approx(trainer.callback_metrics["val/acc"], abs=1e-6)
    train_loss = acc.Scalars("train/loss")
    assert len(train_loss) == 6 and all(e.value > 0 for e in train_loss)  # every 2 of 12 steps
    assert tags["graph"] and acc.Graph().node  # add_graph traced the model
    hp = EventAccumulator(str(tb / "hparams"))
    hp.Reload()
    assert "hparam/best" in hp.Tags()["scalars"]
    assert hp.Scalars("hparam/best")[0].value == pytest.approx(trainer.best["value"], abs=1e-6)
