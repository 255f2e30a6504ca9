"""The Explain view's gallery: a page of tiles laid out to fill the space, one of them selected.

The gallery decides how many tiles fit (:func:`plan_layout`) before the page is asked for, so the
worker computes exactly what is shown. Tiles are kept and redrawn in place from page to page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widget import Widget
from textual.widgets import Static

from tui.widgets.explain_tile import ExplainTile

#: Pixel sides a panel may have: each is ``side`` columns wide and ``side / 2`` lines high.
SIDES = tuple(range(32, 7, -2))
CAPTION_LINES = 2
TILE_PAD = 2  # columns of padding around a tile
ROW_GAP = 1
TABULAR_WIDTH = 36


@dataclass(frozen=True)
class Layout:
    """How a page is laid out: panel side in pixels, tiles per row, rows, tile width in columns."""

    side: int
    columns: int
    rows: int
    tile_width: int

    @property
    def capacity(self) -> int:
        """Tiles per page."""
        return self.columns * self.rows


def plan_layout(width: int, height: int, panels: int, *, source_side: int = 0, want: int = 6,
                bars: bool = False) -> Layout:
    """The largest panels that still fit ``want`` tiles (or as many as possible) in ``width`` x ``height`` cells.

    Among equally full layouts, a side that is a multiple of a small source image's side wins, so
    its pixels stay squares of equal size.
    """
    if bars:
        cols = max(1, (width + 1) // (TABULAR_WIDTH + TILE_PAD))
        rows = max(1, (height + ROW_GAP) // (8 + CAPTION_LINES + ROW_GAP))
        return Layout(0, cols, rows, TABULAR_WIDTH)
    best: tuple[tuple[int, int, int], Layout] | None = None
    for side in SIDES:
        tile_w = panels * side + (panels - 1)
        cols = max(0, (width + 1) // (tile_w + TILE_PAD))
        rows = max(0, (height + ROW_GAP) // ((side + 1) // 2 + CAPTION_LINES + ROW_GAP))
        shown = min(cols * rows, want)
        crisp = int(0 < source_side <= 32 and side % source_side == 0)
        key = (shown, crisp, side)
        if cols and rows and (best is None or key > best[0]):
            best = (key, Layout(side, cols, rows, tile_w))
    return best[1] if best is not None else Layout(SIDES[-1], 1, 1, panels * SIDES[-1] + panels - 1)


class ExplainGallery(Widget, can_focus=True):
    """Tiles of a :class:`core.explain.worker.GalleryPage`; the screen moves ``selected``."""

    DEFAULT_CSS = """
    ExplainGallery {
        width: 1fr;
        height: 1fr;
        overflow: hidden;
    }
    ExplainGallery > #gallery-grid {
        grid-gutter: 1 0;
    }
    ExplainGallery > #gallery-message {
        padding: 1 2;
        color: $text-muted;
        height: auto;
    }
    ExplainGallery:focus > #gallery-grid {
        background: $boost;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page: Any = None
        self.layout_plan: Layout | None = None
        self.selected = 0

    def compose(self) -> ComposeResult:
        yield Static(id="gallery-message")
        yield Grid(id="gallery-grid")

    @staticmethod
    def tile_height(layout: Layout) -> int:
        """Lines of one tile: the panels (or bars) and the caption."""
        return (8 if layout.side == 0 else (layout.side + 1) // 2) + CAPTION_LINES

    def message(self, text: str | Text) -> None:
        """Show a line above the tiles (loading, errors, an empty selection)."""
        msg = self.query_one("#gallery-message", Static)
        msg.update(text)
        msg.display = bool(str(text))

    async def show(self, page: Any, layout: Layout, selected: int = 0) -> None:
        """Draw ``page`` with ``layout``; ``selected`` is an index into the page's tiles."""
        self.page, self.layout_plan = page, layout
        self.selected = max(0, min(selected, len(page.tiles) - 1)) if page.tiles else 0
        grid = self.query_one("#gallery-grid", Grid)
        tile_w, tile_h = layout.tile_width + TILE_PAD, self.tile_height(layout)
        rows = max(1, -(-len(page.tiles) // layout.columns))
        grid.styles.grid_size_columns = layout.columns
        grid.styles.grid_columns = str(tile_w)
        grid.styles.grid_rows = str(tile_h)
        grid.styles.width = layout.columns * tile_w
        grid.styles.height = rows * tile_h + (rows - 1) * ROW_GAP
        tiles = list(grid.query(ExplainTile))
        if len(tiles) < len(page.tiles):
            new = [ExplainTile() for _ in range(len(page.tiles) - len(tiles))]
            await grid.mount_all(new)
            tiles += new
        for k, tile in enumerate(tiles):
            if tile.display != (k < len(page.tiles)):
                tile.display = k < len(page.tiles)
            if k < len(page.tiles):
                tile.show(page.tiles[k], layout.side, layout.tile_width, k == self.selected)
        self.message(Text(page.note, style="italic") if page.note else "")

    def select(self, index: int) -> None:
        """Move the selection to tile ``index`` of the page (clamped)."""
        if self.page is None or not self.page.tiles:
            return
        index = max(0, min(index, len(self.page.tiles) - 1))
        tiles = list(self.query(ExplainTile))
        for k, tile in enumerate(tiles[: len(self.page.tiles)]):
            if tile.selected != (k == index):
                tile.mark(k == index)
        self.selected = index

    def selected_tile(self) -> Any:
        """The selected :class:`PageTile`, or None."""
        if self.page is None or not self.page.tiles:
            return None
        return self.page.tiles[self.selected]
