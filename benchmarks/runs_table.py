"""Benchmark 7 — the runs table with 1,000 runs: opening, rescanning, filtering as you type.

A runs root with 1,000 run directories is written in a temporary folder (``run.json``, ``config.json``
with varied learning rate, batch size, widths and weight decay, ``meta.json`` tags on some; the
metrics files do not matter to the table). Measured:

* open — ``ftui --root ROOT`` started in a pseudo-terminal (120 x 40) exactly as a person starts it,
  to the moment the table's status line "1000 of 1000 runs" is on the terminal (target < 1 s);
* the pieces, in-process: a cold ``RunIndex.scan()``, a rescan with nothing changed (every second
  while the app is open), the same cold scan of runs written before ``config.json`` existed (their
  ``config.yaml`` parsed instead), and ``make_listing`` (filter, sort, differing keys);
* filter as you type — in a headless Textual run (``App.run_test``, 120 x 40): ``/`` then
  ``optim.lr<0.003 tag=a`` typed key by key; per key, the time from the key press to the table
  updated (the screen's filter, sort and first rows, timed inside the app; target < 100 ms each) and
  its CPU time, and the time until the table holds every matching row;
* the headless app's time (and CPU time) until all 1,000 rows are in the table (the table shows the
  first screenful at once and adds the rest after each repaint, 200 rows a step).

Beside wall times, CPU times tell what an idle core would take on a machine other work keeps busy.

    python benchmarks/runs_table.py [--runs 1000] [--reps 5] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

TARGET_OPEN_S = 1.0
TARGET_KEY_MS = 100.0
FIXTURE = harness.REPO / "tests" / "fixtures" / "recorded_run"
QUERY = "optim.lr<0.003 tag=a"


def make_root(root: Path, n: int, *, json_config: bool = True) -> None:
    """``n`` runs under ``root`` (run.json from the recorded run; config.json or config.yaml varied)."""
    import yaml

    rng = random.Random(0)
    info = json.loads((FIXTURE / "run.json").read_text())
    config = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = root / f"run-{i:04d}"
        path.mkdir()
        cfg = json.loads(json.dumps(config))
        cfg["run"]["name"] = path.name
        cfg["optim"]["lr"] = 10 ** rng.uniform(-4, -1)
        cfg["optim"]["weight_decay"] = rng.choice([0.0, 1e-4, 1e-2])
        cfg["data"]["batch_size"] = rng.choice([32, 64, 128])
        cfg["model"]["channels"] = rng.choice([[8, 16], [16, 32, 64]])
        run = {**info, "name": path.name, "created": 1.8e9 + i, "started": 1.8e9 + i + 1, "ended": 1.8e9 + i + 60,
               "status": rng.choice(["finished", "finished", "failed", "stopped", "pruned"]),
               "best": {**info["best"], "value": rng.random()}}
        (path / "run.json").write_text(json.dumps(run, indent=2))
        if json_config:
            (path / "config.json").write_text(json.dumps(cfg, indent=1))
        else:
            (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        if i % 10 == 0:
            (path / "meta.json").write_text(json.dumps({"tags": [rng.choice("abc")], "notes": "", "archived": False}))


def open_in_pty(root: Path, n: int, timeout: float = 30.0) -> tuple[float, float]:
    """Seconds from starting ``ftui --root ROOT`` in a 120 x 40 pseudo-terminal to "N of N runs" on it,
    and the CPU seconds the app used until then."""
    ftui = shutil.which("ftui") or str(Path(os.sys.executable).parent / "ftui")
    marker = f"{n} of {n} runs".encode()
    with harness.PtyApp([ftui, "--root", str(root)], cwd=root.parent) as app:
        for seen, now in app.output(timeout):
            if marker in seen:
                return now, app.cpu_seconds()
        raise SystemExit(f"ftui never showed {marker.decode()!r}; last output:\n{app.tail()}")


async def typing(root: Path, n: int) -> dict[str, Any]:
    """Per key of the filter, ms from the press to the table updated and painted; and the rows left."""
    from tui.app import FtuiApp
    from tui.screens.home import HomeScreen
    from tui.widgets.runs_table import RunsTable

    app = FtuiApp(root, config_dirs=[])
    t0, c0 = time.perf_counter(), time.process_time()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, HomeScreen)
        table = screen.query_one(RunsTable)
        while (table.row_count < n or table.filling) and time.perf_counter() - t0 < 60:
            await pilot.pause(0.01)
        loaded, loaded_cpu = time.perf_counter() - t0, time.process_time() - c0
        await pilot.press("slash")
        # per key: the screen's own work for it (filter, sort, the rows shown first), timed inside the
        # app; then the time until the table holds every matching row (added after repaints)
        spent: list[tuple[float, float]] = []
        inner = screen.refresh_table

        def timed_refresh() -> None:
            t1, c1 = time.perf_counter(), time.process_time()
            inner()
            spent.append((time.perf_counter() - t1, time.process_time() - c1))

        screen.refresh_table = timed_refresh  # type: ignore[method-assign]
        per_key, per_key_cpu, settle = [], [], []
        for key in QUERY:
            spent.clear()
            t1 = time.perf_counter()
            await pilot.press(key)
            per_key.append(sum(w for w, _ in spent) * 1e3)
            per_key_cpu.append(sum(c for _, c in spent) * 1e3)
            while table.filling:
                await pilot.pause(0.005)
            await pilot.pause()
            settle.append((time.perf_counter() - t1) * 1e3)
        rows = table.row_count
        expected = sum(1 for e in screen.entries if e.config.get("optim.lr", 1) < 0.003 and "a" in e.meta.tags)
        assert rows == expected, (rows, expected)
    return {"headless_loaded_s": loaded, "headless_loaded_cpu_s": loaded_cpu, "key_ms": per_key,
            "key_cpu_ms": per_key_cpu, "settle_ms": settle, "rows_left": rows}


def main() -> None:
    p = harness.parser("runs_table", __doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    n, reps = (50, 1) if args.quick else (args.runs, args.reps)
    from core.run_index import RunIndex, make_listing

    tmp = Path(tempfile.mkdtemp(prefix="ftui-runs-table-"))
    try:
        root, old_root = tmp / "runs", tmp / "old-runs"
        make_root(root, n)
        make_root(old_root, n, json_config=False)
        cold, warm, cold_yaml, listing_ms, opens, opens_cpu = [], [], [], [], [], []
        for _ in range(reps):
            index = RunIndex(root)
            t, entries = harness.timed(index.scan)
            cold.append(t)
            warm.append(harness.timed(index.scan)[0])
            cold_yaml.append(harness.timed(RunIndex(old_root).scan)[0])
            t, listing = harness.timed(lambda: make_listing(entries, "", sort="best", reverse=True))
            listing_ms.append(t * 1e3)
            assert len(listing.entries) == n and "optim.lr" in listing.hparams
            t_open, cpu = open_in_pty(root, n)
            opens.append(t_open)
            opens_cpu.append(cpu)
        ui = asyncio.run(typing(root, n))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    o, k = harness.summary(opens), harness.summary(ui["key_ms"])
    oc, kc = harness.summary(opens_cpu), harness.summary(ui["key_cpu_ms"])
    st = harness.summary(ui["settle_ms"])
    c, w, y, m = (harness.summary(v) for v in (cold, warm, cold_yaml, listing_ms))
    rows = [
        {"measure": f"ftui --root: {n} runs on the terminal", "value": o["median"], "unit": "s",
         "target": f"< {TARGET_OPEN_S:g}", "status": harness.verdict(o["median"], TARGET_OPEN_S),
         "note": f"pty 120x40 to '{n} of {n} runs'; min {o['min']:.3f}, max {o['max']:.3f}"},
        {"measure": "filter: one key to the table updated", "value": k["median"], "unit": "ms",
         "target": f"< {TARGET_KEY_MS:g}", "status": harness.verdict(k["max"], TARGET_KEY_MS),
         "note": f"headless, {QUERY!r} typed key by key: filter, sort, first rows; max {k['max']:.1f} ms; "
                 f"{ui['rows_left']} rows left"},
        {"measure": "filter: one key to every matching row in the table", "value": st["median"], "unit": "ms",
         "note": f"max {st['max']:.0f} ms (a key that brings all {n} runs back adds them after repaints)"},
        {"measure": "ftui --root: CPU time to the runs on the terminal", "value": oc["median"], "unit": "s",
         "target": f"< {TARGET_OPEN_S:g}", "status": harness.verdict(oc["median"], TARGET_OPEN_S),
         "note": "user + system of the app process: what an idle core would take"},
        {"measure": "filter: CPU time per key", "value": kc["median"], "unit": "ms",
         "target": f"< {TARGET_KEY_MS:g}", "status": harness.verdict(kc["max"], TARGET_KEY_MS),
         "note": f"max {kc['max']:.1f} ms"},
        {"measure": f"headless: all {n} rows in the table", "value": ui["headless_loaded_s"], "unit": "s",
         "note": f"CPU {ui['headless_loaded_cpu_s']:.2f} s; the first screenful is drawn first"},
        {"measure": "RunIndex.scan, cold", "value": c["median"] * 1e3, "unit": "ms", "note": "run.json, meta.json, config.json"},
        {"measure": "RunIndex.scan, nothing changed", "value": w["median"] * 1e3, "unit": "ms", "note": "the app rescans every second"},
        {"measure": "RunIndex.scan, cold, runs without config.json", "value": y["median"] * 1e3, "unit": "ms",
         "note": "runs written before config.json: config.yaml parsed (C YAML)"},
        {"measure": "make_listing (sort by best, differing keys)", "value": m["median"], "unit": "ms"},
    ]
    results = {"config": {"runs": n, "reps": reps, "query": QUERY}, "open_s": o, "open_cpu_s": oc, "key_ms": k,
               "key_cpu_ms": kc, "settle_ms": st, "scan_cold_s": c,
               "scan_warm_s": w, "scan_cold_yaml_s": y, "listing_ms": m, "headless": ui}
    harness.report("runs_table", f"Runs table: {n} runs", rows, results, args.out, quick=args.quick)


if __name__ == "__main__":
    main()
