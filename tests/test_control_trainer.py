"""The trainer side of the control channel on real in-process runs (the trainer in a thread).

Commands queued before `fit` are applied at the first epoch start, so a test can pause a run
before its first step and then steer it step by step.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from core import control
from core.runs import CONTROL_DIR, RunWriter, atomic_write_text
from core.training.callback import Callback
from core.training.callbacks import ControlCallback, default_callbacks
from core.training.checkpoint import load_file
from core.training.trainer import Trainer
from support.training import tiny_cfg


class Background:
    """Runs ``trainer.fit`` in a thread and re-raises its exception on :meth:`join`."""

    def __init__(self, trainer: Trainer, resume_from: Path | None = None) -> None:
        self.trainer = trainer
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(resume_from,), daemon=True)
        self.thread.start()

    def _run(self, resume_from: Path | None) -> None:
        try:
            self.trainer.fit(resume_from)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def join(self, timeout: float = 60) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the trainer did not finish"
        if self.error is not None:
            raise self.error


def new_run(tmp_path: Path, name: str) -> Path:
    return RunWriter.create(tmp_path, name).path


def ask(run: Path, command: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send a command and return the trainer's answer."""
    tail = control.answers_tail(run)
    cmd = control.send(run, command, args)
    answer = control.wait_for_answer(tail, cmd.id, timeout=30)
    assert answer is not None, f"no answer to {command}"
    return answer


def raw_command(run: Path, name: str, text: str, *, age: float = 0.0) -> None:
    """A command file as a careless client might write it (bypassing the client-side checks)."""
    path = run / CONTROL_DIR / f"{time.time_ns():020d}-{name}.json"
    atomic_write_text(path, text)
    if age:
        os.utime(path, (time.time() - age, time.time() - age))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_validate_while_paused_and_bad_commands_leave_the_run_unharmed(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2}, finetune={"freeze": ["stage1"], "bn": "freeze"},
                   logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": False})
    run = new_run(tmp_path, "bad")
    control.send(run, "pause")  # applied at the first epoch start, before any step
    trainer = Trainer(cfg, run_dir=run)
    bg = Background(trainer)
    try:
        _wait(lambda: (json.loads((run / "run.json").read_text())).get("paused") is True)
        assert trainer.global_step == 0
        answer = ask(run, "validate")
        assert answer["status"] == "ok" and answer["step"] == 0 and "validated at step 0" in answer["message"]
        val_rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "val"]
        assert len(val_rows) == 1 and val_rows[0]["step"] == 0 and 0.0 <= val_rows[0]["acc"] <= 1.0
        assert trainer.callback_metrics["val/acc"] == val_rows[0]["acc"]
        model = trainer.model
        assert model.training and not model.stage1[1].training and model.stage2[1].training  # bn: freeze holds

        raw_command(run, "unknown", json.dumps({"id": "u1", "command": "explode", "args": {}}))
        raw_command(run, "nomatch", json.dumps({"id": "u2", "command": "freeze", "args": {"pattern": "stage9"}}))
        raw_command(run, "neglr", json.dumps({"id": "u3", "command": "set-lr", "args": {"group": "head", "lr": -1}}))
        raw_command(run, "listargs", json.dumps({"id": "u4", "command": "freeze", "args": ["stage2"]}))
        raw_command(run, "huge", json.dumps({"id": "u5", "command": "set-lr", "args": {"group": "head", "lr": 50}}))
        raw_command(run, "garbage", "{half a comm", age=5)
        answer = ask(run, "resume")
        assert answer["status"] == "ok"
        bg.join()
    finally:
        if bg.thread.is_alive():
            control.send(run, "stop")
    assert trainer.status == "finished" and trainer.global_step == trainer.total_steps
    events = read_jsonl(run / "events.jsonl")
    refusals = {e["id"]: e["message"] for e in events if e["kind"] == "control" and e["status"] == "error"}
    assert "unknown command 'explode'" in refusals["u1"]
    assert "'stage9' matches no module" in refusals["u2"] and "stage2" in refusals["u2"]  # lists real modules
    assert "lr must be a finite number > 0" in refusals["u3"]
    assert "'args' must be an object" in refusals["u4"]
    assert refusals["u5"] == ("lr 50 is 5,000x the run's largest base learning rate (0.01); more than 10x usually "
                              "makes the loss diverge; send it with --force if you mean it.")
    assert next(e for e in events if e.get("id") == "u5")["needs_force"] is True
    garbage = next(m for i, m in refusals.items() if i.endswith("-garbage"))
    assert "is not valid JSON" in garbage and "moved to control/rejected/" in garbage
    assert [p.name.endswith("-garbage.json") for p in (run / "control" / "rejected").iterdir()] == [True]
    assert len(refusals) == 6
    assert trainer.finetuner.frozen_modules() == ["stage1"]  # nothing else frozen by the bad commands
    assert {g["base_lr"] for g in trainer.finetuner.groups_summary()} == {0.01}


