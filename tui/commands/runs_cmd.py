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


def _console() -> Console:
    # piped into a file or grep: no terminal width to fit, so never cut a cell short
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 400)


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
    columns = columns_of(listing)
    table = PlainTable(box=None, pad_edge=False, header_style="bold")  # run names, tags, notes: text
    for key in columns:
        label = best_header(listing.entries) if key == "best" else header(key)
        table.add_column(label, no_wrap=True, justify="right" if key in ("best", "duration") else "left",
                         style="cyan" if key in listing.hparams else None)
    for entry in listing.entries:
        table.add_row(*(cell(entry, key, clock) for key in columns))
    console.print(table)
    shown = f"{len(listing.entries)} of {listing.total} runs"
    if listing.hidden_archived:
        shown += f" ({listing.hidden_archived} archived hidden: --all)"
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
