"""Batches on the training device: moving them there, finishing image batches there, and on CUDA
copying the next batch on a side stream while the current one trains.

Workers send image batches as uint8 (a quarter of float32's bytes through shared memory, the
pinned-memory thread and PCIe); :class:`DeviceBatches` moves each batch to the device and applies
the split's finishing step (:class:`core.data.transforms.Normalizer`: to float, normalise, and
channels_last when asked) there. On CUDA, :class:`CudaPrefetcher` does this for batch k+1 on its own
stream while the default stream computes batch k, so neither the copy nor the normalisation waits
in line with the model's kernels. Batches of other data (tabular, the user's dicts and tuples) are
moved as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator

import torch


def to_device(inputs: Any, device: torch.device, *, non_blocking: bool = True) -> Any:
    """Move a tensor, or the tensors of a tuple/list/dict, to ``device``."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=non_blocking)
    if isinstance(inputs, Mapping):
        return {k: to_device(v, device, non_blocking=non_blocking) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_device(v, device, non_blocking=non_blocking) for v in inputs)
    return inputs


def _record_stream(obj: Any, stream: torch.cuda.Stream) -> None:
    """Tell the caching allocator that ``stream`` uses these tensors (made on another stream)."""
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            obj.record_stream(stream)
    elif isinstance(obj, Mapping):
        for value in obj.values():
            _record_stream(value, stream)
    elif isinstance(obj, (tuple, list)):
        for value in obj:
            _record_stream(value, stream)


class BatchPreparer:
    """One batch from the loader's workers to what the model takes: on ``device`` (None: where it is),
    its inputs finished by ``finish`` when the split has one (uint8 images to normalised float)."""

    def __init__(self, device: torch.device | None, finish: Callable[..., Any] | None, channels_last: bool) -> None:
        self.device = device
        self.finish = finish
        self.channels_last = channels_last
        place = getattr(finish, "place", None)
        if device is not None and place is not None:
            place(device)  # the statistics' copy happens here, not as a sync inside a batch

    def __call__(self, batch: Any) -> Any:
        if not isinstance(batch, (tuple, list)) or not batch:
            return to_device(batch, self.device) if self.device is not None else batch
        x, rest = batch[0], list(batch[1:])
        if self.device is not None:
            x, rest = to_device(x, self.device), [to_device(r, self.device) for r in rest]
        if self.finish is not None and isinstance(x, torch.Tensor):
            x = self.finish(x, channels_last=self.channels_last)
        return [x, *rest]


class DeviceBatches:
    """The prepared batches of ``batches`` (an iterator over the workers' batches), one by one."""

    def __init__(self, batches: Iterator[Any], prepare: BatchPreparer) -> None:
        self.batches = batches
        self.prepare = prepare

    def __iter__(self) -> DeviceBatches:
        return self

    def __next__(self) -> Any:
        return self.prepare(next(self.batches))

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


class CudaPrefetcher(DeviceBatches):
    """CUDA: batch k+1 is copied (from pinned memory) and finished on a side stream while batch k trains.

    Each batch is handed over only after the default stream has been told to wait for the side
    stream's work on it, and its tensors are recorded as used by the default stream, so the caching
    allocator does not hand their memory out again while kernels still read it.
    """

    def __init__(self, batches: Iterator[Any], prepare: BatchPreparer) -> None:
        super().__init__(batches, prepare)
        assert prepare.device is not None and prepare.device.type == "cuda"
        self.stream = torch.cuda.Stream(prepare.device)
        self._next: Any = None
        self._started = False
        self._exhausted = False

    def _preload(self) -> None:
        try:
            batch = next(self.batches)
        except StopIteration:
            self._exhausted, self._next = True, None
            return
        with torch.cuda.stream(self.stream):
            self._next = self.prepare(batch)

    def __next__(self) -> Any:
        if not self._started:
            self._started = True
            self._preload()
        if self._exhausted:
            raise StopIteration
        current = torch.cuda.current_stream(self.prepare.device)
        current.wait_stream(self.stream)
        batch = self._next
        _record_stream(batch, current)
        self._preload()  # the next copy is queued now, behind nothing the model does
        return batch