def test_a_control_made_freeze_survives_resume(tmp_path: Path) -> None:
    quiet = {"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False, "layer_stats": False}
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 3, "max_steps": 4}, logging=quiet)
    run = new_run(tmp_path, "again")
    control.send(run, "freeze", {"pattern": "stage2"})
    control.send(run, "set-lr", {"group": "head", "lr": 0.003})
    first = Trainer(cfg, run_dir=run)
    first.fit()
    assert first.status == "finished" and first.global_step == 4
    saved = load_file(run / "checkpoints" / "last.pt")
    assert saved["finetune"]["frozen"] == ["stage2"]

    more = tiny_cfg(tmp_path, trainer={"epochs": 3, "max_steps": 9}, logging=quiet)
    second = Trainer(more, run_dir=run)
    second.fit(resume_from=run / "checkpoints" / "last.pt")
    assert second.global_step == 9
    assert second.finetuner.frozen_modules() == ["stage2"]
    head = next(g for g in second.optimizer.param_groups if g["name"] == "head")
    assert head["base_lr"] == 0.003
    final = load_file(run / "checkpoints" / "last.pt")
    for name, value in saved["model"].items():
        if name.startswith("stage2.") and "running" not in name and "num_batches" not in name:
            assert torch.equal(value, final["model"][name]), name  # frozen through the resume
    assert not torch.equal(saved["model"]["head.weight"], final["model"]["head.weight"])
    tree = json.loads((run / "model.json").read_text())
    assert next(m for m in tree["modules"] if m["path"] == "stage2")["frozen"] is True


class WriteCommandAt(Callback):
    """Writes a command file at the end of a given batch (from inside the loop, so timing is exact)."""

    def __init__(self, batch_idx: int, command: str, args: dict[str, Any]) -> None:
        self.batch_idx, self.command, self.args = batch_idx, command, args

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.epoch == 0 and batch_idx == self.batch_idx:
            control.send(trainer.run.path, self.command, self.args)


