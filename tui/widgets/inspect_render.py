"""Rich renderables for checkpoint summaries, tensor statistics and diffs.

Shared by ``ftui inspect --plain`` / ``ftui diff`` (printed) and the inspector's panels (shown in
``Static`` widgets), so both views always agree. Inputs are the JSON-safe dicts of
``core.inspect`` (summary, ``TensorStats.as_dict()``, ``DiffReport.as_dict()``); no torch here.
"""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core.richtext import PlainTable
from tui.format import format_count, sparkline


def fmt_bytes(n: int | None) -> str:
    """``44750764`` -> ``42.7 MiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def fmt_num(value: Any) -> str:
    """A number in 4 significant digits; '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def fmt_frozen(flag: Any) -> Text:
    """Frozen flag as coloured text."""
    if flag is True:
        return Text("frozen", style="cyan")
    if flag == "partial":
        return Text("partial", style="yellow")
    if flag is False:
        return Text("trainable", style="green")
    return Text("-", style="dim")


def _table(title: str) -> Table:
    """A compact table (no edge padding) so that wide tables still fit 80 columns."""
    return PlainTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def _kv_table(title: str) -> Table:
    table = PlainTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_header=False, pad_edge=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    return table


def best_text(best: dict[str, Any]) -> str:
    """``val/acc 0.9575 at epoch 3, step 93``: the epoch as people count it (the contract's is 0-based)."""
    if "metric" not in best or "value" not in best:
        return ", ".join(f"{k}={fmt_num(v)}" for k, v in best.items())
    text = f"{best['metric']} {fmt_num(best['value'])}"
    where = []
    if isinstance(best.get("epoch"), int):
        where.append(f"epoch {best['epoch'] + 1}")
    if isinstance(best.get("step"), int):
        where.append(f"step {best['step']}")
    if where:
        text += " at " + ", ".join(where)
    extra = [f"{k}={v}" for k, v in best.items() if k in ("mode", "source") and v]
    return text + (f" ({', '.join(extra)})" if extra else "")


def code_text(entry: dict[str, Any]) -> str:
    """One recorded piece of user code (or timm): its name, file hash and arguments; never imported here."""
    kind = entry.get("kind")
    if kind == "timm":
        return f"{entry.get('name')} (timm {entry.get('timm_version') or '?'})"
    text = str(entry.get("name"))
    if entry.get("sha256"):
        text += f"  sha256 {str(entry['sha256'])[:12]}"
    args = entry.get("kwargs") or {}
    if args:
        shown = ", ".join(f"{k}={v}" for k, v in args.items())
        text += f"  ({shown if len(shown) <= 80 else shown[:77] + '...'})"
    return text + "  [recorded, not imported]"


def lora_text(lora: dict[str, Any]) -> str:
    """``r=8 α=16, 48 layers (Linear ×36, ...), 295K adapter params (1.1 MB); trains 0.9 % of 86M``."""
    types = ", ".join(f"{t} ×{n}" for t, n in (lora.get("layer_types") or {}).items())
    text = (f"r={fmt_num(lora.get('rank'))} α={fmt_num(lora.get('alpha'))}"
            + (f" dropout {fmt_num(lora.get('dropout'))}" if lora.get("dropout") else "")
            + f", {lora.get('layer_count')} layers ({types}), {format_count(lora.get('adapter_params'))} adapter params "
            f"({fmt_bytes(lora.get('adapter_bytes'))})")
    trainable, total = lora.get("trainable_params"), lora.get("total_params")
    if isinstance(trainable, (int, float)) and isinstance(total, (int, float)) and total:
        text += f"; {format_count(trainable)} of {format_count(total)} trainable ({100 * trainable / total:.2g} %)"
    saved = lora.get("modules_to_save") or []
    if saved:
        text += f"; trained fully: {', '.join(map(str, saved))}"
    return text


def lora_base_text(base: dict[str, Any]) -> str:
    """Where a LoRA checkpoint's base weights are: stored in it, or a file it names (never opened here)."""
    if base.get("stored") is not False:
        return "stored in this checkpoint (the base came from no weights file)"
    return (f"not stored: {base.get('source')} (sha256 {str(base.get('sha256'))[:12]}, {fmt_bytes(base.get('bytes'))}); "
            f"{base.get('omitted_tensors')} tensors, {format_count(base.get('omitted_params'))} params left to it")


