"""One metric of several runs overlaid: a colour per run, event markers in each run's colour.

Like :class:`tui.widgets.metric_plot.MetricPlot`, drawing happens in :meth:`render` at the widget's
size and every series is reduced to about two points per column first, so ten runs of 10,000 steps
cost what ten short ones do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from tui import markers as event_markers
from tui.downsample import Series, minmax_downsample
from tui.run_state import RunState
from tui.widgets.metric_plot import PlotOptions, x_values

#: Run colours as xterm-256 codes (plotext takes them as ints, Rich as ``color(N)``), apart on a dark
#: background and for the common colour blindnesses as far as ten colours can be.
PALETTE = (39, 208, 170, 118, 196, 226, 141, 51, 216, 250)


def run_color(index: int) -> int:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class OverlayRun:
    """One run in an overlay: its name, colour and folded data."""

    name: str
    color: int
    state: RunState


class OverlayPlot(PlotextPlot):
    """Plots ``split``/``metric`` of every run given to :meth:`show`."""

    DEFAULT_CSS = """
    OverlayPlot {
        height: 1fr;
        min-height: 6;
        width: 1fr;
    }
    """

    def __init__(self, split: str, metric: str, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.split = split
        self.metric = metric
        self.title = title
        self.runs: list[OverlayRun] = []
        self.options = PlotOptions()
        self._key: tuple | None = None
        self.drawn: dict[str, tuple[int, float]] = {}
        """Per run name, the points drawn at the last draw and the largest x (for tests)."""
        self.drawn_markers: dict[str, list[event_markers.Marker]] = {}
        self._reduced: dict[str, tuple[tuple, np.ndarray, np.ndarray]] = {}
        """Per run, what its series was reduced from and the points: a run that did not change (a
        finished one beside a live one) is not reduced again at the next redraw."""

    def show(self, runs: list[OverlayRun], options: PlotOptions) -> None:
        """Redraw when this plot's series, the runs' events or the options changed (new train rows
        leave the validation plots alone)."""
        key = (options, tuple(self._signature(r) for r in runs))
        if key == self._key:
            return
        self.runs, self.options, self._key = runs, options, key
        self.refresh()

    def _signature(self, run: OverlayRun) -> tuple:
        series = run.state.series.get((self.split, self.metric))
        info = run.state.info
        return (run.name, run.color, len(series) if series is not None else 0, run.state.events_total,
                info.get("started"), info.get("steps_per_epoch"))

    def render(self) -> RenderResult:
        self.draw()
        return super().render()

    def _reduce(self, run: OverlayRun, series: Series, buckets: int) -> tuple[np.ndarray, np.ndarray]:
        """The run's points for this plot: smoothed, on the x axis, at most two per bucket (cached)."""
        opts = self.options
        info = run.state.info
        source = (len(series), opts.x_axis, opts.smoothing, opts.log_y, buckets, info.get("started"),
                  info.get("steps_per_epoch"))
        cached = self._reduced.get(run.name)
        if cached is not None and cached[0] == source:
            return cached[1], cached[2]
        x = x_values(series, info, opts.x_axis)
        y = series.smoothed(opts.smoothing if len(series) > 20 else 0.0)
        if opts.log_y:
            keep = y > 0
            x, y = x[keep], y[keep]
        xs, ys = minmax_downsample(x, y, buckets)
        self._reduced[run.name] = (source, xs, ys)
        return xs, ys

    def draw(self) -> None:
        """Build the figure (called by :meth:`render`; public so a benchmark can time it alone)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        opts = self.options
        title = self.title + (" (log)" if opts.log_y else "") + (f" EMA {opts.smoothing:g}" if opts.smoothing else "")
        plt.xlabel({"step": "step", "epoch": "epoch", "time": "minutes"}[opts.x_axis])
        # two points per column keep every spike of one run; with many runs overlaid, one per column (the
        # min and max of every two columns) reads the same and halves what plotext draws
        buckets = max(8, self.size.width - 10)
        if len(self.runs) > 4:
            buckets = max(8, buckets // 2)
        self.drawn, self.drawn_markers = {}, {}
        x_lo, x_hi, y_lo, y_hi = np.inf, -np.inf, np.inf, -np.inf
        for run in self.runs:
            series = run.state.series.get((self.split, self.metric))
            if series is None or not len(series):
                continue
            xs, ys = self._reduce(run, series, buckets)
            if not xs.size:
                continue
            self.drawn[run.name] = (int(xs.size), float(xs[-1]))
            if xs.size == 1:
                plt.scatter(xs.tolist(), ys.tolist(), color=run.color, marker="dot")
            else:
                plt.plot(xs.tolist(), ys.tolist(), color=run.color, marker="braille")
            finite = ys[np.isfinite(ys)]
            x_lo, x_hi = min(x_lo, float(xs.min())), max(x_hi, float(xs.max()))
            if finite.size:
                y_lo, y_hi = min(y_lo, float(finite.min())), max(y_hi, float(finite.max()))
        if not self.drawn:
            plt.title(f"{self.title}: no data")
            return
        if opts.markers and np.isfinite(y_hi):
            kinds: list[event_markers.Marker] = []
            for run in self.runs:
                if run.name not in self.drawn:
                    continue
                found = event_markers.markers(run.state.events, opts.x_axis, run.state.info, (x_lo, x_hi))
                if found:
                    # one lane for all runs; a marker takes its run's colour
                    event_markers.draw_in_lane(plt, found, x_lo, y_lo, y_hi, log=opts.log_y, color=run.color,
                                               rows=self.size.height - 5)
                    self.drawn_markers[run.name] = found
                    kinds += found
            if kinds:
                title = f"{title}   {event_markers.legend(kinds, self.size.width - len(title) - 8)}".rstrip()
        if opts.log_y:
            plt.yscale("log")
        plt.title(title)
