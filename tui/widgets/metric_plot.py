"""A live line plot of one or more metric series (train/val...), drawn with plotext.

Drawing happens in :meth:`render`, at the widget's current size, so a resize simply redraws; each
series is smoothed (optional EMA), then reduced to about two points per column with
:func:`tui.downsample.minmax_downsample`, so the cost does not grow with the length of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from tui import markers as event_markers
from tui.downsample import Series, minmax_downsample
from tui.run_state import RunState

X_AXES = ("step", "epoch", "time")
#: Colours per split, the same in every plot.
SPLIT_COLORS = {"train": "cyan", "val": "orange", "test": "magenta"}
#: Colours of the learning-rate plot's groups, in the order the groups appear.
GROUP_COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")


@dataclass(frozen=True)
class PlotOptions:
    """How every plot of the dashboard is drawn."""

    x_axis: str = "step"
    log_y: bool = False
    smoothing: float = 0.0
    markers: bool = True
    """Event markers (unfreeze, freeze, lr change, pause, resume, checkpoint) on the x axis."""


class MetricPlot(PlotextPlot):
    """Plots ``metric`` of every split that has it (or of ``splits`` when given)."""

    DEFAULT_CSS = """
    MetricPlot {
        height: 1fr;
        min-height: 5;
        width: 1fr;
    }
    """

    def __init__(self, metric: str, title: str, *, splits: tuple[str, ...] = (), id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric = metric
        self.title = title
        self.splits = splits
        self.state: RunState | None = None
        self.options = PlotOptions()
        self._drawn: tuple | None = None
        self.drawn: dict[str, tuple[int, float]] = {}
        """Per split, the points handed to plotext at the last draw and the largest x (for tests)."""
        self.drawn_y: dict[str, np.ndarray] = {}
        """Per split, the y values handed to plotext at the last draw."""
        self.smoothed: dict[str, bool] = {}
        """With smoothing on: per split, whether its line was smoothed at the last draw."""
        self.drawn_markers: list[event_markers.Marker] = []

    def show(self, state: RunState, options: PlotOptions) -> None:
        """Redraw if the data or the options changed."""
        key = (state.version, options)
        if key == self._drawn:
            return
        self.state, self.options, self._drawn = state, options, key
        self.refresh()

    def _series(self) -> list[tuple[str, str, Series]]:
        """(label, colour, series) of each line, in the legend's order."""
        if self.state is None:
            return []
        found = [(split, s) for (split, metric), s in self.state.series.items() if metric == self.metric and len(s)]
        if self.splits:
            found = [(split, s) for split, s in found if split in self.splits]
        order = {"train": 0, "val": 1, "test": 2}
        found.sort(key=lambda item: (order.get(item[0], 9), item[0]))
        return [(split, SPLIT_COLORS.get(split, "white"), s) for split, s in found]

    #: Whether the EMA applies to this plot's lines at all (a learning rate is exact, not noisy).
    smoothable = True

    def _smooths(self, label: str, points: int) -> bool:
        """Train lines are smoothed from 3 points on, however short the run; lines measured once per
        epoch (val, test) only when there are many: an EMA over a handful of epochs would mostly lag."""
        return self.smoothable and (points >= 3 if label == "train" else points > 20)

    def _x(self, series: Series) -> np.ndarray:
        return x_values(series, self.state.info if self.state is not None else {}, self.options.x_axis)

    def render(self) -> RenderResult:
        self._draw()
        return super().render()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        opts = self.options
        title = self.title + (" (log)" if opts.log_y else "") + (f" EMA {opts.smoothing:g}" if opts.smoothing and self.smoothable else "")
        plt.title(title)
        plt.xlabel({"step": "step", "epoch": "epoch", "time": "minutes"}[opts.x_axis])
        buckets = max(8, self.size.width - 10)
        drawn = 0
        self.drawn = {}
        self.drawn_y = {}
        x_lo, x_hi = float("inf"), float("-inf")
        y_lo, y_hi = float("inf"), float("-inf")
        self.smoothed = {}
        for label, color, series in self._series():
            x = self._x(series)
            weight = opts.smoothing if self._smooths(label, len(series)) else 0.0
            shown = label
            if opts.smoothing and self.smoothable:
                self.smoothed[label] = bool(weight)
                if not weight:
                    shown = f"{label} (raw)"  # the title says EMA: say which line it does not apply to
            y = series.smoothed(weight)
            if opts.log_y:
                keep = y > 0
                x, y = x[keep], y[keep]
            xs, ys = minmax_downsample(x, y, buckets)
            if not xs.size:
                continue
            self.drawn[label] = (int(xs.size), float(xs[-1]))
            self.drawn_y[label] = ys
            x_lo, x_hi = min(x_lo, float(xs.min())), max(x_hi, float(xs.max()))
            finite = ys[np.isfinite(ys)]
            if finite.size:
                y_lo, y_hi = min(y_lo, float(finite.min())), max(y_hi, float(finite.max()))
            if xs.size == 1:
                plt.scatter(xs.tolist(), ys.tolist(), label=shown, color=color, marker="dot")
            else:
                plt.plot(xs.tolist(), ys.tolist(), label=shown, color=color, marker="braille")
            drawn += 1
        self.drawn_markers = []
        if opts.markers and drawn and self.state is not None and np.isfinite(y_hi):
            found = event_markers.markers(self.state.events, opts.x_axis, self.state.info, (x_lo, x_hi))
            # the legend takes a row per line; a plot too short for it and the lane keeps the legend
            lettered = bool(found) and event_markers.draw_in_lane(
                plt, found, x_lo, y_lo, y_hi, log=opts.log_y, rows=self.size.height - 5, legend_rows=drawn)
            if lettered:
                room = self.size.width - len(title) - 8
                plt.title(f"{title}   {event_markers.legend(found, room)}".rstrip())
                self.drawn_markers = found
            else:
                self.drawn_markers = [m for m in found if m.line]
        if opts.log_y and drawn:
            plt.yscale("log")
        if not drawn:
            plt.title(f"{self.title}: no data yet")


