"""Benchmark 3 — dashboard ingest: a run directory with 1,000,000 metric rows.

The run directory is written in a temporary folder with rows shaped as the recorder writes them for the
quickstart (train rows every ``logging.every_n_steps`` with the per-group ``lrs``; a val row with the
per-class metrics and the confusion matrix every 1,000 rows), with its ``metrics.columns`` as the
recorder writes it (run format 2); a copy without the sidecar stands for a run recorded before it
(format 1). Measured, on the app's own path — ``core.runs.RunReader`` polls (4 MiB steps, as the
dashboard makes them) folded into a ``tui.run_state.RunState``:

* from ``ftui watch`` to every view loaded — ``ftui watch RUN`` started in a pseudo-terminal (120 x 40)
  as a person starts it; it switches to the Metrics tab at its first frame, and the clock stops when the
  last train row's loss is on the screen (target < 2 s);
* first load without the UI — reader + state, format 2 and format 1 (target < 2 s), and in a headless
  Textual run (``App.run_test``): app start to first frame to every view loaded;
* incremental poll — 1,000 new rows appended, then one poll + fold (target < 20 ms);
* plot refresh — one ``MetricPlot.render()`` of the loss plot, all three plots, and a whole redraw
  cycle after new rows (state folded, every view redrawn, screen painted) (target < 50 ms).

    python benchmarks/dashboard_ingest.py [--rows 1000000] [--reps 5] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

TARGET_LOAD_S = 2.0
TARGET_POLL_MS = 20.0
TARGET_PLOT_MS = 50.0
CLASSES = 6
EVERY = 20
VAL_EVERY = 1000
#: The loss of the run's last train row: on the Metrics tab once every row has been read.
SENTINEL_LOSS = 0.012345


def train_row(i: int, t0: float, rng: random.Random) -> str:
    step = (i + 1) * EVERY
    lr = 0.003 * (1 - i / 2e6)
    loss = 1.8 * 0.99999 ** i + 0.05 * rng.random()
    return (
        f'{{"step":{step},"epoch":{step // 93},"time":{t0 + step * 0.05!r},"split":"train","loss":{loss!r},'
        f'"acc":{1 - loss / 2!r},"lr":{lr!r},"samples_per_s":{1200 + 50 * rng.random()!r},'
        f'"data_wait":{0.1 * rng.random()!r},"lrs":{{"default":{lr!r},"default/no_decay":{lr!r}}}}}\n'
    )


def val_row(i: int, t0: float, rng: random.Random) -> str:
    step = (i + 1) * EVERY
    conf = [[rng.randrange(200) if r != c else 1500 + rng.randrange(100) for c in range(CLASSES)] for r in range(CLASSES)]
    per = [rng.random() for _ in range(CLASSES)]
    row = {
        "step": step, "epoch": step // 93, "time": t0 + step * 0.05 + 0.01, "split": "val",
        "loss": 0.3 + 0.1 * rng.random(), "acc": 0.9 + 0.05 * rng.random(), "precision_macro": 0.9,
        "recall_macro": 0.9, "f1_macro": 0.9, "top5": 0.99,
        "per_class": {"precision": per, "recall": per, "f1": per, "support": [1000] * CLASSES},
        "confusion": conf,
    }
    return json.dumps(row, separators=(",", ":")) + "\n"


def rows_text(start: int, count: int, t0: float, seed: int) -> tuple[str, int]:
    """``count`` metric lines starting at row ``start`` (a val row after every VAL_EVERY train rows)."""
    rng = random.Random(seed)
    lines = []
    for i in range(start, start + count):
        lines.append(val_row(i, t0, rng) if (i + 1) % VAL_EVERY == 0 else train_row(i, t0, rng))
    return "".join(lines), count


def make_run(root: Path, rows: int, *, name: str = "million", columns: bool = True) -> Path:
    """A finished run directory with ``rows`` metric rows (written in blocks), with its metrics.columns
    (as the recorder writes it) unless ``columns`` is False (a run of format 1)."""
    path = root / name
    path.mkdir(parents=True)
    t0 = 1_800_000_000.0
    info = {
        "format": 2 if columns else 1, "name": name, "status": "finished", "pid": 1, "host": "bench-host",
        "created": t0 - 5, "started": t0, "ended": t0 + rows * EVERY * 0.05, "error": None,
        "epoch": rows * EVERY // 93, "epochs": rows * EVERY // 93, "step": rows * EVERY,
        "steps_per_epoch": 93, "total_steps": rows * EVERY, "model": "simple_cnn",
        "class_names": ["circle", "square", "triangle", "cross", "ring", "star"],
    }
    (path / "run.json").write_text(json.dumps(info), encoding="utf-8")
    (path / "config.yaml").write_text("run:\n  name: million\n", encoding="utf-8")
    with open(path / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for start in range(0, rows, 100_000):
            text, _ = rows_text(start, min(100_000, rows - start), t0, start)
            if start + 100_000 >= rows:  # the last train row carries the sentinel
                lines = text.splitlines(keepends=True)
                last = max(i for i, line in enumerate(lines) if '"split":"train"' in line)
                row = json.loads(lines[last])
                row["loss"] = SENTINEL_LOSS
                lines[last] = json.dumps(row, separators=(",", ":")) + "\n"
                text = "".join(lines)
            fh.write(text)
    for file in ("events.jsonl", "system.jsonl", "layers.jsonl"):
        (path / file).write_text("", encoding="utf-8")
    if columns:
        from core.run_columns import ColumnsWriter
        from core.runs import METRICS, METRICS_COLUMNS

        ColumnsWriter(path / METRICS_COLUMNS, path / METRICS).close()  # folds every row into blocks
    return path


def append_rows(path: Path, start: int, count: int) -> None:
    text, _ = rows_text(start, count, 1_800_000_000.0, start)
    with open(path / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(text)


def app_first_load(path: Path) -> tuple[float, float, Any, Any]:
    """(wall s, CPU s, reader, state) of the app's path without the UI: RunReader polls in the dashboard's
    steps folded into a RunState until caught up."""
    from tui.run_state import RunState
    from tui.screens.dashboard import LAYERS_TAIL_BYTES, POLL_BYTES

    from core.runs import RunReader

    t0, c0 = time.perf_counter(), time.process_time()
    reader = RunReader(path, step_bytes=POLL_BYTES, layers_tail_bytes=LAYERS_TAIL_BYTES)
    state = RunState()
    while (delta := reader.poll()) is not None:
        state.apply(delta)
        if not delta.more:
            break
    return time.perf_counter() - t0, time.process_time() - c0, reader, state


def rows_in(state: Any) -> int:
    return len(state.series[("train", "loss")]) + len(state.series[("val", "loss")])


def json_floor(path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the least the standard library can do: one json.loads of all lines as an array."""
    data = (path / "metrics.jsonl").read_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    json.loads(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]")
    return time.perf_counter() - t0, time.process_time() - c0


