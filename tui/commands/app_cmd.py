"""Opening the Textual app: the home screen (``ftui``) and a run's dashboard (``ftui watch``)."""

from __future__ import annotations

from pathlib import Path

from core.runs import resolve_run


def open_home(root: Path) -> None:
    """Open the home screen; afterwards say which runs keep going and how to come back."""
    from tui.app import FtuiApp
    from tui.terminal_images import prepare

    prepare()  # the Explain view's pictures: the terminal can only be asked before the app starts
    app = FtuiApp(root)
    app.run()
    _print_note(app.exit_note())


def open_watch(run_spec: str, root: Path) -> None:
    """Open the dashboard of one run; a spec that is not a run is a RunError (exit 2) before the app opens."""
    path = resolve_run(run_spec, root)
    from tui.app import FtuiApp
    from tui.terminal_images import prepare

    prepare()
    app = FtuiApp(root, watch=path)
    app.run()
    _print_note(app.exit_note())


def _print_note(note: str | None) -> None:
    if note:
        print(note)


def open_explain(checkpoint: Path, *, split: str, method: str | None, layer: str | None,
                 config: Path | None = None, overrides: list[str] | None = None, trust_code: bool = False) -> None:
    """Open the Explain view of one checkpoint as the whole app."""
    from tui.app import FtuiApp
    from tui.terminal_images import prepare

    prepare()
    app = FtuiApp(explain=checkpoint, explain_split=split, explain_options={
        "method": method, "layer": layer, "config": config, "overrides": overrides, "trust_code": trust_code})
    app.run()
