"""The run-directory contract: writer, incremental reader, resolution of run names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import RunError
from core.runs import (
    EVENTS,
    FORMAT_VERSION,
    METRICS,
    RUN_JSON,
    JsonlTail,
    RunReader,
    RunWriter,
    iter_runs,
    live_status,
    resolve_run,
)


def test_create_never_overwrites(tmp_path: Path) -> None:
    a = RunWriter.create(tmp_path, "exp")
    b = RunWriter.create(tmp_path, "exp")
    c = RunWriter.create(tmp_path, "exp")
    assert [a.path.name, b.path.name, c.path.name] == ["exp", "exp-2", "exp-3"]
    assert json.loads((b.path / RUN_JSON).read_text())["name"] == "exp-2"
    for sub in ("control", "checkpoints"):
        assert (a.path / sub).is_dir()


def test_status_transitions_are_atomic_json(tmp_path: Path) -> None:
    w = RunWriter.create(tmp_path, "exp", model="simple_cnn")
    info = json.loads((w.path / RUN_JSON).read_text())
    assert info["status"] == "created" and info["format"] == FORMAT_VERSION == 2 and info["model"] == "simple_cnn"
    w.set_status("running")
    info = json.loads((w.path / RUN_JSON).read_text())
    assert info["status"] == "running" and info["started"] and info["ended"] is None
    w.set_status("finished", best={"metric": "val/acc", "value": 0.9})
    info = json.loads((w.path / RUN_JSON).read_text())
    assert info["status"] == "finished" and info["ended"] >= info["started"]
    assert not [p for p in w.path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError):
        w.set_status("exploded")


def test_jsonl_flushes_on_budget_and_close(tmp_path: Path) -> None:
    w = RunWriter.create(tmp_path, "exp", flush_seconds=3600)
    w.log_metrics(1, 0, "train", {"loss": 1.5, "acc": float("nan")})
    assert (w.path / METRICS).read_text() == ""  # buffered: budget not yet spent
    w.flush()
    row = json.loads((w.path / METRICS).read_text())
    assert row["loss"] == 1.5 and row["acc"] == "nan" and row["split"] == "train"
    w.log_event("checkpoint", "saved last.pt", path="checkpoints/last.pt")
    w.close()
    assert json.loads((w.path / EVENTS).read_text())["kind"] == "checkpoint"


def test_tail_keeps_partial_line_and_counts_garbage(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    tail = JsonlTail(path)
    assert tail.poll() == []  # missing file is fine
    with open(path, "w") as fh:
        fh.write('{"a": 1}\nnot json\n[1, 2]\n{"a": 2}\n{"a": ')
    assert [r["a"] for r in tail.poll()] == [1, 2]
    assert tail.bad_lines == 2
    assert tail.poll() == []
    with open(path, "a") as fh:
        fh.write('3}\n')
    assert tail.poll() == [{"a": 3}]
    path.write_text('{"a": 9}\n')  # replaced by a shorter file: read again from the start
    assert tail.poll() == [{"a": 9}]


def test_tail_reads_in_small_pieces_like_line_by_line(tmp_path: Path) -> None:
    # Pieces far smaller than the lines: every line crosses a piece boundary; blank and whitespace
    # lines are skipped silently, garbage and non-objects are counted, in every piece size.
    lines = ['{"a": %d, "pad": "%s"}' % (i, "x" * (i % 37)) for i in range(200)]
    lines[17] = ""
    lines[40] = "   "
    lines[41] = "not json"
    lines[90] = "[1, 2]"
    lines[91] = '"a string"'
    lines[150] = '{"a": 150, "broken": '
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n" + '{"a": 999', encoding="utf-8")
    expected = [json.loads(line)["a"] for i, line in enumerate(lines) if i not in (17, 40, 41, 90, 91, 150)]
    for piece in (1, 7, 64, 1 << 20):
        tail = JsonlTail(path, chunk_size=piece)
        assert [r["a"] for r in tail.poll()] == expected
        assert tail.bad_lines == 4 and tail.lines_read == len(expected)
        assert tail.offset == path.stat().st_size  # the partial last line is kept, not lost
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("}\n")
        assert tail.poll() == [{"a": 999}]
        path.write_text("\n".join(lines) + "\n" + '{"a": 999', encoding="utf-8")


WRITER = textwrap.dedent(
    """
    import os, random, sys, time, json
    path, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(0)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    pending = b""
    for i in range(n):
        pending += (json.dumps({"i": i, "pad": "x" * rng.randint(0, 300)}) + "\\n").encode()
        # write in arbitrary pieces so lines are split across writes
        while len(pending) > 0 and rng.random() < 0.7:
            cut = rng.randint(1, len(pending))
            os.write(fd, pending[:cut])
            pending = pending[cut:]
            if rng.random() < 0.05:
                time.sleep(0.001)
    os.write(fd, pending)
    os.close(fd)
    """
)


def test_reader_sees_every_line_once_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    n = 20000
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)])
    tail = JsonlTail(path)
    seen: list[int] = []
    polls = 0
    while True:
        done = proc.poll() is not None
        for row in tail.poll(max_bytes=1 << 16):
            seen.append(row["i"])
        polls += 1
        if done and tail.offset >= path.stat().st_size:
            break
    for row in tail.poll():
        seen.append(row["i"])
    assert proc.returncode == 0
    assert seen == list(range(n))
    assert tail.bad_lines == 0
    assert polls > 1


def test_run_reader_and_resolution(tmp_path: Path) -> None:
    w = RunWriter.create(tmp_path, "exp", flush_seconds=0)
    w.set_status("running")
    w.log_metrics(10, 0, "train", {"loss": 2.0})
    w.write_json("model.json", {"name": "simple_cnn", "modules": []})
    reader = RunReader(resolve_run("exp", tmp_path))
    new = reader.poll()
    assert new.metrics[0]["loss"] == 2.0 and new.metric_columns is None  # no block of rows written yet
    assert new.info["status"] == "running" and reader.info["status"] == "running"
    assert new.model["name"] == "simple_cnn" and reader.model["name"] == "simple_cnn"
    assert live_status(reader.info) == "running"  # our own pid is alive
    assert reader.poll() is None  # nothing new
    w.log_metrics(20, 0, "train", {"loss": 1.0})
    assert [r["step"] for r in reader.poll().metrics] == [20]
    assert [p.name for p, _ in iter_runs(tmp_path)] == ["exp"]
    with pytest.raises(RunError, match="did you mean|Did you mean"):
        resolve_run("exq", tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a run"):
        RunReader(tmp_path / "plain")


def test_dead_pid_reads_as_lost(tmp_path: Path) -> None:
    w = RunWriter.create(tmp_path, "exp")
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    w.update(status="running", pid=int(proc.stdout))
    assert live_status(json.loads((w.path / RUN_JSON).read_text())) == "lost"


def test_buffered_line_is_flushed_once_due_without_another_write(tmp_path: Path) -> None:
    w = RunWriter.create(tmp_path, "exp", flush_seconds=0.05)
    w.log_metrics(1, 0, "train", {"loss": 1.0})
    w.log_metrics(2, 0, "train", {"loss": 0.9})  # the first write may flush; this one is queued
    w.flush_if_due()
    time.sleep(0.06)
    w.flush_if_due()
    rows = [json.loads(line) for line in (w.path / METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_the_one_status_to_exit_code_table() -> None:
    import signal

    from core.runs import ACTIVE_STATUSES, STATUSES, RunStatus

    assert {s.value: s.exit_code for s in RunStatus} == {
        "created": None, "running": None, "finished": 0, "failed": 1, "interrupted": 130, "stopped": 0, "pruned": 0}
    assert STATUSES == tuple(s.value for s in RunStatus) and ACTIVE_STATUSES == ("created", "running")
    assert RunStatus.exit_code_of("interrupted", signal.SIGTERM) == 143
    assert RunStatus.exit_code_of("interrupted", signal.SIGINT) == RunStatus.exit_code_of("interrupted") == 130
    assert RunStatus.exit_code_of("running") == RunStatus.exit_code_of("lost") == RunStatus.exit_code_of(None) == 1
    assert RunStatus("stopped") == "stopped"  # a str: compares with run.json's text
