"""Pausing the cyclic garbage collector around work that allocates many objects and makes no cycles.

Decoding a million JSON lines, or folding the rows, allocates millions of dicts and floats; each
collection that triggers would walk all of them again (over half of a first load's time, measured).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """Switch the cyclic garbage collector off for the block (when ``pause``).

    For work that allocates many objects and makes no cycles (decoding JSON, folding its rows):
    each collection it triggers would walk them all again.
    """
    was_enabled = pause and gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
