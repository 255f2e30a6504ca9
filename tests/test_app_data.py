"""The app's torch-free data layer: series, smoothing, downsampling and the dashboard state."""

from __future__ import annotations

import importlib.util
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tui.downsample import Series, ema, minmax_downsample
from core.runs import RunDelta, RunReader
from tui.run_state import (
    RunState,
    better_direction,
    display_epoch,
    format_best,
    format_duration,
    per_class_from_confusion,
)
from tui.screens.start_run import parse_overrides
from core.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"


def test_ema_matches_the_hand_computed_debiased_average() -> None:
    values = np.array([1.0, 3.0, 2.0, float("nan"), 4.0])
    w = 0.5
    # By hand: acc/norm after each finite value; the nan passes through and does not decay the state.
    a1, n1 = 0.5 * 1.0, 0.5
    a2, n2 = 0.5 * a1 + 0.5 * 3.0, 0.5 * n1 + 0.5
    a3, n3 = 0.5 * a2 + 0.5 * 2.0, 0.5 * n2 + 0.5
    a4, n4 = 0.5 * a3 + 0.5 * 4.0, 0.5 * n3 + 0.5
    out = ema(values, w)
    assert out[:3] == pytest.approx([a1 / n1, a2 / n2, a3 / n3])
    assert math.isnan(out[3])
    assert out[4] == pytest.approx(a4 / n4)
    assert ema(values, 0.0)[:3].tolist() == [1.0, 3.0, 2.0]


def test_ema_over_chunks_equals_the_plain_loop_and_grows_incrementally() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=1000)
    acc = norm = 0.0
    expected = []
    for v in values:
        acc, norm = 0.9 * acc + 0.1 * v, 0.9 * norm + 0.1
        expected.append(acc / norm)
    s = Series()
    s.extend([(i, 0, 0, v) for i, v in enumerate(values[:300])])
    first = s.smoothed(0.9).copy()
    s.extend([(i, 0, 0, v) for i, v in enumerate(values[300:], 300)])
    np.testing.assert_allclose(first, expected[:300], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.smoothed(0.9), expected, rtol=1e-12, atol=1e-12)


def test_minmax_downsample_keeps_extremes_ends_and_order() -> None:
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 300.0)
    y[4321] = 50.0  # a spike must survive
    y[777] = -50.0
    xs, ys = minmax_downsample(x, y, 100)
    assert len(xs) <= 2 * 100 + 2
    assert xs[0] == 0 and xs[-1] == 9999
    assert np.all(np.diff(xs) > 0)
    assert 50.0 in ys and -50.0 in ys
    # Short series come back whole; non-finite points are dropped.
    xs2, ys2 = minmax_downsample(np.arange(5.0), np.array([1, np.nan, 3, np.inf, 5.0]), 100)
    assert xs2.tolist() == [0.0, 2.0, 4.0] and ys2.tolist() == [1.0, 3.0, 5.0]


def test_a_million_points_reduce_to_the_plot_width_quickly() -> None:
    s = Series()
    n = 1_000_000
    block = np.column_stack([np.arange(n), np.zeros(n), np.arange(n) * 0.01, np.cos(np.arange(n) / 1e4)])
    s.extend(map(tuple, block[:10]))
    s.extend(block[10:].tolist())
    assert len(s) == n
    start = time.perf_counter()
    xs, _ = minmax_downsample(s.column("step"), s.smoothed(0.0), 120)
    assert time.perf_counter() - start < 0.5
    assert len(xs) <= 242


