"""ftui's CUDA paths on a real GPU (issue 23): what only a GPU can show.

Skipped where CUDA is missing; ``benchmarks/gpu_proof.py`` runs this module on a lent GPU and puts
its results in one JSON. With ``FTUI_GPU_DRY_RUN=1`` (``gpu_proof.py --cpu-dry-run``, run in CI) the
tests run on the CPU wherever their logic allows, with the CUDA-only checks skipped, so the module
itself is known to work before a GPU ever sees it.

On the GPU each test checks what the CPU cannot: bf16 autocast, channels_last batches normalised on
the device after a side-stream copy, fused optimizers, TF32; float16 with GradScaler skipping a bad
step, and no host synchronisation inside training or evaluation steps (``torch.cuda``'s sync debug
mode raises on any); torch.compile with inductor and a live freeze; bitwise-exact resume on the
GPU, and resume on the CPU of a GPU checkpoint; deterministic runs; NVML figures in system.jsonl.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from core.config import config_from_dict
from core.training.callback import Callback
from core.training.trainer import Trainer

DRY = os.environ.get("FTUI_GPU_DRY_RUN") == "1"
DEVICE = "cuda" if torch.cuda.is_available() else ("cpu" if DRY else None)
pytestmark = pytest.mark.skipif(DEVICE is None, reason="needs a CUDA GPU (benchmarks/gpu_proof.py runs it on one)")
needs_cuda = pytest.mark.skipif(DEVICE != "cuda", reason="CUDA only (the CPU dry run checks the rest)")


def config(root: Path, name: str, **sections: dict[str, Any]):
    raw: dict[str, Any] = {
        "run": {"name": name, "root": str(root), "seed": 3},
        # workers and pinned memory on the GPU; the dry run keeps to the main process (CI's two cores)
        "data": {"source": "shapes", "batch_size": 32, "num_workers": 0 if DRY else 2,
                 "shapes": {"image_size": 32, "train_size": 256, "val_size": 72, "test_size": 0,
                            "classes": ["circle", "square", "triangle", "cross"], "difficulty": 0.3},
                 "augment": {"hflip": 0.5, "random_erasing": {"p": 0.3}}},
        "model": {"name": "simple_cnn", "channels": [16, 32], "dropout": 0.1},
        "optim": {"name": "adamw", "lr": 3e-3},
        "schedule": {"name": "none"},
        "trainer": {"epochs": 2, "device": DEVICE},
        "logging": {"every_n_steps": 4, "progress": "none", "system": False, "tensorboard": False},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def events(trainer: Trainer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (trainer.run.path / "events.jsonl").read_text().splitlines()]


class Probe(Callback):
    """What the model receives and computes in training: the input's device, dtype and layout, and the
    dtype of the first convolution's output (bf16 under bf16 autocast)."""

    def __init__(self) -> None:
        self.inputs: list[tuple[str, torch.dtype, bool]] = []
        self.conv_dtypes: list[torch.dtype] = []

    def on_fit_start(self, trainer: Any) -> None:
        model = trainer.model

        def seen(module: Any, args: tuple[Any, ...]) -> None:
            if module.training:
                x = args[0]
                self.inputs.append((x.device.type, x.dtype, x.is_contiguous(memory_format=torch.channels_last)))

        model.register_forward_pre_hook(seen)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, a, out: self.conv_dtypes.append(out.dtype) if m.training else None)


# -- bf16, channels_last, the device pipeline, fused optimizers, TF32: the GPU defaults ----------


