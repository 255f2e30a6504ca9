"""``ftui explain``: attribution maps for samples of a checkpoint's data, as files and a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from core.errors import UserError
from core.richtext import PlainTable


def explain_command(
    ckpt: Path,
    *,
    config: Path | None,
    split: str,
    method: str | None,
    layer: str | None,
    samples: int,
    mistakes: bool,
    class_name: str | None,
    predicted: str | None,
    target: str,
    out: Path | None,
    as_json: bool,
    list_layers: bool,
    overrides: list[str],
    app: bool = False,
    trust_code: bool = False,
) -> None:
    """Explain samples of ``ckpt``'s ``split`` and write ``maps.npz``, PNG grids and ``summary.json``."""
    if not ckpt.is_file():
        raise UserError(f"{ckpt}: no such checkpoint file. Fix: pass a .pt file, e.g. runs/<name>/checkpoints/best.pt.")
    if samples < 1:
        raise UserError(f"--samples {samples}: expected 1 or more.")
    from core.explain import methods

    canonical = methods.canonical_method(method) if method else None
    if app:
        if canonical == "activations":
            raise UserError("--app --method activations: the view shows activations with its `a` key. Fix: leave "
                            "--method out (or pick gradcam, saliency or integrated_gradients).")
        from tui.commands.app_cmd import open_explain

        open_explain(ckpt, split=split, method=canonical, layer=layer, config=config, overrides=overrides,
                     trust_code=trust_code)
        return
    methods.captum()  # a missing install is reported before minutes of loading, not after
    from core.explain.session import Explainer, Selection

    err = Console(emoji=False, stderr=True, highlight=False, soft_wrap=True)

    def announce(names: list[str]) -> None:
        for name in names:
            err.print(f"running your code: {name}", markup=False)

    explainer = Explainer.open(ckpt, config=config, split=split, overrides=overrides, trust_code=trust_code,
                               command=f"ftui explain {ckpt}", announce=announce)
    for notice in explainer.notices:
        err.print(f"warning: {notice}", markup=False)
    console = Console(emoji=False, highlight=False)
    try:
        if list_layers:
            _print_layers(explainer, console, as_json)
            return
        selection = Selection(count=samples, mistakes=mistakes, class_name=class_name, predicted=predicted)
        indices = explainer.select(selection)
        explanation = explainer.explain(indices, method=canonical, layer=layer, target=target,
                                        selection=selection.describe())
    finally:
        explainer.close()
    out_dir = out if out is not None else default_out_dir(ckpt, explanation.split, explanation.method, selection)
    explanation.save(out_dir)
    if as_json:
        print(json.dumps(json_summary(explanation, out_dir), indent=1))
        return
    pictures = console.is_terminal and console.color_system is not None
    console.print(render_explanation(explanation, out_dir, pictures=pictures))


def default_out_dir(ckpt: Path, split: str, method: str, selection: Any) -> Path:
    """``<run>/explain/<checkpoint>-<split>-<method>[-mistakes][-<class>]`` for a run's checkpoint.

    Anything else (a checkpoint outside a run directory) goes to ``./explain/...``.
    """
    parts = [ckpt.stem, split, method]
    if selection.mistakes:
        parts.append("mistakes")
    for name in (selection.class_name, selection.predicted):
        if name is not None:
            parts.append("".join(c if c.isalnum() or c in "-_" else "_" for c in name))
    name = "-".join(parts)
    if ckpt.resolve().parent.name == "checkpoints" and (ckpt.resolve().parent.parent / "run.json").is_file():
        return ckpt.parent.parent / "explain" / name
    return Path("explain") / name


def json_summary(explanation: Any, out_dir: Path) -> dict[str, Any]:
    """What ``--json`` prints."""
    data: dict[str, Any] = {
        "checkpoint": explanation.checkpoint, "split": explanation.split, "method": explanation.method,
        "layer": explanation.layer, "target": explanation.target, "selection": explanation.selection,
        "out": str(out_dir), "files": explanation.files, "samples": explanation.records(),
    }
    if explanation.input_kind == "features":
        data["feature_ranking"] = [{"feature": n, "mean_abs": round(v, 6)} for n, v in explanation.feature_ranking()]
    return data


def render_explanation(explanation: Any, out_dir: Path, *, pictures: bool) -> RenderableType:
    """The table (and, on a colour terminal, the tiles) printed after explaining."""
    parts: list[RenderableType] = [Text(explanation.title(), style="bold")]
    if pictures and explanation.images is not None:
        from core.data.render import SampleGrid
        import numpy as np

        joined = [np.concatenate([*explanation.panels(i)], axis=1) for i in range(len(explanation))]
        parts.append(SampleGrid(joined, [explanation.caption(i)[0] for i in range(len(explanation))],
                                max_side=64))
    table = PlainTable(header_style="bold", title_justify="left")  # class names are text, not markup
    for col, just in (("#", "right"), ("index", "right"), ("true", "left"), ("predicted", "left"),
                      ("confidence", "right"), ("loss", "right"), ("png", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    records = explanation.records()
    summary_png = _png_of(out_dir)
    for k, rec in enumerate(records):
        style = "" if rec["correct"] else "red"
        table.add_row(str(k + 1), str(rec["index"]), rec["label"], Text(rec["pred"], style=style),
                      f"{rec['confidence']:.3f}", f"{rec['loss']:.3f}", summary_png.get(k, ""))
    parts.append(table)
    ranking = explanation.feature_ranking()
    if ranking:
        parts.append(feature_bars(ranking))
    wrong = sum(1 for r in records if not r["correct"])
    files = ", ".join(Path(f).name for f in explanation.files)
    parts.append(Text(f"{len(records)} samples, {wrong} predicted wrong · wrote {out_dir}/ ({files})"))
    return Group(*parts)


def feature_bars(ranking: list[tuple[str, float]], width: int = 30, top: int = 15) -> Table:
    """Mean |attribution| per feature as a bar chart (tabular explanations)."""
    table = PlainTable(title="features by mean |attribution| over these samples", title_justify="left",
                  header_style="bold", box=None)
    table.add_column("feature")
    table.add_column("mean |attr|", justify="right")
    table.add_column("")
    peak = max((v for _, v in ranking), default=0.0) or 1.0
    for name, value in ranking[:top]:
        table.add_row(name, f"{value:.4f}", Text("█" * max(1, round(value / peak * width)), style="cyan"))
    return table


def _png_of(out_dir: Path) -> dict[int, str]:
    summary = out_dir / "summary.json"
    try:
        records = json.loads(summary.read_text())["samples"]
    except (OSError, ValueError, KeyError):
        return {}
    return {k: str(r.get("png", "")) for k, r in enumerate(records)}


def _print_layers(explainer: Any, console: Console, as_json: bool) -> None:
    probe = explainer.probe() if explainer.input_kind == "image" else None
    layers = probe.layers if probe else []
    default = probe.default if probe else None
    if as_json:
        print(json.dumps({"default": default, "layers": [
            {"path": i.path, "module": i.module, "kind": i.kind, "shape": list(i.shape)} for i in layers]}, indent=1))
        return
    if not layers:
        console.print("No layer with a spatial output: use --method saliency or integrated_gradients.")
        return
    table = PlainTable(title="layers for --method gradcam / activations (in forward order)", title_justify="left",
                  header_style="bold")
    table.add_column("layer")
    table.add_column("module")
    table.add_column("output")
    for info in layers:
        mark = "  (default)" if info.path == default else ""
        table.add_row(info.path + mark, info.module, info.describe()[len(info.path) + 2:-1])
    console.print(table)
