"""The dataset wrapper every split goes through: index subset, transform, per-sample seeding.

Keys are either an index or an ``(index, epoch)`` pair (what :class:`core.data.loader.EpochSampler`
yields). Random transforms run with torch's CPU generator seeded from ``(seed, epoch, index)``
inside ``torch.random.fork_rng``, so a sample's augmentation does not depend on which worker draws
it, on how many workers there are, or on what ran before it; the caller's RNG state is restored.

An image split's transform is an :class:`core.data.transforms.ImagePipeline`; its :meth:`SplitDataset.raw`
view (what the loaders' workers index) stops before the pipeline's :attr:`SplitDataset.finish`, so
workers send uint8 and the loader normalises whole batches on the device.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from core.data.seeding import mix_seed


class SplitDataset(Dataset):
    """A view of ``base`` restricted to ``indices`` with a transform applied to the input.

    Args:
        base: Map-style dataset whose items are ``(input, label)`` and which has ``targets``.
        indices: Indices of ``base`` in this split (None: all).
        transform: Applied to the input (None: the input is returned as is).
        seed: Seed of the per-sample augmentation.
        random: Whether ``transform`` draws random numbers (validation pipelines do not).
        split: Name of the split, for messages.
    """

    def __init__(
        self,
        base: Any,
        indices: Sequence[int] | None,
        transform: Callable[[Any], Any] | None,
        *,
        seed: int,
        random: bool,
        split: str,
    ):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)
        self.transform = transform
        self.seed = int(seed)
        self.random = random
        self.split = split
        self.is_raw = False  # the loaders' view: items stop before `finish`
        base_targets = [int(t) for t in base.targets]
        self.targets = [base_targets[i] for i in self.indices]

    @property
    def finish(self) -> Callable[..., Any] | None:
        """The batch-wise last step of an image pipeline (uint8 to normalised float), or None."""
        return getattr(self.transform, "finish", None)

    def raw(self) -> SplitDataset:
        """This split as the loaders' workers index it: items without :attr:`finish` (uint8 images),
        or the split itself when there is nothing to leave to the loader."""
        if self.finish is None:
            return self
        view = copy.copy(self)
        view.is_raw = True
        return view

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        x, label = self.base[self.indices[index]]
        transform = self.transform.sample if self.is_raw else self.transform  # type: ignore[union-attr]
        if transform is not None:
            if self.random:
                with torch.random.fork_rng(devices=[]):
                    # Only the CPU generator: seeding CUDA here would disturb the trainer's GPU RNG.
                    torch.random.default_generator.manual_seed(mix_seed(self.seed, epoch, index))
                    x = transform(x)
            else:
                x = transform(x)
        return x, int(label)


class TensorPairs:
    """A map-style dataset over a feature tensor and integer labels (tabular data)."""

    def __init__(self, features: torch.Tensor, labels: Sequence[int]):
        self.features = features
        self.targets = [int(v) for v in labels]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index = key[0] if isinstance(key, tuple) else key  # (index, epoch) from EpochSampler; no randomness here
        return self.features[index], self.targets[index]
