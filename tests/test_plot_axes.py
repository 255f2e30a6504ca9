"""What the plots' axes and the header say is true: the y axis is labelled only where data can be
(the marker lane below the data once read "-0.25" on a loss axis), a legend is never written over by
the marker lane, and a finished run's compact header spares "ETA done" rather than cut a word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual_plotext import PlotextPlot

from support.app import screen_text, wait_loaded
from tui import markers
from tui.app import FtuiApp
from tui.run_state import HeaderFacts
from tui.widgets.run_header import header_text

FIXTURE = Path(__file__).parent / "fixtures" / "recorded_run"


@pytest.mark.parametrize("lo, hi, most, expected", [
    (0.008, 1.546, 4, [0.5, 1.0, 1.5]),
    (0.2046, 1.0, 4, [0.4, 0.6, 0.8, 1.0]),
    (1.2e-8, 0.003, 4, [0.001, 0.002, 0.003]),
    (-3.0, 12.0, 4, [0.0, 5.0, 10.0]),
    (0.9, 0.95, 4, [0.9, 0.92, 0.94]),
    (5.0, 5.0, 4, [5.0]),
])
def test_ticks_are_round_values_inside_the_data(lo: float, hi: float, most: int, expected: list[float]) -> None:
    ticks = markers.nice_ticks(lo, hi, most)
    assert ticks == pytest.approx(expected)
    assert all(lo <= t <= hi for t in ticks) and len(ticks) <= most


def test_tick_labels_have_the_decimals_their_spacing_needs() -> None:
    assert markers.tick_labels([0.5, 1.0, 1.5]) == ["0.5", "1.0", "1.5"]
    assert markers.tick_labels([0.9, 0.92, 0.94]) == ["0.90", "0.92", "0.94"]
    assert markers.tick_labels([0.0, 5.0, 10.0]) == ["0", "5", "10"]
    assert markers.tick_labels([1e-6, 2e-6]) == ["1.0e-06", "2.0e-06"]


def test_a_plot_too_short_for_its_legend_and_the_lane_keeps_the_legend() -> None:
    found = [markers.Marker(x=10.0, kinds=("unfreeze",)), markers.Marker(x=20.0, kinds=("checkpoint",))]
    plot = PlotextPlot()
    plt = plot.plt
    plt.plot([0.0, 30.0], [0.001, 0.005], label="a")
    # three legend lines in three rows: letters in a lane would run through the third
    assert markers.draw_in_lane(plt, found, 0.0, 0.001, 0.005, rows=3, legend_rows=3) is False
    assert plt.monitor.tx == [] and plt.monitor.vcoord[0] == [10.0]  # the unfreeze keeps its line
    plt.clear_figure()
    plt.plot([0.0, 30.0], [0.001, 0.005], label="a")
    assert markers.draw_in_lane(plt, found, 0.0, 0.001, 0.005, rows=7, legend_rows=3) is True
    assert plt.monitor.tx == [10.0, 20.0]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_plots_label_no_value_below_the_data(size: tuple[int, int]) -> None:
    app = FtuiApp(FIXTURE.parent, watch=FIXTURE)
    async with app.run_test(size=size) as pilot:
        await wait_loaded(pilot, app.screen)
        await pilot.pause(0.3)
        text = screen_text(app)
    labels = re.findall(r"(?m)^\s*(-?[\d.e+-]+)┤", text)
    assert labels, text
    # loss, accuracy and learning rate are never negative, so neither is a label of their axes
    assert all(float(label) >= 0 for label in labels), labels


def test_a_finished_runs_compact_header_leaves_out_eta_done() -> None:
    facts = HeaderFacts(name="finetune_shapes", status="finished", epoch="24/24", step="3744/3744",
                        elapsed="1:07", eta="done", samples_per_s="4,148", error=None, trainable="77 %")
    compact = header_text(facts, compact=True).plain
    assert "ETA" not in compact and "1:07" in compact and compact.index("1:07") < 78
    assert "ETA done" in header_text(facts, compact=False).plain
    running = HeaderFacts(**{**facts.__dict__, "status": "running", "eta": "0:42"})
    assert "ETA 0:42" in header_text(running, compact=True).plain
