"""metrics.columns: a run read through its columnar sidecar looks exactly like the same run read as JSON,
and everything the sidecar can go through (a crash mid-block, a run recorded before it existed, a
resume, live growth) still reads right."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from core import run_columns
from core.runs import FORMAT_VERSION, METRICS, METRICS_COLUMNS, RUN_JSON, RunReader, RunWriter
from tui.run_state import RunState

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_columns, "BLOCK_ROWS", 40)


def write_rows(writer: RunWriter, start: int, count: int) -> None:
    """Train rows with the recorder's keys, a val row with per-class figures every 25, odd values now and then."""
    for i in range(start, start + count):
        lr = 0.01 * (1 - i / 1000)
        row = {"loss": 2.0 / (1 + i) if i % 17 else float("nan"), "acc": (i % 10) / 10, "lr": lr,
               "samples_per_s": 1000.0 + i, "data_wait": 0.1, "lrs": {"default": lr, "head": lr * 10}}
        if i > 60:
            row["nonfinite_skipped"] = i // 17  # a key that appears part-way
        writer.log_metrics(i * 20, i // 30, "train", row)
        if i % 25 == 24:
            writer.log_metrics(i * 20, i // 30, "val", {
                "loss": 1.0 / (1 + i), "acc": 0.5 + i / 1000, "f1_macro": 0.4, "top5": float("inf"),
                "per_class": {"precision": [0.5, 0.6], "recall": [0.4, 0.7], "f1": [0.45, 0.65], "support": [10, 12]},
                "confusion": [[i, 1], [2, i]],
            })


def read_state(path: Path, *, columns: bool, step_bytes: int | None = None) -> tuple[RunState, RunReader]:
    reader = RunReader(path, columns=columns, step_bytes=step_bytes)
    state = RunState()
    while (delta := reader.poll()) is not None:
        state.apply(delta)
        if not delta.more:
            break
    return state, reader


def assert_same(a: RunState, b: RunState) -> None:
    assert list(a.series) == list(b.series)  # the same series, met in the same order
    for key, series in a.series.items():
        other = b.series[key]
        for column in ("step", "epoch", "time", "value"):
            np.testing.assert_array_equal(series.column(column), other.column(column), err_msg=f"{key} {column}")
    assert a.latest.keys() == b.latest.keys()
    assert all(a.latest[k] == b.latest[k] or (math.isnan(a.latest[k]) and math.isnan(b.latest[k])) for k in a.latest)
    assert a.best == b.best and a.confusion == b.confusion and a.last_row == b.last_row
    assert list(a.recent_metrics)[-30:] == list(b.recent_metrics)[-30:]


def test_the_sidecar_reads_exactly_as_the_json(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, "r", flush_seconds=0)
    write_rows(writer, 0, 130)
    writer.close()
    path = writer.path
    rows = len((path / METRICS).read_text().splitlines())
    found = run_columns.coverage(path / METRICS_COLUMNS, (path / METRICS).stat().st_size)
    assert found.rows == rows == 135 and found.jsonl_end == (path / METRICS).stat().st_size  # all covered
    by_columns, reader = read_state(path, columns=True)
    by_json, _ = read_state(path, columns=False, step_bytes=4096)
    assert len(by_columns.series[("train", "loss")]) == 130 and len(by_columns.series[("val", "acc")]) == 5
    assert math.isnan(by_columns.series[("train", "loss")].values[0])  # "nan" in the JSON, NaN in the columns
    assert by_columns.best[("val", "acc")] == pytest.approx(0.5 + 124 / 1000)
    assert by_columns.confusion["val"] == [[124, 1], [2, 124]]
    assert_same(by_columns, by_json)
    assert reader.tails[METRICS].offset == (path / METRICS).stat().st_size  # no JSON decoded beyond


