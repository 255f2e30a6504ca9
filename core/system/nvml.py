"""A thin layer over NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

:class:`Nvml` turns NVML's calls into plain dicts with SI-ish units (bytes, watts, °C, MHz, %).
A figure the driver does not support (``NVMLError_NotSupported`` and friends) becomes ``None``,
never 0, so a viewer can tell "unknown" from "idle". When NVML cannot start (no driver, no library,
no GPU) :attr:`Nvml.available` is False and :attr:`Nvml.reason` says why; nothing raises.

The backend is injectable: anything with pynvml's function names and its ``NVMLError`` class
(tests pass a fake one). The default backend is ``pynvml`` itself, imported on first use.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

# NVML error codes that mean "this figure does not exist here", not "something broke".
_MISSING_CODES = {
    3,  # NVML_ERROR_NOT_SUPPORTED
    4,  # NVML_ERROR_NO_PERMISSION
    6,  # NVML_ERROR_NOT_FOUND
    13,  # NVML_ERROR_FUNCTION_NOT_FOUND (older driver than the bindings)
    15,  # NVML_ERROR_GPU_IS_LOST
}
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1

# NVML's init is process-wide and reference counted by the library; we count our own users so that
# several Nvml objects (sampler + machine panel) share one init and the last one shuts it down.
_lock = threading.Lock()
_users: dict[int, int] = {}


def default_backend() -> Any:
    """The real ``pynvml`` module."""
    import pynvml

    return pynvml


class Nvml:
    """NVML devices as dicts; safe to use when there is no GPU at all.

    Args:
        backend: a pynvml-like object; None means the real ``pynvml``.
    """

    def __init__(self, backend: Any | None = None) -> None:
        self._backend = backend
        self.available = False
        self.reason: str | None = None
        self.driver_version: str | None = None
        self._started = False
        self._inited = False
        self._handles: dict[int | str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> bool:
        """Initialise NVML; returns :attr:`available` (False with :attr:`reason` when there is no GPU)."""
        if self._started:
            return self.available
        self._started = True
        try:
            nv = self._backend if self._backend is not None else default_backend()
        except ImportError as exc:  # the package is a dependency, but a broken install must not crash a run
            self.reason = f"nvidia-ml-py is not importable ({exc})"
            return False
        self._backend = nv
        try:
            with _lock:
                nv.nvmlInit()
                _users[id(nv)] = _users.get(id(nv), 0) + 1
                self._inited = True
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, OSError from ctypes...
            self.reason = f"NVML could not start: {_describe(exc)}"
            return False
        try:
            count = int(nv.nvmlDeviceGetCount())
        except Exception as exc:
            self.reason = f"NVML could not count GPUs: {_describe(exc)}"
            self.close()
            return False
        if count == 0:
            self.reason = "NVML reports no GPU"
            self.close()
            return False
        self.driver_version = _text(self._get(nv.nvmlSystemGetDriverVersion))
        self.available = True
        return True

    def close(self) -> None:
        """Release NVML (shut it down when this was the last user in the process)."""
        nv = self._backend
        self.available = False
        self._handles.clear()
        self._started = False
        if nv is None or not self._inited:
            return
        self._inited = False
        with _lock:
            users = _users.get(id(nv), 0)
            if users > 0:
                users -= 1
                _users[id(nv)] = users
                if users == 0:
                    try:
                        nv.nvmlShutdown()
                    except Exception:  # shutting down a broken library is best effort
                        pass

    def __enter__(self) -> Nvml:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------------

    def device_count(self) -> int:
        """Number of GPUs NVML sees (0 when unavailable)."""
        if not self.available:
            return 0
        return int(self._get(self._backend.nvmlDeviceGetCount) or 0)

    def sample(self, devices: Iterable[int | str] | None = None) -> list[dict[str, Any]]:
        """One dict per GPU: index, name, uuid, util, mem_util, mem_used, mem_total, temp, power,
        power_limit, sm_clock. ``devices`` are NVML indices or UUIDs (default: every GPU)."""
        if not self.available:
            return []
        selected = list(range(self.device_count())) if devices is None else list(devices)
        out = []
        for ref in selected:
            gpu = self._device(ref)
            if gpu is not None:
                out.append(gpu)
        return out

    def processes(self, device: int | str) -> list[dict[str, Any]]:
        """Processes using a GPU (compute and graphics): pid, name, used_memory (bytes or None)."""
        handle = self._handle(device)
        if handle is None:
            return []
        nv = self._backend
        seen: dict[int, dict[str, Any]] = {}
        for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            fn = getattr(nv, getter, None)
            procs = self._get(fn, handle) if fn is not None else None
            for proc in procs or []:
                pid = int(proc.pid)
                used = getattr(proc, "usedGpuMemory", None)
                entry = seen.setdefault(pid, {"pid": pid, "name": None, "used_memory": None})
                if used is not None:
                    entry["used_memory"] = (entry["used_memory"] or 0) + int(used)
        for entry in seen.values():
            entry["name"] = _text(self._get(getattr(nv, "nvmlSystemGetProcessName", None), entry["pid"]))
        return sorted(seen.values(), key=lambda p: -(p["used_memory"] or 0))

    # -- internals --------------------------------------------------------------------------------

    def _handle(self, ref: int | str) -> Any | None:
        if not self.available:
            return None
        if ref in self._handles:
            return self._handles[ref]
        nv = self._backend
        if isinstance(ref, str):
            handle = self._get(nv.nvmlDeviceGetHandleByUUID, ref)
        else:
            handle = self._get(nv.nvmlDeviceGetHandleByIndex, int(ref))
        if handle is not None:
            self._handles[ref] = handle
        return handle

    def _device(self, ref: int | str) -> dict[str, Any] | None:
        handle = self._handle(ref)
        if handle is None:
            return None
        nv = self._backend
        index = ref if isinstance(ref, int) else self._get(getattr(nv, "nvmlDeviceGetIndex", None), handle)
        util = self._get(nv.nvmlDeviceGetUtilizationRates, handle)
        mem = self._get(nv.nvmlDeviceGetMemoryInfo, handle)
        power = self._get(nv.nvmlDeviceGetPowerUsage, handle)  # milliwatts
        limit = self._get(nv.nvmlDeviceGetEnforcedPowerLimit, handle)  # milliwatts
        return {
            "index": index,
            "name": _text(self._get(nv.nvmlDeviceGetName, handle)),
            "uuid": _text(self._get(nv.nvmlDeviceGetUUID, handle)),
            "util": _num(getattr(util, "gpu", None)),
            "mem_util": _num(getattr(util, "memory", None)),
            "mem_used": _num(getattr(mem, "used", None)),
            "mem_total": _num(getattr(mem, "total", None)),
            "temp": _num(self._temperature(handle)),
            "power": None if power is None else power / 1000.0,
            "power_limit": None if limit is None else limit / 1000.0,
            "sm_clock": _num(self._get(nv.nvmlDeviceGetClockInfo, handle, NVML_CLOCK_SM)),
        }

    def _temperature(self, handle: Any) -> Any:
        # nvmlDeviceGetTemperature is deprecated (gone with CUDA 14 drivers); its V successor is
        # missing from older drivers, so try one then the other.
        nv = self._backend
        value = self._get(getattr(nv, "nvmlDeviceGetTemperature", None), handle, NVML_TEMPERATURE_GPU)
        if value is None:
            value = self._get(getattr(nv, "nvmlDeviceGetTemperatureV", None), handle, NVML_TEMPERATURE_GPU)
        return value

    def _get(self, fn: Callable[..., Any] | None, *args: Any) -> Any:
        """Call an NVML function; a figure NVML cannot give becomes None instead of an error."""
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception as exc:
            # Any NVML failure on one figure must not cost the other figures (or the run).
            if _code(exc) is not None and _code(exc) not in _MISSING_CODES:
                self.reason = f"NVML error: {_describe(exc)}"
            return None


def _code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ calls into the library, which may be what is broken
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _num(value: Any) -> int | float | None:
    # NVML marks "not available" with all-ones integers on some queries.
    if value is None or value in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None
    return value
