"""Benchmark 3 — dashboard ingest: a run directory with 1,000,000 metric rows.

The run directory is written in a temporary folder with rows shaped as the recorder writes them for the
quickstart (train rows every ``logging.every_n_steps`` with the per-group ``lrs``; a val row with the
per-class metrics and the confusion matrix every 1,000 rows). Measured:

* first load — ``core.runs.RunReader.poll()`` reading everything (target < 2 s), and the dashboard's own
  path: ``RunFollower`` polls in 4 MiB steps folded into a ``RunState`` (what ``ftui watch`` does);
* incremental poll — 1,000 new rows appended, then one poll (+ fold) (target < 20 ms);
* plot refresh — in a headless Textual run (``App.run_test``, 120 x 40) of ``ftui watch`` on that run:
  the time from the first frame to the backlog loaded, one ``MetricPlot.render()`` of the loss plot, and
  a whole redraw cycle after new rows (state folded, three plots redrawn, screen painted) (target < 50 ms).

    python benchmarks/dashboard_ingest.py [--rows 1000000] [--reps 5] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
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


def make_run(root: Path, rows: int) -> Path:
    """A finished run directory with ``rows`` metric rows (written in blocks)."""
    path = root / "million"
    path.mkdir(parents=True)
    t0 = 1_800_000_000.0
    info = {
        "format": 1, "name": "million", "status": "finished", "pid": 1, "host": "bench-host",
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
            fh.write(text)
    for name in ("events.jsonl", "system.jsonl", "layers.jsonl"):
        (path / name).write_text("", encoding="utf-8")
    return path


def append_rows(path: Path, start: int, count: int) -> None:
    text, _ = rows_text(start, count, 1_800_000_000.0, start)
    with open(path / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(text)


def reader_first_load(path: Path) -> tuple[float, int, float]:
    """(wall s, rows read, CPU s) of a fresh RunReader reading the whole run."""
    from core.runs import RunReader

    t0, c0 = time.perf_counter(), time.process_time()
    reader = RunReader(path)
    reader.poll()
    return time.perf_counter() - t0, len(reader.snapshot.metrics), time.process_time() - c0


def json_floor(path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the least the standard library can do: one json.loads of all lines as an array."""
    data = (path / "metrics.jsonl").read_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    json.loads(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]")
    return time.perf_counter() - t0, time.process_time() - c0