def test_a_live_run_continues_in_json_after_the_columns(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, "r", flush_seconds=0)
    write_rows(writer, 0, 100)  # two blocks written, 20 rows (and the val rows) still only in the JSON
    writer.flush()
    state, reader = read_state(writer.path, columns=True)
    write_rows(writer, 100, 50)
    writer.flush()
    state.apply(reader.poll())
    writer.close()
    assert reader.poll() is None  # the last block adds nothing new to a reader that is past it
    by_json, _ = read_state(writer.path, columns=False)
    assert len(state.series[("train", "loss")]) == 150
    assert_same(state, by_json)


def test_a_block_cut_short_is_skipped_and_repaired_on_resume(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, "r", flush_seconds=0)
    write_rows(writer, 0, 100)
    writer.close()
    sidecar = writer.path / METRICS_COLUMNS
    whole = sidecar.read_bytes()
    sidecar.write_bytes(whole[: len(whole) - 100])  # killed while writing the last block
    size = (writer.path / METRICS).stat().st_size
    assert run_columns.coverage(sidecar, size).jsonl_end < size
    truth, _ = read_state(writer.path, columns=False)
    assert_same(read_state(writer.path, columns=True)[0], truth)  # the uncovered rows come from the JSON
    resumed = RunWriter.reopen(writer.path, flush_seconds=0)
    write_rows(resumed, 100, 1)  # the first row cuts the torn block off and covers the rows before it
    assert run_columns.coverage(sidecar, size).jsonl_end == size
    write_rows(resumed, 101, 29)
    resumed.close()
    assert_same(read_state(writer.path, columns=True)[0], read_state(writer.path, columns=False)[0])


def test_a_run_recorded_before_the_sidecar_reads_and_gains_one_when_resumed(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old)  # format 1: metrics.jsonl only
    info = json.loads((old / RUN_JSON).read_text())
    assert info["format"] == 1 and not (old / METRICS_COLUMNS).exists()
    as_recorded, reader = read_state(old, columns=True)
    assert reader.tails[METRICS].offset == (old / METRICS).stat().st_size and as_recorded.series
    resumed = RunWriter.reopen(old, flush_seconds=0)  # a resume: run.json updated, new rows written
    resumed.set_status("running")
    write_rows(resumed, 0, 3)
    resumed.close()
    assert json.loads((old / RUN_JSON).read_text())["format"] == FORMAT_VERSION
    covered = run_columns.coverage(old / METRICS_COLUMNS, (old / METRICS).stat().st_size)
    assert covered.jsonl_end == (old / METRICS).stat().st_size  # the recorded rows were folded too
    assert_same(read_state(old, columns=True)[0], read_state(old, columns=False)[0])


def test_a_sidecar_ahead_of_its_jsonl_is_not_believed(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, "r", flush_seconds=0)
    write_rows(writer, 0, 90)
    writer.close()
    metrics = writer.path / METRICS
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(b"".join(lines[:30]))  # the JSONL replaced by a shorter one
    state, _ = read_state(writer.path, columns=True)
    assert len(state.series[("train", "loss")]) == 30 - 1  # one val row among the first 30 lines


def test_a_real_training_run_records_columns_that_read_as_its_json(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from core.training.trainer import Trainer
    from support.training import tiny_cfg

    monkeypatch.setattr(run_columns, "BLOCK_ROWS", 3)
    trainer = Trainer(tiny_cfg(tmp_path, logging={"every_n_steps": 1, "progress": "none", "system": False,
                                                  "tensorboard": False}))
    trainer.fit()
    path = trainer.run.path
    assert json.loads((path / RUN_JSON).read_text())["format"] == FORMAT_VERSION
    size = (path / METRICS).stat().st_size
    assert run_columns.coverage(path / METRICS_COLUMNS, size).jsonl_end == size
    by_columns, _ = read_state(path, columns=True)
    assert len(by_columns.series[("train", "loss")]) == trainer.global_step  # a train row every step
    assert_same(by_columns, read_state(path, columns=False)[0])
