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

from core.data.render import HalfBlockImage, fit_image
from tui.terminal_images import picture_widget_class


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


class ExplainTile(Vertical):
    """Shows one :class:`core.explain.worker.PageTile`; ``selected`` frames it."""

    DEFAULT_CSS = """
    ExplainTile {
        width: 1fr;
        height: 1fr;
        padding: 0 1 0 1;
    }
    ExplainTile.-selected {
        background: $accent 30%;
    }
    ExplainTile > .tile-caption {
        width: auto;
        height: 2;
    }
    ExplainTile.-wrong > .tile-caption {
        color: $text-error;
    }
    ExplainTile.-selected > .tile-caption {
        text-style: bold;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tile: Any = None
        self._graphics = picture_widget_class()

    def compose(self) -> ComposeResult:
        if self._graphics is not None:
            yield self._graphics(classes="tile-picture")
        else:
            yield Static(classes="tile-picture")
        yield Static(classes="tile-caption")

    def show(self, tile: Any, side: int, width: int, selected: bool) -> None:
        """Draw ``tile`` with panels of ``side`` pixels (``side`` columns, ``side / 2`` lines) in ``width`` columns."""
        self.tile = tile
        self.set_class(selected, "-selected")
        self.set_class(bool(tile.wrong), "-wrong")
        picture = self.query_one(".tile-picture")
        caption = self.query_one(".tile-caption", Static)
        bar_rows = (tile.record or {}).get("bars")
        if bar_rows:
            picture.styles.width, picture.styles.height = width, 8
            if isinstance(picture, Static):
                picture.update(bars([(str(n), float(v)) for n, v in bar_rows], width))
            caption.update(Group(*(Text(line, no_wrap=True, overflow="ellipsis") for line in tile.caption)))
            caption.styles.width = width
            return
        image = join_panels(tile.panels, side)
        picture.styles.width, picture.styles.height = image.shape[1], (side + 1) // 2
        if isinstance(picture, Static):
            picture.update(HalfBlockImage(image))
        else:
            from PIL import Image

            picture.image = Image.fromarray(image, "RGB")
        caption.styles.width = image.shape[1]
        caption.update(Group(*(Text(line, no_wrap=True, overflow="ellipsis") for line in tile.caption)))
