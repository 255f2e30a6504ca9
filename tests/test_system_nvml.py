"""The NVML layer through a fake backend, and the real path on this (GPU-less) machine."""

from __future__ import annotations

import pynvml
import pytest

from core.system.nvml import Nvml
from support.nvml_fakes import FakeGpu, FakeNvml

GIB = 1024**3


def test_values_are_mapped_with_units() -> None:
    backend = FakeNvml([FakeGpu(), FakeGpu(name="Second", uuid="GPU-2", util=99, power=50_000)])
    with Nvml(backend) as nvml:
        assert nvml.available and nvml.reason is None
        assert nvml.device_count() == 2
        assert nvml.driver_version == "999.99"
        first, second = nvml.sample()
    assert first == {
        "index": 0,
        "name": "NVIDIA Fake 80GB",
        "uuid": "GPU-00000000-1111-2222-3333-444444444444",
        "util": 37,
        "mem_util": 12,
        "mem_used": 10 * GIB,
        "mem_total": 80 * GIB,
        "temp": 55,
        "power": 123.456,  # milliwatts -> watts
        "power_limit": 300.0,
        "sm_clock": 1410,
    }
    assert (second["index"], second["name"], second["util"], second["power"]) == (1, "Second", 99, 50.0)
    assert backend.inits == 1 and backend.shutdowns == 1


def test_select_devices_by_index_or_uuid() -> None:
    backend = FakeNvml([FakeGpu(uuid="GPU-a"), FakeGpu(uuid="GPU-b", util=80)])
    with Nvml(backend) as nvml:
        by_uuid = nvml.sample(["GPU-b"])
        by_index = nvml.sample([1])
        missing = nvml.sample(["GPU-nope", 7])
    assert by_uuid[0]["index"] == 1 and by_uuid[0]["util"] == 80
    assert by_index == by_uuid
    assert missing == []


@pytest.mark.parametrize("field", ["temp", "power", "power_limit", "sm_clock", "util"])
def test_not_supported_field_is_missing_not_zero(field: str) -> None:
    gpu = FakeGpu(**{field: pynvml.NVMLError_NotSupported})
    with Nvml(FakeNvml([gpu])) as nvml:
        (row,) = nvml.sample()
    assert row[field] is None
    # Everything else is still there.
    assert row["mem_used"] == 10 * GIB and row["name"] == "NVIDIA Fake 80GB"
    assert nvml.reason is None  # "not supported" is not an error


def test_no_permission_and_sentinel_values_are_missing() -> None:
    gpu = FakeGpu(power=pynvml.NVMLError_NoPermission, sm_clock=0xFFFFFFFF)
    with Nvml(FakeNvml([gpu])) as nvml:
        (row,) = nvml.sample()
    assert row["power"] is None and row["sm_clock"] is None and row["temp"] == 55


@pytest.mark.parametrize(
    "error",
    [
        pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED),
        pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND),
        pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION),
        OSError("libnvidia-ml.so.1: cannot open shared object file"),
    ],
)
def test_init_errors_are_reported_not_raised(error: BaseException) -> None:
    backend = FakeNvml(init_error=error)
    nvml = Nvml(backend)
    assert nvml.start() is False
    assert not nvml.available
    assert nvml.reason and nvml.reason.startswith("NVML could not start: ")
    assert type(error).__name__ in nvml.reason
    assert nvml.sample() == [] and nvml.device_count() == 0 and nvml.processes(0) == []
    nvml.close()
    assert backend.shutdowns == 0  # never initialised, never shut down


def test_zero_gpus_is_unavailable_and_shuts_down() -> None:
    backend = FakeNvml([])
    nvml = Nvml(backend)
    assert nvml.start() is False
    assert nvml.reason == "NVML reports no GPU"
    assert backend.inits == 1 and backend.shutdowns == 1


def test_shared_init_is_shut_down_by_the_last_user() -> None:
    backend = FakeNvml()
    a, b = Nvml(backend), Nvml(backend)
    assert a.start() and b.start()
    a.close()
    assert backend.shutdowns == 0 and b.sample()[0]["util"] == 37
    b.close()
    assert backend.shutdowns == 1


def test_processes_merge_and_sort_by_memory() -> None:
    gpu = FakeGpu(processes=[(101, 2 * GIB), (202, 6 * GIB), (303, None)])
    with Nvml(FakeNvml([gpu])) as nvml:
        procs = nvml.processes(0)
    assert [p["pid"] for p in procs] == [202, 101, 303]
    assert procs[0] == {"pid": 202, "name": "proc-202", "used_memory": 6 * GIB}
    assert procs[2]["used_memory"] is None  # unknown (WDDM / no permission), not 0


def test_real_nvml_path_without_error() -> None:
    """On this GPU-less machine: "no GPU" with a reason; on a GPU box: real figures."""
    nvml = Nvml()  # the real pynvml
    try:
        if nvml.start():
            rows = nvml.sample()
            assert rows and all(r["mem_total"] for r in rows)
        else:
            assert nvml.reason and ("NVML" in nvml.reason or "nvidia-ml-py" in nvml.reason)
            assert nvml.sample() == [] and nvml.device_count() == 0
    finally:
        nvml.close()


def test_machine_snapshot_trusts_nvml_names_for_pids_it_cannot_see() -> None:
    from core.system.machine import machine_snapshot

    gone = 2**22 + 12345  # above Linux's pid_max default range: no such process here
    backend = FakeNvml([FakeGpu(mem_used=30 * GIB, processes=[(gone, 29 * GIB)])])
    backend.nvmlSystemGetProcessName = lambda pid: b"/opt/conda/bin/python3.11"
    with Nvml(backend) as nvml:
        snap = machine_snapshot(nvml)
    (gpu,) = snap.gpus
    assert gpu["free"] == 50 * GIB
    assert gpu["processes"] == [{"pid": gone, "name": "python3.11", "used_memory": 29 * GIB, "user": None}]
    assert snap.mem_total > 0 and snap.nvml_reason is None and snap.driver_version == "999.99"
    assert machine_snapshot(None).nvml_reason == "NVML is not available"


def test_temperature_falls_back_to_the_v_api() -> None:
    backend = FakeNvml([FakeGpu(temp=pynvml.NVMLError_FunctionNotFound)])
    backend.nvmlDeviceGetTemperatureV = lambda handle, sensor: 71
    with Nvml(backend) as nvml:
        (row,) = nvml.sample()
    assert row["temp"] == 71


def test_fake_matches_the_real_pynvml_api() -> None:
    import inspect

    faked = [n for n, _ in inspect.getmembers(FakeNvml, inspect.isfunction) if n.startswith("nvml")]
    assert len(faked) >= 12
    for name in faked:
        real = getattr(pynvml, name)
        fake_params = list(inspect.signature(getattr(FakeNvml, name)).parameters)[1:]
        real_params = [p for p in inspect.signature(real).parameters.values() if p.default is p.empty]
        assert len(fake_params) == len(real_params), name
    assert issubclass(pynvml.NVMLError_NotSupported, FakeNvml.NVMLError)
