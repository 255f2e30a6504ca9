"""The half-block sample grid and the preview renderables, rendered into a string console."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console

from core.config import config_from_dict
from core.data import build_data
from core.data.render import SampleGrid, shrink, to_rgb_uint8
from core.data.summary import imbalance_ratio, preview_renderable

CELL = re.compile(r"\x1b\[38;2;(\d+);(\d+);(\d+)(?:;48;2;(\d+);(\d+);(\d+))?m▀")


def render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console.file.getvalue()


def test_half_blocks_carry_top_pixel_as_foreground_and_bottom_as_background() -> None:
    img = np.zeros((4, 3, 3), dtype=np.uint8)
    img[0] = [255, 0, 0]  # red top row
    img[1] = [0, 0, 255]  # blue second row
    img[2:, :, 1] = np.arange(3, dtype=np.uint8)[None, :] * 100  # green ramp in rows 2-3
    out = render(SampleGrid([img], ["label"]))
    cells = [tuple(int(v) for v in m) for m in CELL.findall(out)]
    assert len(cells) == 6  # 3 columns x 2 character rows for 4 pixel rows
    assert cells[:3] == [(255, 0, 0, 0, 0, 255)] * 3
    assert cells[3:] == [(0, 0, 0, 0, 0, 0), (0, 100, 0, 0, 100, 0), (0, 200, 0, 0, 200, 0)]
    # The label is cut to the image's width.
    assert re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines()[2] == "la…"


def test_grid_wraps_to_the_width_and_labels_each_image() -> None:
    images = [np.full((8, 8, 3), i * 20, dtype=np.uint8) for i in range(5)]
    labels = [f"c{i}" for i in range(5)]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", render(SampleGrid(images, labels, gap=2), width=30))
    lines = plain.splitlines()
    # (30 + 2) // (8 + 2) = 3 images per row: rows of 4 pixel lines + a label line + a blank line.
    assert lines[0] == "▀" * 8 + "  " + "▀" * 8 + "  " + "▀" * 8
    assert lines[4].split() == ["c0", "c1", "c2"] and lines[10].split() == ["c3", "c4"]


def test_odd_heights_grey_and_normalised_images() -> None:
    grey = np.full((1, 3, 2), 0.5, dtype=np.float32)  # (C, H, W) normalised with mean 0.5 std 0.25
    rgb = to_rgb_uint8(grey, {"mean": [0.5], "std": [0.25]})
    assert rgb.shape == (3, 2, 3) and np.all(rgb == 159)  # 0.5 * 0.25 + 0.5 = 0.625 -> 159
    out = render(SampleGrid([rgb], ["x"]))
    assert out.count("▀") == 4  # the last, unpaired pixel row has no background colour
    assert re.search(r"\x1b\[38;2;159;159;159m▀", out)
    big = np.zeros((100, 60, 3), dtype=np.uint8)
    assert shrink(big, 32).shape == (32, 19, 3)


def test_preview_shows_statistics_and_augmented_samples() -> None:
    cfg = config_from_dict(
        {"data": {"shapes": {"classes": ["star", "ring", "heart"], "train_size": 30, "val_size": 6, "test_size": 0},
                  "augment": {"hflip": 0.5}}}
    ).data
    bundle = build_data(cfg, seed=0)
    out = render(preview_renderable(bundle, "train", 6, seed=2), width=120)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    for text in ("train", "val", "30", "imbalance", "1.00", "star", "ring", "heart", "normalize mean", "augmented"):
        assert text in plain, text
    assert len(CELL.findall(out)) == 6 * 32 * 16
    # The same seed draws the same samples with the same augmentation.
    assert out == render(preview_renderable(bundle, "train", 6, seed=2), width=120)
    assert out != render(preview_renderable(bundle, "train", 6, seed=3), width=120)


def test_imbalance_ratio() -> None:
    assert imbalance_ratio([10, 5, 20]) == 4.0
    assert imbalance_ratio([3, 0]) == float("inf")
    assert np.isnan(imbalance_ratio([]))
    with pytest.raises(ValueError):
        SampleGrid([np.zeros((2, 2, 3), dtype=np.uint8)], [])


def test_renderables_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, core.data.render, core.data.summary;"
        "bad = [m for m in ('torch', 'torchvision', 'textual') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