def lora_table(summary: dict[str, Any]) -> RenderableType:
    """The adapted layers of a LoRA checkpoint."""
    lora = summary.get("lora")
    if not lora:
        return Text("")
    table = _table(f"LoRA adapters (target {', '.join(map(str, lora.get('target') or []))})")
    for col in ("layer", "type", "shape", "max rank", "adapter params"):
        table.add_column(col, justify="right" if col in ("max rank", "adapter params") else "left", overflow="fold")
    for layer in lora.get("layers") or []:
        table.add_row(str(layer.get("path")), str(layer.get("type")), str(layer.get("shape")),
                      fmt_num(layer.get("max_rank")), format_count(layer.get("params")))
    return table


def summary_table(summary: dict[str, Any]) -> Table:
    """Format, size, version, epoch/step, best metric, architecture and weight totals."""
    table = _kv_table("Checkpoint")
    weights = summary.get("weights") or {}
    arch = summary.get("architecture") or {}
    best = summary.get("best")
    table.add_row("path", summary.get("path", ""))
    fmt = summary.get("format", "")
    if summary.get("weights_key"):
        fmt += f"  (weights under '{summary['weights_key']}')"
    table.add_row("format", f"{fmt}  [{summary.get('container', '')}]")
    if summary.get("unsafe"):
        table.add_row("loaded", Text("UNSAFE (weights_only=False)", style="bold red"))
    files = summary.get("files") or []
    table.add_row("file size", fmt_bytes(summary.get("file_size")) + (f" in {len(files)} files" if len(files) > 1 else ""))
    table.add_row("modified", summary.get("created") or "-")
    table.add_row("ftui version", summary.get("ftui_version") or "-")
    if arch:
        # the head's module path quoted: a model whose head is `head` read "head head"
        extra = ", ".join([*([f"head '{arch['head']}'"] if arch.get("head") else []),
                           *([f"{arch['num_classes']} classes"] if arch.get("num_classes") is not None else [])])
        table.add_row("architecture", f"{arch.get('name')} ({arch.get('source')}{', ' + extra if extra else ''})")
    for entry in summary.get("code") or []:
        table.add_row(f"{entry.get('role')} code", Text(code_text(entry)))
    table.add_row("epoch / step", f"{fmt_num(summary.get('epoch'))} / {fmt_num(summary.get('step'))}")
    if best:
        table.add_row("best", best_text(best))
    dtypes = ", ".join(f"{k}×{v}" for k, v in (weights.get("dtypes") or {}).items())
    table.add_row("tensors", f"{weights.get('count', 0)} ({dtypes})")
    table.add_row("parameters", f"{format_count(weights.get('params'), '-')} ({weights.get('params', 0):,}); "
                  f"{fmt_bytes(weights.get('bytes'))} of weights")
    lora = summary.get("lora")
    if lora:
        table.add_row("LoRA", lora_text(lora))
        table.add_row("LoRA base", lora_base_text(lora.get("base") or {}))
    frozen = [m for m in summary.get("modules") or [] if m.get("depth") == 1 and m.get("frozen") is True]
    if frozen:
        table.add_row("frozen", ", ".join(m["path"] for m in frozen))
    if summary.get("other_keys"):
        table.add_row("other keys", ", ".join(summary["other_keys"]))
    return table


