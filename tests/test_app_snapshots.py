"""Snapshot tests of the dashboard on the recorded run (``pytest --snapshot-update`` to accept changes).

Everything on screen is a function of the recorded files: elapsed and event times come from the
run's own timestamps, and the recorded host is not this machine, so the status is shown as recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.app import FtuiApp

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"


async def _loaded(pilot) -> None:
    screen = pilot.app.screen
    for _ in range(200):
        if screen.loaded:
            break
        await pilot.pause(0.02)
    assert screen.loaded
    screen.redraw()
    await pilot.pause()


def _app() -> FtuiApp:
    return FtuiApp(FIXTURE.parent, watch=FIXTURE)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard_plots(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard_confusion(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_loaded, press=["3"])


def test_dashboard_metrics_80x24(snap_compare) -> None:
    assert snap_compare(_app(), terminal_size=(80, 24), run_before=_loaded, press=["2"])
