"""Checkpoint files: atomic writes, safe loads, and RNG states that ``weights_only`` can read.

A checkpoint is one ``.pt`` file holding only tensors, numbers, strings, lists and dicts, so
``torch.load(path, weights_only=True)`` reads it (see "checkpoints/" in docs/run-format.md). The
Python and NumPy RNG states are tuples with NumPy arrays, which ``weights_only`` refuses, so they are
stored as lists/tensors here and rebuilt on load.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError, FtuiError
from core.runs import atomic_write

CHECKPOINT_FORMAT = 1

REQUIRED_KEYS = ("format", "model")


def capture_rng() -> dict[str, Any]:
    """Every RNG state (torch CPU and CUDA, Python, NumPy) in a ``weights_only``-loadable form."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.uint32).astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` returned (missing parts are left alone)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    py = state.get("python")
    if py:
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npst = state.get("numpy")
    if npst:
        keys = npst["keys"].numpy().astype(np.uint32)
        np.random.set_state((npst["name"], keys, npst["pos"], npst["has_gauss"], npst["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        cuda = [s.cpu() for s in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save_file(obj: dict[str, Any], path: Path | str) -> None:
    """``torch.save`` atomically: temp file in the same directory, fsync, ``os.replace``, fsync the dir.

    A crash or kill at any moment leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(obj, fh))


def remove_stale_temps(directory: Path | str) -> list[Path]:
    """Delete temp files left by writes that were killed (``.NAME.*.tmp``); returns what was removed."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for tmp in directory.glob(".*.pt.*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def load_file(path: Path | str, *, require_ftui: bool = True) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; bad files raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found. Fix: check the path (runs/<name>/checkpoints/last.pt).")
    if path.is_dir():
        raise CheckpointError(
            f"{path}: is a directory. Fix: pass a .pt file such as {path / 'checkpoints' / 'last.pt'}."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise CheckpointError(
            f"{path}: refuses to load safely (weights_only): {first}. Fix: only ftui checkpoints and plain "
            "state dicts can be resumed; look inside with `ftui inspect`."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {_first_line(exc)}). "
            "Fix: the file is truncated or not a torch file; use the run's other checkpoint (last.pt or best.pt)."
        ) from None
    if require_ftui and (not isinstance(obj, dict) or any(k not in obj for k in REQUIRED_KEYS)):
        raise CheckpointError(
            f"{path}: not an ftui checkpoint (expected keys {', '.join(REQUIRED_KEYS)}). "
            "Fix: pass a checkpoint written by `ftui run` (runs/<name>/checkpoints/*.pt); to start from "
            "foreign weights set model.weights instead."
        )
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under ``torch.compile`` and DistributedDataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if isinstance(inner, torch.nn.Module):
            model = inner
            continue
        return model


class NonFiniteWeights(FtuiError):
    """A checkpoint was not written because the model's weights are not all finite (the last good file stays)."""


def all_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter and buffer is finite (one host sync)."""
    tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    if not tensors:
        return True
    flags = torch.stack([torch.isfinite(t).all() for t in tensors])
    return bool(flags.all())