def test_defaults_on_a_gpu_train_in_bf16_channels_last_from_the_device_pipeline(tmp_path: Path) -> None:
    from rich.console import Console

    from core.training.callbacks.progress import ProgressCallback

    trainer_cfg = {} if DEVICE == "cuda" else {"precision": "bf16-mixed", "channels_last": True}  # CPU: asked for
    out = io.StringIO()
    probe = Probe()
    trainer = Trainer(config(tmp_path, "defaults", trainer=trainer_cfg),
                      callbacks=[probe, ProgressCallback("plain", Console(file=out, width=220))])
    trainer.fit()
    assert trainer.status == "finished"
    assert trainer.precision == "bf16-mixed" and trainer.runtime.channels_last
    assert set(probe.inputs) == {(DEVICE, torch.float32, True)}  # normalised on the device, NHWC
    assert set(probe.conv_dtypes) == {torch.bfloat16}
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    # the run names its setup phases first; the start line says what trains on what
    started = next(line for line in out.getvalue().splitlines() if " epochs x " in line)
    if DEVICE == "cuda":
        assert "(bf16-mixed (auto), channels_last (auto))" in started, started
        assert trainer.optimizer.defaults.get("fused") is True
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        assert type(iter(trainer.val_loader)).__name__ == "CudaPrefetcher"
        assert trainer.train_loader.loader.pin_memory
        trainer.val_loader.close()
    assert 0.0 <= trainer.callback_metrics["val/acc"] <= 1.0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@needs_cuda
def test_prefetched_gpu_batches_equal_the_cpu_pipeline_bit_for_bit() -> None:
    from core.data import build_data, build_loader

    cfg = config(Path("/tmp"), "pipe").data
    data = build_data(cfg, 3)
    device = torch.device("cuda", torch.cuda.current_device())
    gpu = build_loader(data.train, cfg, split="train", seed=3, device=device, channels_last=True)
    cpu = build_loader(data.train, cfg, split="train", seed=3)
    gpu.set_epoch(1)
    cpu.set_epoch(1)
    iterator = iter(gpu)
    assert type(iterator).__name__ == "CudaPrefetcher" and iterator.stream != torch.cuda.current_stream()
    pairs = list(zip(iterator, cpu))
    assert len(pairs) == len(cpu) == 8
    for (xg, yg), (xc, yc) in pairs:
        assert xg.is_cuda and xg.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)
    raw = next(iter(gpu.loader))[0]
    assert raw.dtype == torch.uint8 and raw.is_pinned()  # a quarter of float32's bytes, pinned for async copies
    gpu.close()
    cpu.close()


# -- float16 + GradScaler + skip mode, and no host sync in a step --------------------------------


class PoisonBatch(Callback):
    def __init__(self, index: int) -> None:
        self.index = index

    def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
        if trainer.epoch == 0 and batch_idx == self.index:
            batch[0][0, 0, 0, 0] = float("nan")  # the very tensor the trainer uses, on the device


