"""What a config's data is, known without reading the data: its classes and the shape of one input.

``ftui model show`` needs only these to build and describe the model, so it must not need the dataset
on disk (or minutes to load it). The built-in sources know both from the config (``shapes``) or by
definition (the torchvision sets, ``digits``); for the others (``imagefolder``, ``csv``, your own
data) the data has to be read, and :func:`known_facts` returns None.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import DataConfig

#: (channels, height, width, classes) of the sources whose images are fixed by definition.
NATIVE = {
    "cifar10": (3, 32, 32, 10),
    "cifar100": (3, 32, 32, 100),
    "mnist": (1, 28, 28, 10),
    "fashion_mnist": (1, 28, 28, 10),
    "digits": (1, 8, 8, 10),
}


@dataclass(frozen=True)
class DataFacts:
    """The classes and the input shape ``(C, H, W)`` that building the data would find."""

    num_classes: int
    input_shape: tuple[int, int, int]


def known_facts(cfg: DataConfig) -> DataFacts | None:
    """The data's classes and input shape from the config alone, or None when only the data can tell."""
    if cfg.source == "shapes":
        channels, side, classes = 3, cfg.shapes.image_size, len(cfg.shapes.classes)
        height = width = side
    elif cfg.source in NATIVE:
        channels, height, width, classes = NATIVE[cfg.source]
    else:
        return None
    if cfg.channels is not None:
        channels = cfg.channels
    if cfg.image_size is not None:  # resized and centre-cropped to a square (core.data.transforms)
        height = width = cfg.image_size
    return DataFacts(classes, (channels, height, width))