class LearningRatePlot(MetricPlot):
    """The learning rate of every optimizer group (:meth:`RunState.lr_groups`), one line each, with a
    legend. A run recorded without group rates shows its ``lr`` (the largest over the groups) as one line.
    """

    smoothable = False

    def __init__(self, title: str = "learning rate", *, id: str | None = None) -> None:
        super().__init__("lr", title, splits=("train",), id=id)

    def _series(self) -> list[tuple[str, str, Series]]:
        if self.state is None:
            return []
        groups = self.state.lr_groups()
        if not groups:
            return [("max over groups", color, s) for _, color, s in super()._series()]
        return [(name, GROUP_COLORS[i % len(GROUP_COLORS)], s) for i, (name, s) in enumerate(groups.items())]


def x_values(series: Series, info: dict, axis: str) -> np.ndarray:
    """A series' x on ``axis``: optimizer steps, fractional epochs, or minutes since the run started."""
    if axis == "time":
        raw = info.get("started")
        t = series.column("time")
        base = float(raw) if isinstance(raw, (int, float)) else (float(t[0]) if t.size else 0.0)
        return (t - base) / 60.0
    if axis == "epoch":
        # Fractional epochs from the step, so many train points in one epoch are not a vertical line.
        per_epoch = info.get("steps_per_epoch")
        if isinstance(per_epoch, (int, float)) and per_epoch > 0:
            return series.column("step") / float(per_epoch)
        return series.column("epoch") + 1.0
    return series.column("step")


def cycle(options: tuple, current: object) -> object:
    """The option after ``current`` (wrapping)."""
    try:
        return options[(options.index(current) + 1) % len(options)]
    except ValueError:
        return options[0]

