"""Loaders whose batches are a function of ``(seed, epoch)`` only, with mid-epoch resume.

:class:`EpochSampler` decides the order in the main process (also with persistent workers) and
yields ``(index, epoch)`` pairs, so the dataset can seed each sample's augmentation from
``(seed, epoch, index)``. It shards like ``torch.utils.data.DistributedSampler``: the order is padded
to a multiple of ``world_size`` by repeating its head, and rank ``r`` takes every
``world_size``-th index starting at ``r``; this is the hook distributed training plugs into.
Evaluation splits are sharded without padding (ranks differ by at most one sample), so metrics
summed over the ranks count every sample exactly once, as a single process does.
"""

from __future__ import annotations

import math
import os
import random
import weakref
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from core.config import DataConfig
from core.data.device import BatchPreparer, CudaPrefetcher, DeviceBatches
from core.data.seeding import mix_seed
from core.errors import DataError, UserError


class EpochSampler(Sampler):
    """Seeded, shardable sampler yielding ``(index, epoch)``; skips a prefix once for resumes.

    Args:
        length: Size of the dataset.
        shuffle: Permute per epoch (training) or keep the order (evaluation).
        seed: Seed of the permutation.
        rank: This process's rank.
        world_size: Number of processes.
        pad: Repeat the head so every rank gets the same count (training: DDP needs equal steps);
            False shards without duplicates (evaluation: exact metrics).
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1,
                 pad: bool = True):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = int(epoch)

    def skip_next(self, samples: int) -> None:
        """Let the next iteration (only) start after ``samples`` of this rank's indices."""
        self._skip = max(int(samples), 0)

    def order(self, epoch: int) -> list[int]:
        """This rank's full index order for ``epoch``."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(mix_seed(self.seed, epoch, 0x0D3E))
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        if not self.pad:
            return order[self.rank :: self.world_size]
        total = self.num_per_rank() * self.world_size
        while len(order) < total:  # pad by repeating the head, as DistributedSampler does
            order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def num_per_rank(self) -> int:
        """Indices of this rank in one epoch (after padding, if any)."""
        if not self.length:
            return 0
        if not self.pad:
            return len(range(self.rank, self.length, self.world_size))
        return math.ceil(self.length / self.world_size)

    def __len__(self) -> int:
        return self.num_per_rank()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # Computed eagerly and the skip consumed here, so one resume affects exactly one epoch.
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        return iter([(i, epoch) for i in self.order(epoch)[skip:]])


class EpochLoader:
    """A ``DataLoader`` with :class:`EpochSampler`: ``set_epoch`` and ``set_start_batch`` for resumes.

    :meth:`close` (or ``with``) stops its worker processes; the trainer closes its loaders when a run
    ends. Without it, persistent workers live until the loader is garbage-collected — at a moment
    nobody chose, in whatever code runs then, which waits for them to exit.
    """

    def __init__(self, loader: DataLoader, sampler: EpochSampler, batch_size: int, *,
                 prepare: BatchPreparer | None = None, dataset: Any = None):
        self.loader = loader
        self.sampler = sampler
        self.batch_size = batch_size
        self._dataset = dataset if dataset is not None else loader.dataset
        self.prepare = prepare or BatchPreparer(None, None, False)
        """What each batch becomes after the workers: on the device, finished (core.data.device)."""
        self._last: weakref.ref[Any] | None = None  # the newest iterator, whose workers close() stops

    def close(self) -> None:
        """Stop the worker processes now. The loader stays usable: iterating it again starts new ones."""
        # DataLoader has no public way to end persistent workers (pytorch/pytorch#48983); its iterator's
        # own shutdown is what garbage collection would call.
        iterators = [getattr(self.loader, "_iterator", None), self._last() if self._last is not None else None]
        for iterator in iterators:
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
        if getattr(self.loader, "_iterator", None) is not None:
            self.loader._iterator = None
        self._last = None

    def __enter__(self) -> EpochLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dataset(self) -> Any:
        """The dataset loaded (its items as indexing gives them; the workers index its raw view)."""
        return self._dataset

    @property
    def num_workers(self) -> int:
        """Worker processes in use."""
        return self.loader.num_workers

    @property
    def epoch(self) -> int:
        """The epoch the next iteration yields."""
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Order and augmentation of the next iteration are those of ``epoch``."""
        self.sampler.set_epoch(epoch)

    def set_start_batch(self, index: int) -> None:
        """The next iteration starts at batch ``index`` without loading the batches before it."""
        self.sampler.skip_next(int(index) * self.batch_size)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        # iter() runs now, not lazily: callers may wrap it in torch.random.fork_rng.
        iterator = iter(self.loader)
        self._last = weakref.ref(iterator)
        batches = _UserErrorsUnwrapped(iterator)
        device = self.prepare.device
        if device is not None and device.type == "cuda":
            return CudaPrefetcher(batches, self.prepare)
        return DeviceBatches(batches, self.prepare)


