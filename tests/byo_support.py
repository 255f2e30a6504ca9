"""Shared helpers for the bring-your-own-code tests: a tiny model file, a tiny dataset file, a config.

(No tests here.) The files are written into each test's tmp_path, so every test imports its own
copy: a file ftui imported once stays imported for the process, and the marker tests need files
that no earlier test imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MODEL_PY = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """A small network of the user's: features, a body and a classifier head (found by its name)."""

    def __init__(self, num_classes, input_shape, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, padding=1), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.body = nn.Sequential(nn.Linear(width * 4, 16), nn.ReLU(), nn.Dropout(0.2))
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.classifier(self.body(self.features(x)))
'''

DATA_PY = '''
import torch
from torch.utils.data import Dataset

CLASSES = ["red", "green", "blue"]


class Blobs(Dataset):
    """3x8x8 images whose label is the brightest channel; noise from torch's global generator
    (ftui seeds it per sample, so resumes and worker counts see the same noise)."""

    def __init__(self, n, seed, offset, side=8):
        self.seed, self.offset, self.side = seed, offset, side
        self.targets = [i % 3 for i in range(n)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.offset + i)
        x = torch.rand(3, self.side, self.side, generator=g) * 0.6
        x[i % 3] += 0.4
        return x + 0.1 * torch.randn(3, self.side, self.side), self.targets[i]


def make_data(seed, n_train=96, n_val=32, n_test=32, side=8):
    return {"train": Blobs(n_train, seed, 0, side), "val": Blobs(n_val, seed, 10**6, side),
            "test": Blobs(n_test, seed, 2 * 10**6, side), "class_names": CLASSES}
'''


def write_code(folder: Path, *, model: str = MODEL_PY, data: str = DATA_PY) -> None:
    """``models.py`` and ``data.py`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.py").write_text(model)
    (folder / "data.py").write_text(data)


def byo_raw(root: Path, name: str = "byo", **sections: dict[str, Any]) -> dict[str, Any]:
    """A config dict naming ./models.py:TinyNet and ./data.py:make_data (next to the config file)."""
    raw: dict[str, Any] = {
        "run": {"name": name, "root": str(root / "runs"), "seed": 3},
        "data": {"source": "./data.py:make_data", "batch_size": 16, "num_workers": 0},
        "model": {"name": "./models.py:TinyNet", "kwargs": {"width": 8}},
        "optim": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 0.5},
        "trainer": {"epochs": 2, "device": "cpu", "cpu_threads": 1},
        "logging": {"every_n_steps": 2, "progress": "none", "system": False, "tensorboard": False},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def byo_config(folder: Path, name: str = "byo", *, write: bool = True, **sections: dict[str, Any]) -> Path:
    """Write the code files (unless ``write`` is False) and ``<name>.yaml`` into ``folder``; returns the config path."""
    if write:
        write_code(folder)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(byo_raw(folder, name, **sections)))
    return path
