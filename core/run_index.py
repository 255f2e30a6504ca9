"""Many runs at once: a cached index of a runs root, filter queries, sorting, differing config keys.

Torch-free; the runs table of the app, ``ftui runs ls`` and ``ftui compare`` use it. Every file is
read through :mod:`core.runs`; :class:`RunIndex` re-reads a run's files only when their size or
modification time changed, so rescanning 1,000 runs every second costs a few thousand ``stat`` calls.

Filter queries (the app's ``/``, ``ftui runs ls --filter``) are words separated by spaces, all of
which must match:

- ``word``: a case-insensitive substring of the name, status, a tag, the model, dataset or sweep;
- ``key=value`` / ``key!=value``: ``key`` is a config key (``optim.lr``), a ``run.json`` field
  (``status``, ``model``, ``epochs``...), ``tag``, ``sweep``, ``notes`` or ``archived``; numbers
  compare as numbers (``optim.lr=1e-3`` matches 0.001), text case-insensitively with ``*`` globs;
- ``key>value``, ``key<value``, ``key>=value``, ``key<=value``: numeric comparisons.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import os
import re
import time
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from core.runs import (
    ACTIVE_STATUSES,
    CONFIG_JSON,
    CONFIG_YAML,
    META_JSON,
    RUN_JSON,
    RunMeta,
    file_signature,
    live_status,
    read_config,
    read_json,
    read_meta,
)

#: Config keys that differ between any two runs without saying anything about how they trained: the
#: name and place, and what was recorded how (``ftui run -q`` sets ``logging.progress``...).
IGNORED_KEYS = ("run.name", "run.notes", "run.root", "logging.")
#: Order of statuses when sorting by status: what needs attention first.
STATUS_ORDER = ("running", "created", "lost", "failed", "interrupted", "stopped", "pruned", "finished")


def flatten(config: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``; lists stay values."""
    out: dict[str, Any] = {}

    def walk(base: str, node: dict[str, Any]) -> None:
        for key, value in node.items():
            if type(value) is dict and value:
                walk(f"{base}{key}.", value)
            else:
                out[f"{base}{key}"] = value

    walk(prefix, config or {})
    return out


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The flat config with every value hashable (lists as tuples), to compare runs' values in sets."""
    return {k: v if type(v) in _SCALARS and v == v else _hashable(v) for k, v in config.items()}


_SCALARS = {int, float, str, bool, type(None)}


@dataclass(frozen=True)
class RunEntry:
    """One run as the index knows it: ``run.json``, ``meta.json`` and the flattened config."""

    path: Path
    info: dict[str, Any]
    meta: RunMeta
    config: dict[str, Any]
    status: str
    """The live status (``lost`` for an active run whose process is gone on this host)."""
    hashed: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """``config`` with hashable values (:func:`comparable`), computed once per change of the config."""

    @property
    def name(self) -> str:
        return str(self.info.get("name") or self.path.name)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def sweep(self) -> dict[str, Any] | None:
        """``run.json``'s ``sweep`` record (study, trial, params) when the run is a sweep trial."""
        raw = self.info.get("sweep")
        return raw if isinstance(raw, dict) else None

    @property
    def best_value(self) -> float | None:
        best = self.info.get("best")
        value = best.get("value") if isinstance(best, dict) else best
        return _number(value)

    @property
    def best_metric(self) -> str | None:
        best = self.info.get("best")
        return str(best.get("metric")) if isinstance(best, dict) and best.get("metric") else None

    @property
    def notes(self) -> str:
        return self.meta.notes or str(self.info.get("notes") or "")

    def duration(self, clock: float | None = None) -> float | None:
        """Seconds from start to end (to ``clock`` while active)."""
        started, ended = _number(self.info.get("started")), _number(self.info.get("ended"))
        if started is None:
            return None
        if ended is None and self.active:
            ended = clock if clock is not None else time.time()
        return None if ended is None else max(0.0, ended - started)

    def progress(self) -> float | None:
        """Fraction of the planned steps (or epochs) done, 0..1."""
        step, total = _number(self.info.get("step")), _number(self.info.get("total_steps"))
        if step is not None and total:
            return min(1.0, step / total)
        epoch, epochs = _number(self.info.get("epoch")), _number(self.info.get("epochs"))
        if epoch is not None and epochs:
            return min(1.0, epoch / epochs)
        return None

    def field(self, key: str) -> Any:
        """A value by filter/sort key (see the module docstring); None when the run has none."""
        key = key.strip().lower() if key.lower() in _SPECIAL else key.strip()
        if key == "status":
            return self.status
        if key == "name":
            return self.name
        if key in ("tag", "tags"):
            return list(self.meta.tags)
        if key == "notes":
            return self.notes
        if key == "archived":
            return self.meta.archived
        if key == "sweep":
            return (self.sweep or {}).get("study")
        if key == "trial":
            return (self.sweep or {}).get("trial")
        if key == "best":
            return self.best_value
        if key == "duration":
            return self.duration()
        if key == "progress":
            return self.progress()
        if key in self.config:
            return self.config[key]
        if key in self.info and not isinstance(self.info[key], (dict, list)):
            return self.info[key]
        if key in ("model", "dataset") and isinstance(self.info.get(key), dict):
            return self.info[key].get("name") or self.info[key].get("source")
        return None


