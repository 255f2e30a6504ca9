"""Which way the app draws pictures: terminal graphics (Kitty, Sixel) through textual-image, or half blocks.

textual-image finds out what the terminal can show by asking it (escape sequences answered on
stdin) when it is imported, which is only possible *before* Textual takes over the terminal. Asking
costs up to a few tenths of a second, and inside tmux or screen the answer is always "half blocks"
(they do not pass the protocols through), so the launcher asks only where the environment suggests
a graphics terminal (Kitty, Ghostty, WezTerm, iTerm2, Konsole, foot, mlterm, Windows Terminal) and
the app is not inside a multiplexer. ``FTUI_IMAGES`` overrides it:

- ``auto`` (default): as above;
- ``blocks``: always half blocks (ftui's own renderer; never asks the terminal);
- ``detect``: always ask (textual-image picks Kitty, Sixel or half cells);
- ``kitty`` / ``sixel``: use that protocol without asking.

Call :func:`prepare` before ``App.run()``; widgets then ask :func:`picture_widget_class`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

ENV = "FTUI_IMAGES"
MODES = ("auto", "blocks", "detect", "kitty", "sixel")
#: ``TERM_PROGRAM`` values of terminals that show Kitty graphics or Sixel.
GRAPHICS_PROGRAMS = {"wezterm", "iterm.app", "ghostty", "mlterm", "contour", "rio"}

_state: dict[str, Any] = {"prepared": False, "widget": None, "protocol": "blocks"}


def graphics_hinted(env: dict[str, str] | None = None) -> bool:
    """Whether the environment names a terminal with pixel graphics (and no multiplexer in between)."""
    env = dict(os.environ) if env is None else env
    term = env.get("TERM", "")
    if env.get("TMUX") or env.get("STY") or term.startswith(("screen", "tmux")):
        return False
    return bool(
        env.get("KITTY_WINDOW_ID") or "kitty" in term or "ghostty" in term or term.startswith("foot")
        or env.get("TERM_PROGRAM", "").lower() in GRAPHICS_PROGRAMS or env.get("KONSOLE_VERSION")
        or env.get("WT_SESSION")
    )


def prepare() -> str:
    """Decide how pictures are drawn (before the app starts); returns ``kitty``, ``sixel`` or ``blocks``."""
    if _state["prepared"]:
        return str(_state["protocol"])
    _state["prepared"] = True
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES or mode == "blocks":
        return "blocks"
    stdout = sys.__stdout__
    if stdout is None or not stdout.isatty():
        return "blocks"
    if mode == "auto" and not graphics_hinted():
        return "blocks"
    try:
        import textual_image.widget as widgets  # asks the terminal now, while it still can
    except Exception:  # noqa: BLE001 - not installed, or the terminal did not answer: half blocks
        return "blocks"
    chosen = {"kitty": widgets.TGPImage, "sixel": widgets.SixelImage}.get(mode, widgets.Image)
    # the auto widget's renderable says what the terminal answered (half cells or unicode: ours are as good)
    module = getattr(getattr(chosen, "_Renderable", None), "__module__", "")
    protocol = "kitty" if module.endswith(".tgp") else "sixel" if module.endswith(".sixel") else None
    if protocol is None:
        return "blocks"
    _state["widget"], _state["protocol"] = chosen, protocol
    return protocol


def picture_widget_class() -> Any:
    """textual-image's widget class for the protocol :func:`prepare` chose, or None for half blocks."""
    return _state["widget"]


def protocol() -> str:
    """``kitty``, ``sixel`` or ``blocks``."""
    return str(_state["protocol"])
