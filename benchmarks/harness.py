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
    from core.system.host import cpu_model

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
        "cpu_model": cpu_model(),
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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far, from /proc (nan where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class PtyApp:
    """An ftui app started as a person starts it, in a 120x40 pseudo-terminal (the timing benchmarks'
    way to see what is on the screen, and when). Use as a context manager: leaving presses ``q``, then
    ends the process if it does not quit."""

    def __init__(self, argv: list[str], *, cwd: Path, cols: int = 120, rows: int = 40) -> None:
        import fcntl
        import pty
        import struct
        import subprocess
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
        env.pop("TEXTUAL", None)  # no devtools in a measurement
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def output(self, timeout: float) -> Iterable[tuple[bytes, float]]:
        """All output so far and the seconds since the start, after each read, until ``timeout`` or the
        app's exit (the caller breaks out when the screen shows what it waits for)."""
        import select

        while time.perf_counter() - self.t0 < timeout:
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                self.seen += os.read(self.master, 1 << 16)
            except OSError:
                return
            yield self.seen, time.perf_counter() - self.t0

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def tail(self) -> str:
        """The last output, for a message when the app never showed what was waited for."""
        return self.seen[-1500:].decode(errors="replace")

    def __enter__(self) -> PtyApp:
        return self

    def __exit__(self, *exc: object) -> None:
        import signal
        import subprocess

        try:
            self.press("q")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            os.close(self.master)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)
