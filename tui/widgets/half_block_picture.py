"""A picture drawn with half blocks through Textual's line API (one strip per two pixel rows).

Strips are built once per picture (runs of equal cells merged into one segment) and handed out by
:meth:`render_line`, so redrawing a gallery page costs a dictionary lookup per line rather than a
pass through Rich's renderer per cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

UPPER_HALF = "▀"
_STYLES: dict[tuple[int, int], Style] = {}


def _style(top: int, bottom: int) -> Style:
    key = (top, bottom)
    style = _STYLES.get(key)
    if style is None:
        if len(_STYLES) > 200_000:
            _STYLES.clear()
        style = _STYLES[key] = Style.parse(f"#{top:06x} on #{bottom:06x}")
    return style


def picture_strips(image: np.ndarray) -> list[Strip]:
    """The strips of an ``(H, W, 3)`` uint8 image: ``ceil(H / 2)`` lines of ``W`` cells."""
    img = np.asarray(image, dtype=np.uint8)
    h, w = img.shape[:2]
    if h % 2:
        img = np.concatenate([img, np.zeros((1, w, 3), dtype=np.uint8)])
    packed = (img[..., 0].astype(np.int64) << 16) | (img[..., 1].astype(np.int64) << 8) | img[..., 2]
    strips = []
    for y in range(0, packed.shape[0], 2):
        top, bottom = packed[y].tolist(), packed[y + 1].tolist()
        segments = []
        start = 0
        for x in range(1, w + 1):
            if x == w or top[x] != top[start] or bottom[x] != bottom[start]:
                segments.append(Segment(UPPER_HALF * (x - start), _style(top[start], bottom[start])))
                start = x
        strips.append(Strip(segments, w))
    return strips


class HalfBlockPicture(Widget):
    """Shows an ``(H, W, 3)`` uint8 image at one cell per pixel column and two pixel rows per line."""

    DEFAULT_CSS = """
    HalfBlockPicture {
        width: auto;
        height: auto;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._strips: list[Strip] = []
        self._width = 0

    def show(self, image: np.ndarray) -> None:
        """Draw ``image`` (sized by the caller)."""
        self._strips = picture_strips(image)
        self._width = int(np.asarray(image).shape[1])
        self.refresh(layout=True)

    def get_content_width(self, container: Any, viewport: Any) -> int:
        return self._width

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self._strips)

    def render_line(self, y: int) -> Strip:
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)