def decode_floor(path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of decoding alone: metrics.jsonl to dicts in the dashboard's 4 MiB polls, nothing
    folded — the least any reader of the JSON pays (what metrics.columns saves)."""
    from tui.screens.dashboard import POLL_BYTES

    from core.runs import JsonlTail

    t0, c0 = time.perf_counter(), time.process_time()
    tail = JsonlTail(path / "metrics.jsonl")
    while tail.poll(POLL_BYTES):
        pass
    return time.perf_counter() - t0, time.process_time() - c0


def watch_to_loaded(root: Path, name: str, timeout: float = 120.0) -> dict[str, float]:
    """``ftui watch NAME`` in a pseudo-terminal: seconds to the first frame and to every view loaded.

    At the first frame (the plot titles) it presses ``2`` (the Metrics tab); loaded is when the last
    train row's loss, :data:`SENTINEL_LOSS`, is on the screen: it can only be there once every row has
    been read and folded, and the views are drawn from the same state in the same redraw.
    """
    ftui = str(Path(sys.executable).with_name("ftui"))
    first = float("nan")
    sentinel = f"{SENTINEL_LOSS:.4f}".encode()
    with harness.PtyApp([ftui, "watch", name, "--root", str(root)], cwd=harness.REPO) as app:
        for seen, now in app.output(timeout):
            if first != first and b"loss" in seen and b"accuracy" in seen:
                first = now
                app.press("2")
            if first == first and sentinel in seen[-(1 << 17):]:
                return {"first_frame_s": first, "loaded_s": now}
        raise SystemExit(f"ftui watch never showed every view loaded within {timeout:.0f}s:\n{app.tail()}")


def incremental(path: Path, reader: Any, state: Any, start: int, reps: int) -> list[float]:
    """Append 1,000 rows, then time one poll + fold of the app's reader; ``reps`` times (ms)."""
    out = []
    for r in range(reps):
        append_rows(path, start + r * 1000, 1000)
        t0 = time.perf_counter()
        delta = reader.poll()
        if delta is not None:
            state.apply(delta)
        out.append((time.perf_counter() - t0) * 1e3)
        n = len(delta.metrics) if delta is not None else 0
        assert n == 1000, f"the poll saw {n} rows, not 1000"
    return out


async def headless(path: Path, start: int, reps: int) -> dict[str, Any]:
    """``ftui watch`` in App.run_test at 120 x 40: app start to first frame and to every view loaded, plot
    render and a redraw cycle after new rows."""
    from tui.app import FtuiApp
    from tui.screens.dashboard import DashboardScreen
    from tui.widgets.metric_plot import MetricPlot

    app = FtuiApp(path.parent, watch=path, config_dirs=[])
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        t_first = time.perf_counter() - t0
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        while not screen.loaded and time.perf_counter() - t0 < 120:
            await pilot.pause(0.01)
        t_loaded = time.perf_counter() - t0
        screen.redraw()
        await pilot.pause()
        plot = screen.query_one("#plot-loss", MetricPlot)
        width = plot.size.width
        points = sum(len(s) for (split, metric), s in screen.state.series.items() if metric == "loss")
        plots = list(screen.query(MetricPlot))
        render_ms, all_ms, all_cpu_ms, cycle_ms = [], [], [], []
        for r in range(reps):
            # One plot drawn from the million-point series (plotext included), as a refresh does it.
            plot._drawn = None
            t1 = time.perf_counter()
            plot.render()
            render_ms.append((time.perf_counter() - t1) * 1e3)
            # Every plot of the grid (loss, accuracy, lr), as one refresh of the plots tab does it.
            t1, c1 = time.perf_counter(), time.process_time()
            for each in plots:
                each._drawn = None
                each.render()
            all_ms.append((time.perf_counter() - t1) * 1e3)
            all_cpu_ms.append((time.process_time() - c1) * 1e3)
            # A whole refresh: 1,000 new rows folded in, every view redrawn, the frame painted.
            append_rows(path, start + r * 1000, 1000)  # the screen's own reader worker reads them
            version = screen.state.version
            while screen.state.version == version:
                await pilot.pause(0.005)
            t1 = time.perf_counter()
            screen.redraw()
            await pilot.pause()
            cycle_ms.append((time.perf_counter() - t1) * 1e3)
        drawn = dict(plot.drawn)
    return {"first_frame_s": t_first, "loaded_s": t_loaded, "render_ms": render_ms, "all_plots_ms": all_ms, "all_plots_cpu_ms": all_cpu_ms,
            "plots": len(plots), "cycle_ms": cycle_ms,
            "plot_width": width, "loss_points": points, "drawn": drawn}


def main() -> None:
    p = harness.parser("dashboard_ingest", __doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    if args.quick:
        args.rows, args.reps = 20_000, 2
    tmp = Path(tempfile.mkdtemp(prefix="ftui-bench-ingest-"))
    try:
        t0 = time.perf_counter()
        path = make_run(tmp, args.rows)
        old = make_run(tmp, args.rows, name="million-v1", columns=False)
        size_mb = (path / "metrics.jsonl").stat().st_size / 1e6
        columns_mb = (path / "metrics.columns").stat().st_size / 1e6
        print(f"wrote {args.rows:,} rows ({size_mb:,.0f} MB, metrics.columns {columns_mb:,.0f} MB) twice in "
              f"{time.perf_counter() - t0:.1f}s", flush=True)
        m: dict[str, list[float]] = {k: [] for k in (
            "watch_first", "watch_loaded", "v2_wall", "v2_cpu", "v1_wall", "v1_cpu", "decode_wall", "decode_cpu",
            "floor_wall", "floor_cpu")}
        reader = state = None
        for _ in range(1 if args.quick else args.reps):
            # Interleaved, so a change of load on the shared machine touches every measure alike.
            seen = watch_to_loaded(tmp, path.name)
            m["watch_first"].append(seen["first_frame_s"])
            m["watch_loaded"].append(seen["loaded_s"])
            reader = state = None  # the previous repetition's million points, freed first
            w, c, reader, state = app_first_load(path)
            assert rows_in(state) == args.rows, f"read {rows_in(state)} rows, not {args.rows}"
            m["v2_wall"].append(w)
            m["v2_cpu"].append(c)
            w, c, _, old_state = app_first_load(old)
            assert rows_in(old_state) == args.rows
            old_state = None
            m["v1_wall"].append(w)
            m["v1_cpu"].append(c)
            w, c = decode_floor(path)
            m["decode_wall"].append(w)
            m["decode_cpu"].append(c)
            w, c = json_floor(path)
            m["floor_wall"].append(w)
            m["floor_cpu"].append(c)
            print(f"ftui watch: first frame {seen['first_frame_s']:.2f}s, every view loaded {seen['loaded_s']:.2f}s; "
                  f"reader + state: format 2 {m['v2_wall'][-1]:.2f}s, format 1 {m['v1_wall'][-1]:.2f}s "
                  f"(its decoding alone {m['decode_wall'][-1]:.2f}s)", flush=True)
        nxt = args.rows
        inc = incremental(path, reader, state, nxt, args.reps * 4)
        nxt += args.reps * 4 * 1000
        reader = state = None
        ui = asyncio.run(headless(path, nxt, args.reps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    s = {k: harness.summary(v) for k, v in m.items()}
    poll = harness.summary(inc)
    render = harness.summary(ui["render_ms"])
    cycle = harness.summary(ui["cycle_ms"])
    all_plots = harness.summary(ui["all_plots_ms"])
    all_plots_cpu = harness.summary(ui["all_plots_cpu_ms"])
    loaded = s["watch_loaded"]["median"]
    rows = [
        {"measure": "ftui watch to every view loaded", "value": loaded, "unit": "s",
         "target": f"< {TARGET_LOAD_S:g}", "status": harness.verdict(loaded, TARGET_LOAD_S),
         "note": f"{args.rows:,} rows ({size_mb:,.0f} MB + {columns_mb:,.0f} MB of columns); first frame "
                 f"{s['watch_first']['median']:.2f}s; pty 120x40, median of {s['watch_loaded']['n']}"},
        {"measure": "first load, reader + state, format 2", "value": s["v2_wall"]["median"], "unit": "s",
         "target": f"< {TARGET_LOAD_S:g}", "status": harness.verdict(s["v2_wall"]["median"], TARGET_LOAD_S),
         "note": f"CPU {s['v2_cpu']['median']:.2f}s; RunReader (metrics.columns) + RunState, no UI"},
        {"measure": "first load, reader + state, format 1", "value": s["v1_wall"]["median"], "unit": "s",
         "note": f"CPU {s['v1_cpu']['median']:.2f}s; the same run recorded without metrics.columns"},
        {"measure": "floor of format 1: decoding alone, no fold", "value": s["decode_cpu"]["median"], "unit": "s CPU",
         "note": f"wall {s['decode_wall']['median']:.2f}s; JsonlTail dicts in 4 MiB polls"},
        {"measure": "floor: one json.loads of every line", "value": s["floor_cpu"]["median"], "unit": "s CPU",
         "note": f"wall {s['floor_wall']['median']:.2f}s; the least any stdlib-json reader pays"},
        {"measure": "headless ftui watch: app start to every view loaded", "value": ui["loaded_s"], "unit": "s",
         "note": f"first frame after {ui['first_frame_s']:.2f}s (App.run_test, imports excluded)"},
        {"measure": "incremental poll of 1,000 rows", "value": poll["median"], "unit": "ms",
         "target": f"< {TARGET_POLL_MS:g}", "status": harness.verdict(poll["median"], TARGET_POLL_MS),
         "note": f"RunReader.poll + RunState.apply; max {poll['max']:.1f} ms over {poll['n']}"},
        {"measure": "loss plot render (120-col terminal)", "value": render["median"], "unit": "ms",
         "target": f"< {TARGET_PLOT_MS:g}", "status": harness.verdict(render["median"], TARGET_PLOT_MS),
         "note": f"{ui['loss_points']:,} points, plot {ui['plot_width']} cols"},
        {"measure": f"all {ui['plots']} plots render", "value": all_plots["median"], "unit": "ms",
         "target": f"< {TARGET_PLOT_MS:g}", "status": harness.verdict(all_plots["median"], TARGET_PLOT_MS),
         "note": "loss, accuracy and lr plots of the Plots tab"},
        {"measure": f"all {ui['plots']} plots render: CPU time", "value": all_plots_cpu["median"], "unit": "ms",
         "target": f"< {TARGET_PLOT_MS:g}", "status": harness.verdict(all_plots_cpu["median"], TARGET_PLOT_MS),
         "note": "process time (the reader thread idles between polls)"},
        {"measure": "redraw cycle after 1,000 new rows", "value": cycle["median"], "unit": "ms",
         "note": "fold + redraw() of every view + one paint of the screen"},
    ]
    results = {
        "config": {"rows": args.rows, "reps": args.reps, "file_mb": size_mb, "columns_mb": columns_mb,
                   "terminal": [120, 40]},
        "watch_first_frame_s": s["watch_first"], "watch_loaded_s": s["watch_loaded"],
        "first_load_v2_s": s["v2_wall"], "first_load_v2_cpu_s": s["v2_cpu"],
        "first_load_v1_s": s["v1_wall"], "first_load_v1_cpu_s": s["v1_cpu"],
        "decode_floor_wall_s": s["decode_wall"], "decode_floor_cpu_s": s["decode_cpu"],
        "json_floor_wall_s": s["floor_wall"], "json_floor_cpu_s": s["floor_cpu"], "poll_ms": poll,
        "plot_render_ms": render, "all_plots_ms": all_plots, "all_plots_cpu_ms": all_plots_cpu,
        "redraw_cycle_ms": cycle, "headless": ui,
    }
    harness.report("dashboard_ingest", "Dashboard ingest: 1,000,000 metric rows", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
