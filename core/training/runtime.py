"""Device choice, seeding, determinism and mixed precision: the environment a run trains in."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
from typing import Any, ContextManager

import numpy as np
import torch

from core.errors import ConfigError


def resolve_device(spec: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; an explicit device must exist (ConfigError otherwise)."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(
            f"trainer.device: {spec!r} is not a device. Fix: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.device: {spec!r} asked for CUDA but no CUDA GPU is visible here. "
                "Fix: set trainer.device: auto (or cpu), or check CUDA_VISIBLE_DEVICES and the driver."
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"trainer.device: {spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist. "
                "Fix: pick an index below that."
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("trainer.device: 'mps' is not available on this machine. Fix: use 'auto' or 'cpu'.")
    return device


# glibc's mallopt parameters (malloc.h) and the values ftui sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
STEADY_TRIM_THRESHOLD = 256 << 20
STEADY_MMAP_THRESHOLD = 64 << 20
_steady_malloc_set = False


def steady_malloc() -> bool:
    """Keep freed memory in this process: raise glibc malloc's trim and mmap thresholds.

    By default glibc hands memory back to the kernel whenever the free space at the top of the
    heap exceeds the trim threshold, and serves large blocks with fresh mmaps; a training step
    then frees its activations and the next step faults them in again (35-75k page faults per
    quickstart epoch here, ~4 % of its CPU time: docs/benchmarks.md, benchmark 1). Both thresholds
    are set together: the trim threshold alone also turns off glibc's adaptive mmap threshold and
    makes every large block a fresh mmap. Forked data-loader workers inherit the setting.

    Returns whether the setting was applied: not off glibc (macOS, musl), and not when the user
    tunes malloc through ``MALLOC_*`` environment variables (theirs win).
    """
    global _steady_malloc_set
    if _steady_malloc_set:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(key.startswith("MALLOC_") for key in os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, STEADY_MMAP_THRESHOLD) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, STEADY_TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False
    _steady_malloc_set = ok
    return ok


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def configure_backends(deterministic: bool, cudnn_benchmark: bool) -> None:
    """Deterministic algorithms on request; cuDNN autotuning only when results may vary."""
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark and not deterministic)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision setting (None for full precision)."""
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)


def autocast(device: torch.device, precision: str) -> ContextManager[Any]:
    """The forward-pass autocast context for this device and precision."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse combinations that cannot work, with the fix."""
    if precision == "16-mixed" and device.type == "cpu":
        raise ConfigError(
            "trainer.precision: '16-mixed' needs a GPU (float16 autocast with a gradient scaler); this run is "
            "on the CPU. Fix: use precision '32' or 'bf16-mixed' on the CPU."
        )
    if precision == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            "trainer.precision: this GPU does not support bfloat16. Fix: use precision '16-mixed' or '32'."
        )
