"""A dataset class of your own for ftui: procedural textures, generated offline (no download).

``make_textures(...)`` is what the config names (``data.source: ./byo/textures.py:make_textures``):
ftui calls it with ``data.kwargs`` (and ``seed``, because the signature names it) and it returns the
splits and the class names. Each item is ``(image, label)``: a 3x32x32 float tensor and an int.

A sample is a function of (seed, split, index) — the texture's frequency, phase, colours and noise
are drawn from a generator seeded by them — and the training split adds a random flip and shift
drawn from torch's global generator, which ftui seeds per sample from (seed, epoch, index): any
number of workers, and a resumed run, see exactly the same augmented samples.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

CLASSES = ["horizontal", "vertical", "diagonal", "checker", "dots", "rings"]


class Textures(Dataset):
    """``size`` textures of 3 x ``side`` x ``side`` pixels; ``augment`` flips and shifts them at random."""

    def __init__(self, size: int, *, seed: int, split: str, side: int = 32, noise: float = 0.25,
                 augment: bool = False) -> None:
        self.size = size
        self.seed = seed
        self.offset = {"train": 0, "val": 1, "test": 2}[split] * 10_000_019
        self.side = side
        self.noise = noise
        self.augment = augment
        self.targets = [self._label(i) for i in range(size)]
        self._grid: tuple[torch.Tensor, torch.Tensor] | None = None  # lets ftui count classes without drawing images

    def __len__(self) -> int:
        return self.size

    def _label(self, index: int) -> int:
        return (index * 7 + self.seed) % len(CLASSES)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.targets[index]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.offset + index)
        image = self._draw(label, g)
        if self.augment:
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
            shift = torch.randint(0, self.side, (2,))
            image = image.roll((int(shift[0]), int(shift[1])), dims=(1, 2))
        return image, label

    def _draw(self, label: int, g: torch.Generator) -> torch.Tensor:
        n = self.side
        if self._grid is None:
            self._grid = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                                        indexing="ij")
        ys, xs = self._grid
        u = torch.rand(11, generator=g).tolist()  # one draw for every random choice of this sample
        period = 6.0 + 6.0 * u[0]
        phase = 2 * math.pi * u[1]
        k = 2 * math.pi / period
        if label == 0:
            wave = torch.sin(k * ys + phase)
        elif label == 1:
            wave = torch.sin(k * xs + phase)
        elif label == 2:
            sign = 1.0 if u[2] < 0.5 else -1.0
            wave = torch.sin(k * (xs + sign * ys) / math.sqrt(2) + phase)
        elif label == 3:
            wave = torch.sin(k * xs + phase) * torch.sin(k * ys + phase)
        elif label == 4:
            wave = torch.cos(k * xs + phase) + torch.cos(k * ys + phase) - 1.0
        else:
            cy, cx = u[3] * n, u[4] * n
            wave = torch.sin(k * torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) + phase)
        mask = (wave > 0).float()
        fg, bg = torch.tensor(u[5:8]).view(3, 1, 1), torch.tensor(u[8:11]).view(3, 1, 1)
        image = bg + (fg - bg) * mask + self.noise * torch.randn(3, n, n, generator=g)
        return image.clamp_(0, 1)


def make_textures(seed: int, train_size: int = 4000, val_size: int = 800, test_size: int = 800,
                  side: int = 32, noise: float = 0.25) -> dict:
    """The splits ftui asks for: train, val, test and the class names."""
    return {
        "train": Textures(train_size, seed=seed, split="train", side=side, noise=noise, augment=True),
        "val": Textures(val_size, seed=seed, split="val", side=side, noise=noise),
        "test": Textures(test_size, seed=seed, split="test", side=side, noise=noise),
        "class_names": CLASSES,
    }
