"""Device choice, seeding, determinism and mixed precision: the environment a run trains in."""

from __future__ import annotations

import contextlib
import os
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
