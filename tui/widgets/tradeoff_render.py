"""Rich renderables for the trade-off table of ``ftui compress`` (from ``tradeoff.json``; no torch here).

Shared by ``ftui compress`` (printed) and the inspector's Trade-off tab. A checkpoint's compression
record and the channels pruning removed are inspect views (``inspect_render.compression_view``).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tui.format import format_count


def _ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


def _size(n: Any) -> str:
    """Bytes in decimal units, short: ``297.4kB``, ``1.2GB`` (a size, not a count: kB, and GB not BB)."""
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{int(n)}B"


def _latency(row: dict[str, Any], runtime: str, batch: int) -> Any:
    return ((row.get("latency_ms") or {}).get(runtime) or {}).get(str(batch))


def _cell(row: dict[str, Any], base: dict[str, Any], runtime: str, batch: int) -> str:
    """Milliseconds, and ``×N``: the speed-up over the original *in the same runtime* at that batch."""
    value = _latency(row, runtime, batch)
    if not isinstance(value, (int, float)):
        return "-"
    ref = _latency(base, runtime, batch)
    if row is base or not isinstance(ref, (int, float)) or value <= 0:
        return _ms(value)
    return f"{_ms(value)} ×{ref / value:.1f}"


def tradeoff_table(table: dict[str, Any], *, compact: bool = False) -> Table:
    """One row per variant: parameters, size, FLOPs, sparsity, accuracy (change), latencies.

    Latencies are medians in ms with the same thread count; ``×N`` is the speed-up over the original
    in the same runtime at that batch size. ``compact`` (narrow terminals) leaves out the parameter
    count (the size tells it) and the batch-64 columns; the sparsity column appears only when some
    variant has zeroed weights.
    """
    variants = [v for v in table.get("variants") or [] if isinstance(v, dict)]
    base = variants[0] if variants else {}
    title = (f"{table.get('split', 'test')} split, {base.get('samples', '?')} samples; latency: ms, median of "
             f"{table.get('repeats', '?')}, {table.get('threads')} thread(s); ×: vs original, same runtime")
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    sparse = any(isinstance(v.get("sparsity"), (int, float)) and v["sparsity"] >= 0.005 for v in variants)
    columns = ["variant"] + ([] if compact else ["params"]) + ["size", "FLOPs"] + (["sparsity"] if sparse else [])
    columns += ["acc", "Δ acc", "torch b1"]
    columns += [] if compact else ["torch b64"]
    columns += ["ORT b1"] + ([] if compact else ["ORT b64"])
    for col in columns:
        out.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for row in variants:
        delta = row.get("accuracy_change")
        if row is base:
            delta_text = Text("-")
        elif isinstance(delta, (int, float)):
            delta_text = Text(f"{delta * 100:+.1f}pt", style="red" if delta < -0.01 else "green")
        else:
            delta_text = Text("?")
        sparsity = row.get("sparsity")
        cells: list[Any] = [Text(str(row.get("name")), style="bold" + (" cyan" if row.get("dtype") == "int8" else ""))]
        if not compact:
            cells.append(format_count(row.get("params"), "-"))
        cells += [
            _size(row.get("size_bytes")),
            format_count(row.get("flops"), "-") if isinstance(row.get("flops"), (int, float)) else "-",
        ]
        if sparse:
            cells.append(f"{sparsity:.0%}" if isinstance(sparsity, (int, float)) else "-")
        accuracy = row.get("accuracy")
        cells += [f"{accuracy:.2%}" if isinstance(accuracy, (int, float)) else "-", delta_text,
                  _cell(row, base, "torch", 1)]
        if not compact:
            cells.append(_cell(row, base, "torch", 64))
        cells.append(_cell(row, base, "onnxruntime", 1))
        if not compact:
            cells.append(_cell(row, base, "onnxruntime", 64))
        out.add_row(*cells)
    return out


def tradeoff_view(table: dict[str, Any], *, compact: bool = False) -> RenderableType:
    """The table, then what each variant is and where its files are."""
    lines = Text()
    for row in table.get("variants") or []:
        lines.append(f"{row.get('name')}: ", style="bold")
        lines.append(row.get("checkpoint") or "-")
        if row.get("onnx"):
            lines.append(f"  + {row['onnx']}")
        lines.append("\n")
        for step in row.get("steps") or []:
            lines.append(f"    {step}\n", style="dim")
    machine = table.get("machine") or {}
    footer = Text(f"measured on {machine.get('cpu', '?')} ({machine.get('cpus', '?')} CPUs, load "
                  f"{machine.get('load')}), torch {machine.get('torch', '?')}", style="dim")
    return Group(tradeoff_table(table, compact=compact), lines, footer)
