"""``ftui compare RUN RUN... [--json]``: the runs' config differences and final metrics, headless.

Exit codes: 0 all runs compared; 2 bad input — an unknown run, fewer than two runs, or a run set aside
because it solves another task (the others are still compared and printed first).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from core.compare import compare
from core.errors import RunError
from core.runs import resolve_run
from tui.compare_view import comparison_table


def compare_command(specs: list[str], root: Path, *, as_json: bool) -> int:
    """Print the comparison; returns the exit code."""
    paths = [resolve_run(s, root) for s in specs]
    comparison = compare(paths)
    if as_json:
        print(json.dumps(comparison.to_json(), indent=1))
    else:
        console = Console(emoji=False, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 400)
        console.print(comparison_table(comparison))
        for note in comparison.notes:
            console.print(Text(f"note: {note}", style="yellow"))
    if comparison.excluded:
        names = " ".join(r.name for r in comparison.runs)
        reasons = "; ".join(why for _, why in comparison.excluded)
        raise RunError(
            f"not compared: {reasons}. Compared the rest ({', '.join(r.name for r in comparison.runs)}). "
            f"Fix: compare runs of one task, e.g. `ftui compare {names}`."
        )
    return 0
