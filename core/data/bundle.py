"""The built data of a run: datasets per split plus what checkpoints and viewers need to know."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataBundle:
    """Datasets of every split and their facts.

    Attributes:
        train: Training dataset; items are ``(input tensor, int label)``.
        val: Validation dataset (deterministic transforms).
        test: Test dataset or None.
        class_names: Label names, index = label.
        input_shape: ``(C, H, W)`` for images, ``(F,)`` for tabular data.
        task: ``"image"`` or ``"tabular"``.
        normalization: ``{"mean": [...], "std": [...]}`` as applied to images, or None.
        fitted: JSON-serialisable statistics fitted on the training split (pass back to ``build_data``).
        info: Source, split sizes and class counts.
    """

    train: Any
    val: Any
    test: Any | None
    class_names: list[str]
    input_shape: tuple[int, ...]
    task: str
    normalization: dict | None
    fitted: dict
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def checkpoint_data(self) -> dict:
        """What goes into ``checkpoint["data"]``: only lists, numbers, strings and dicts."""
        return {
            "class_names": list(self.class_names),
            "normalization": self.normalization,
            "fitted": self.fitted,
            "input_shape": list(self.input_shape),
            "task": self.task,
            "source": self.info.get("source"),
        }