class NoSyncWindows(Callback):
    """Raises (torch.cuda's sync debug mode) on any host synchronisation from the start of training batch
    ``start`` to the end of the epoch's last batch — the loop, the loader's prefetching of the next batch,
    the optimizer step, the callbacks — and in validation up to the last batch (whose figures are read)."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.checked_train = self.checked_val = 0
        self.scales: list[float] = []
        self.after: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer: Any, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.start:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if torch.cuda.get_sync_debug_mode():
            self.checked_train += 1
            if batch_idx == len(trainer.train_loader) - 1:
                torch.cuda.set_sync_debug_mode(0)  # the epoch's read-out syncs, as it should
        elif trainer.epoch == 0:  # before the window: the scale and the weights (both read to the host)
            self.scales.append(trainer.scaler.get_scale())
            self.after.append(weights(trainer.model))

    def on_validation_start(self, trainer: Any) -> None:
        torch.cuda.set_sync_debug_mode("error")

    def on_validation_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.checked_val += 1
        if batch_idx == len(trainer.val_loader) - 1:
            torch.cuda.set_sync_debug_mode(0)

    def teardown(self, trainer: Any, stage: str) -> None:
        torch.cuda.set_sync_debug_mode(0)


@needs_cuda
def test_float16_skips_a_bad_step_through_gradscaler_without_a_host_sync(tmp_path: Path) -> None:
    guard = NoSyncWindows(start=4)
    cfg = config(tmp_path, "fp16", trainer={"precision": "16-mixed", "on_nonfinite": "skip"},
                 logging={"every_n_steps": 1000, "layer_stats": False, "progress": "none", "system": False,
                          "tensorboard": False})
    trainer = Trainer(cfg, callbacks=[PoisonBatch(2), guard])
    trainer.fit()
    assert trainer.status == "finished" and trainer.nonfinite_skipped == 1
    assert trainer.optimizer.defaults.get("fused") is True  # GradScaler reads the inf check on the device
    # batch 2's step was skipped by GradScaler (weights unchanged) and its scale halved; the others trained
    assert guard.scales[2] == guard.scales[1] / 2
    assert all(torch.equal(guard.after[1][k], guard.after[2][k]) for k in guard.after[1])
    assert not all(torch.equal(guard.after[2][k], guard.after[3][k]) for k in guard.after[2])
    # training batches 4-7 of both epochs and every validation batch ran without one host sync
    assert guard.checked_train == 2 * 4 and guard.checked_val == 2 * 3


# -- torch.compile (inductor) with a live freeze ------------------------------------------------


class FreezeAt(Callback):
    def __init__(self, step: int, pattern: str) -> None:
        self.step, self.pattern, self.frozen = step, pattern, None

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step and self.frozen is None:
            modules = trainer.finetuner.freeze(self.pattern, keep_trainable=True)
            trainer.finetune_changed({"kind": "freeze", "message": f"froze {self.pattern}", "modules": modules})
            self.frozen = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if k.startswith(self.pattern)}


def test_compiled_training_survives_a_live_freeze_and_says_it_recompiled(tmp_path: Path, monkeypatch) -> None:
    from core.training import compile as compiling

    if DEVICE != "cuda":
        monkeypatch.setitem(compiling.COMPILE_OPTIONS, "backend", "eager")  # the dry run: dynamo without codegen
    freeze = FreezeAt(5, "stage1")
    trainer = Trainer(config(tmp_path, "compiled", trainer={"compile": True, "epochs": 1}), callbacks=[freeze])
    trainer.fit()
    assert trainer.status == "finished" and trainer.train_model is not trainer.eval_model
    compiles = [e for e in events(trainer) if e["kind"] == "compile"]
    assert [(e["phase"], e["recompile"]) for e in compiles if not e["recompile"]] == [("training", False),
                                                                                    ("evaluation", False)]
    assert all(e["seconds"] > 0 for e in compiles)
    refrozen = [e for e in compiles if e["recompile"] and e["phase"] == "training"]
    assert refrozen and refrozen[0]["step"] == 6 and "requires_grad" in refrozen[0]["reason"]
    assert not [e for e in events(trainer) if e["kind"] == "warning" and "recompile limit" in e["message"]]
    now = dict(trainer.model.named_parameters())
    assert freeze.frozen and all(torch.equal(v, now[k]) for k, v in freeze.frozen.items())
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


# -- resume: bitwise on the GPU, and on the CPU from a GPU checkpoint ----------------------------


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            trainer.request_stop(f"test stop at step {self.step}")


def test_resume_is_exact_on_the_gpu_and_a_gpu_checkpoint_resumes_on_the_cpu(tmp_path: Path) -> None:
    from core.runs import read_json

    # an MLP with dropout: every CUDA op has a deterministic implementation, so runs repeat bit for bit
    sections = {"model": {"name": "mlp", "hidden": [64], "dropout": 0.3},
                "trainer": {"epochs": 3, "deterministic": True}}
    whole = Trainer(config(tmp_path, "whole", **sections))
    whole.fit()
    stopped = Trainer(config(tmp_path, "stopped", **sections), callbacks=[StopAt(11)])
    stopped.fit()  # mid-epoch 2: batch 3 of 8
    assert stopped.status == "stopped" and stopped.position == (1, 3)
    ckpt = tmp_path / "from-gpu.pt"  # kept: the resume below writes its own last.pt
    ckpt.write_bytes((stopped.run.path / "checkpoints" / "last.pt").read_bytes())
    resumed = Trainer(config(tmp_path, "stopped", **sections), run_dir=stopped.run.path)
    resumed.fit(resume_from=ckpt)
    assert resumed.global_step == whole.global_step == 24
    final, expected = weights(resumed.model), weights(whole.model)
    assert all(torch.equal(final[k], expected[k]) for k in expected)  # the CUDA RNG and data order came back
    assert read_json(stopped.run.path / "run.json")["status"] == "finished"

    # the GPU checkpoint (fused optimizer state, CUDA RNG, bf16 by default) continues on the CPU
    # (its dropout draws from the CPU generator there, so the weights part ways from the GPU's: not compared)
    gpu_ckpt = torch.load(ckpt, map_location="cpu", weights_only=True)
    cpu_sections = {**sections, "trainer": {**sections["trainer"], "device": "cpu"}}
    on_cpu = Trainer(config(tmp_path / "cpu", "oncpu", **cpu_sections))
    on_cpu.fit(resume_from=ckpt)
    assert on_cpu.device.type == "cpu" and on_cpu.global_step == 24 and on_cpu.status == "finished"
    resumed_at = [e for e in events(on_cpu) if e["kind"] == "resumed"][-1]
    assert (resumed_at["epoch"], resumed_at["batch"], resumed_at["step"]) == (1, 3, 11)
    state = on_cpu.optimizer.state_dict()["state"]
    assert state and all(t.device.type == "cpu" for s in state.values() for t in s.values() if torch.is_tensor(t))
    assert all(torch.isfinite(p).all() for p in on_cpu.model.parameters())
    moved = weights(on_cpu.model)
    assert any(not torch.equal(moved[k], gpu_ckpt["model"][k].cpu()) for k in moved)  # it trained on from there


@needs_cuda
def test_deterministic_means_it_on_cuda(tmp_path: Path) -> None:
    """A convnet on CUDA: either two runs give the same weights bit for bit, or the run is refused naming
    the operation that has no deterministic implementation (and ``warn`` records it and goes on)."""
    from core.errors import ConfigError

    sections = {"trainer": {"epochs": 1, "max_steps": 3, "deterministic": True}}
    outcomes = []
    for name in ("det-a", "det-b"):
        trainer = Trainer(config(tmp_path, name, **sections))
        try:
            trainer.fit()
            outcomes.append(weights(trainer.model))
        except ConfigError as exc:
            outcomes.append(str(exc))
    if isinstance(outcomes[0], str):
        assert outcomes[0] == outcomes[1] and "no deterministic implementation on cuda" in outcomes[0]
        warned = Trainer(config(tmp_path, "det-warn", trainer={"epochs": 1, "max_steps": 3, "deterministic": "warn"}))
        warned.fit()
        assert warned.status == "finished" and warned.nondeterministic_ops
        assert warned.nondeterministic_ops[0] in outcomes[0]
        print(f"deterministic: true refused {warned.nondeterministic_ops}")
    else:
        assert all(torch.equal(outcomes[0][k], outcomes[1][k]) for k in outcomes[0])


# -- NVML figures --------------------------------------------------------------------------------


@needs_cuda
def test_telemetry_records_this_gpu_with_nvml_figures(tmp_path: Path) -> None:
    cfg = config(tmp_path, "nvml", trainer={"epochs": 6},
                 logging={"system": True, "system_interval": 0.2, "every_n_steps": 4, "progress": "none",
                          "tensorboard": False})
    trainer = Trainer(cfg)
    trainer.fit()
    rows = [json.loads(line) for line in (trainer.run.path / "system.jsonl").read_text().splitlines()]
    gpus = [g for row in rows for g in row.get("gpus") or []]
    assert gpus, rows[:2]
    index = torch.cuda.current_device()
    mine = [g for g in gpus if g.get("cuda_index") == index]
    assert mine and mine[-1]["name"] == torch.cuda.get_device_name(index)
    assert all(isinstance(g["util"], (int, float)) and 0 <= g["util"] <= 100 for g in mine)
    assert max(g["mem_used"] for g in mine) > 0 and max(g["torch_allocated"] for g in mine) > 0
    assert max(g["torch_peak"] for g in mine) >= max(g["torch_allocated"] for g in mine)


@needs_cuda
def test_a_rank_that_sees_one_gpu_trains_on_it() -> None:
    from core.training import distributed
    from core.training.distributed import DistEnv

    if torch.cuda.device_count() != 1:
        pytest.skip("this box shows several GPUs; the one-GPU-per-rank case is CUDA_VISIBLE_DEVICES=<one>")
    assert distributed.device_for(torch.device("cuda"), DistEnv(rank=3, local_rank=3, world_size=4)) == torch.device("cuda", 0)
