"""The logic of ftui's GPU paths, checked on the CPU (issue 23): a CPU GradScaler, fake device counts,
the switches torch keeps per process. What only a GPU can show is in tests/gpu/test_gpu_paths.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from core.errors import ConfigError
from core.training.callback import Callback
from core.training.trainer import Trainer
from support.training import params_of, tiny_cfg


class PoisonBatch(Callback):
    """A NaN in the input of the batches at ``indices`` of every epoch (a corrupt sample)."""

    def __init__(self, *indices: int) -> None:
        self.indices = set(indices)

    def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx in self.indices:
            batch[0][0, 0, 0, 0] = float("nan")  # on the CPU the trainer uses this very tensor


class CpuScaler(Callback):
    """Gives the trainer a real, enabled GradScaler on the CPU: the 16-mixed loop without a GPU."""

    def __init__(self) -> None:
        self.scales: list[float] = []

    def on_fit_start(self, trainer: Any) -> None:
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)

    def on_before_zero_grad(self, trainer: Any, optimizer: Any) -> None:
        self.scales.append(trainer.scaler.get_scale())


class Snapshots(Callback):
    """The weights after every optimizer step."""

    def __init__(self) -> None:
        self.after: list[dict[str, torch.Tensor]] = []

    def on_before_zero_grad(self, trainer: Any, optimizer: Any) -> None:
        self.after.append(params_of(trainer.model))  # buffers too: a skipped batch leaves BatchNorm alone


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# -- 1. float16 + GradScaler + skip mode --------------------------------------------------------


def test_skip_mode_with_a_grad_scaler_skips_the_step_instead_of_crashing(tmp_path: Path) -> None:
    # 6 batches an epoch; batch 1 is poisoned. Before: no backward ran for it, and GradScaler.step
    # failed with "No inf checks were recorded for this optimizer" (layer statistics' unscale_ too)
    scaler, snaps = CpuScaler(), Snapshots()
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2, "on_nonfinite": "skip"},
                   logging={"every_n_steps": 1, "progress": "none", "system": False, "tensorboard": False,
                            "layer_stats": True})
    trainer = Trainer(cfg, callbacks=[scaler, PoisonBatch(1), snaps])
    trainer.fit()
    assert trainer.status == "finished" and trainer.nonfinite_skipped == 2
    # GradScaler skipped the poisoned steps itself: the weights did not move there, and it halved its scale
    assert _same(snaps.after[0], snaps.after[1]) and not _same(snaps.after[1], snaps.after[2])
    assert scaler.scales[0] == 2.0**10 and scaler.scales[1] == 2.0**9
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(torch.isfinite(b).all() for b in trainer.model.buffers() if b.is_floating_point())
    assert math.isfinite(trainer.callback_metrics["val/loss"])


def test_skip_mode_with_accumulation_skips_the_whole_step(tmp_path: Path) -> None:
    # accumulate 2: batches 0+1 make step 1, 2+3 step 2; batch 2 is bad, so step 2 is skipped as a whole
    snaps = Snapshots()
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 1, "on_nonfinite": "skip", "accumulate_grad_batches": 2})
    trainer = Trainer(cfg, callbacks=[PoisonBatch(2), snaps], record=False)
    trainer.fit()
    assert trainer.global_step == 3 and trainer.nonfinite_skipped == 1
    weights = [{k: v for k, v in after.items() if k in dict(trainer.model.named_parameters())} for after in snaps.after]
    assert not _same(weights[0], weights[2])
    assert _same(weights[0], weights[1])  # nothing of batches 2 and 3 reached the weights
    # batch 3's own forward was finite: BatchNorm saw real data there (batch 2's forward left no trace)
    assert not _same(snaps.after[0], snaps.after[1])
    # and the finite batches trained bit for bit as without the guard
    plain = Trainer(tiny_cfg(tmp_path, "plain", trainer={"epochs": 1, "accumulate_grad_batches": 2, "max_steps": 1}),
                    record=False)
    plain.fit()
    assert _same(params_of(plain.model), snaps.after[0])


# -- 2. one visible GPU per rank --------------------------------------------------------------


def test_a_rank_that_sees_one_gpu_trains_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.training import distributed
    from core.training.distributed import DistEnv

    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: chosen.append(index))
    # SLURM --gpus-per-task=1: every rank's CUDA_VISIBLE_DEVICES names its own GPU, seen as device 0
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.device_for(torch.device("cuda"), DistEnv(rank=3, local_rank=3, world_size=4)) == torch.device("cuda", 0)
    assert chosen == [0]
    # several visible: the rank takes its LOCAL_RANK's, and one beyond them is refused
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert distributed.device_for(torch.device("cuda"), DistEnv(rank=5, local_rank=2, world_size=8)) == torch.device("cuda", 2)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="LOCAL_RANK 3 but only 2"):
        distributed.device_for(torch.device("cuda"), DistEnv(rank=3, local_rank=3, world_size=4))


# -- 5. trainer.deterministic means it, and a later Trainer starts clean ------------------------


class PutNet(torch.nn.Module):
    """A model whose training forward uses ``Tensor.put_``, which has no deterministic implementation."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.training:
            h = h + torch.zeros(4).put_(torch.tensor([0, 0]), torch.tensor([0.0, 0.0]))
        return self.head(h)


