"""What Pilot tests read off the app: the screen as plain text, a dashboard with its run loaded."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text."""
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_loaded(pilot: Any, screen: Any) -> None:
    """Wait until the dashboard ``screen`` has read its run's backlog, then draw it."""
    for _ in range(200):
        if screen.loaded:
            break
        await pilot.pause(0.02)
    assert screen.loaded, "the reader never delivered the run"
    screen.redraw()
    await pilot.pause()
