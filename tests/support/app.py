"""What Pilot tests read off the app: the screen or a widget as plain text, a condition reached, a
dashboard with its run loaded."""

from __future__ import annotations

import io
from typing import Any, Callable

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


def text_of(widget: Any) -> str:
    """A ``Static``'s content as plain text, 120 columns wide."""
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(widget.content)
    return console.file.getvalue()


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until ``condition()`` holds (AssertionError after ``timeout`` seconds)."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition(), "condition not reached in time"
