"""The model's input shape and class count for a config, for commands that build a model without
training it (``ftui model show``/``graph``)."""

from __future__ import annotations

from core.config import Config, DataConfig
from core.errors import DataError

# Native (channels, side, classes) of sources whose shape the config alone determines.
_NATIVE = {
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "mnist": (1, 28, 10),
    "fashion_mnist": (1, 28, 10),
    "digits": (1, 8, 10),
}


def data_signature(cfg: Config) -> tuple[int, tuple[int, ...]]:
    """``(num_classes, input_shape)`` of the config's data.

    Uses ``core.data.build_data`` (the truth, including ``csv`` and ``imagefolder``); when the data
    package is not importable, derives them from the config for the sources whose shape it fixes.

    Raises:
        DataError: the data cannot be built or its shape cannot be derived.
    """
    try:
        from core.data import build_data
    except ImportError:
        return _from_config(cfg.data)
    bundle = build_data(cfg.data, cfg.run.seed)
    return bundle.num_classes, tuple(int(s) for s in bundle.input_shape)


def _from_config(data: DataConfig) -> tuple[int, tuple[int, ...]]:
    if data.source == "shapes":
        channels, side, classes = 3, data.shapes.image_size, len(data.shapes.classes)
    elif data.source in _NATIVE:
        channels, side, classes = _NATIVE[data.source]
    else:
        raise DataError(
            f"data.source: the input shape of '{data.source}' data is only known after loading it, and the "
            f"data package is not available in this installation."
        )
    return classes, (data.channels or channels, data.image_size or side, data.image_size or side)