def test_deterministic_refuses_a_nondeterministic_op_and_is_reset_for_the_next_trainer(tmp_path: Path) -> None:
    from core.runs import read_json

    trainer = Trainer(tiny_cfg(tmp_path, "det", trainer={"epochs": 1, "deterministic": True}), model=PutNet())
    with pytest.raises(ConfigError) as info:
        trainer.fit()  # before: a warning, and a run that was not deterministic ended "finished"
    message = str(info.value)
    assert "trainer.deterministic: true" in message and "put_" in message and "deterministic: warn" in message
    assert read_json(trainer.run.path / "run.json")["status"] == "failed" and trainer.exit_code != 0
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    # the same process, a Trainer that did not ask for it: nothing of the first survives
    Trainer(tiny_cfg(tmp_path, "free", trainer={"epochs": 1, "max_steps": 1}), model=PutNet(), record=False).fit()
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_deterministic_warn_goes_on_and_records_each_nondeterministic_op(tmp_path: Path) -> None:
    import json

    from core.runs import read_json

    trainer = Trainer(tiny_cfg(tmp_path, "warn", trainer={"epochs": 1, "deterministic": "warn"}), model=PutNet())
    with pytest.warns(UserWarning, match="put_"):  # torch's own warning is still shown
        trainer.fit()
    assert trainer.status == "finished" and trainer.nondeterministic_ops == ["put_"]
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    info = read_json(trainer.run.path / "run.json")
    assert info["nondeterministic_ops"] == ["put_"]
    events = [json.loads(line) for line in (trainer.run.path / "events.jsonl").read_text().splitlines()]
    recorded = [e for e in events if e["kind"] == "warning" and e.get("op") == "put_"]
    assert len(recorded) == 1 and "does not repeat exactly" in recorded[0]["message"]


# -- 11 and 14: TF32 and the defaults on CUDA, decided for a device -----------------------------


def test_gpu_defaults_and_tf32_are_decided_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import TrainerConfig
    from core.training import runtime

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    auto = TrainerConfig()
    monkeypatch.setattr(runtime, "bf16_hardware", lambda device: device.type == "cuda")  # an Ampere-class GPU
    plan = runtime.plan_runtime(auto, cuda, image=True)
    assert (plan.precision, plan.channels_last, plan.tf32) == ("bf16-mixed", True, True)
    assert plan.describe() == "bf16-mixed (auto), channels_last (auto)"
    assert runtime.plan_runtime(auto, cuda, image=False).channels_last is False  # NHWC is for images
    assert runtime.plan_runtime(auto, cpu, image=True).describe() == "32"
    monkeypatch.setattr(runtime, "bf16_hardware", lambda device: False)  # a V100 or T4: float32 (TF32 off there)
    explicit = TrainerConfig(precision="32", channels_last=False)
    assert runtime.plan_runtime(auto, cuda, image=True).describe() == "32 (auto), channels_last (auto), TF32"
    assert runtime.plan_runtime(explicit, cuda, image=True).describe() == "32, TF32"
    try:
        runtime.configure_backends(False, True, tf32=True, device=cuda)
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        runtime.configure_backends(False, True, tf32=False, device=cuda)
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
        runtime.configure_backends(False, True, tf32=True, device=cuda)
        runtime.configure_backends(False, True, tf32=True, device=cpu)  # a later CPU run: full float32 again
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        runtime.configure_backends(False, True, device=cpu)


