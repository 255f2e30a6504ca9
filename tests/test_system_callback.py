"""TelemetryCallback writes system.jsonl during a short real training loop (stand-in trainer object)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from core.config import config_from_dict
from core.runs import RunReader, RunWriter
from core.training.callbacks.telemetry import NO_GPU_MESSAGE, NO_NVML_MESSAGE, TelemetryCallback
from support.nvml_fakes import FakeNvml


def _stand_in(tmp_path: Path, workers: int = 0) -> SimpleNamespace:
    """What TelemetryCallback reads from the trainer: run, device, world_size, cfg and the train loader."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    cfg = config_from_dict({"data": {"num_workers": workers, "batch_size": 16}})
    data = TensorDataset(torch.randn(256, 8), torch.randint(0, 3, (256,)))
    return SimpleNamespace(
        run=RunWriter.create(tmp_path, "tele", flush_seconds=0.05),
        device=torch.device("cpu"),
        world_size=1,
        cfg=cfg,
        train_loader=DataLoader(data, batch_size=16, num_workers=workers),
    )


def _train(trainer: SimpleNamespace, seconds: float) -> float:
    """A real little training loop that lasts ``seconds``; returns the weight change."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    before = model[0].weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for x, y in trainer.train_loader:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return float((model[0].weight.detach() - before).abs().sum())


def test_callback_records_host_figures_during_training(tmp_path: Path) -> None:
    trainer = _stand_in(tmp_path)
    callback = TelemetryCallback(interval=0.05)
    callback.on_fit_start(trainer)
    assert callback.sampler is not None and callback.sampler.running
    changed = _train(trainer, 0.6)
    callback.on_fit_end(trainer)
    assert callback.sampler.running is False
    assert changed > 0  # it really trained
    trainer.run.close()

    lines = (trainer.run.path / "system.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) >= 5
    total = psutil.virtual_memory().total
    for rec in records:
        assert rec["mem_total"] == total and 0 < rec["mem_used"] <= total
        assert rec["proc_rss"] > 10 * 1024**2 and 0 <= rec["cpu_percent"] <= 100
        assert rec["workers"] == 0 and rec["gpus"] == []
    # The loop kept this process busy: its CPU figure shows it.
    assert max(r["proc_cpu_percent"] for r in records) > 20

    # The viewer side reads the same records, and the run says once that there is no GPU.
    delta = RunReader(trainer.run.path).poll()
    assert len(delta.system) == len(records)
    warnings = [e for e in delta.events if e["kind"] == "warning"]
    assert [w["message"] for w in warnings] == [NO_GPU_MESSAGE]
    assert warnings[0]["reason"]


def test_callback_stops_on_exception_and_teardown(tmp_path: Path) -> None:
    trainer = _stand_in(tmp_path)
    callback = TelemetryCallback(interval=0.02)
    callback.on_fit_start(trainer)
    time.sleep(0.1)
    callback.on_exception(trainer, RuntimeError("boom"))
    assert not callback.sampler.running
    size = (trainer.run.path / "system.jsonl").stat().st_size
    assert size > 0
    callback.teardown(trainer, "fit")  # a second stop is harmless
    time.sleep(0.1)
    assert (trainer.run.path / "system.jsonl").stat().st_size == size


def test_no_run_means_no_thread(tmp_path: Path) -> None:
    trainer = _stand_in(tmp_path)
    trainer.run = None
    callback = TelemetryCallback()
    callback.on_fit_start(trainer)
    assert callback.sampler is None
    callback.on_fit_end(trainer)


def test_cpu_run_on_a_gpu_box_records_no_gpu_and_no_warning(tmp_path: Path) -> None:
    trainer = _stand_in(tmp_path)
    callback = TelemetryCallback(interval=10.0, nvml_backend=FakeNvml())
    callback.on_fit_start(trainer)
    callback.on_fit_end(trainer)
    trainer.run.close()
    (record,) = [json.loads(x) for x in (trainer.run.path / "system.jsonl").read_text().splitlines()]
    assert record["gpus"] == []  # the run uses no GPU, so none is recorded
    assert not (trainer.run.path / "events.jsonl").exists()


def test_worker_count_comes_from_the_loader(tmp_path: Path) -> None:
    trainer = _stand_in(tmp_path, workers=2)
    callback = TelemetryCallback(interval=10.0)
    callback.on_fit_start(trainer)
    callback.on_fit_end(trainer)
    trainer.run.close()
    (record,) = [json.loads(x) for x in (trainer.run.path / "system.jsonl").read_text().splitlines()]
    assert record["workers"] == 2


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TelemetryCallback(interval=0)


def test_cuda_run_records_its_gpu_from_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device-to-NVML mapping, with a fake NVML (this machine has no GPU; torch figures stay null)."""
    import torch

    from support.nvml_fakes import FakeGpu

    if torch.cuda.is_available():  # pragma: no cover - real CUDA maps by UUID, which the fake lacks
        pytest.skip("real CUDA here: see test_system_gpu.py")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # cuda:0 of the run is NVML GPU 1
    trainer = _stand_in(tmp_path)
    trainer.device = torch.device("cuda", 0)
    backend = FakeNvml([FakeGpu(uuid="GPU-a", util=5), FakeGpu(uuid="GPU-b", util=88)])
    callback = TelemetryCallback(interval=10.0, nvml_backend=backend)
    callback.on_fit_start(trainer)
    callback.on_fit_end(trainer)
    trainer.run.close()
    (record,) = [json.loads(x) for x in (trainer.run.path / "system.jsonl").read_text().splitlines()]
    (gpu,) = record["gpus"]
    assert (gpu["index"], gpu["cuda_index"], gpu["uuid"], gpu["util"]) == (1, 0, "GPU-b", 88)
    assert gpu["torch_allocated"] is None  # CUDA not initialised in this process: unknown, not 0
    assert not (trainer.run.path / "events.jsonl").exists()
    assert backend.shutdowns == backend.inits == 1