def test_series_columns_are_read_only_views() -> None:
    s = Series(capacity=2)
    for i in range(20):  # several growths
        s.append(i, i // 10, 100.0 + i, i * 2.0)
    assert s.column("epoch").tolist() == [i // 10 for i in range(20)]
    assert s.last() == 38.0
    with pytest.raises(ValueError):
        s.values[0] = 1.0


def test_per_class_precision_recall_f1_by_hand() -> None:
    # rows true, columns predicted
    m = [[8, 2], [1, 9]]
    (p0, r0, f0, n0), (p1, r1, f1, n1) = per_class_from_confusion(m)
    assert (p0, r0, n0) == (pytest.approx(8 / 9), pytest.approx(8 / 10), 10)
    assert (p1, r1, n1) == (pytest.approx(9 / 11), pytest.approx(9 / 10), 10)
    assert f0 == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert per_class_from_confusion([[0, 0], [0, 0]])[0] == (0.0, 0.0, 0.0, 0)


def test_formatting_helpers() -> None:
    assert format_duration(59.6) == "1:00"
    # compare keeps a duration to 0.1 s (8.5068 -> 8.5): both read as `ftui runs ls` reads 8.5068
    assert format_duration(8.5) == format_duration(8.5068) == "0:09"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "—"
    assert format_best({"metric": "val/acc", "value": 0.75}) == "val/acc 0.7500"
    assert format_best(0.5) == "0.5000"
    assert better_direction("loss") == "min" and better_direction("f1_macro") == "max"
    assert better_direction("lr") is None
    # run.json counts completed epochs; while training the epoch in progress is shown, 1-based
    assert display_epoch({"epoch": 0, "epochs": 5, "status": "running", "started": 1.0}) == "1/5"
    assert display_epoch({"epoch": 5, "epochs": 5, "status": "running", "started": 1.0}) == "5/5"
    assert display_epoch({"epoch": 3, "epochs": 3, "status": "finished"}) == "3/3"
    assert display_epoch({"epoch": 0, "epochs": 5, "status": "created"}) == "0/5"
    # stopped 60 batches into its third epoch: still 3/6, as while it ran (not back to 2/6)
    assert display_epoch({"epoch": 2, "batch": 60, "epochs": 6, "status": "running", "started": 1.0}) == "3/6"
    assert display_epoch({"epoch": 2, "batch": 60, "epochs": 6, "status": "stopped", "started": 1.0}) == "3/6"
    assert display_epoch({"epoch": 2, "batch": 0, "epochs": 6, "status": "stopped", "started": 1.0}) == "2/6"


def test_eta_leaves_out_pauses_and_the_time_a_run_lay_stopped_and_a_pause_says_so() -> None:
    import os
    import socket

    state = RunState()
    live = {"status": "running", "pid": os.getpid(), "host": socket.gethostname(), "epoch": 0, "epochs": 3}
    # started at t=0, stopped, resumed at t=10000 at step 50; 50 steps since, 20 s of them paused
    state.info = {**live, "started": 0.0, "step": 100, "total_steps": 300, "session_started": 10000.0,
                  "session_step": 50, "paused_seconds": 20.0}
    state.apply(RunDelta(metrics=[{"step": 100, "split": "train", "loss": 1.0, "samples_per_s": 640.0}]))
    facts = state.header(clock=10070.0)
    assert state.eta(clock=10070.0) == pytest.approx(200.0) and facts.eta == "3:20" and facts.samples_per_s == "640"
    state.info = {**state.info, "paused": True, "paused_since": 10070.0}
    facts = state.header(clock=10500.0)
    assert (facts.status, facts.eta, facts.samples_per_s) == ("paused", "paused", "paused")


def _synthetic(tmp_path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_recorded_run", FIXTURE.parent / "make_recorded_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(tmp_path / "synthetic")


def test_state_from_the_synthetic_run_matches_its_generator(tmp_path: Path) -> None:
    reader = RunReader(_synthetic(tmp_path))
    state = RunState()
    delta = reader.poll()
    assert delta is not None and not delta.more
    state.apply(delta)
    assert reader.poll() is None  # nothing new: no delta at all
    facts = state.header(clock=0.0)
    assert (facts.name, facts.status, facts.epoch, facts.step) == ("synthetic", "finished", "3/3", "120/120")
    assert facts.elapsed == "0:36" and facts.eta == "done"  # from run.json's started/ended, not the clock
    assert len(state.series[("train", "loss")]) == 24
    losses = state.series[("train", "loss")].values
    assert state.best[("train", "loss")] == pytest.approx(losses.min())
    assert state.latest[("train", "loss")] == pytest.approx(losses[-1])
    assert state.best[("val", "acc")] == pytest.approx(0.756667)
    assert state.class_names(6)[0] == "circle"
    assert ("val", "confusion") not in state.latest  # matrices are not metrics
    assert sum(map(sum, state.confusion["test"])) == 300
    assert state.events_total == 9


def test_state_from_the_real_recorded_run() -> None:
    state = RunState()
    state.apply(RunReader(FIXTURE).poll())
    facts = state.header(clock=0.0)
    assert (facts.status, facts.epoch, facts.step, facts.elapsed) == ("finished", "3/3", "72/72", "1:00")
    assert state.latest[("val", "acc")] == pytest.approx(0.4739583333333333)
    assert ("train", "lrs") not in state.latest  # nested dicts are not plotted
    matrix = state.confusion["val"]
    assert sum(map(sum, matrix)) == 192
    acc = sum(matrix[k][k] for k in range(len(matrix))) / 192
    assert acc == pytest.approx(state.latest[("val", "acc")])


def test_reader_reads_only_new_lines_and_counts_corrupt_ones(tmp_path: Path) -> None:
    run = tmp_path / "r"
    shutil.copytree(FIXTURE, run)
    reader = RunReader(run)
    state = RunState()
    state.apply(reader.poll())
    n = len(state.series[("train", "loss")])
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 999, "epoch": 3, "time": 1767225700, "split": "train", "loss": 0.1}\n')
        fh.write("this is not json\n")
        fh.write('{"step": 1000, "split": "train", "loss": 0.0')  # partial: kept for the next poll
    delta = reader.poll()
    state.apply(delta)
    assert len(state.series[("train", "loss")]) == n + 1
    assert state.bad_lines == 1
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write("5}\n")
    state.apply(reader.poll())
    assert state.latest[("train", "loss")] == pytest.approx(0.05)
    shutil.rmtree(run)
    gone = reader.poll()
    assert gone is not None and gone.deleted


def test_parse_overrides() -> None:
    assert parse_overrides("trainer.epochs=2 --set optim.lr=0.01 -s a.b=c --set=x.y=1") == [
        "trainer.epochs=2",
        "optim.lr=0.01",
        "a.b=c",
        "x.y=1",
    ]
    assert parse_overrides("run.notes='two words'") == ["run.notes=two words"]
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_overrides("epochs")
    with pytest.raises(UserError, match="quote"):
        parse_overrides("a='x")


def test_delta_defaults_are_independent() -> None:
    a, b = RunDelta(), RunDelta()
    a.metrics.append({})
    assert b.metrics == []
