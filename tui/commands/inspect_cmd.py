"""``ftui inspect``, ``ftui diff`` and ``ftui export``: thin bodies over ``core.inspect``.

torch is imported lazily (inside the functions) so that ``ftui --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console


def _stdout() -> Console:
    return Console(emoji=False, highlight=False, soft_wrap=False)


def warn_unsafe(path: Path) -> None:
    """The loud warning printed before anything is unpickled with ``weights_only=False``."""
    from rich.markup import escape

    Console(emoji=False, stderr=True, highlight=False).print(
        f"[bold white on red] WARNING [/] [bold red]--unsafe: loading {escape(str(path))} with weights_only=False. "
        "Any code pickled in this file runs now, with your permissions. Only do this for files you trust.[/]"
    )


def inspect_command(path: Path, *, as_json: bool, plain: bool, unsafe: bool) -> None:
    """Print a checkpoint's summary as JSON or Rich tables, or open the inspector app."""
    from core.inspect import load_checkpoint, summarize

    if unsafe:
        warn_unsafe(path)
    # Loaded here, before any app starts, so a bad file is a message and exit 2 in every mode.
    ckpt = load_checkpoint(path, unsafe=unsafe)
    summary = summarize(ckpt)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        from tui.widgets.inspect_render import plain_report

        _stdout().print(plain_report(summary))
        return
    from tui.inspect_app import InspectApp

    InspectApp(path, unsafe=unsafe, loaded=ckpt).run()


def diff_command(a: Path, b: Path, *, as_json: bool, unsafe: bool) -> None:
    """Compare two checkpoints' weights and print the result."""
    from core.inspect import diff_checkpoints, load_checkpoint

    if unsafe:
        warn_unsafe(a)
        warn_unsafe(b)
    report = diff_checkpoints(load_checkpoint(a, unsafe=unsafe), load_checkpoint(b, unsafe=unsafe)).as_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from tui.widgets.inspect_render import diff_view

    _stdout().print(diff_view(report))


def export_command(ckpt: Path, *, format_: str, out: Path | None) -> None:
    """Export a checkpoint's weights (always loaded safely)."""
    from core.inspect import EXPORT_FORMATS, export_weights, load_checkpoint
    from core.errors import CheckpointError

    if format_ not in EXPORT_FORMATS:  # checked before loading a possibly large file
        raise CheckpointError(
            f"--format {format_!r} is not an export format. Use one of: {', '.join((*EXPORT_FORMATS, 'onnx', 'peft'))} "
            "(peft and --merge: LoRA checkpoints)."
        )
    loaded = load_checkpoint(ckpt)
    written = export_weights(loaded, format_, out)
    from tui.widgets.inspect_render import fmt_bytes

    typer.echo(f"wrote {written} ({len(loaded.weights)} tensors, {fmt_bytes(written.stat().st_size)}, {format_})")