def test_the_first_line_of_a_run_says_how_it_computes(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from core.training.callbacks.progress import ProgressCallback

    out = io.StringIO()
    progress = ProgressCallback("plain", Console(file=out, width=200))
    Trainer(tiny_cfg(tmp_path, trainer={"epochs": 1, "max_steps": 1}), callbacks=[progress], record=False).fit()
    # setup phases come first; the start line is the one that says what trains on what
    started = next(line for line in out.getvalue().splitlines() if " epochs x " in line)
    assert ", cpu (32), 1 epochs x 6 batches" in started, out.getvalue()


# -- 13. data workers per process share the node's cores --------------------------------------


def test_auto_workers_are_shared_among_the_ranks_of_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data.loader import resolve_num_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_num_workers("auto") == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun's, one process per GPU
    assert resolve_num_workers("auto") == 3  # (32 - 8) // 8; before: 8 each, 64 workers on 32 cores
    assert resolve_num_workers("auto", local_world_size=2) == 8 and resolve_num_workers(5) == 5
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert resolve_num_workers("auto", local_world_size=1) == 0


# -- 12. the control channel under DDP: a flag only when there is a command ---------------------


def test_rank_zero_asks_the_ranks_to_poll_only_when_a_command_waits(tmp_path: Path) -> None:
    from core import control
    from core.runs import CONTROL_DIR
    from core.training.callbacks.control import ControlCallback

    class Run:
        path = tmp_path

    class Strategy:
        distributed = True

    class FakeTrainer:  # what ControlCallback.setup reads
        run, strategy, is_global_zero = Run(), Strategy(), True

    callback = ControlCallback(poll_seconds=0.0)
    callback.setup(FakeTrainer(), "fit")
    assert (tmp_path / CONTROL_DIR).is_dir()
    assert [callback.poll_due(FakeTrainer()) for _ in range(3)] == [False] * 3  # before: True at every step
    control.send(tmp_path, "pause")
    assert callback.poll_due(FakeTrainer())
    slow = ControlCallback(poll_seconds=3600)
    slow.setup(FakeTrainer(), "fit")
    assert slow.poll_due(FakeTrainer()) and not slow.poll_due(FakeTrainer())  # looked at most every poll_seconds


# -- 10. torch.compile: training and evaluation apart, every recompilation an event ---------------


class FreezeAt(Callback):
    """Freezes ``pattern`` after optimizer step ``step``, as the control channel's freeze does."""

    def __init__(self, step: int, pattern: str) -> None:
        self.step, self.pattern = step, pattern
        self.frozen: dict[str, torch.Tensor] | None = None

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and self.frozen is None:
            modules = trainer.finetuner.freeze(self.pattern, keep_trainable=True)
            trainer.finetune_changed({"kind": "freeze", "message": f"froze {self.pattern}", "modules": modules})
            self.frozen = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if k.startswith(self.pattern)}


def test_compile_keeps_evaluation_apart_and_records_each_recompilation(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from core.training import compile as compiling

    monkeypatch.setitem(compiling.COMPILE_OPTIONS, "backend", "eager")  # dynamo's guards, no code generation
    freeze = FreezeAt(3, "stage1")
    # 21 validation samples in batches of 16: a partial last batch, which must not make shapes dynamic
    cfg = tiny_cfg(tmp_path, trainer={"epochs": 2, "compile": True},
                   data={"shapes": {"image_size": 16, "train_size": 96, "val_size": 21, "test_size": 8,
                                    "classes": ["circle", "square", "triangle"], "difficulty": 0.2}})
    trainer = Trainer(cfg, callbacks=[freeze])
    trainer.fit()
    assert trainer.status == "finished"
    assert trainer.train_model is not trainer.eval_model
    assert type(trainer.eval_model._orig_mod).__name__ == "Evaluating"
    events = [json.loads(line) for line in (trainer.run.path / "events.jsonl").read_text().splitlines()]
    compiles = [e for e in events if e["kind"] == "compile"]
    first = [(e["phase"], e["recompile"]) for e in compiles if not e["recompile"]]
    assert first == [("training", False), ("evaluation", False)]  # two code objects, two caches
    frames = {e["phase"]: e["compile_id"].split("/")[0] for e in compiles if not e["recompile"]}
    assert frames["training"] != frames["evaluation"]
    after_freeze = [e for e in compiles if e["recompile"] and e["phase"] == "training"]
    # the first step after the freeze (the event is written at the end of the batch that recompiled)
    assert after_freeze and after_freeze[0]["step"] == 4 and "requires_grad" in after_freeze[0]["reason"]
    assert "recompiled training" in after_freeze[0]["message"]
    val_shapes = [e for e in compiles if e["recompile"] and e["phase"] == "evaluation" and "size mismatch" in e["reason"]]
    assert len(val_shapes) == 1  # the partial batch: one static graph more, not dynamic shapes
    assert not [e for e in events if e["kind"] == "warning" and "recompile limit" in e["message"]]
    # and the live freeze under compile held: what was frozen did not move
    assert freeze.frozen and all(torch.equal(v, dict(trainer.model.named_parameters())[k]) for k, v in freeze.frozen.items())


def test_the_app_marks_recompilations_and_shows_compile_events() -> None:
    from tui.markers import event_kind, legend, markers
    from tui.widgets.event_log import event_line

    events = [{"kind": "compile", "recompile": False, "step": 1, "message": "compiled training (0/0) in 9.1 s"},
              {"kind": "compile", "recompile": True, "step": 40,
               "message": "recompiled training (0/1) in 2.0 s because tensor ... requires_grad mismatch"},
              {"kind": "freeze", "step": 40}]
    assert [event_kind(e) for e in events] == [None, "compile", "freeze"]  # the first compilation is the start
    found = markers(events, "step", {})
    assert [(m.x, m.letters, m.line) for m in found] == [(40.0, "FK", True)]
    assert legend(found) == "F freeze · K recompiled"
    line = event_line(events[1], None)
    assert "compile" in line.plain and "requires_grad mismatch" in line.plain
    assert any("magenta" in str(span.style) for span in line.spans)
