"""The comparison of runs as a Rich table: results, then the config keys that differ (no Textual).

Used by ``ftui compare`` and by the app's compare screen.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from core.compare import RESULT_ROWS, Comparison, format_number
from core.richtext import PlainTable
from tui.listing_format import format_param
from tui.run_state import better_direction, format_duration


def comparison_table(comparison: Comparison, colors: dict[str, str] | None = None) -> Table:
    """Rows: results, then the config keys that differ; one column per compared run (its header in
    ``colors[name]`` when given)."""
    table = PlainTable(box=None, pad_edge=False, header_style="bold", show_edge=False)  # run names: text
    table.add_column("", style="bold", no_wrap=True)
    for run in comparison.runs:
        style = f"bold {colors[run.name]}" if colors and run.name in colors else "bold"
        table.add_column(Text(run.name, style=style), justify="right", no_wrap=True)
    best_metric = comparison.best_metric
    for key, label in RESULT_ROWS:
        if key == "best" and best_metric:
            label = f"best {best_metric}"
        values = [run.value(key) for run in comparison.runs]
        if all(v is None for v in values):
            continue
        if key == "duration":
            table.add_row(label, *(format_duration(v) for v in values))
            continue
        table.add_row(label, *_highlight(key, values, best_metric))
    if comparison.differing:
        table.add_section()
        table.add_row(Text("config", style="dim"), *("" for _ in comparison.runs))
        for key in comparison.differing:
            table.add_row(key, *(format_param(run.entry.config.get(key)) for run in comparison.runs))
    return table


def _highlight(key: str, values: list, best_metric: str | None) -> list[Text]:
    """Cells with the best value of a metric row in bold green."""
    metric = best_metric if key == "best" and best_metric else key
    direction = better_direction(metric) if "/" in metric else None
    numbers = [v for v in values if isinstance(v, (int, float)) and v == v]
    winner = None
    if direction and len(numbers) > 1:
        winner = min(numbers) if direction == "min" else max(numbers)
    return [Text(format_number(v), style="bold green" if winner is not None and v == winner else "") for v in values]
