"""Shared plumbing of the benchmark scripts: arguments, timing statistics, the table and the JSON.

Every benchmark is a script run from the repository root (``python benchmarks/<name>.py``); it
prints a table and writes ``benchmarks/results/<name>.json`` (or ``--out PATH``). ``--quick`` shrinks
the work to a smoke run that CI uses to keep the script working; its figures mean nothing.

The machine these run on is small and shared, so results carry the load average and the machine,
and comparisons are interleaved repetitions reported as medians and ratios.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares (``--quick``, ``--out``)."""
    p = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="Tiny smoke run for CI (figures are not meaningful).")
    p.add_argument("--out", type=Path, default=RESULTS / f"{name}.json", help="Where the JSON results go.")
    return p


def machine() -> dict[str, Any]:
    """What the figures were measured on: cores, CPU model, memory, load, versions, date."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        import psutil

        mem_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001 - informative only
        pass
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": mem_gib,
        "load_avg_1_5_15": load,
        "python": platform.python_version(),
    }
    for module in ("torch", "torchvision", "textual"):
        mod = sys.modules.get(module)
        if mod is not None:
            info[module] = getattr(mod, "__version__", "?")
    return info


def summary(values: Iterable[float]) -> dict[str, float]:
    """Median, min, max and count of a list of measurements."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, by the monotonic performance counter."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def verdict(value: float, target: float, *, lower_is_better: bool = True) -> str:
    """"ok" when ``value`` meets ``target``, "MISS" otherwise."""
    ok = value <= target if lower_is_better else value >= target
    return "ok" if ok else "MISS"


def report(name: str, title: str, rows: list[dict[str, Any]], results: dict[str, Any], out: Path, *, quick: bool) -> None:
    """Print ``rows`` as a table and write ``results`` (with the machine and the rows) as JSON to ``out``.

    Each row is ``{"measure", "value", "unit", "target", "status", "note"}`` (missing keys are blank).
    """
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title}{' (--quick: smoke run, figures not meaningful)' if quick else ''}")
    for col in ("measure", "value", "unit", "target", "status", "note"):
        table.add_column(col, overflow="fold")
    for row in rows:
        value = row.get("value")
        text = f"{value:,.4g}" if isinstance(value, float) else ("" if value is None else str(value))
        table.add_row(
            str(row.get("measure", "")), text, str(row.get("unit", "")), str(row.get("target", "")),
            str(row.get("status", "")), str(row.get("note", "")),
        )
    Console(width=140, highlight=False).print(table)
    payload = {
        "benchmark": name,
        "quick": quick,
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rows": rows,
        "results": results,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def write_jpeg_folder(root: Path, images: int, side: int = 224, classes: int = 4) -> None:
    """``images`` JPEGs (quality 90) of smooth noise, like photographs to a codec, in ``classes`` folders
    (the ImageFolder the input-pipeline and GPU-throughput benchmarks read)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        walk = np.cumsum(rng.normal(0, 6, (side, side, 3)), axis=1) + rng.uniform(60, 190, (side, 1, 3))
        Image.fromarray(np.clip(walk, 0, 255).astype("uint8")).save(folder / f"{i:05d}.jpg", quality=90)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
