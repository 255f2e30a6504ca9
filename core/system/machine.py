"""A snapshot of the whole machine (every GPU and who uses it, CPU, RAM) for picking a free GPU.

Used by the app's home-screen machine panel; torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psutil

from core.system.host import process_owner
from core.system.nvml import Nvml


@dataclass
class MachineSnapshot:
    """What the machine panel shows; GPU dicts carry ``free`` and ``processes`` besides NVML's figures."""

    gpus: list[dict[str, Any]] = field(default_factory=list)
    nvml_reason: str | None = None  # why there are no GPU figures, when there are none
    driver_version: str | None = None
    cpu_percent: float = 0.0
    cpu_count: int = 1
    mem_used: int = 0
    mem_total: int = 0


def machine_snapshot(nvml: Nvml | None) -> MachineSnapshot:
    """Sample every GPU NVML sees (with its processes) and the host. ``nvml`` must be started."""
    vm = psutil.virtual_memory()
    snap = MachineSnapshot(
        # System CPU since the previous call (the panel calls this every couple of seconds).
        cpu_percent=psutil.cpu_percent(interval=None),
        cpu_count=psutil.cpu_count(logical=True) or 1,
        mem_used=vm.total - vm.available,
        mem_total=vm.total,
    )
    if nvml is None or not nvml.available:
        snap.nvml_reason = (nvml.reason if nvml is not None else None) or "NVML is not available"
        return snap
    snap.driver_version = nvml.driver_version
    for gpu in nvml.sample():
        used, total = gpu.get("mem_used"), gpu.get("mem_total")
        gpu["free"] = total - used if used is not None and total is not None else None
        procs = nvml.processes(gpu["index"]) if gpu.get("index") is not None else []
        for proc in procs:
            proc["name"], proc["user"] = _name_and_user(proc["pid"], proc.get("name"))
        gpu["processes"] = procs
        snap.gpus.append(gpu)
    return snap


def _name_and_user(pid: int, nvml_name: str | None) -> tuple[str | None, str | None]:
    """A short process name and its user.

    NVML reports host pids and the full executable path. Inside a container the same pid may be
    another process (or none), so psutil's user is trusted only when its name agrees with NVML's.
    """
    short = nvml_name.replace("\\", "/").rsplit("/", 1)[-1] if nvml_name else None
    owner = process_owner(pid)
    if short is None:
        return owner["name"], owner["user"]
    if owner["name"] and (short.startswith(owner["name"]) or owner["name"].startswith(short)):
        return short, owner["user"]
    return short, None
