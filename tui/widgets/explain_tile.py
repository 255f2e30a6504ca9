"""One tile of the Explain gallery: a sample's panels (input, overlay, feature maps) and its caption.

Panels are drawn with terminal graphics when :mod:`tui.terminal_images` found Kitty or Sixel, and
with half blocks otherwise (one cell = two pixels stacked). Tabular samples show their strongest
feature attributions as bars instead of pictures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from core.data.render import fit_image
from tui.terminal_images import picture_widget_class
from tui.widgets.half_block_picture import HalfBlockPicture


def join_panels(panels: list[np.ndarray], side: int) -> np.ndarray:
    """Panels resized to ``side`` x ``side`` pixels, side by side with a one-pixel dark gap."""
    gap = np.zeros((side, 1, 3), dtype=np.uint8)
    parts: list[np.ndarray] = []
    for k, panel in enumerate(panels):
        if k:
            parts.append(gap)
        parts.append(fit_image(panel, side, side))
    return np.concatenate(parts, axis=1)


def bars(rows: list[tuple[str, float]], width: int) -> Table:
    """Signed attributions as bars around a centre line (green: towards the class, red: against)."""
    table = Table.grid(padding=(0, 1))
    name_w = min(14, max((len(n) for n, _ in rows), default=4))
    half = max(3, (width - name_w - 3) // 2)
    table.add_column(width=name_w, no_wrap=True)
    table.add_column(width=half, justify="right", no_wrap=True)
    table.add_column(width=half, no_wrap=True)
    peak = max((abs(v) for _, v in rows), default=0.0) or 1.0
    for name, value in rows:
        n = max(1, round(abs(value) / peak * half)) if value else 0
        left = Text("█" * n, style="red") if value < 0 else Text("")
        right = Text("█" * n, style="green") if value > 0 else Text("")
        table.add_row(Text(name[:name_w]), left, right)
    return table


def caption_text(tile: Any, selected: bool) -> Group:
    """The caption lines; the first red for a wrong prediction, reversed on the selected tile.

    Styles in the text rather than CSS classes: a class change restyles the tile's subtree, which
    would cost more than drawing the page.
    """
    lines = []
    for k, line in enumerate(tile.caption):
        style = ("red" if tile.wrong else "green") if k == 0 and tile.record is not None else ""
        if selected:
            style = f"bold reverse {style}".strip()
        lines.append(Text(("▶ " if selected and k == 0 else "") + line, style=style, no_wrap=True, overflow="ellipsis"))
    return Group(*lines)


def _size(widget: Any, width: int, height: int | None) -> None:
    """Set a widget's size only when it changes (each change costs a CSS and layout pass)."""
    if widget.styles.width is None or widget.styles.width.value != width:
        widget.styles.width = width
    if height is not None and (widget.styles.height is None or widget.styles.height.value != height):
        widget.styles.height = height


class ExplainTile(Vertical):
    """Shows one :class:`core.explain.worker.PageTile`; the selected tile's caption is reversed."""

    DEFAULT_CSS = """
    ExplainTile {
        width: 1fr;
        height: 1fr;
        padding: 0 1 0 1;
    }
    ExplainTile > .tile-caption {
        width: auto;
        height: 2;
    }
    ExplainTile > .tile-bars {
        display: none;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tile: Any = None
        self.selected = False
        self._graphics = picture_widget_class()

    def compose(self) -> ComposeResult:
        if self._graphics is not None:
            yield self._graphics(classes="tile-picture")
        else:
            yield HalfBlockPicture(classes="tile-picture")
        yield Static(classes="tile-caption")
        yield Static(classes="tile-bars")

    def mark(self, selected: bool) -> None:
        """Show whether this tile is the selected one."""
        self.selected = selected
        if self.tile is not None:
            self.query_one(".tile-caption", Static).update(caption_text(self.tile, selected))

    def show(self, tile: Any, side: int, width: int, selected: bool) -> None:
        """Draw ``tile`` with panels of ``side`` pixels (``side`` columns, ``side / 2`` lines) in ``width`` columns."""
        self.tile = tile
        picture = self.query_one(".tile-picture")
        caption = self.query_one(".tile-caption", Static)
        bar_view = self.query_one(".tile-bars", Static)
        bar_rows = (tile.record or {}).get("bars")
        self.mark(selected)
        if picture.display != (not bar_rows):
            picture.display = not bar_rows
            bar_view.display = bool(bar_rows)
        if bar_rows:
            _size(bar_view, width, len(bar_rows))
            bar_view.update(bars([(str(n), float(v)) for n, v in bar_rows], width))
            _size(caption, width, None)
            return
        image = join_panels(tile.panels, side)
        _size(picture, image.shape[1], (side + 1) // 2)
        if isinstance(picture, HalfBlockPicture):
            picture.show(image)
        else:
            from PIL import Image

            picture.image = Image.fromarray(image, "RGB")
        _size(caption, image.shape[1], None)
