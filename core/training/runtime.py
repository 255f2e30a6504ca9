"""Device choice, seeding, determinism and mixed precision: the environment a run trains in."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator

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


def configure_backends(deterministic: bool | str, cudnn_benchmark: bool, *, tf32: bool = True,
                       device: torch.device | None = None) -> None:
    """Set torch's process-wide switches for this run, every one of them, so that nothing a previous
    Trainer in the same process set survives into this one.

    ``deterministic: true`` means it: an operation without a deterministic implementation raises (see
    :func:`nondeterministic_op`); ``"warn"`` lets torch warn instead, and the trainer records each
    such operation (:func:`watch_nondeterminism`), as Lightning's ``deterministic="warn"``. TF32
    applies to CUDA only; elsewhere float32 matmuls keep full precision.
    """
    wanted = bool(deterministic)
    if wanted:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(wanted, warn_only=deterministic == "warn")
    torch.backends.cudnn.deterministic = wanted
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark and not wanted)
    on_cuda = device is not None and device.type == "cuda"
    torch.set_float32_matmul_precision("high" if on_cuda and tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32 if on_cuda else True  # True is torch's own default


_NONDETERMINISTIC = " does not have a deterministic implementation"


def nondeterministic_op(exc: BaseException | str) -> str | None:
    """The operation named by torch's "does not have a deterministic implementation" error (or warning
    text), or None."""
    text = str(exc)
    if (not isinstance(exc, (RuntimeError, str))) or _NONDETERMINISTIC not in text:
        return None
    return text.split(_NONDETERMINISTIC, 1)[0].strip().splitlines()[-1].strip() or "an operation"


@contextlib.contextmanager
def watch_nondeterminism(report: Callable[[str], None]) -> Iterator[None]:
    """While it is open, call ``report(op)`` for each warning torch gives about an operation without a
    deterministic implementation (``deterministic: warn``). Every warning is still shown as before."""
    shown = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        op = nondeterministic_op(str(message))
        if op is not None:
            report(op)
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = shown


@dataclass(frozen=True)
class RuntimePlan:
    """How this run computes on its device: the resolved ``trainer.precision`` and
    ``trainer.channels_last`` (``auto`` decided here) and TF32. ``auto`` lists the settings that
    ``auto`` chose, so the first line of ``ftui run`` can say so."""

    device: torch.device
    precision: str
    channels_last: bool
    tf32: bool
    auto: tuple[str, ...] = ()

    def describe(self) -> str:
        """``bf16-mixed (auto), channels_last (auto), TF32`` — what the run's first line shows."""
        parts = [self.precision + (" (auto)" if "precision" in self.auto else "")]
        if self.channels_last:
            parts.append("channels_last" + (" (auto)" if "channels_last" in self.auto else ""))
        if self.device.type == "cuda" and self.tf32 and self.precision == "32":
            parts.append("TF32")
        return ", ".join(parts)


def bf16_hardware(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CUDA: compute capability 8.0, Ampere, or newer)."""
    if device.type != "cuda":
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # an older torch without the keyword
        return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str, device: torch.device) -> str:
    """``trainer.precision`` for ``device``: ``auto`` is bf16-mixed on a GPU with bfloat16 hardware, else 32."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if bf16_hardware(device) else "32"


def plan_runtime(trainer_cfg: Any, device: torch.device, *, image: bool) -> RuntimePlan:
    """Resolve ``auto`` precision and memory format for ``device`` (docs/gpu.md, "Defaults").

    On CUDA ``auto`` means bf16-mixed where the GPU has bfloat16 hardware (float32 elsewhere: float16
    needs a loss scaler and can overflow, so it is only used when asked for) and channels_last for
    image data (convolutions on tensor cores want NHWC). On the CPU and MPS ``auto`` is float32 and
    the default memory format.
    """
    # what auto decided is worth saying on a GPU, where it differs from full float32
    auto: list[str] = ["precision"] if trainer_cfg.precision == "auto" and device.type == "cuda" else []
    precision = resolve_precision(str(trainer_cfg.precision), device)
    channels_last = trainer_cfg.channels_last
    if channels_last == "auto":
        channels_last = device.type == "cuda"
        if channels_last and image:
            auto.append("channels_last")
    channels_last = bool(channels_last) and image
    return RuntimePlan(device, precision, channels_last, bool(getattr(trainer_cfg, "tf32", True)), tuple(auto))


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
