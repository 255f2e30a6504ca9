"""Recognise common torchvision architectures from state-dict key names and shapes (cheap, no data read).

A guess, reported as such: a state dict does not record its architecture. Only key names and
shapes are used, so the guess is instant even for a memory-mapped or safetensors file.
"""

from __future__ import annotations

import re
from typing import Mapping

from core.inspect.tensors import TensorInfo

_RESNETS = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("bottleneck", (3, 8, 36, 3)): "resnet152",
}
_DENSENETS = {(6, 12, 24, 16): "densenet121", (6, 12, 36, 24): "densenet161", (6, 12, 32, 32): "densenet169", (6, 12, 48, 32): "densenet201"}


def _count(names: list[str], pattern: str) -> int:
    """Number of distinct indices matched by the group in ``pattern``."""
    rx = re.compile(pattern)
    return len({m.group(1) for n in names if (m := rx.match(n))})


def _classes(infos: Mapping[str, TensorInfo], head: str) -> int | None:
    info = infos.get(f"{head}.weight")
    return info.shape[0] if info is not None and info.shape else None


def guess_architecture(infos: Mapping[str, TensorInfo]) -> dict | None:
    """``{"name", "head", "num_classes"}`` for a recognised torchvision model, else None."""
    names = list(infos)
    keys = set(names)
    name: str | None = None
    head = None
    if {"conv1.weight", "layer1.0.conv1.weight", "fc.weight"} <= keys:
        kind = "bottleneck" if "layer1.0.conv3.weight" in keys else "basic"
        blocks = tuple(_count(names, rf"layer{i}\.(\d+)\.") for i in range(1, 5))
        name = _RESNETS.get((kind, blocks))
        conv2 = infos.get("layer1.0.conv2.weight")
        if name in ("resnet50", "resnet101") and conv2 is not None and conv2.shape[:2] != (64, 64):
            if conv2.shape[1] == 4 or conv2.shape[1] == 8:  # grouped 3x3 convolutions
                name = "resnext50_32x4d" if name == "resnet50" else "resnext101"
            else:
                name = "wide_" + name + "_2"
        name = name or "resnet"
        head = "fc"
    elif "conv_proj.weight" in keys and any(n.startswith("encoder.layers.") for n in names):
        proj = infos["conv_proj.weight"].shape
        size = {768: "b", 1024: "l", 1280: "h"}.get(proj[0], "")
        name = f"vit_{size}_{proj[-1]}" if size else "vit"
        head = "heads.head"
    elif any(n.startswith("features.denseblock") for n in names):
        layers = tuple(_count(names, rf"features\.denseblock{i}\.denselayer(\d+)\.") for i in range(1, 5))
        name = _DENSENETS.get(layers, "densenet")
        head = "classifier"
    elif any(".block." in n and n.startswith("features.") for n in names) and "classifier.3.weight" in keys:
        name = "mobilenet_v3_large" if _count(names, r"features\.(\d+)\.") >= 17 else "mobilenet_v3_small"
        head = "classifier.3"
    elif "features.1.conv.0.0.weight" in keys and "classifier.1.weight" in keys:
        name, head = "mobilenet_v2", "classifier.1"
    elif any("layer_scale" in n for n in names) and "classifier.2.weight" in keys:
        name, head = "convnext", "classifier.2"
    elif any(".block." in n and n.startswith("features.") for n in names) and "classifier.1.weight" in keys:
        name, head = "efficientnet", "classifier.1"
    elif "features.0.weight" in keys and "classifier.6.weight" in keys:
        convs = sum(1 for n in names if re.match(r"features\.\d+\.weight$", n) and len(infos[n].shape) == 4)
        bn = any(re.match(r"features\.\d+\.running_mean$", n) for n in names)
        name = f"vgg{convs + 3}" + ("_bn" if bn else "")
        head = "classifier.6"
    if name is None:
        return None
    return {"name": name, "head": head, "num_classes": _classes(infos, head) if head else None}