def modules_table(summary: dict[str, Any], max_depth: int = 2) -> Table:
    """Module paths up to ``max_depth`` with type, parameters, size and frozen flag."""
    table = _table(f"Layers (depth ≤ {max_depth})")
    table.add_column("module", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("tensors", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("frozen", no_wrap=True)
    for row in summary.get("modules") or []:
        if row["depth"] > max_depth:
            continue
        table.add_row("  " * (row["depth"] - 1) + row["path"].rsplit(".", 1)[-1] if row["depth"] > 1 else row["path"],
                      row.get("type") or "", format_count(row["params"], "-"), str(row["tensors"]), fmt_bytes(row["bytes"]),
                      fmt_frozen(row.get("frozen")))
    return table


def tensors_table(summary: dict[str, Any]) -> Table:
    """Every tensor: name, shape, dtype, elements, frozen."""
    table = _table("Tensors")
    table.add_column("name", overflow="fold")  # the only column that may wrap on a narrow terminal
    table.add_column("shape", no_wrap=True)
    table.add_column("dtype", no_wrap=True)
    table.add_column("numel", justify="right", no_wrap=True)
    table.add_column("frozen", no_wrap=True)
    for t in summary.get("tensors") or []:
        table.add_row(t["name"], "×".join(map(str, t["shape"])) or "scalar", t["dtype"], format_count(t["numel"], "-"),
                      Text("buffer", style="dim") if t.get("buffer") else fmt_frozen(t.get("frozen")))
    return table


def optimizer_table(summary: dict[str, Any]) -> RenderableType:
    """Optimizer type, state size and its parameter groups with learning rates."""
    opt = summary.get("optimizer")
    sched = summary.get("scheduler")
    if not opt and not sched:
        return Text("No optimizer state in this file.", style="dim")
    parts: list[RenderableType] = []
    if opt:
        head = _kv_table("Optimizer")
        source = f" ({opt['type_source']})" if opt.get("type_source") else ""
        head.add_row("type", f"{opt.get('type') or 'unknown'}{source}")
        head.add_row("state", f"{opt['state_tensors']} tensors for {opt['params_with_state']} params, "
                     f"{fmt_bytes(opt['state_bytes'])}")
        parts.append(head)
        groups = _table("Parameter groups")
        for col in ("#", "name", "lr", "params", "options"):
            groups.add_column(col, justify="right" if col in ("#", "lr", "params") else "left", overflow="fold")
        for g in opt.get("groups") or []:
            # Switched-off flags (amsgrad=False, foreach=None, ...) are torch defaults: leave them out.
            options = ", ".join(f"{k}={fmt_num(v) if not isinstance(v, list) else v}" for k, v in g["options"].items()
                                if v is not False and v is not None)
            groups.add_row(str(g["index"]), str(g.get("name") or "-"), fmt_num(g.get("lr")), str(g["params"]), options)
        parts.append(groups)
    if sched:
        table = _kv_table("Scheduler")
        for key, value in sched.items():
            table.add_row(key, json.dumps(value) if isinstance(value, (list, dict)) else fmt_num(value))
        parts.append(table)
    return Group(*parts)


def data_table(summary: dict[str, Any]) -> RenderableType:
    """Class names, normalisation, input shape and the rest of the data facts."""
    data = summary.get("data")
    if not data:
        return Text("No data facts in this file.", style="dim")
    table = _kv_table("Data")
    for key, value in data.items():
        if key == "class_names" and isinstance(value, list):
            table.add_row("classes", f"{len(value)}: " + ", ".join(map(str, value)))
        elif key == "normalization" and isinstance(value, dict):
            table.add_row("normalization", "  ".join(
                f"{k}=[{', '.join(fmt_num(v) for v in vals)}]" if isinstance(vals, list) else f"{k}={fmt_num(vals)}"
                for k, vals in value.items()))
        else:
            table.add_row(key, json.dumps(value) if isinstance(value, (list, dict)) else fmt_num(value))
    return table


def metrics_table(summary: dict[str, Any]) -> RenderableType:
    """Metric history: count, first, last, min, max and a sparkline per metric."""
    history = ((summary.get("metrics") or {}).get("history")) or {}
    if not history:
        return Text("No metric history in this file.", style="dim")
    table = _table("Metric history")
    for col in ("metric", "points", "first", "last", "min", "max", "trend"):
        table.add_column(col, justify="left" if col in ("metric", "trend") else "right")
    for name, values in history.items():
        vals = [v for v in values if v is not None]
        table.add_row(name, str(len(values)), fmt_num(vals[0] if vals else None), fmt_num(vals[-1] if vals else None),
                      fmt_num(min(vals) if vals else None), fmt_num(max(vals) if vals else None), sparkline(vals))
    return table


def config_view(summary: dict[str, Any]) -> RenderableType:
    """The run's config (or Lightning hyper-parameters / safetensors metadata) as YAML-ish text."""
    for key, title in (("config", "Config"), ("lightning", "Lightning"), ("metadata", "Header metadata")):
        value = summary.get(key)
        if value:
            import yaml

            return Group(Text(title, style="bold"), Text(yaml.safe_dump(value, sort_keys=False, width=100)))
    return Text("No config in this file.", style="dim")


def stats_table(stats: dict[str, Any]) -> Table:
    """Statistics of one tensor (``TensorStats.as_dict()``)."""
    table = _kv_table(f"Tensor {stats.get('name', '')}")
    table.add_row("shape", "×".join(map(str, stats["shape"])) or "scalar")
    table.add_row("dtype", stats["dtype"])
    table.add_row("elements", f"{stats['numel']:,}")
    for key in ("mean", "std", "min", "max", "abs_mean", "norm"):
        table.add_row(key.replace("_", " "), fmt_num(stats[key]))
    table.add_row("zeros", f"{stats['zeros']:,}")
    bad = stats["nan"] + stats["inf"]
    table.add_row("NaN / inf", Text(f"{stats['nan']:,} / {stats['inf']:,}", style="bold red" if bad else ""))
    return table


_STATUS_STYLE = {"unchanged": "dim", "changed": "yellow", "shape_changed": "magenta", "added": "green", "removed": "red"}


def diff_view(report: dict[str, Any], *, show_unchanged: bool = False) -> RenderableType:
    """Per-module summary of a diff, then every parameter and every buffer that is not unchanged.

    Parameters and buffers stay apart: running statistics and counters say nothing of how far the
    weights moved.
    """
    counts = report["counts"]
    head = Text(f"A: {report['a']}\nB: {report['b']}\n" + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    modules = _table("Per module (Δ = ‖a−b‖/‖a‖, parameters and buffers apart)")
    for col in ("module", "status", "frozen", "same", "changed", "other", "params Δ", "buffers Δ"):
        # Only the module name may wrap: statuses and numbers stay whole on narrow terminals.
        modules.add_column(col, justify="left" if col in ("module", "status", "frozen") else "right",
                           overflow="fold", no_wrap=col != "module")
    for m in report["modules"]:
        c = m["counts"]
        other = c["added"] + c["removed"] + c["shape_changed"]
        modules.add_row(m["module"] or "(root)", Text(m["status"], style=_STATUS_STYLE.get(m["status"], "")),
                        fmt_frozen(m.get("frozen")), str(c["unchanged"]), str(c["changed"]), str(other),
                        fmt_num(m["rel_change"]), fmt_num(m.get("buffer_rel_change")))
    left_out = "" if show_unchanged else " (unchanged ones left out)"
    tables = []
    for kind, title in (("parameter", "Parameters"), ("buffer", "Buffers (running statistics, counters)")):
        rows = [t for t in report["tensors"] if t.get("kind", "parameter") == kind
                and (show_unchanged or t["status"] != "unchanged")]
        if rows:
            tables.append(_tensor_diff_table(title + left_out, rows))
    tensors = Group(*tables)
    parts: list[RenderableType] = [head, modules, tensors]
    if report.get("adapters"):
        parts.insert(1, adapters_view(report["adapters"]))
    compression = report.get("compression")
    if compression:
        arrow = "A → B" if compression.get("direction") == "a->b" else "B → A"
        steps = Text(f"Compression {arrow}:\n" + "\n".join(f"  {s}" for s in compression.get("steps") or []), style="bold")
        parts.append(steps)
        if compression.get("channels"):
            parts.append(channels_table(compression["channels"], title=f"Channels removed ({arrow}; indices of the larger model)"))
    return Group(*parts)


def _tensor_diff_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """One row per tensor: status, shape (``A → B`` when it changed), relative and largest change.

    Names never break: a shape may wrap instead (tensor names are what a reader searches for).
    """
    table = _table(title)
    table.min_width = len(title)  # a title wider than its columns wrapped mid-phrase, even at 120 columns
    for col in ("tensor", "status", "shape", "rel. Δ", "max |Δ|"):
        table.add_column(col, justify="right" if col in ("rel. Δ", "max |Δ|") else "left",
                         overflow="fold", no_wrap=col != "shape")
    shape = lambda s: "×".join(map(str, s)) if s is not None else "-"  # noqa: E731
    for t in rows:
        shown = shape(t["shape_a"]) if t["shape_a"] == t["shape_b"] else f"{shape(t['shape_a'])} → {shape(t['shape_b'])}"
        table.add_row(t["name"], Text(t["status"], style=_STATUS_STYLE.get(t["status"], "")), shown,
                      fmt_num(t["rel_change"]), fmt_num(t["max_abs_change"]))
    return table


def adapters_view(adapters: dict[str, Any]) -> RenderableType:
    """The LoRA comparison of a diff: per adapted layer, the update ΔW = (alpha/rank)·B·A in A and B."""
    sides = []
    for key in ("a", "b"):
        rec = adapters.get(key)
        sides.append(f"{key.upper()}: " + (f"r={fmt_num(rec.get('rank'))} α={fmt_num(rec.get('alpha'))}" if rec else "no LoRA record"))
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in adapters["counts"].items() if v)
    table = _table(f"LoRA adapters: update ΔW per layer ({'; '.join(sides)}; {counts})")
    for col in ("layer", "status", "rank", "‖ΔW‖ A", "‖ΔW‖ B", "rel. Δ"):
        table.add_column(col, justify="left" if col in ("layer", "status") else "right", overflow="fold",
                         no_wrap=col != "layer")
    for e in adapters["layers"]:
        ranks = e.get("rank_a"), e.get("rank_b")
        rank = fmt_num(ranks[0] if ranks[0] is not None else ranks[1]) if ranks[0] in (None, ranks[1]) or ranks[1] is None \
            else f"{ranks[0]}→{ranks[1]}"
        table.add_row(e["layer"], Text(e["status"], style=_STATUS_STYLE.get(e["status"], "")), rank,
                      fmt_num(e.get("norm_a")), fmt_num(e.get("norm_b")), fmt_num(e.get("rel_change")))
    return table


def plain_report(summary: dict[str, Any]) -> RenderableType:
    """Everything ``ftui inspect --plain`` prints."""
    parts: list[RenderableType] = [summary_table(summary), lora_table(summary)]
    if summary.get("compression"):
        parts.append(compression_view(summary["compression"]))
    parts += [modules_table(summary), tensors_table(summary), optimizer_table(summary), data_table(summary),
              metrics_table(summary)]
    return Group(*parts)


def compression_view(info: dict[str, Any]) -> RenderableType:
    """A checkpoint's compression record as ``ftui inspect`` shows it (the summary's ``compression``)."""
    table = PlainTable(title="Compression", title_justify="left", box=box.SIMPLE_HEAD, show_header=False,
                       pad_edge=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("variant", str(info.get("variant") or "-"))
    table.add_row("source", str(info.get("source") or "-"))
    for i, step in enumerate(info.get("steps") or [], start=1):
        table.add_row(f"step {i}", step)
    if info.get("int8_model_bytes"):
        table.add_row("int8 model", f"{fmt_bytes(info['int8_model_bytes'])} ONNX (runs in ONNX Runtime)")
    floats = info.get("float_layers") or []
    if floats:
        table.add_row("kept float", ", ".join(f"{f.get('layer')} ({f.get('op')})" for f in floats))
    parts: list[RenderableType] = [table]
    if info.get("channels"):
        parts.append(channels_table(info["channels"], title="Pruned channels (source → this checkpoint)"))
    return Group(*parts)


def channels_table(changes: list[dict[str, Any]], *, title: str = "Pruned channels", limit: int = 12) -> Table:
    """Per layer and dimension: channels before → after, and which indices were removed."""
    table = PlainTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("layer", "type", "dim", "before", "after", "removed (source indices)"):
        table.add_column(col, justify="right" if col in ("before", "after") else "left",
                         no_wrap=col != "removed (source indices)", overflow="fold")
    for change in changes:
        removed = [int(i) for i in change.get("removed") or []]
        shown = ", ".join(map(str, removed[:limit])) + (f", … ({len(removed)} in all)" if len(removed) > limit else "")
        table.add_row(str(change.get("module")), str(change.get("type") or ""), str(change.get("dim")),
                      str(change.get("before")), str(change.get("after")), shown or "-")
    return table
