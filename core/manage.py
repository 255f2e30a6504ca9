"""Managing runs: delete (to the trash), restore, rename, tag, note and archive (torch-free).

Invariants:

- Nothing is removed: deleting moves the run directory to ``<root>/.trash/`` (restorable with
  :func:`restore_run`); emptying the trash is left to the user (``rm -rf runs/.trash``).
- A run whose trainer may still write into its directory (``created`` or ``running``, or either on
  another host where its process cannot be checked) is never moved or renamed.
- Tags, notes and the archived flag live in ``meta.json`` (:class:`core.runs.RunMeta`), never in
  ``run.json``, which the trainer rewrites from its own copy.

Used by ``ftui runs`` and by the app; errors are :class:`core.errors.RunError` (exit 2).
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from core.errors import RunError
from core.runs import (
    ACTIVE_STATUSES,
    RUN_JSON,
    TRASH_DIR,
    RunMeta,
    atomic_write_text,
    live_status,
    read_json,
    read_meta,
    write_meta,
)

#: What a run name (= directory name) may be: what `ftui run --name` produces and a shell need not quote.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: What a tag may be: no spaces or commas, so `tag=x` filters and comma lists stay unambiguous.
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/+-]*$")


def check_not_active(path: Path, action: str) -> dict:
    """Raise :class:`RunError` if the run in ``path`` may still be training; returns its run.json."""
    info = read_json(path / RUN_JSON) or {}
    status = live_status(info)
    if status in ACTIVE_STATUSES:
        name = info.get("name", path.name)
        where = f"pid {info.get('pid')} on {info.get('host')}"
        elsewhere = info.get("host") not in (None, socket.gethostname())
        why = (
            f"it is {status} on another host ({where}), where this machine cannot tell whether it still trains"
            if elsewhere
            else f"it is {status} ({where}) and its trainer keeps writing into {path}"
        )
        raise RunError(
            f"{name}: cannot {action} a running run: {why}. "
            f"Fix: stop it first (`ftui ctl {path} stop`, or s in the app), then {action} it."
        )
    return info


def trash_run(path: Path | str, root: Path | str) -> Path:
    """Move a finished (or failed, stopped, ...) run into ``<root>/.trash/``; returns its new path."""
    path = Path(path)
    check_not_active(path, "delete")
    trash = Path(root) / TRASH_DIR
    trash.mkdir(parents=True, exist_ok=True)
    target = _free_name(trash, path.name)
    os.rename(path, target)
    return target


def restore_run(name: str, root: Path | str) -> Path:
    """Move a run back from the trash to the runs root; returns its path."""
    root = Path(root)
    source = root / TRASH_DIR / name
    if not (source / RUN_JSON).is_file():
        inside = sorted(p.name for p in (root / TRASH_DIR).glob("*") if (p / RUN_JSON).is_file())
        hint = f" In the trash: {', '.join(inside[:10])}." if inside else " The trash is empty."
        raise RunError(f"{name}: no such run in {root / TRASH_DIR}.{hint} Fix: `ftui runs ls --trash` lists them.")
    info = read_json(source / RUN_JSON) or {}
    original = str(info.get("name") or name)
    target = root / original
    if target.exists():
        raise RunError(
            f"{name}: cannot restore to {target}: a run of that name exists. "
            f"Fix: rename that one first (`ftui runs mv {original} NEW`)."
        )
    os.rename(source, target)
    return target


def rename_run(path: Path | str, new_name: str) -> Path:
    """Rename a run (its directory and ``run.json``'s ``name``); returns the new path."""
    path = Path(path)
    if not NAME_RE.match(new_name):
        raise RunError(
            f"{new_name!r}: not a valid run name. Fix: use letters, digits, '.', '_' and '-' (starting with a "
            "letter or digit), e.g. lr-3e-4."
        )
    info = check_not_active(path, "rename")
    target = path.parent / new_name
    if target.exists():
        raise RunError(f"{new_name}: {target} already exists. Fix: pick another name, or delete that run first.")
    os.rename(path, target)
    # the run is not active, so nothing else rewrites run.json meanwhile
    info["name"] = new_name
    atomic_write_text(target / RUN_JSON, json.dumps(info, indent=2) + "\n")
    return target


def tag_run(path: Path | str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> RunMeta:
    """Add and remove tags (also on running runs: tags live in meta.json)."""
    path = Path(path)
    add, remove = [t.strip() for t in add], [t.strip() for t in remove]
    for tag in add:
        if not TAG_RE.match(tag):
            raise RunError(
                f"tag {tag!r}: not a valid tag. Fix: use letters, digits and _ . : / + - (no spaces or commas), "
                "e.g. baseline or lr:small."
            )
    meta = read_meta(path)
    tags = [t for t in meta.tags if t not in remove]
    tags += [t for t in dict.fromkeys(add) if t not in tags]
    meta = replace(meta, tags=tuple(tags))
    write_meta(path, meta)
    return meta


def note_run(path: Path | str, notes: str) -> RunMeta:
    """Set a run's notes (an empty string clears them)."""
    meta = replace(read_meta(path), notes=notes.strip())
    write_meta(path, meta)
    return meta


def archive_run(path: Path | str, archived: bool = True) -> RunMeta:
    """Hide a run from the default listings (or show it again); nothing moves."""
    meta = replace(read_meta(path), archived=archived)
    write_meta(path, meta)
    return meta


def trash_listing(root: Path | str) -> list[tuple[Path, dict]]:
    """The runs in the trash with their run.json, by name."""
    trash = Path(root) / TRASH_DIR
    if not trash.is_dir():
        return []
    found = [(p, read_json(p / RUN_JSON)) for p in sorted(trash.iterdir()) if p.is_dir()]
    return [(p, info) for p, info in found if info is not None]


def _free_name(parent: Path, name: str) -> Path:
    candidate, n = parent / name, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{name}-{n}"
    return candidate