_SPECIAL = {"status", "name", "tag", "tags", "notes", "archived", "sweep", "trial", "best", "duration", "progress"}


@dataclass
class _Cached:
    sig: tuple
    info: dict[str, Any]
    meta: RunMeta
    config: dict[str, Any]
    hashed: dict[str, Any]


class RunIndex:
    """The runs directly under ``root``; :meth:`scan` re-reads only files that changed."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._cache: dict[str, _Cached] = {}

    def scan(self) -> list[RunEntry]:
        """Every run under the root, newest first (hidden directories such as the trash are skipped)."""
        try:
            listing = os.scandir(self.root)
        except OSError:
            self._cache.clear()
            return []
        entries: list[RunEntry] = []
        seen: set[str] = set()
        sep = os.sep
        with listing:
            # plain strings and os.stat: pathlib's joins cost more than the reads for 1,000 runs
            for child in listing:
                if child.name.startswith(".") or not child.is_dir():
                    continue
                key = child.path
                run_sig = file_signature(key + sep + RUN_JSON)
                if run_sig is None:
                    continue
                sig = (run_sig, file_signature(key + sep + META_JSON), file_signature(key + sep + CONFIG_JSON),
                       file_signature(key + sep + CONFIG_YAML))
                cached = self._cache.get(key)
                if cached is None or cached.sig != sig:
                    info = read_json(key + sep + RUN_JSON)
                    if info is None:  # being replaced right now: keep what we had
                        if cached is None:
                            continue
                    else:
                        meta = cached.meta if cached is not None and cached.sig[1] == sig[1] else read_meta(key)
                        if cached is not None and cached.sig[2:] == sig[2:]:
                            config, hashed = cached.config, cached.hashed
                        else:
                            config = flatten(read_config(key))
                            hashed = comparable(config)
                        cached = self._cache[key] = _Cached(sig, info, meta, config, hashed)
                seen.add(key)
                entries.append(RunEntry(Path(key), cached.info, cached.meta, cached.config,
                                        live_status(cached.info), cached.hashed))
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        entries.sort(key=lambda e: _number(e.info.get("created")) or 0.0, reverse=True)
        return entries


def load_entry(path: Path | str) -> RunEntry:
    """One run's :class:`RunEntry` (no cache)."""
    path = Path(path)
    info = read_json(path / RUN_JSON) or {}
    config = flatten(read_config(path))
    return RunEntry(path, info, read_meta(path), config, live_status(info), comparable(config))


# ---------------------------------------------------------------------------------------------
# Differing config keys
# ---------------------------------------------------------------------------------------------


def differing_keys(entries: list[RunEntry], ignore: tuple[str, ...] = IGNORED_KEYS,
                   candidates: list[str] | None = None) -> list[str]:
    """Config keys whose values are not the same in every run (a key missing in some runs differs),
    in the order the configs list them. ``candidates``: check only these (the keys that differ in a
    larger set of runs: a key the same in all runs is the same in any subset of them)."""
    if len(entries) < 2:
        return []
    hashed = [e.hashed if e.hashed or not e.config else comparable(e.config) for e in entries]
    first_keys = hashed[0].keys()
    if all(h.keys() == first_keys for h in hashed):
        # the usual case (one config schema): one C-level pass per key
        keys: Iterable[str] = first_keys
        column: Callable[[str], Iterable[Any]] = lambda key: map(operator.itemgetter(key), hashed)  # noqa: E731
    else:
        keys = dict.fromkeys(chain.from_iterable(hashed))
        missing = _Missing()
        column = lambda key: (h.get(key, missing) for h in hashed)  # noqa: E731
    if candidates is not None:
        keys = [k for k in keys if k in set(candidates)]
    skip = tuple(ignore)
    return [key for key in keys if not key.startswith(skip) and len(set(column(key))) > 1]


class _Missing:
    """A key a run's config does not have: equal to itself only, hashable."""


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


# ---------------------------------------------------------------------------------------------
# Filter queries
# ---------------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "=": operator.eq, ">": operator.gt, "<": operator.lt,
}
_TERM = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_.]*)(?P<op>>=|<=|!=|=|>|<)(?P<value>.*)$")


@dataclass(frozen=True)
class Term:
    """One word of a query: ``key op value``, or a bare ``word`` (``key`` None)."""

    key: str | None
    op: str
    value: str

    def matches(self, entry: RunEntry) -> bool:
        if self.key is None:
            needle = self.value.lower()
            sweep = (entry.sweep or {}).get("study")
            haystack = [entry.name, entry.status, *entry.meta.tags, entry.field("model"), entry.field("dataset"), sweep]
            return any(needle in str(h).lower() for h in haystack if h is not None)
        value = entry.field(self.key)
        if self.key.lower() in ("tag", "tags"):
            hits = any(_compare(t, "=", self.value) for t in value)
            return not hits if self.op == "!=" else hits
        if value is None:
            return self.op == "!=" and self.value != ""
        return _compare(value, self.op, self.value)


