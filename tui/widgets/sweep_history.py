"""A sweep's optimization history: each trial's value by trial number and the best so far."""

from __future__ import annotations

import math

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from core.sweep.view import SweepView

#: Trial state -> plotext colour of its point.
STATE_COLORS = {"complete": "cyan", "pruned": "orange", "running": "white"}


class SweepHistory(PlotextPlot):
    """Points per trial (complete, pruned with the value it was pruned at) and a best-so-far line."""

    DEFAULT_CSS = """
    SweepHistory {
        height: 12;
        min-height: 6;
    }
    """

    view: SweepView | None = None

    def show(self, view: SweepView) -> None:
        self.view = view
        self.refresh()

    def render(self) -> RenderResult:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        view = self.view
        metric = (view.metric if view else None) or "value"
        plt.xlabel("trial")
        if view is None or not any(t.value is not None for t in view.trials):
            plt.title(f"{metric}: no finished trial yet")
            return super().render()
        maximize = view.direction != "minimize"
        for state, color in STATE_COLORS.items():
            points = [(t.number, t.value) for t in view.trials
                      if t.state == state and t.value is not None and math.isfinite(t.value)]
            if points:
                plt.scatter([p[0] for p in points], [p[1] for p in points], color=color, marker="dot", label=state)
        best_x, best_y, best = [], [], None
        for t in sorted(view.trials, key=lambda t: t.number):
            if t.state == "complete" and t.value is not None and math.isfinite(t.value):
                if best is None or (t.value > best if maximize else t.value < best):
                    best = t.value
            if best is not None:
                best_x.append(t.number)
                best_y.append(best)
        if len(best_x) > 1:
            plt.plot(best_x, best_y, color="green", marker="braille", label="best so far")
        plt.title(f"{metric} by trial ({'higher' if maximize else 'lower'} is better)")
        return super().render()
