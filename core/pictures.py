"""Pictures a person opens: PNG grids of captioned image panels (NumPy and Pillow, no torch).

``ftui data preview --out`` and ``ftui explain`` draw through here, so a sample looks the same in both.
A tile is one or more panels side by side (an input and its overlay, or an input and its feature
maps) with caption lines underneath. Small images are enlarged by an integer factor with
nearest-neighbour sampling, so every drawn pixel is a block of identical pixels of the source and a
reader (or a test) can map the picture back to the arrays it came from; :func:`grid_image` returns
where each panel landed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

#: Panels are enlarged (by whole factors) until they are at least this many pixels high.
MIN_PANEL_SIDE = 96
BACKGROUND = (255, 255, 255)
CAPTION = (20, 20, 20)
WRONG = (190, 30, 30)
RIGHT = (20, 120, 50)


@dataclass
class Tile:
    """Panels (``(H, W, 3)`` uint8, equal heights) drawn side by side, with caption lines under them.

    Attributes:
        panels: The images of the tile, left to right.
        caption: Lines of text under the panels.
        colour: RGB colour of the first caption line (e.g. red for a wrong prediction).
    """

    panels: list[np.ndarray]
    caption: list[str] = field(default_factory=list)
    colour: tuple[int, int, int] = CAPTION


@dataclass(frozen=True)
class Box:
    """Where a panel landed in the picture: left, top, width and height in pixels, and its enlargement."""

    x: int
    y: int
    width: int
    height: int
    scale: int

    def as_list(self) -> list[int]:
        """``[x, y, width, height, scale]`` for JSON."""
        return [self.x, self.y, self.width, self.height, self.scale]


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an ``(H, W, C)`` image by a whole factor."""
    if scale <= 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def panel_scale(height: int, min_side: int = MIN_PANEL_SIDE) -> int:
    """The whole factor that makes a panel of ``height`` pixels at least ``min_side`` high."""
    return max(1, math.ceil(min_side / max(1, height)))


def grid_image(tiles: Sequence[Tile], *, columns: int = 4, gap: int = 10, title: str | None = None):
    """Lay ``tiles`` out in rows of ``columns``.

    Returns:
        ``(PIL.Image.Image, boxes)`` where ``boxes[i][j]`` is the :class:`Box` of panel ``j`` of tile ``i``.
    """
    from PIL import Image, ImageDraw

    if not tiles:
        raise ValueError("no tiles to draw")
    font = _font(13)
    line_h = 17
    scale = panel_scale(max(p.shape[0] for t in tiles for p in t.panels))
    sizes = [(sum(p.shape[1] for p in t.panels) * scale + gap // 2 * (len(t.panels) - 1),
              max(p.shape[0] for p in t.panels) * scale) for t in tiles]
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((draw_probe.textlength(line, font=font) for t in tiles for line in t.caption), default=0)
    cell_w = int(max(max(w for w, _ in sizes), text_w)) + gap
    caption_lines = max(len(t.caption) for t in tiles)
    cell_h = max(h for _, h in sizes) + caption_lines * line_h + gap + 4
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    top = (line_h + gap) if title else 0
    picture = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap + top), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    if title:
        draw.text((gap, gap // 2), title, fill=CAPTION, font=_font(14))
    boxes: list[list[Box]] = []
    for i, tile in enumerate(tiles):
        x0 = gap + (i % columns) * cell_w
        y0 = gap + top + (i // columns) * cell_h
        x, tile_boxes = x0, []
        for panel in tile.panels:
            big = enlarge(np.ascontiguousarray(panel, dtype=np.uint8), scale)
            picture.paste(Image.fromarray(big, "RGB"), (x, y0))
            tile_boxes.append(Box(x, y0, big.shape[1], big.shape[0], scale))
            x += big.shape[1] + gap // 2
        boxes.append(tile_boxes)
        y = y0 + sizes[i][1] + 3
        for k, line in enumerate(tile.caption):
            draw.text((x0, y + k * line_h), line, fill=tile.colour if k == 0 else CAPTION, font=font)
    return picture, boxes


def save_png(picture, path: Path | str) -> Path:
    """Write a Pillow image as PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG", optimize=False)
    return path


def bar_panel(names: Sequence[str], values: Sequence[float], *, width: int = 320, title: str = ""):
    """A horizontal bar chart (positive bars green, negative red) as an ``(H, W, 3)`` uint8 image."""
    from PIL import Image, ImageDraw

    font = _font(12)
    row_h, label_w = 16, 120
    height = row_h * (len(names) + (1 if title else 0)) + 6
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    y = 3
    if title:
        draw.text((3, y), title, fill=CAPTION, font=font)
        y += row_h
    peak = max((abs(float(v)) for v in values), default=0.0) or 1.0
    mid = label_w + (width - label_w) // 2
    half = (width - label_w) // 2 - 4
    draw.line([(mid, y), (mid, height - 3)], fill=(160, 160, 160))
    for name, value in zip(names, values):
        draw.text((3, y + 1), _fit(str(name), 18), fill=CAPTION, font=font)
        length = int(round(abs(float(value)) / peak * half))
        if length:
            x0, x1 = (mid, mid + length) if value > 0 else (mid - length, mid)
            draw.rectangle([x0, y + 3, x1, y + row_h - 3], fill=RIGHT if value > 0 else WRONG)
        y += row_h
    return np.asarray(picture, dtype=np.uint8)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size only
        return ImageFont.load_default()
