"""torch.distributed plumbing for the trainer: process group, ranks, collectives, failures.

ftui does not launch or rendezvous processes itself: ``torchrun`` (``torch.distributed.run``) does,
and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` for every
worker. This module reads that environment, opens the process group (``nccl`` on CUDA, ``gloo`` on the
CPU), puts each worker on the GPU of its ``LOCAL_RANK``, and offers the few collectives the trainer
needs. Every helper is a no-op in a single process, so the trainer calls them unconditionally.

Step-boundary flags (signals, stop requests, "poll the control channel now") travel on a ``gloo``
group of CPU tensors even when training runs on ``nccl``: agreeing on them then never waits for the
GPU stream, so there is no device sync per step.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from core.data.seeding import mix_seed
# torch-free, so that `ftui run` knows its rank before it imports torch; re-exported here
from core.training.dist_env import DistEnv, launched_by_torchrun  # noqa: F401

#: Where a failing rank leaves its error for rank 0 (inside the run directory, which multi-node runs
#: keep on a shared filesystem).
ERRORS_DIR = "errors"

#: In rank 0's message when a collective broke and no other rank said why (the launcher refines it).
PEER_FAILURE = "another rank stopped responding"

#: How long rank 0 waits for a peer's error file after a collective broke under it.
PEER_ERROR_GRACE_S = 3.0

# flags agreed at each step boundary (all-reduced with MAX)
FLAG_SIGNAL, FLAG_STOP, FLAG_POLL, FLAG_TIME = range(4)
STOP_CODES = {"stopped": 1, "finished": 2, "interrupted": 3, "pruned": 4}
STOP_STATUS = {v: k for k, v in STOP_CODES.items()}

_flag_group: Any = None


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def device_for(device: torch.device, env: DistEnv) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when training on CUDA, else ``device`` unchanged.

    A cluster that gives each rank its own GPU through ``CUDA_VISIBLE_DEVICES`` (SLURM's
    ``--gpus-per-task=1``) leaves one device visible to every rank, whatever its ``LOCAL_RANK``: that
    rank trains on device 0, the one it was given.
    """
    from core.errors import ConfigError

    if not env.enabled or device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(
            f"trainer.device: {device.type!r} cannot train with several processes (torch.distributed supports "
            "CUDA GPUs through nccl and the CPU through gloo). Fix: use --set trainer.device=cpu, or one process."
        )
    visible = torch.cuda.device_count()
    index = 0 if visible == 1 else env.local_rank
    if index >= visible:
        raise ConfigError(
            f"LOCAL_RANK {env.local_rank} but only {visible} CUDA device(s) are visible on this node. "
            "Fix: launch at most one process per GPU (--nproc / --nproc-per-node), or train on the CPU "
            "with trainer.device: cpu."
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def is_initialized() -> bool:
    """A process group is open."""
    return dist.is_available() and dist.is_initialized()


def init_process_group(device: torch.device, env: DistEnv, *, timeout_s: float = 1800.0) -> None:
    """Open the default group (idempotent) and the CPU group for step flags."""
    global _flag_group
    if not env.enabled or is_initialized():
        return
    backend = backend_for(device)
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        kwargs["device_id"] = device  # binds the communicator to this rank's GPU at once
    dist.init_process_group(
        backend=backend, rank=env.rank, world_size=env.world_size,
        timeout=datetime.timedelta(seconds=timeout_s), **kwargs,
    )
    _flag_group = dist.new_group(backend="gloo") if backend != "gloo" else None


def destroy_process_group() -> None:
    """Close the groups opened by :func:`init_process_group` (no-op without them)."""
    global _flag_group
    if is_initialized():
        dist.destroy_process_group()
    _flag_group = None


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of ``rank``'s own random streams (dropout and the like) from ``step`` on.

    Rank 0 keeps ``seed`` at step 0, so one process and rank 0 of many draw the same numbers.
    """
    return seed if rank == 0 and step == 0 else mix_seed(seed, rank, step, 0xD15C)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; small control messages only)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, group=_flag_group)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=_flag_group)
    return out


def all_reduce_flags(flags: list[int]) -> list[int]:
    """Element-wise maximum of small integer flags over all ranks (CPU tensors, gloo)."""
    if not is_initialized():
        return list(flags)
    t = torch.tensor(flags, dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_flag_group)
    return [int(v) for v in t.tolist()]


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (on its device, default group); returns it."""
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank ``src``'s buffers (BatchNorm running statistics), as DDP does before a forward.

    Each rank's training forward updates its running statistics from its own shard; rank 0's are the
    ones checkpoints keep, so evaluation on every rank must use them too.
    """
    if not is_initialized():
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=src)


def state_hash(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, dtypes and bytes), to compare ranks."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Failures: a rank that fails leaves its message where rank 0 finds it
# ---------------------------------------------------------------------------------------------


def write_rank_error(run_dir: Path | None, rank: int, message: str, traceback: str | None = None) -> Path | None:
    """Record ``rank``'s failure as ``<run>/errors/rank-N.json`` (atomic); returns the file."""
    if run_dir is None:
        return None
    folder = Path(run_dir) / ERRORS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"rank-{rank}.json"
        tmp = folder / f".rank-{rank}.json.tmp"
        tmp.write_text(json.dumps({"rank": rank, "message": message, "time": time.time(), "traceback": traceback}))
        os.replace(tmp, path)
        return path
    except OSError:
        return None  # the failure itself is what matters; rank 0 falls back to its own message


def read_rank_errors(run_dir: Path | None) -> list[dict[str, Any]]:
    """The errors other ranks left, oldest first."""
    if run_dir is None:
        return []
    out = []
    for path in sorted((Path(run_dir) / ERRORS_DIR).glob("rank-*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda e: float(e.get("time", 0.0)))


def first_peer_error(run_dir: Path | None, own_time: float, *, wait_s: float = PEER_ERROR_GRACE_S) -> dict[str, Any] | None:
    """The earliest error another rank recorded before ``own_time``, waiting up to ``wait_s`` for it.

    When a rank dies, the collectives of the others break ("Connection closed by peer"); the rank
    that died first holds the real cause, and it writes its file before it exits.
    """
    deadline = time.monotonic() + wait_s
    while True:
        errors = [e for e in read_rank_errors(run_dir) if int(e.get("rank", 0)) != 0]
        early = [e for e in errors if float(e.get("time", 0.0)) <= own_time + 0.5]
        if early:
            return early[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def looks_like_peer_failure(exc: BaseException) -> bool:
    """A collective broke because another rank went away (not a failure of this rank's own)."""
    text = f"{type(exc).__name__}: {exc}"
    markers = ("Connection closed by peer", "Connection reset", "Broken pipe", "DistBackendError",
               "DistNetworkError", "ProcessGroup", "NCCL", "Gloo", "gloo", "timed out", "Timed out")
    return any(m in text for m in markers)
