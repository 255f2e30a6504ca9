"""PyTorch's view of GPU memory: allocated, reserved (cached) and peak allocated, per CUDA device.

torch is imported inside the functions: the app's machine panel imports ``core.system`` and must
stay torch-free.
"""

from __future__ import annotations

import os
from typing import Any


def cuda_memory(index: int) -> dict[str, int | None]:
    """``torch_allocated``, ``torch_reserved``, ``torch_peak`` in bytes for a CUDA device of this process.

    All three are None when CUDA is not initialised here (reading them must not create a context).
    """
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {"torch_allocated": None, "torch_reserved": None, "torch_peak": None}
    return {
        "torch_allocated": int(torch.cuda.memory_allocated(index)),
        "torch_reserved": int(torch.cuda.memory_reserved(index)),
        "torch_peak": int(torch.cuda.max_memory_allocated(index)),
    }


def cuda_device_refs(indices: list[int]) -> list[int | str]:
    """NVML references (UUIDs, else NVML indices) of this process's CUDA devices ``indices``.

    CUDA numbers devices after ``CUDA_VISIBLE_DEVICES`` and in its own order, NVML numbers every GPU
    by PCI bus; the device UUID is the same in both, so it is the reliable link.
    """
    import torch

    refs: list[int | str] = []
    for index in indices:
        uuid: Any = None
        try:
            uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        except Exception:  # no CUDA here, or an index past the visible devices
            uuid = None
        if uuid is not None:
            text = str(uuid)
            refs.append(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
        else:
            refs.append(visible_to_nvml_index(index))
    return refs


def visible_to_nvml_index(index: int, env: str | None = None) -> int | str:
    """Map a CUDA index through ``CUDA_VISIBLE_DEVICES`` (numbers or UUIDs) to an NVML reference."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if env is None else env
    if not visible:
        return index
    items = [item.strip() for item in visible.split(",") if item.strip()]
    if index >= len(items):
        return index
    item = items[index]
    return int(item) if item.isdigit() else item
