"""The host figures, the sampler thread and the torch-memory helpers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psutil
import pytest
import pynvml

from core.system.host import HostSampler, process_owner
from core.system.nvml import Nvml
from core.system.sampler import GPU_FIELDS, GpuRef, SystemSampler
from core.system.torch_memory import cuda_memory, visible_to_nvml_index
from support.nvml_fakes import FakeGpu, FakeNvml

HOST_KEYS = {"time", "cpu_percent", "proc_cpu_percent", "proc_rss", "mem_used", "mem_total", "workers", "gpus"}


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_host_figures_are_real() -> None:
    host = HostSampler()
    busy_until = time.process_time() + 0.05
    while time.process_time() < busy_until:  # burn some CPU so the process figure is > 0
        pass
    rec = host.sample()
    vm = psutil.virtual_memory()
    assert rec["mem_total"] == vm.total
    assert 0 < rec["mem_used"] <= vm.total
    assert rec["proc_rss"] > 10 * 1024**2  # a Python process with psutil loaded
    assert 0.0 <= rec["cpu_percent"] <= 100.0
    assert rec["proc_cpu_percent"] > 0.0
    assert rec["cpu_count"] == psutil.cpu_count()


def test_host_counts_child_processes() -> None:
    host = HostSampler()
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"]) for _ in range(2)]
    try:
        first = host.sample()
        second = host.sample()
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert first["children"] >= 2 and second["children"] >= 2
    assert second["children_cpu_percent"] is not None and second["children_cpu_percent"] >= 0.0
    assert host.sample()["children"] == first["children"] - 2
    assert process_owner(children[0].pid)["name"] is None  # gone: unreadable, not an error


def test_sampler_thread_records_and_stops_cleanly() -> None:
    records: list[dict] = []
    sampler = SystemSampler(records.append, interval=0.02, workers=lambda: 3)
    sampler.start()
    assert sampler.running
    _wait_for(lambda: len(records) >= 4)
    sampler.stop()
    assert not sampler.running
    assert not any(t.name == "ftui-telemetry" for t in threading.enumerate())
    count = len(records)
    time.sleep(0.1)
    assert len(records) == count  # nothing after stop
    assert sampler.errors == 0 and sampler.samples == count
    times = [r["time"] for r in records]
    assert times == sorted(times)
    for rec in records:
        assert HOST_KEYS <= rec.keys()
        assert rec["workers"] == 3 and rec["gpus"] == []
    # Cost: at 1 Hz a sample must cost far less than 1 % of a core (10 ms); allow 5 ms per sample.
    assert sampler.cpu_seconds / sampler.samples < 0.005


def test_stop_takes_a_final_sample_for_short_runs() -> None:
    records: list[dict] = []
    sampler = SystemSampler(records.append, interval=60.0)
    sampler.start()
    sampler.stop()
    assert len(records) == 1 and records[0]["mem_total"] > 0
    sampler.stop()  # idempotent
    assert len(records) == 1


def test_sampler_with_fake_gpus_maps_and_keeps_missing_as_null() -> None:
    backend = FakeNvml([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b", util=81, temp=pynvml.NVMLError_NotSupported)])
    nvml = Nvml(backend)
    assert nvml.start()
    sampler = SystemSampler(lambda r: None, nvml=nvml, gpus=[GpuRef(nvml="GPU-b", torch_index=None, name="x")])
    (gpu,) = sampler.sample()["gpus"]
    nvml.close()
    assert set(GPU_FIELDS) <= gpu.keys()
    assert gpu["index"] == 1 and gpu["name"] == "NVIDIA Fake 80GB" and gpu["util"] == 81
    assert gpu["temp"] is None  # not supported: missing, not 0
    assert gpu["torch_allocated"] is None and gpu["torch_peak"] is None  # no torch device given


def test_sampler_without_nvml_keeps_gpu_rows_with_null_figures() -> None:
    sampler = SystemSampler(lambda r: None, nvml=None, gpus=[GpuRef(nvml=None, torch_index=None, name="A100")])
    (gpu,) = sampler.sample()["gpus"]
    assert gpu["name"] == "A100" and gpu["index"] == 0
    assert all(gpu[k] is None for k in GPU_FIELDS if k not in ("index", "name"))


def test_a_failing_sink_never_kills_the_thread() -> None:
    calls: list[int] = []

    def sink(record: dict) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise OSError("disk full")

    sampler = SystemSampler(sink, interval=0.01)
    sampler.start()
    _wait_for(lambda: len(calls) >= 5)
    sampler.stop(final_sample=False)
    assert sampler.errors == 2 and isinstance(sampler.last_error, OSError)
    assert sampler.samples == len(calls) - 2


def test_torch_memory_without_cuda_is_missing() -> None:
    import torch

    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        pytest.skip("CUDA is available here")
    assert cuda_memory(0) == {"torch_allocated": None, "torch_reserved": None, "torch_peak": None}


def test_cuda_visible_devices_mapping() -> None:
    assert visible_to_nvml_index(0, "") == 0
    assert visible_to_nvml_index(1, "3,5") == 5
    assert visible_to_nvml_index(0, "GPU-abc, 2") == "GPU-abc"
    assert visible_to_nvml_index(4, "1,2") == 4