@dataclass(frozen=True)
class Query:
    """A parsed filter: every term must match."""

    terms: tuple[Term, ...] = ()
    text: str = ""

    def matches(self, entry: RunEntry) -> bool:
        return all(t.matches(entry) for t in self.terms)

    @property
    def mentions_archived(self) -> bool:
        """Whether the query asks about archived runs itself (then they are not hidden)."""
        return any(t.key is not None and t.key.lower() == "archived" for t in self.terms)

    def keys(self) -> list[str]:
        return [t.key for t in self.terms if t.key is not None]


def parse_query(text: str) -> Query:
    """Parse a filter (see the module docstring). Never raises: a half-typed term is a plain word."""
    terms = []
    for word in text.split():
        m = _TERM.match(word)
        if m is None:
            terms.append(Term(None, "~", word))
        elif m.group("value"):
            terms.append(Term(m.group("key"), m.group("op"), m.group("value")))
        # else: `optim.lr=` is being typed; filtering everything out meanwhile would flicker
    return Query(tuple(terms), text)


def filter_entries(entries: list[RunEntry], query: Query | str, *, show_archived: bool = False) -> list[RunEntry]:
    """The entries matching ``query``; archived runs only with ``show_archived`` or a query about them."""
    query = parse_query(query) if isinstance(query, str) else query
    keep_archived = show_archived or query.mentions_archived
    return [e for e in entries if (keep_archived or not e.meta.archived) and query.matches(e)]


def _compare(value: Any, op: str, wanted: str) -> bool:
    left, right = _number(value), _number(wanted)
    if left is not None and right is not None:
        if math.isnan(left) or math.isnan(right):
            return op == "!="
        return _OPS[op](left, right)
    if op in (">", "<", ">=", "<="):
        return False
    text = _text(value).lower()
    pattern = wanted.lower()
    same = fnmatch.fnmatchcase(text, pattern) if any(c in pattern for c in "*?[") else text == pattern
    return same if op == "=" else not same


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------------------------------------
# Sorting
# ---------------------------------------------------------------------------------------------


def sort_key(entry: RunEntry, column: str, clock: float | None = None) -> tuple[int, Any] | None:
    """A comparable key for ``column`` (``name``, ``status``, ``progress``, ``best``, ``duration``,
    ``started``, ``model``, ``dataset``, ``tags``, or a config key), or None when the run has no value."""
    if column == "status":
        return (0, STATUS_ORDER.index(entry.status) if entry.status in STATUS_ORDER else len(STATUS_ORDER))
    if column == "duration":
        value: Any = entry.duration(clock)
    elif column == "started":
        value = _number(entry.info.get("started")) or _number(entry.info.get("created"))
    elif column == "tags":
        value = ",".join(entry.meta.tags) or None
    else:
        value = entry.field(column)
    if value is None or value == "":
        return None
    number = _number(value)
    if number is not None and not math.isnan(number):
        return (0, number)
    return (1, _text(value).lower())


def sort_entries(entries: list[RunEntry], column: str, *, reverse: bool = False,
                 clock: float | None = None) -> list[RunEntry]:
    """Entries sorted by ``column``; runs without a value go last in either direction."""
    keyed = [(sort_key(e, column, clock), i, e) for i, e in enumerate(entries)]
    present = [k for k in keyed if k[0] is not None]
    absent = [k[2] for k in keyed if k[0] is None]
    present.sort(key=lambda k: (k[0], k[1] if not reverse else -k[1]), reverse=reverse)
    return [k[2] for k in present] + absent


@dataclass
class Listing:
    """What a runs table shows: the entries after filter and sort, and the config keys that differ."""

    entries: list[RunEntry] = field(default_factory=list)
    hparams: list[str] = field(default_factory=list)
    total: int = 0
    hidden_archived: int = 0


def make_listing(entries: list[RunEntry], query: Query | str = "", *, sort: str | None = None,
                 reverse: bool = False, show_archived: bool = False, clock: float | None = None,
                 max_hparams: int = 12, candidates: list[str] | None = None) -> Listing:
    """Filter, sort and find the differing config keys of the runs that remain. ``candidates``: the
    keys that differ in ``entries`` when already known (:func:`differing_keys`), so that only they are
    checked in the runs that remain (the app computes them once per scan, not once per key typed)."""
    query = parse_query(query) if isinstance(query, str) else query
    shown = filter_entries(entries, query, show_archived=show_archived)
    if sort:
        shown = sort_entries(shown, sort, reverse=reverse, clock=clock)
    hidden = 0 if show_archived or query.mentions_archived else sum(1 for e in entries if e.meta.archived)
    # what differs between the runs shown; with one left, what differs in the whole listing, so the
    # columns do not vanish while a filter is typed
    basis = shown if len(shown) >= 2 else filter_entries(entries, Query(), show_archived=show_archived)
    return Listing(shown, differing_keys(basis, candidates=candidates)[:max_hparams], len(entries), hidden)
