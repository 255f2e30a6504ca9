"""A ConvMixer ("Patches Are All You Need?", Trockman & Kolter, 2022) — a network of your own for ftui.

ftui calls ``ConvMixer(num_classes=..., input_shape=..., **model.kwargs)``: it passes the data facts
that the signature names (here ``num_classes`` and ``input_shape``) and the config's ``model.kwargs``.
The head is ``head`` (a Linear), which ftui finds by its name; the repeated blocks live in
``blocks``, which ftui counts one by one for ``{last: N}`` and ``layer_decay``.
"""

from __future__ import annotations

import torch
from torch import nn


class MixerBlock(nn.Module):
    """Depthwise convolution (mixes space) with a residual, then a pointwise one (mixes channels)."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.spatial = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2), nn.GELU(), nn.BatchNorm2d(dim)
        )
        self.channel = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(x + self.spatial(x))


class ConvMixer(nn.Module):
    """Patch embedding, ``depth`` mixer blocks, global average pooling, a Linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], dim: int = 48, depth: int = 4,
                 kernel_size: int = 5, patch_size: int = 2) -> None:
        super().__init__()
        channels = input_shape[0]
        self.stem = nn.Sequential(
            nn.Conv2d(channels, dim, patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(dim)
        )
        self.blocks = nn.Sequential(*(MixerBlock(dim, kernel_size) for _ in range(depth)))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))))
