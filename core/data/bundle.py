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
        input_shape: ``(C, H, W)`` for images, ``(F,)`` for tabular data; for user data the shape of
            one item's inputs: a tuple, a dict of name -> shape, or a list of shapes (tuple inputs).
        task: ``"image"``, ``"tabular"`` or ``"custom"`` (user data that is neither).
        normalization: ``{"mean": [...], "std": [...]}`` as applied to images, or None.
        fitted: JSON-serialisable statistics fitted on the training split (pass back to ``build_data``).
        info: Source, split sizes and class counts.
        meta: JSON-safe facts from user data (``vocab_size``...), passed to model callables by name.
        code: what built user data (``{"data": record, "collate": record}``), for ``checkpoint["code"]``.
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
    meta: dict = field(default_factory=dict)
    code: dict | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def facts(self) -> dict[str, Any]:
        """What the data knows, for user callables that name it: num_classes, input_shape, class_names, meta."""
        return {
            "num_classes": self.num_classes,
            "input_shape": self.input_shape,
            "class_names": list(self.class_names),
            **self.meta,
        }

    def example(self, split: str = "val", n: int = 1) -> Any:
        """The inputs of the first ``n`` items of ``split`` as one batch (collated as the loaders do)."""
        from torch.utils.data import default_collate

        from core.errors import DataError

        dataset = getattr(self, split)
        items = [dataset[i] for i in range(min(n, len(dataset)))]
        collate = getattr(dataset, "collate_fn", None)
        batch = (collate or default_collate)(items)
        if collate is not None and not (isinstance(batch, (tuple, list)) and len(batch) == 2
                                        and getattr(batch[1], "shape", None) == (len(items),)):
            raise DataError(
                f"data.collate: {getattr(collate, '__name__', 'the collate function')} returned "
                f"{type(batch).__name__} for {len(items)} items; ftui needs (inputs, labels) with labels a tensor of "
                f"{len(items)} class indices. Fix: return (inputs, torch.tensor(labels))."
            )
        return batch[0]

    def checkpoint_data(self) -> dict:
        """What goes into ``checkpoint["data"]``: only lists, numbers, strings and dicts."""
        return {
            "class_names": list(self.class_names),
            "normalization": self.normalization,
            "fitted": self.fitted,
            "input_shape": shape_json(self.input_shape),
            "task": self.task,
            "source": self.info.get("source"),
            "meta": dict(self.meta),
        }


def shape_json(shape: Any) -> Any:
    """An input shape as JSON: a list, a dict of name -> list, or a list of lists."""
    if isinstance(shape, dict):
        return {str(k): [int(s) for s in v] for k, v in shape.items()}
    if shape and isinstance(next(iter(shape)), (tuple, list)):
        return [[int(s) for s in v] for v in shape]
    return [int(s) for s in shape]