def test_commands_wait_for_the_optimizer_step_under_gradient_accumulation(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 1, "accumulate_grad_batches": 3},
                   logging={"every_n_steps": 1, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": False})
    run = new_run(tmp_path, "accum")
    callbacks = [cb for cb in default_callbacks(cfg) if not isinstance(cb, ControlCallback)]
    # the writer runs before the control callback in each batch; no time budget, so only the
    # step rule decides when the command is applied
    callbacks += [WriteCommandAt(0, "freeze", {"pattern": "head"}), ControlCallback(poll_seconds=0.0)]
    trainer = Trainer(cfg, run_dir=run, callbacks=callbacks, default_callbacks=False)
    trainer.fit()
    answer = next(e for e in read_jsonl(run / "events.jsonl") if e["kind"] == "control")
    # written after batch 0 of a 3-batch accumulation: applied after batch 2, at the first step
    assert answer["status"] == "ok" and answer["step"] == 1
    assert trainer.finetuner.frozen_modules() == ["head"]


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_stop_while_paused_at_an_epoch_start_trains_no_further_batch(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2},
                   logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": False})
    run = new_run(tmp_path, "held")
    control.send(run, "pause")  # applied in on_train_epoch_start of epoch 0
    trainer = Trainer(cfg, run_dir=run)
    bg = Background(trainer)
    try:
        _wait(lambda: (json.loads((run / "run.json").read_text())).get("paused") is True)
        assert ask(run, "stop")["status"] == "ok"
        bg.join()
    finally:
        if bg.thread.is_alive():
            control.send(run, "resume")
    assert trainer.status == "stopped" and trainer.global_step == 0 and trainer.exit_code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "stopped" and info["paused"] is False and info["step"] == 0
    saved = load_file(run / "checkpoints" / "last.pt")
    assert (saved["epoch"], saved["batch_idx"], saved["step"]) == (0, 0, 0)


class HoldsTheLoop(Callback):
    """Holds the loop for ``seconds`` after the optimizer step ``step`` and excludes that time, as a pause does."""

    def __init__(self, step: int, seconds: float) -> None:
        self.step, self.seconds = step, seconds

    def on_train_batch_end(self, trainer: Trainer, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and self.seconds:
            t0 = time.perf_counter()
            time.sleep(self.seconds)
            trainer.exclude_time(time.perf_counter() - t0)
            self.seconds = 0.0


def test_held_time_is_not_training_time_in_an_epoch_or_at_its_start(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 1},
                   logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": False})
    run = new_run(tmp_path, "clock")
    control.send(run, "pause")  # held at the first epoch start, where no training time runs yet
    trainer = Trainer(cfg, run_dir=run, callbacks=[HoldsTheLoop(step=2, seconds=0.6)])
    t0 = time.perf_counter()
    bg = Background(trainer)
    try:
        _wait(lambda: (json.loads((run / "run.json").read_text())).get("paused") is True)
        time.sleep(0.6)
        assert ask(run, "resume")["status"] == "ok"
        bg.join()
    finally:
        if bg.thread.is_alive():
            control.send(run, "stop")
    wall = time.perf_counter() - t0
    info = json.loads((run / "run.json").read_text())
    assert trainer.status == "finished" and info["train_seconds"] == round(trainer.train_seconds, 3)
    # neither the pause at the epoch start nor the 0.6 s held mid-epoch counts as training
    assert 0 < trainer.train_seconds <= wall - 1.2
    # what a viewer's ETA leaves out: the pause, from this session's start at step 0
    assert info["session_step"] == 0 and 0.6 <= info["paused_seconds"] <= wall
    assert info["paused"] is False and info["paused_since"] is None


def test_prune_ends_the_run_pruned_with_its_reason_and_last_pt(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 3},
                   logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": False})
    run = new_run(tmp_path, "hopeless")
    control.send(run, "pause")  # held at the first epoch start, so the prune lands mid-run
    trainer = Trainer(cfg, run_dir=run)
    bg = Background(trainer)
    try:
        _wait(lambda: (json.loads((run / "run.json").read_text())).get("paused") is True)
        answer = ask(run, "prune", {"reason": "pruned by sweep s: val/acc 0.1 after 1 epoch(s)"})
        assert answer["status"] == "ok" and "pruning" in answer["message"]
        bg.join()
    finally:
        if bg.thread.is_alive():
            control.send(run, "resume")
    assert trainer.status == "pruned" and trainer.exit_code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "pruned" and info["stop_reason"].startswith("pruned by sweep s")
    kinds = [json.loads(line)["kind"] for line in (run / "events.jsonl").read_text().splitlines()]
    assert kinds[-1] == "pruned" and (run / "checkpoints" / "last.pt").is_file()
    assert control.parse_cli_args("prune", ["--reason", "hopeless"]) == {"reason": "hopeless"}


def test_lr_events_have_one_writer_and_pause_events_one_meaning(tmp_path: Path) -> None:
    # a plateau that reduces after every validation (patience 0, a monitor that never improves), and a
    # set-lr command queued before the start: both recorded by the learning-rate monitor, alike
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2},
                   schedule={"name": "plateau", "patience": 0, "monitor": "val/loss", "mode": "max", "factor": 0.5},
                   logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": False})
    run = new_run(tmp_path, "lr")
    control.send(run, "set-lr", {"group": "head", "lr": 0.05})
    control.send(run, "pause")
    trainer = Trainer(cfg, run_dir=run)
    bg = Background(trainer)
    try:
        _wait(lambda: (json.loads((run / "run.json").read_text())).get("paused") is True)
        assert ask(run, "resume")["status"] == "ok"
        bg.join()
    finally:
        if bg.thread.is_alive():
            control.send(run, "stop")
    events = read_jsonl(run / "events.jsonl")
    lr = [e for e in events if e["kind"] == "lr"]
    assert all(set(e) >= {"groups", "factor"} for e in lr) and all("command_id" not in e for e in lr)
    head = [e for e in lr if any(g["name"] == "head" and g["base_lr"] == 0.05 for g in e["groups"])]
    assert head and head[0]["message"].startswith("learning rates:") and head[0]["factor"] == 1.0
    # every group is in the event's fields; the message names a no-decay twin only when its rate differs
    names = [g["name"] for g in head[0]["groups"]]
    assert "head/no_decay" in names and "head=0.05" in head[0]["message"]
    assert "no_decay" not in head[0]["message"], head[0]["message"]
    plateaus = [e for e in lr if e["message"].startswith("plateau")]
    assert [e["factor"] for e in plateaus] == [0.5]  # the first validation sets the best; the second reduces
    assert len(lr) == 1 + len(plateaus)  # the command's change written once, by the monitor
    kinds = [e["kind"] for e in events]
    assert "paused" in kinds and "unpaused" in kinds and "resumed" not in kinds  # resumed: from a checkpoint
