"""The Optuna side of a sweep: storage, study, sampler and pruner, from command-line strings.

The study lives in an RDB storage (a SQLite file by default, PostgreSQL or MySQL for many machines):
that storage is what lets several ``ftui sweep`` processes, on one machine or many, work on one
study. The study records what it searches (``ftui`` user attribute: config, params, objective), so a
second process joining it with another search space is refused rather than mixing two searches.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.sweep.space import Param, parse_scalar


class SweepError(UserError):
    """Bad sweep input: storage, study, sampler or pruner (exit 2)."""


#: name -> Optuna class name; ``none`` never prunes.
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}
SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
}
STUDY_ATTR = "ftui"
#: URL scheme prefix -> the pip package of its usual driver.
DRIVERS = (("postgresql+psycopg", "psycopg[binary]"), ("postgresql", "psycopg2-binary"),
           ("mysql+pymysql", "pymysql"), ("mysql", "mysqlclient (or use mysql+pymysql:// with pymysql)"))


@dataclass(frozen=True)
class Objective:
    """What a trial's value is: the run's best ``metric`` (``trainer.checkpoint.monitor``), and whether
    higher is better."""

    metric: str
    mode: str  # "min" or "max"

    @property
    def direction(self) -> str:
        return "maximize" if self.mode == "max" else "minimize"

    @property
    def split_key(self) -> tuple[str, str]:
        split, _, key = self.metric.partition("/")
        return split, key

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is better than ``b``."""
        return a > b if self.mode == "max" else a < b


def default_storage(root: Path, study: str) -> str:
    """``sqlite:///<root>/sweeps/<study>.db`` (absolute, so every process and the app find the same file)."""
    path = (Path(root) / "sweeps" / f"{study}.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def public_url(url: str) -> str:
    """The storage URL without its password (what run.json and the screen show)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1] if "@" in url else url


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, else None."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///"):]
    return Path(rest.split("?")[0]) if rest and rest != ":memory:" else None


def open_storage(url: str) -> Any:
    """An Optuna ``RDBStorage`` on ``url``; :class:`SweepError` with the fix when it cannot be opened."""
    import optuna

    fix = ("Fix: pass sqlite:///path/to/sweep.db (one machine, or a disk every worker mounts), or a server "
           "every worker reaches: postgresql://user:password@host/db or mysql+pymysql://user:password@host/db.")
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise SweepError(f"--storage {url}: the directory {path.parent} does not exist. {fix}")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several sweep processes (and the app) share the file: wait for a lock instead of failing
        kwargs["connect_args"] = {"timeout": 60}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except ImportError as exc:
        # Optuna re-raises a missing driver as a plain ImportError: name the package from the URL
        dialect = url.split(":", 1)[0]
        package = next((pkg for prefix, pkg in DRIVERS if dialect.startswith(prefix)), "the driver of " + dialect)
        raise SweepError(f"--storage {public_url(url)}: the database driver is not installed ({exc}). "
                         f"Fix: pip install {package} on every machine of the sweep.") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; all mean "cannot open"
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise SweepError(f"--storage {public_url(url)}: cannot open the study storage ({type(exc).__name__}: "
                         f"{reason}). {fix}") from None


def parse_spec(spec: str, table: dict[str, str], what: str) -> tuple[str, dict[str, Any]]:
    """``name[:key=value,...]`` -> (Optuna class name, kwargs), checked against the class's signature."""
    import optuna

    name, _, rest = spec.partition(":")
    name = name.strip().lower().replace("-", "_")
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SweepError(f"--{what} {spec}: unknown {what} '{name}'{hint}. Choose one of {', '.join(table)}, with "
                         f"options as {what}:key=value,key=value (e.g. --pruner median:n_startup_trials=2).")
    cls = getattr(optuna.pruners if what == "pruner" else optuna.samplers, table[name])
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "search_space")]
    kwargs: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise SweepError(f"--{what} {spec}: {item!r} is not key=value.")
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SweepError(f"--{what} {spec}: {table[name]} has no option '{key}'{hint}. Its options: "
                             f"{', '.join(accepted)}.")
        kwargs[key] = parse_scalar(value)
    return table[name], kwargs


def make_pruner(spec: str) -> Any:
    import optuna

    cls_name, kwargs = parse_spec(spec, PRUNERS, "pruner")
    try:
        return getattr(optuna.pruners, cls_name)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SweepError(f"--pruner {spec}: {exc}") from None


def make_sampler(spec: str, params: list[Param], seed: int | None) -> Any:
    import optuna

    cls_name, kwargs = parse_spec(spec, SAMPLERS, "sampler")
    cls = getattr(optuna.samplers, cls_name)
    if seed is not None and "seed" in inspect.signature(cls.__init__).parameters:
        kwargs.setdefault("seed", seed)
    if cls_name == "GridSampler":
        not_choice = [p.spec for p in params if p.kind != "choice" and p.kind not in ("int",)]
        if not_choice:
            raise SweepError(f"--sampler grid: a grid needs finite values, but {', '.join(not_choice)} is a continuous "
                             "range. Fix: use choice:A,B,C (or int:LOW:HIGH) for every --param, or another sampler.")
        space = {p.key: list(p.choices) if p.kind == "choice"
                 else list(range(int(p.low), int(p.high) + 1, p.step or 1)) for p in params}
        kwargs["search_space"] = space
    try:
        return cls(**kwargs)
    except ImportError as exc:
        raise SweepError(f"--sampler {spec}: {exc}. Fix: install what it names, or use tpe or random.") from None
    except (TypeError, ValueError) as exc:
        raise SweepError(f"--sampler {spec}: {exc}") from None


def study_record(config: Path, params: list[Param], objective: Objective) -> dict[str, Any]:
    """What a study records about its search (compared when another process joins it)."""
    return {"config": str(Path(config).resolve()), "params": [p.spec for p in params],
            "metric": objective.metric, "mode": objective.mode}


def open_study(name: str, storage: Any, *, sampler: Any, pruner: Any, record: dict[str, Any],
               objective: Objective) -> tuple[Any, bool]:
    """Create the study, or join it when it exists; returns (study, created). A study that searches
    something else (other params or objective) is refused."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction=objective.direction, load_if_exists=True)
        if STUDY_ATTR not in study.user_attrs:
            study.set_user_attr(STUDY_ATTR, record)
            return study, True
    existing = study.user_attrs.get(STUDY_ATTR)
    if existing is None:
        raise SweepError(f"study '{name}' exists in this storage but was not made by ftui sweep. Fix: pick another "
                         "name with --name.")
    mismatched = [k for k in ("params", "metric", "mode") if existing.get(k) != record.get(k)]
    if sorted(existing.get("params", [])) == sorted(record["params"]) and mismatched == ["params"]:
        mismatched = []  # the same params in another order
    if mismatched:
        was = ", ".join(f"{k}={existing.get(k)}" for k in mismatched)
        now = ", ".join(f"{k}={record.get(k)}" for k in mismatched)
        raise SweepError(f"study '{name}' searches something else ({was}; this command: {now}). Joining it would mix "
                         "two searches. Fix: give this sweep another --name, or repeat the study's own --param and "
                         "objective to resume it.")
    return study, False