def decode_floor(path: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the dashboard's reading alone: metrics.jsonl decoded to dicts in the
    follower's 4 MiB polls, nothing folded — the least any fold of those dicts can add to."""
    from core.runs import JsonlTail
    from tui.screens.dashboard import POLL_BYTES

    t0, c0 = time.perf_counter(), time.process_time()
    tail = JsonlTail(path / "metrics.jsonl")
    while tail.poll(POLL_BYTES):
        pass
    return time.perf_counter() - t0, time.process_time() - c0


def follower_first_load(path: Path) -> tuple[float, Any, Any, float]:
    """The dashboard's path without the app: RunFollower polls folded into a RunState until caught up."""
    from tui.run_state import RunState
    from tui.screens.dashboard import RunFollower

    t0, c0 = time.perf_counter(), time.process_time()
    follower = RunFollower(path)
    state = RunState()
    while True:
        delta = follower.poll()
        if delta is None:
            break
        state.apply(delta)
        if not delta.more:
            break
    return time.perf_counter() - t0, follower, state, time.process_time() - c0


def incremental(path: Path, follower: Any, state: Any, reader: Any, start: int, reps: int) -> dict[str, list[float]]:
    """Append 1,000 rows, then time one follower poll + fold and one RunReader poll; ``reps`` times."""
    out: dict[str, list[float]] = {"follower_ms": [], "reader_ms": []}
    for r in range(reps):
        append_rows(path, start + r * 1000, 1000)
        t0 = time.perf_counter()
        delta = follower.poll()
        if delta is not None:
            state.apply(delta)
        out["follower_ms"].append((time.perf_counter() - t0) * 1e3)
        n = len(delta.metrics) if delta is not None else 0
        assert n == 1000, f"the poll saw {n} rows, not 1000"
        t0 = time.perf_counter()
        new = reader.poll()
        out["reader_ms"].append((time.perf_counter() - t0) * 1e3)
        assert len(new["metrics.jsonl"]) == 1000
    return out


async def headless(path: Path, start: int, reps: int) -> dict[str, Any]:
    """``ftui watch`` in App.run_test at 120 x 40: load time, plot render and a redraw cycle after new rows."""
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
            append_rows(path, start + r * 1000, 1000)
            from tui.screens.dashboard import RunFollower  # noqa: F401 - the screen's own worker reads them

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
        size_mb = (path / "metrics.jsonl").stat().st_size / 1e6
        print(f"wrote {args.rows:,} rows ({size_mb:,.0f} MB) in {time.perf_counter() - t0:.1f}s", flush=True)
        from core.runs import RunReader

        loads_reader, loads_follower, cpu_reader, cpu_follower, floor_wall, floor_cpu = [], [], [], [], [], []
        decode_wall, decode_cpu = [], []
        follower = state = None
        for _ in range(1 if args.quick else min(3, args.reps)):
            # Interleaved, so a change of load on the shared machine touches every measure alike.
            s, n, c = reader_first_load(path)
            assert n == args.rows, f"read {n} rows, not {args.rows}"
            loads_reader.append(s)
            cpu_reader.append(c)
            follower = state = None  # the previous repetition's million points, freed first
            s, follower, state, c = follower_first_load(path)
            loads_follower.append(s)
            cpu_follower.append(c)
            w, c = decode_floor(path)
            decode_wall.append(w)
            decode_cpu.append(c)
            w, c = json_floor(path)
            floor_wall.append(w)
            floor_cpu.append(c)
            print(f"first load: RunReader {loads_reader[-1]:.2f}s, dashboard follower+state {s:.2f}s "
                  f"(its decoding alone {decode_wall[-1]:.2f}s)", flush=True)
        reader = RunReader(path)
        reader.poll()
        nxt = args.rows
        inc = incremental(path, follower, state, reader, nxt, args.reps * 4)
        nxt += args.reps * 4 * 1000
        ui = asyncio.run(headless(path, nxt, args.reps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load_r = harness.summary(loads_reader)
    load_f = harness.summary(loads_follower)
    cpu_r, cpu_f = harness.summary(cpu_reader), harness.summary(cpu_follower)
    floor_w, floor_c = harness.summary(floor_wall), harness.summary(floor_cpu)
    decode_w, decode_c = harness.summary(decode_wall), harness.summary(decode_cpu)
    poll_f = harness.summary(inc["follower_ms"])
    poll_r = harness.summary(inc["reader_ms"])
    render = harness.summary(ui["render_ms"])
    cycle = harness.summary(ui["cycle_ms"])
    all_plots = harness.summary(ui["all_plots_ms"])
    all_plots_cpu = harness.summary(ui["all_plots_cpu_ms"])
    rows = [
        {"measure": "first load, RunReader.poll()", "value": load_r["median"], "unit": "s",
         "target": f"< {TARGET_LOAD_S:g}", "status": harness.verdict(load_r["median"], TARGET_LOAD_S),
         "note": f"{args.rows:,} rows, {size_mb:,.0f} MB"},
        {"measure": "first load, dashboard follower + RunState", "value": load_f["median"], "unit": "s",
         "target": f"< {TARGET_LOAD_S:g}", "status": harness.verdict(load_f["median"], TARGET_LOAD_S),
         "note": "what ftui watch does, without the UI"},
        {"measure": "first load, RunReader: CPU time", "value": cpu_r["median"], "unit": "s",
         "target": f"< {TARGET_LOAD_S:g}", "status": harness.verdict(cpu_r["median"], TARGET_LOAD_S),
         "note": "process time: what an idle core would take"},
        {"measure": "first load, dashboard: CPU time", "value": cpu_f["median"], "unit": "s",
         "target": f"< {TARGET_LOAD_S:g}", "status": harness.verdict(cpu_f["median"], TARGET_LOAD_S)},
        {"measure": "floor: the dashboard's decoding alone, no fold", "value": decode_c["median"], "unit": "s CPU",
         "note": f"wall {decode_w['median']:.2f}s; JsonlTail dicts in 4 MiB polls: the least any fold of dicts adds to"},
        {"measure": "floor: one json.loads of every line", "value": floor_c["median"], "unit": "s CPU",
         "note": f"wall {floor_w['median']:.2f}s; the least any stdlib-json reader pays"},
        {"measure": "headless ftui watch: first frame to loaded", "value": ui["loaded_s"] - ui["first_frame_s"],
         "unit": "s", "note": f"first frame after {ui['first_frame_s']:.2f}s"},
        {"measure": "incremental poll of 1,000 rows, dashboard", "value": poll_f["median"], "unit": "ms",
         "target": f"< {TARGET_POLL_MS:g}", "status": harness.verdict(poll_f["median"], TARGET_POLL_MS),
         "note": f"max {poll_f['max']:.1f} ms over {poll_f['n']}"},
        {"measure": "incremental poll of 1,000 rows, RunReader", "value": poll_r["median"], "unit": "ms",
         "target": f"< {TARGET_POLL_MS:g}", "status": harness.verdict(poll_r["median"], TARGET_POLL_MS)},
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
        "config": {"rows": args.rows, "reps": args.reps, "file_mb": size_mb, "terminal": [120, 40]},
        "first_load_reader_s": load_r, "first_load_follower_s": load_f, "first_load_reader_cpu_s": cpu_r,
        "first_load_follower_cpu_s": cpu_f, "decode_floor_wall_s": decode_w, "decode_floor_cpu_s": decode_c,
        "json_floor_wall_s": floor_w, "json_floor_cpu_s": floor_c, "poll_follower_ms": poll_f,
        "poll_reader_ms": poll_r, "plot_render_ms": render, "all_plots_ms": all_plots, "all_plots_cpu_ms": all_plots_cpu, "redraw_cycle_ms": cycle, "headless": ui,
    }
    harness.report("dashboard_ingest", "Dashboard ingest: 1,000,000 metric rows", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
