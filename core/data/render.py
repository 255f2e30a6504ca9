"""A Rich renderable that draws images in the terminal with half-block characters, labelled.

Each character cell shows two pixels: the upper one as the foreground colour of ``▀`` and the lower
one as the background colour, so a 32x32 image takes 32 columns and 16 lines. Rich (and through it
Textual) downgrades the true colours to what the terminal supports. Where there are no colours at all
(output piped into a file, ``NO_COLOR``) the grid lists its images' labels instead of drawing blocks
that would all look alike. No torch and no Textual here:
the app reuses the renderable as is.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

UPPER_HALF = "▀"


def to_rgb_uint8(image: np.ndarray, normalization: dict | None = None) -> np.ndarray:
    """A ``(C, H, W)`` float image (normalised or in [0, 1]) or uint8 image as ``(H, W, 3)`` uint8.

    Args:
        image: Channels-first array, 1 or 3 channels (more are cut to 3).
        normalization: ``{"mean", "std"}`` to undo, or None.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    else:
        out = arr.astype(np.float32)
        if normalization is not None:
            mean = np.asarray(normalization["mean"], dtype=np.float32)[:, None, None]
            std = np.asarray(normalization["std"], dtype=np.float32)[:, None, None]
            out = out * std + mean
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    out = out[:3]
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """Nearest-neighbour downscale of an ``(H, W, 3)`` image so its longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    scale = max(h, w) / max_side
    if scale <= 1:
        return image
    nh, nw = max(1, round(h / scale)), max(1, round(w / scale))
    rows = (np.arange(nh) * h / nh + h / nh / 2).astype(int).clip(0, h - 1)
    cols = (np.arange(nw) * w / nw + w / nw / 2).astype(int).clip(0, w - 1)
    return image[rows][:, cols]


class SampleGrid:
    """Images in rows that fit the console width, each with its label underneath.

    Args:
        images: ``(H, W, 3)`` uint8 arrays (see :func:`to_rgb_uint8`).
        labels: One caption per image.
        max_side: Images larger than this are downscaled for the terminal.
        gap: Columns between images.
    """

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[str], *, max_side: int = 32, gap: int = 2,
                 details: Sequence[str] | None = None, plain_hint: str | None = None):
        if len(images) != len(labels):
            raise ValueError("one label per image")
        self.details = [str(d) for d in details] if details is not None else None
        self.plain_hint = plain_hint
        self.images = [shrink(np.asarray(img), max_side) for img in images]
        self.labels = [str(label) for label in labels]
        self.gap = gap
        self.cell_width = max((img.shape[1] for img in self.images), default=1)
        self.cell_height = max((img.shape[0] for img in self.images), default=1)

    def columns_for(self, width: int) -> int:
        """How many images fit side by side in ``width`` columns."""
        return max(1, min(len(self.images), (width + self.gap) // (self.cell_width + self.gap)))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        full = len(self.images) * (self.cell_width + self.gap) - self.gap
        return Measurement(self.cell_width, max(self.cell_width, full))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if console.color_system is None or console.no_color:
            # Without colours every half block looks the same: list the samples instead.
            yield from self._plain(options.max_width)
            return
        cols = self.columns_for(options.max_width)
        for start in range(0, len(self.images), cols):
            yield from self._row(self.images[start : start + cols], self.labels[start : start + cols])

    def _plain(self, width: int) -> Iterable[Text]:
        items = [f"{k + 1:>3}. {text}" for k, text in enumerate(self.details or self.labels)]
        line = ""
        for item in items:
            if line and len(line) + 2 + len(item) > width:
                yield Text(line)
                line = ""
            line = f"{line}  {item}" if line else item
        if line:
            yield Text(line)
        if self.plain_hint:
            yield Text(self.plain_hint)

    def _row(self, images: list[np.ndarray], labels: list[str]) -> Iterable[Segment]:
        pad = Segment(" " * self.gap)
        for y in range(0, self.cell_height, 2):
            for k, img in enumerate(images):
                if k:
                    yield pad
                yield from self._pixel_pair_row(img, y)
            yield Segment.line()
        for k, label in enumerate(labels):
            if k:
                yield pad
            text = label if len(label) <= self.cell_width else label[: self.cell_width - 1] + "…"
            yield Segment(text.center(self.cell_width), Style(bold=True))
        yield Segment.line()
        yield Segment.line()

    def _pixel_pair_row(self, img: np.ndarray, y: int) -> Iterable[Segment]:
        h, w = img.shape[:2]
        if y >= h:
            yield Segment(" " * self.cell_width)
            return
        top = img[y]
        bottom = img[y + 1] if y + 1 < h else None
        for x in range(w):
            fg = "#%02x%02x%02x" % tuple(int(v) for v in top[x])
            bg = None if bottom is None else "#%02x%02x%02x" % tuple(int(v) for v in bottom[x])
            yield Segment(UPPER_HALF, _style(fg, bg))
        if w < self.cell_width:
            yield Segment(" " * (self.cell_width - w))


_STYLE_CACHE: dict[tuple[str, str | None], Style] = {}


def _style(fg: str, bg: str | None) -> Style:
    # Parsing colours dominates drawing time; images repeat colours a lot, so styles are memoised.
    key = (fg, bg)
    style = _STYLE_CACHE.get(key)
    if style is None:
        if len(_STYLE_CACHE) > 65536:
            _STYLE_CACHE.clear()
        style = _STYLE_CACHE[key] = Style(color=fg, bgcolor=bg)
    return style


class HalfBlockImage:
    """One ``(H, W, 3)`` uint8 image drawn as it is: ``W`` columns and ``ceil(H / 2)`` lines of half blocks.

    The caller sizes the image to the cells it has (:func:`fit_image`); the app's pictures and
    gallery tiles use this when the terminal shows no pixel graphics.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.image = np.asarray(image, dtype=np.uint8)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.image.shape[1], self.image.shape[1])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        img = self.image
        h, w = img.shape[:2]
        hexes = [["#%02x%02x%02x" % (int(p[0]), int(p[1]), int(p[2])) for p in row] for row in img]
        for y in range(0, h, 2):
            top = hexes[y]
            bottom = hexes[y + 1] if y + 1 < h else None
            for x in range(w):
                yield Segment(UPPER_HALF, _style(top[x], None if bottom is None else bottom[x]))
            yield Segment.line()


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image to ``width`` x ``height`` pixels.

    Enlarging (and small images) use nearest-neighbour sampling, so pixels stay crisp squares;
    shrinking a photo averages (Pillow's box filter), so thin details fade instead of flickering.
    """
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if height >= h or width >= w or max(h, w) <= 32:
        rows = (np.arange(height) * h // max(1, height)).clip(0, h - 1)
        cols = (np.arange(width) * w // max(1, width)).clip(0, w - 1)
        return image[rows][:, cols]
    from PIL import Image

    return np.asarray(Image.fromarray(image, "RGB").resize((width, height), Image.Resampling.BOX), dtype=np.uint8)
