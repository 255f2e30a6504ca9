"""The built-in models: ``simple_cnn`` for images and ``mlp`` for tabular data.

Both end in a ``head`` Linear and size themselves from the data's input shape, so nothing depends on
a hard-coded flatten size.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from core.config import ModelConfig
from core.errors import ModelError


def simple_cnn(cfg: ModelConfig, num_classes: int, input_shape: tuple[int, ...]) -> nn.Sequential:
    """Conv stages (conv-BN-ReLU twice, then 2x2 max-pool) from ``cfg.channels``, global pool, head.

    Pooling is skipped once the feature map is down to one pixel, so any input of side >= 8 (and
    more stages than the input has halvings) works; the global average pool removes any dependence
    of the head on the input size.
    """
    if len(input_shape) != 3:
        raise ModelError(
            f"model.name: simple_cnn needs image input (channels, height, width), but the data gives "
            f"shape {tuple(input_shape)}; use model.name: mlp for tabular data."
        )
    in_ch, height, width = input_shape
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    side = min(height, width)
    for i, out_ch in enumerate(cfg.channels, start=1):
        stage: list[nn.Module] = []
        for conv_in in (in_ch, out_ch):
            stage.append(nn.Conv2d(conv_in, out_ch, kernel_size=3, padding=1, bias=not cfg.batch_norm))
            if cfg.batch_norm:
                stage.append(nn.BatchNorm2d(out_ch))
            stage.append(nn.ReLU(inplace=True))
        if side >= 2:
            stage.append(nn.MaxPool2d(2))
            side //= 2
        if cfg.dropout > 0:
            stage.append(nn.Dropout(cfg.dropout))
        layers[f"stage{i}"] = nn.Sequential(*stage)
        in_ch = out_ch
    layers["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    layers["head"] = nn.Linear(in_ch, num_classes)
    return nn.Sequential(layers)


def mlp(cfg: ModelConfig, num_classes: int, input_shape: tuple[int, ...]) -> nn.Sequential:
    """Hidden blocks (Linear, optional batch/layer norm, ReLU, optional dropout) and a ``head`` Linear.

    Inputs of more than one dimension (images) are flattened first.
    """
    norm = cfg.norm or ("batch" if cfg.batch_norm else "none")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if len(input_shape) > 1:
        layers["flatten"] = nn.Flatten()
    features = int(math.prod(input_shape))
    for i, hidden in enumerate(cfg.hidden, start=1):
        block: list[nn.Module] = [nn.Linear(features, hidden, bias=norm != "batch")]
        if norm == "batch":
            block.append(nn.BatchNorm1d(hidden))
        elif norm == "layer":
            block.append(nn.LayerNorm(hidden))
        block.append(nn.ReLU(inplace=True))
        if cfg.dropout > 0:
            block.append(nn.Dropout(cfg.dropout))
        layers[f"block{i}"] = nn.Sequential(*block)
        features = hidden
    layers["head"] = nn.Linear(features, num_classes)
    return nn.Sequential(layers)
