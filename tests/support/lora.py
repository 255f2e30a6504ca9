"""The LoRA tests' shared config: a torchvision ViT sized down through model.kwargs, adapted on its
encoder (attention and MLP layers) to three shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.training import tiny_raw

VIT = {"name": "vit_b_16", "kwargs": {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}}
SHAPES = {"image_size": 16, "train_size": 96, "val_size": 32, "test_size": 32, "classes": ["diamond", "ellipse", "arrow"],
          "difficulty": 0.2}
LORA = {"target": ["encoder"], "rank": 2, "alpha": 4, "lr": 0.02}


def lora_raw(root: Path, name: str, base: Path | None, **sections: Any) -> dict[str, Any]:
    """A config dict adapting the small ViT (``base``: its weights file, or none) with rank-2 adapters."""
    model = {**VIT, **({"weights": str(base)} if base else {})}
    raw = tiny_raw(root, name, data={"shapes": SHAPES}, model=model, finetune={"lora": LORA},
                   optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.0}, schedule={"name": "none"},
                   trainer={"epochs": 2, "device": "cpu", "cpu_threads": 1},
                   logging={"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False,
                            "flush_seconds": 0.05})
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw
