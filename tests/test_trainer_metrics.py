"""Metrics against hand-computed values on fixed predictions; schedules against torch's and by hand."""

from __future__ import annotations

import math

import pytest
import torch

from core.config import ScheduleConfig
from core.training.metrics import ClassificationMetrics, TrainAccumulator
from core.training.schedule import LrSchedule, apply_lr


def _logits_for(preds: list[int], num_classes: int) -> torch.Tensor:
    logits = torch.zeros(len(preds), num_classes)
    logits[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return logits


def test_confusion_precision_recall_f1_by_hand() -> None:
    # true:  0 0 0 1 1 2 2 2 2 ; pred: 0 0 1 1 2 2 2 2 0
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = [0, 0, 1, 1, 2, 2, 2, 2, 0]
    m = ClassificationMetrics(3)
    # two batches, to check the streaming sums
    m.update(_logits_for(preds[:4], 3), targets[:4], torch.tensor(4.0))
    m.update(_logits_for(preds[4:], 3), targets[4:], torch.tensor(5.0))
    out = m.compute()
    assert out["confusion"] == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert out["acc"] == pytest.approx(6 / 9)
    assert out["loss"] == pytest.approx(9.0 / 9)
    # class 0: tp 2, predicted 3, actual 3; class 1: tp 1, pred 2, actual 2; class 2: tp 3, pred 4, actual 4
    precision = [2 / 3, 1 / 2, 3 / 4]
    recall = [2 / 3, 1 / 2, 3 / 4]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert out["per_class"]["precision"] == pytest.approx(precision)
    assert out["per_class"]["recall"] == pytest.approx(recall)
    assert out["per_class"]["f1"] == pytest.approx(f1)
    assert out["per_class"]["support"] == [3, 2, 4]
    assert out["precision_macro"] == pytest.approx(sum(precision) / 3)
    assert out["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert "top5" not in out  # only when there are more than 5 classes


def test_class_never_predicted_counts_zero_and_matches_sklearn() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    targets = torch.tensor([0, 1, 1, 2, 2, 2])
    preds = [0, 0, 0, 2, 2, 0]  # class 1 never predicted
    m = ClassificationMetrics(3)
    m.update(_logits_for(preds, 3), targets)
    out = m.compute()
    assert out["per_class"]["precision"][1] == 0.0 and out["per_class"]["recall"][1] == 0.0
    p, r, f, _ = sklearn.precision_recall_fscore_support(targets.numpy(), preds, average="macro", zero_division=0)
    assert (out["precision_macro"], out["recall_macro"], out["f1_macro"]) == pytest.approx((p, r, f))


def test_top5_with_seven_classes() -> None:
    # sample 0: true class 6 ranked 2nd -> top-5 hit, top-1 miss; sample 1: true class 0 ranked last -> miss
    logits = torch.tensor([[0.0, 1, 2, 3, 4, 6, 5], [0.0, 1, 2, 3, 4, 5, 6]])
    targets = torch.tensor([6, 0])
    m = ClassificationMetrics(7)
    m.update(logits, targets)
    out = m.compute()
    assert out["acc"] == 0.0
    assert out["top5"] == 0.5


def test_train_accumulator_reads_means_and_resets() -> None:
    acc = TrainAccumulator(torch.device("cpu"))
    acc.update(torch.tensor(2.0), _logits_for([0, 1], 2), torch.tensor([0, 0]), step=0)  # 1 of 2 right
    acc.update(torch.tensor(4.0), _logits_for([1, 1, 0], 2), torch.tensor([1, 1, 1]), step=1)  # 2 of 3 right
    window = acc.read()
    # the mean is weighted by batch size: (2*2 + 4*3) / 5
    assert (window.loss, window.acc, window.count) == (pytest.approx(16 / 5), pytest.approx(3 / 5), 5)
    assert window.nonfinite == 0 and window.first_nonfinite_step is None
    acc.reset()
    empty = acc.read()
    assert empty.count == 0 and empty.nonfinite == 0


def test_train_accumulator_finds_the_first_nonfinite_step() -> None:
    acc = TrainAccumulator(torch.device("cpu"))
    for step, loss in enumerate([1.0, 0.5, float("nan"), float("inf"), 0.2]):
        acc.update(torch.tensor(loss), _logits_for([0], 2), torch.tensor([0]), step=10 + step)
    assert acc.pending_nonfinite() == 2  # what a checkpoint written now counts, before the read-out
    window = acc.read()
    assert window.nonfinite == 2 and window.first_nonfinite_step == 12
    # the figures are those of the finite batches: skip mode trains on nothing else
    assert window.count == 3 and window.acc == pytest.approx(1.0) and window.loss == pytest.approx(1.7 / 3)


def test_onecycle_matches_torch_onecycle() -> None:
    total = 50
    sched = LrSchedule(ScheduleConfig(name="onecycle", pct_start=0.3), steps_per_epoch=10, total_steps=total)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, pct_start=0.3,
                                              div_factor=25.0, final_div_factor=1e4, cycle_momentum=False)
    for step in range(total):
        assert 0.1 * sched.factor(step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        opt.step()
        ref.step() if step < total - 1 else None


def test_cosine_with_warmup_step_and_plateau_by_hand() -> None:
    cos_cfg = ScheduleConfig(name="cosine", warmup_epochs=1, min_lr_ratio=0.1)
    cos = LrSchedule(cos_cfg, steps_per_epoch=4, total_steps=12)
    assert [cos.factor(s) for s in range(4)] == pytest.approx([1 / 5, 2 / 5, 3 / 5, 4 / 5])
    assert cos.factor(4) == pytest.approx(1.0)
    assert cos.factor(8) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cos.factor(12) == pytest.approx(0.1)

    step = LrSchedule(ScheduleConfig(name="step", step_size=2, gamma=0.5), steps_per_epoch=3, total_steps=30)
    assert [step.factor(s) for s in (0, 5, 6, 11, 12)] == pytest.approx([1, 1, 0.5, 0.5, 0.25])

    plateau = LrSchedule(ScheduleConfig(name="plateau", patience=1, factor=0.5, monitor="val/loss", mode="min"),
                         steps_per_epoch=3, total_steps=30)
    reductions = [plateau.observe({"val/loss": v}) for v in (1.0, 0.9, 0.95, 0.95, 0.97)]
    assert reductions == [False, False, False, True, False]
    assert plateau.factor(0) == 0.5
    restored = LrSchedule(plateau.cfg, 3, 30)
    restored.load_state_dict(plateau.state_dict())
    assert restored.factor(0) == 0.5 and restored.plateau_bad == plateau.plateau_bad


def test_apply_lr_uses_each_groups_base_lr() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "base_lr": 0.1}, {"params": [b], "base_lr": 0.01}], lr=1.0)
    apply_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.005])
    opt.param_groups[1]["base_lr"] = 0.02  # what `set-lr` does at run time
    apply_lr(opt, 0.5)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.01)