def test_cuda_run_without_nvml_says_so(tmp_path: Path) -> None:
    import pynvml
    import torch

    trainer = _stand_in(tmp_path)
    trainer.device = torch.device("cuda", 0)
    backend = FakeNvml(init_error=pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    callback = TelemetryCallback(interval=10.0, nvml_backend=backend)
    callback.on_fit_start(trainer)
    callback.on_fit_end(trainer)
    trainer.run.close()
    events = [json.loads(x) for x in (trainer.run.path / "events.jsonl").read_text().splitlines()]
    assert [e["message"] for e in events] == [NO_NVML_MESSAGE]
    assert "Driver Not Loaded" in events[0]["reason"]
    (record,) = [json.loads(x) for x in (trainer.run.path / "system.jsonl").read_text().splitlines()]
    assert len(record["gpus"]) == 1 and record["gpus"][0]["util"] is None


def test_a_four_process_run_records_the_four_gpus_of_its_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the real Trainer (a stand-in object hid that the world size it read did not exist): rank 0 of
    four DDP processes on one node records all four GPUs, its own with torch's memory figures."""
    import torch

    from core.training.distributed import DistEnv
    from core.training.trainer import Trainer
    from support.nvml_fakes import FakeGpu
    from support.training import tiny_cfg

    if torch.cuda.is_available():  # pragma: no cover - real CUDA maps by UUID, which the fake lacks
        pytest.skip("real CUDA here: see test_system_gpu.py")
    trainer = Trainer(tiny_cfg(tmp_path, logging={"progress": "none", "tensorboard": False}), default_callbacks=False)
    trainer.setup()
    try:
        # what torchrun and a 4-GPU node would give rank 0 (the process group itself is not needed here)
        monkeypatch.setattr(trainer.strategy, "env", DistEnv(rank=0, local_rank=0, world_size=4))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        trainer.device = torch.device("cuda", 0)
        trainer.run = RunWriter.create(tmp_path, "ddp4", flush_seconds=0.05)
        assert trainer.world_size == 4
        backend = FakeNvml([FakeGpu(uuid=f"GPU-{i}", util=10 * (i + 1)) for i in range(4)])
        callback = TelemetryCallback(interval=10.0, nvml_backend=backend)
        callback.on_fit_start(trainer)
        callback.on_fit_end(trainer)
        trainer.run.close()
    finally:
        trainer.device = torch.device("cpu")
        trainer.cleanup()
    (record,) = [json.loads(x) for x in (tmp_path / "ddp4" / "system.jsonl").read_text().splitlines()]
    gpus = record["gpus"]
    assert [(g["index"], g["uuid"], g["util"]) for g in gpus] == [(i, f"GPU-{i}", 10 * (i + 1)) for i in range(4)]
    assert [g["cuda_index"] for g in gpus] == [0, None, None, None]  # torch's figures: this process's own GPU only
