"""``ftui eval``: evaluate a checkpoint — metrics table, per-class report, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.text import Text

from core.richtext import PlainTable


def eval_command(ckpt: Path, *, config: Path | None, split: str, overrides: list[str], trust_code: bool = False,
                 base: Path | None = None) -> None:
    """Evaluate a checkpoint on a split and print metrics."""
    from core.training.evaluate import evaluate_checkpoint

    err = Console(emoji=False, stderr=True, highlight=False, soft_wrap=True)

    def announce(names: list[str]) -> None:
        for name in names:
            err.print(f"running your code: {name}", markup=False)

    result = evaluate_checkpoint(ckpt, config=config, split=split, overrides=overrides, trust_code=trust_code,
                                 announce=announce, base=base)
    for notice in result.notices:
        err.print(f"warning: {notice}", markup=False)
    Console(emoji=False, highlight=False).print(render_evaluation(result))
    if config is None and not overrides and base is None:
        from core.training.evaluate import record_in_run

        _, said = record_in_run(result)
        err.print(said, markup=False)


def render_evaluation(result: Any) -> Group:
    """The Rich renderables of an :class:`~core.training.evaluate.Evaluation`."""
    m = result.metrics
    names = result.class_names
    title = Text(
        f"{result.checkpoint} — {result.split} split, {result.size} samples "
        f"(checkpoint at epoch {result.epoch}, step {result.step})",
        style="bold",
    )
    summary = PlainTable(title="metrics", show_header=True, header_style="bold")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, label in (("loss", "loss"), ("acc", "accuracy"), ("top5", "top-5 accuracy"),
                       ("precision_macro", "precision (macro)"), ("recall_macro", "recall (macro)"),
                       ("f1_macro", "F1 (macro)")):
        if key in m:
            summary.add_row(label, f"{m[key]:.4f}")

    per = m.get("per_class", {})
    report = PlainTable(title="per class", header_style="bold")
    for col in ("class", "precision", "recall", "f1", "support"):
        report.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(names):
        report.add_row(name, f"{per['precision'][i]:.3f}", f"{per['recall'][i]:.3f}", f"{per['f1'][i]:.3f}",
                       str(per["support"][i]))

    confusion = PlainTable(title="confusion matrix (rows: true, columns: predicted)", header_style="bold")
    confusion.add_column("true \\ pred")
    short = [n[:8] for n in names]
    for n in short:
        confusion.add_column(n, justify="right")
    for i, row in enumerate(m.get("confusion", [])):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            style = "bold green" if i == j else ("red" if v / total > 0.1 else ("yellow" if v else "dim"))
            cells.append(Text(str(v), style=style))
        confusion.add_row(short[i], *cells)
    return Group(title, summary, report, confusion)
