"""A fake NVML backend (pynvml's function names and real error classes) for the telemetry tests.

``tests/test_system_nvml.py`` keeps the fake honest: every function it fakes exists in the real pynvml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml


@dataclass
class FakeGpu:
    """What one fake GPU reports; a field set to an exception class raises it instead."""

    name: str = "NVIDIA Fake 80GB"
    uuid: str = "GPU-00000000-1111-2222-3333-444444444444"
    util: Any = 37
    mem_util: Any = 12
    mem_used: Any = 10 * 1024**3
    mem_total: Any = 80 * 1024**3
    temp: Any = 55
    power: Any = 123_456  # milliwatts
    power_limit: Any = 300_000
    sm_clock: Any = 1410
    processes: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, used bytes)


class FakeNvml:
    """Enough of pynvml for core.system.nvml; counts init/shutdown calls."""

    NVMLError = pynvml.NVMLError

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: BaseException | None = None) -> None:
        self.gpus = gpus if gpus is not None else [FakeGpu()]
        self.init_error = init_error
        self.inits = 0
        self.shutdowns = 0

    @staticmethod
    def _value(value: Any) -> Any:
        if isinstance(value, type) and issubclass(value, BaseException):
            raise value()
        return value

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "999.99"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return i
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: int) -> int:
        return handle

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle].name

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self.gpus[handle].uuid

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        gpu = self.gpus[handle]
        return SimpleNamespace(gpu=self._value(gpu.util), memory=self._value(gpu.mem_util))

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        gpu = self.gpus[handle]
        used, total = self._value(gpu.mem_used), self._value(gpu.mem_total)
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._value(self.gpus[handle].temp)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._value(self.gpus[handle].power)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self._value(self.gpus[handle].power_limit)

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        assert clock == pynvml.NVML_CLOCK_SM
        return self._value(self.gpus[handle].sm_clock)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.gpus[handle].processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]:
        raise pynvml.NVMLError_NotSupported()

    def nvmlSystemGetProcessName(self, pid: int) -> bytes:
        return f"proc-{pid}".encode()