class _UserErrorsUnwrapped:
    """Re-raise a worker's :class:`UserError` with its own message, without the worker's traceback.

    A DataLoader worker re-raises its exception in the main process with the message
    "Caught DataError in DataLoader worker process 0. Original Traceback ...", which would reach the
    user as a traceback; the last line of that text is the original, one-paragraph message.
    """

    def __init__(self, iterator: Iterator[Any]):
        self.iterator = iterator

    def __iter__(self) -> _UserErrorsUnwrapped:
        return self

    def __next__(self) -> Any:
        try:
            return next(self.iterator)
        except UserError as exc:
            text = str(exc)
            if "Original Traceback" not in text:
                raise
            last = text.strip().splitlines()[-1]
            raise type(exc)(last.split(f"{type(exc).__name__}: ", 1)[-1]) from None

    def __len__(self) -> int:
        return len(self.iterator)  # type: ignore[arg-type]


def resolve_num_workers(value: int | str, local_world_size: int | None = None) -> int:
    """``auto``: this process's share of the cores but one per training process, capped at 8.

    The training processes of a node share its cores: with ``LOCAL_WORLD_SIZE`` processes (torchrun
    sets it; ``local_world_size`` overrides it) each gets ``(cores - processes) // processes``
    workers, so eight ranks on a 32-core box start 3 workers each rather than 8 (64 processes
    competing for 32 cores). On a machine with two cores or fewer, one process gets 0 (``auto``):
    the training step already keeps the cores busy with intra-op threads, and a
    worker process would only compete for them and add start-up and inter-process copying costs.
    """
    if value != "auto":
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    if local_world_size is None:
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    processes = max(1, local_world_size)
    if processes == 1 and cores <= 2:
        return 0
    return max(0, min((cores - processes) // processes, 8))


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a worker from torch's per-worker seed (set by the DataLoader)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    dataset: Any,
    cfg: DataConfig,
    *,
    split: str,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    device_type: str = "cpu",
    collate_fn: Any = None,
    device: torch.device | str | None = None,
    channels_last: bool = False,
) -> EpochLoader:
    """A loader for ``split``: shuffled, ``drop_last`` batches for ``train``; ordered ones otherwise.

    Image splits of the built-in sources travel from the workers as uint8 and are normalised by the
    loader, on ``device`` when given (batches then come out there; on CUDA through a side-stream
    prefetcher), else on the CPU: either way a batch equals its items stacked (see core.data.device).

    Args:
        dataset: A split of a :class:`core.data.DataBundle`.
        cfg: The data config (batch sizes, workers, pinning, prefetching).
        split: ``train``, ``val`` or ``test``.
        seed: Seed of the order (with the epoch).
        rank: This process's rank for sharding.
        world_size: Number of processes.
        device_type: Device the batches go to (``cuda`` pins memory when ``pin_memory: auto``).
        collate_fn: Turns a list of items into a batch (default: the dataset's ``collate_fn``
            attribute, which user data sets from ``data.collate``, else torch's).
        device: Where the batches come out (None: the CPU, where the workers left them); sets
            ``device_type``.
        channels_last: Finish 4-D image batches in channels_last memory format.
    """
    if device is not None:
        device = torch.device(device)
        device_type = device.type
    train = split == "train"
    batch_size = cfg.batch_size if train else (cfg.eval_batch_size or cfg.batch_size)
    drop_last = cfg.drop_last if train else False
    sampler = EpochSampler(len(dataset), shuffle=train, seed=seed, rank=rank, world_size=world_size, pad=train)
    if train and drop_last and sampler.num_per_rank() < batch_size:
        raise DataError(
            f"data.batch_size: {batch_size} is larger than the training split ({sampler.num_per_rank()} samples "
            f"per process) and data.drop_last is true, so an epoch would have no batches. "
            f"Fix: lower data.batch_size or set data.drop_last: false."
        )
    workers = resolve_num_workers(cfg.num_workers)
    pin = device_type == "cuda" if cfg.pin_memory == "auto" else bool(cfg.pin_memory)
    generator = torch.Generator()
    generator.manual_seed(mix_seed(seed, rank, 0x10AD))
    extra: dict[str, Any] = {}
    if workers > 0:
        extra = {"persistent_workers": cfg.persistent_workers, "prefetch_factor": cfg.prefetch_factor}
    collate = collate_fn if collate_fn is not None else getattr(dataset, "collate_fn", None)
    if collate is not None:
        extra["collate_fn"] = collate
    finish = getattr(dataset, "finish", None)
    workers_view = dataset.raw() if finish is not None else dataset  # uint8 images from the workers
    loader = DataLoader(
        workers_view,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=drop_last,
        worker_init_fn=seed_worker,
        generator=generator,
        **extra,
    )
    return EpochLoader(loader, sampler, batch_size, prepare=BatchPreparer(device, finish, channels_last),
                       dataset=dataset)
