"""The metric history stored in a checkpoint, as plotext plots (losses in one, the rest in another)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot


def group_history(history: dict[str, list]) -> dict[str, dict[str, list]]:
    """Split metrics into "loss" and "metrics" plots: losses and accuracies have different scales."""
    groups: dict[str, dict[str, list]] = {}
    for name, values in history.items():
        key = "loss" if "loss" in name.lower() else "metrics"
        groups.setdefault(key, {})[name] = values
    return groups


class MetricPlots(VerticalScroll):
    """One plot per metric group; :meth:`show` draws a summary's ``metrics.history``."""

    DEFAULT_CSS = """
    MetricPlots {
        height: 1fr;
    }
    MetricPlots > PlotextPlot {
        height: 1fr;
        min-height: 12;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(Text("No metric history loaded.", style="dim"), id="metrics-empty")

    def show(self, metrics: dict[str, Any] | None) -> None:
        """Replace the plots with the history of ``metrics`` (a summary's ``metrics`` entry)."""
        history = (metrics or {}).get("history") or {}
        for plot in self.query(PlotextPlot):
            plot.remove()
        empty = self.query_one("#metrics-empty", Static)
        empty.display = not history
        for title, series in group_history(history).items():
            plot = PlotextPlot(classes=f"metric-{title}")
            self.mount(plot)
            plt = plot.plt
            plt.clear_figure()
            plt.title(title)
            plt.xlabel("epoch")
            longest = max(len(values) for values in series.values())
            if longest <= 20:  # whole epochs on the x axis instead of 1.00, 1.50, ...
                plt.xticks(list(range(1, longest + 1)))
            for name, values in series.items():
                points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
                if points:
                    xs, ys = zip(*points)
                    plt.plot(list(xs), list(ys), label=name, marker="braille")
            plot.refresh()
