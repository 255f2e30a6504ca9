"""``ftui runs ls|rm|restore|mv|tag|note|archive|unarchive``: manage runs from the shell.

The work is in :mod:`core.manage` (what may be done to a run) and :mod:`core.run_index` (listing,
filtering, sorting); these functions print. Errors are :class:`core.errors.RunError` (exit 2).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from core import manage
from core.errors import RunError
from core.richtext import PlainTable
from core.run_index import RunIndex, make_listing
from core.runs import TRASH_DIR, resolve_run
from tui.listing_format import BASE_COLUMNS, best_header, cell, columns_of, entry_json, header


#: The columns a listing never drops or cuts: which run, how it ended, how far it got, how good it is.
KEPT_WHOLE = ("name", "status", "progress", "best", "duration")
#: The widest a config value's column gets in a terminal (a long list or path ends in "…").
HPARAM_WIDTH = 28


def _console() -> Console:
    # piped into a file or grep: no terminal width to fit, so never cut a line short
    return Console(emoji=False, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 400)


def fit_columns(columns: list[str], widths: dict[str, int], room: int | None) -> tuple[list[str], dict[str, int]]:
    """The columns a listing shows in ``room`` terminal columns, and the width each gets: the run's own
    facts (:data:`KEPT_WHOLE`) whole, a config value at most :data:`HPARAM_WIDTH`, then as many of the rest
    as fit, in order (one too wide for what is left is left out). ``room`` None (piped into a file or
    grep): every column, every cell whole."""
    if room is None:
        return list(columns), dict(widths)
    fitted = {c: widths[c] if c in KEPT_WHOLE else min(widths[c], HPARAM_WIDTH) for c in columns}
    shown = [c for c in columns if c in KEPT_WHOLE]
    used = sum(fitted[c] for c in shown) + 2 * (len(shown) - 1)
    for column in columns:
        if column in KEPT_WHOLE:
            continue
        if used + 2 + fitted[column] > room:
            continue  # squeezed, it would show nothing: left out (and said), a narrower one may still fit
        shown.append(column)
        used += 2 + fitted[column]
    return [c for c in columns if c in shown], {c: fitted[c] for c in shown}


def _root_opt(root: Path) -> str:
    return "" if root == Path("runs") else f" --root {root}"


def ls_command(root: Path, *, query: str, sort: str | None, reverse: bool, show_all: bool, as_json: bool,
               trash: bool) -> None:
    """Print the runs table (or the trash)."""
    if trash:
        _ls_trash(root, as_json)
        return
    entries = RunIndex(root).scan()
    if sort is not None:
        _check_sort(sort, entries)
    listing = make_listing(entries, query, sort=sort, reverse=reverse, show_archived=show_all)
    if as_json:
        print(json.dumps([entry_json(e, listing.hparams) for e in listing.entries], indent=1))
        return
    console = _console()
    if not listing.entries:
        what = f"matching {query!r} " if query else ""
        console.print(f"No runs {what}under {root}." + (f" ({listing.hidden_archived} archived: --all shows them.)"
                                                         if listing.hidden_archived else ""))
        return
    clock = time.time()
    every = columns_of(listing)
    labels = {key: best_header(listing.entries) if key == "best" else header(key) for key in every}
    cells = [{key: cell(entry, key, clock) for key in every} for entry in listing.entries]
    widths = {key: max(len(labels[key]), *(len(row[key]) for row in cells)) for key in every}
    columns, fitted = fit_columns(every, widths, console.width if console.is_terminal else None)
    table = PlainTable(box=None, pad_edge=False, header_style="bold")  # run names, tags, notes: text
    for key in columns:
        table.add_column(labels[key], no_wrap=True, justify="right" if key in ("best", "duration") else "left",
                         style="cyan" if key in listing.hparams else None, overflow="ellipsis",
                         min_width=fitted[key], max_width=fitted[key])
    for row in cells:
        table.add_row(*(row[key] for key in columns))
    if not console.is_terminal:
        console.width = sum(fitted.values()) + 2 * len(columns)  # piped: never a cell cut short
    console.print(table)
    shown = f"{len(listing.entries)} of {listing.total} runs"
    if listing.hidden_archived:
        shown += f" ({listing.hidden_archived} archived hidden: --all)"
    left = [key for key in every if key not in columns]
    if left:
        shown += f"; {len(left)} more columns in a wider terminal or with --json: {', '.join(left)}"
    console.print(Text(shown, style="dim"))


def _check_sort(sort: str, entries: list) -> None:
    known = {k for k, _ in BASE_COLUMNS}
    configs = set().union(*(e.config for e in entries)) if entries else set()
    if sort not in known and sort not in configs:
        import difflib

        close = difflib.get_close_matches(sort, sorted(known | configs), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RunError(f"--sort {sort}: not a column.{hint} Sort by {', '.join(sorted(known))} or a config key "
                       "(optim.lr).")


def _ls_trash(root: Path, as_json: bool) -> None:
    found = manage.trash_listing(root)
    if as_json:
        print(json.dumps([{"name": p.name, "path": str(p), "status": info.get("status")} for p, info in found]))
        return
    console = _console()
    if not found:
        console.print(f"The trash ({root / TRASH_DIR}) is empty.")
        return
    for path, info in found:
        console.print(f"{path.name}  {info.get('status')}  (restore: ftui runs restore {path.name}{_root_opt(root)})")


def rm_command(specs: list[str], root: Path, *, yes: bool) -> int:
    """Move runs to the trash after a confirmation; refuses (deleting none) if any is running."""
    paths = [resolve_run(s, root) for s in specs]
    for path in paths:
        manage.check_not_active(path, "delete")
    names = ", ".join(p.name for p in paths)
    if not yes:
        try:
            confirmed = typer.confirm(f"Move {len(paths)} run(s) to {root / TRASH_DIR}: {names}?", default=False)
        except typer.Abort:
            confirmed = False
        if not confirmed:
            print("Nothing deleted.", file=sys.stderr)
            return 1
    for path in paths:
        target = manage.trash_run(path, root)
        print(f"deleted {path.name} (moved to {target}; undo: ftui runs restore {target.name}{_root_opt(root)})")
    return 0


def restore_command(names: list[str], root: Path) -> None:
    for name in names:
        path = manage.restore_run(name, root)
        print(f"restored {path.name} to {path}")


def mv_command(spec: str, new_name: str, root: Path) -> None:
    path = resolve_run(spec, root)
    target = manage.rename_run(path, new_name)
    print(f"renamed {path.name} to {target.name} ({target})")


def tag_command(spec: str, add: list[str], remove: list[str], root: Path) -> None:
    if not add and not remove:
        raise RunError("ftui runs tag: no tags given. Fix: `ftui runs tag RUN TAG...` adds, `--remove TAG` removes.")
    path = resolve_run(spec, root)
    meta = manage.tag_run(path, add, remove)
    print(f"{path.name}: tags {' '.join(meta.tags) if meta.tags else '(none)'}")


def note_command(spec: str, text: str, root: Path) -> None:
    path = resolve_run(spec, root)
    meta = manage.note_run(path, text)
    print(f"{path.name}: notes {meta.notes!r}" if meta.notes else f"{path.name}: notes cleared")


def archive_command(specs: list[str], root: Path, *, archived: bool) -> None:
    for spec in specs:
        path = resolve_run(spec, root)
        manage.archive_run(path, archived)
        print(f"{path.name}: {'archived (hidden from listings; --all shows it)' if archived else 'unarchived'}")
