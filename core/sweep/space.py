"""The search space of a sweep: ``--param KEY=DIST`` strings parsed into Optuna distributions.

Forms (``KEY`` is a dotted config key, checked against the config the sweep runs):

- ``loguniform:LOW:HIGH`` — a float, log-uniform (learning rates, weight decay); ``0 < LOW < HIGH``
- ``uniform:LOW:HIGH`` — a float, uniform (dropout, momentum)
- ``int:LOW:HIGH[:STEP]`` — an integer (epochs, layers)
- ``logint:LOW:HIGH`` — an integer, log-uniform (batch sizes, widths)
- ``choice:A,B,C`` — one of the values (numbers, true/false or words: ``adamw,sgd``)

Each endpoint and choice is applied to the config as a ``--set`` override before any trial starts,
so a key that does not exist, or a value its type rejects (a negative learning rate, a fractional
batch size), is reported up front with the config's own message.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError

FORMS = ("loguniform:LOW:HIGH", "uniform:LOW:HIGH", "int:LOW:HIGH[:STEP]", "logint:LOW:HIGH", "choice:A,B,C")
KINDS = ("loguniform", "uniform", "int", "logint", "choice")


class SpaceError(ConfigError):
    """A ``--param`` that does not parse or that the config rejects (exit 2)."""


@dataclass(frozen=True)
class Param:
    """One searched key: its config key, the text it was given as, and its Optuna distribution."""

    key: str
    spec: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution (imports Optuna)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(list(self.choices))
        if self.kind in ("int", "logint"):
            return IntDistribution(int(self.low), int(self.high), log=self.kind == "logint", step=self.step or 1)
        return FloatDistribution(float(self.low), float(self.high), log=self.kind == "loguniform")

    def override(self, value: Any) -> str:
        """The ``--set`` override that applies ``value``."""
        return f"{self.key}={format_value(value)}"


def format_value(value: Any) -> str:
    """A value as a ``--set`` override writes it (YAML scalar text; floats keep every digit)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_scalar(text: str) -> Any:
    """A choice value: an int, a float (``1e-3`` too, which YAML reads as text), true/false/null, or text."""
    text = text.strip()
    for convert in (int, float):
        try:
            value = convert(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            break
        return value
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    return text


def parse_param(item: str) -> Param:
    """Parse one ``KEY=DIST`` string (syntax only; :func:`check_space` checks it against a config)."""
    key, eq, dist = item.partition("=")
    key = key.strip()
    if not eq or not key or not dist:
        raise SpaceError(f"--param {item!r}: expected KEY=DIST, e.g. --param optim.lr=loguniform:1e-4:1e-1. "
                         f"Accepted forms of DIST: {', '.join(FORMS)}.")
    kind, _, rest = dist.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SpaceError(f"--param {item}: unknown distribution '{kind}'{hint}. Accepted forms: {', '.join(FORMS)}.")
    if kind == "choice":
        values = [v for v in rest.split(",")]
        if not rest or any(not v.strip() for v in values):
            raise SpaceError(f"--param {item}: choice needs values separated by commas, e.g. choice:32,64,128.")
        choices = tuple(parse_scalar(v) for v in values)
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"--param {item}: a value is listed twice. Fix: list each choice once.")
        return Param(key, item, kind, choices=choices)
    parts = rest.split(":")
    usage = next(f for f in FORMS if f.startswith(kind + ":"))
    if len(parts) not in ((2, 3) if kind == "int" else (2,)):
        raise SpaceError(f"--param {item}: {kind} takes {usage}. Accepted forms: {', '.join(FORMS)}.")
    numbers = []
    for text in parts:
        try:
            value = float(text)
        except ValueError:
            raise SpaceError(f"--param {item}: {text!r} is not a number; {kind} takes {usage}.") from None
        if not math.isfinite(value):
            raise SpaceError(f"--param {item}: {text!r} is not a finite number.")
        numbers.append(value)
    low, high = numbers[0], numbers[1]
    step = None
    if kind in ("int", "logint"):
        if any(v != int(v) for v in numbers):
            raise SpaceError(f"--param {item}: {kind} takes whole numbers ({usage}); for floats use uniform or "
                             "loguniform.")
        if len(numbers) == 3:
            step = int(numbers[2])
            if step < 1:
                raise SpaceError(f"--param {item}: STEP must be >= 1.")
    if not low < high:
        raise SpaceError(f"--param {item}: LOW must be below HIGH (got {parts[0]} and {parts[1]}).")
    if kind in ("loguniform", "logint") and low <= 0:
        raise SpaceError(f"--param {item}: a log scale needs LOW > 0 (got {parts[0]}). Fix: e.g. {kind}:1e-5:{parts[1]}."
                         if kind == "loguniform" else f"--param {item}: a log scale needs LOW >= 1.")
    if step is not None and (high - low) % step:
        raise SpaceError(f"--param {item}: HIGH - LOW ({high - low:g}) is not a multiple of STEP ({step}).")
    return Param(key, item, kind, low=low, high=high, step=step)


def parse_space(items: list[str]) -> list[Param]:
    """Parse every ``--param``; a key given twice is an error."""
    if not items:
        raise SpaceError("ftui sweep: no --param given, so there is nothing to search. Fix: e.g. "
                         "--param optim.lr=loguniform:1e-4:1e-1 --param data.batch_size=choice:32,64,128.")
    params = [parse_param(i) for i in items]
    seen: dict[str, str] = {}
    for p in params:
        if p.key in seen:
            raise SpaceError(f"--param {p.key}: given twice ({seen[p.key]!r} and {p.spec!r}). Fix: keep one.")
        seen[p.key] = p.spec
    return params


def check_space(params: list[Param], config: Path, overrides: list[str]) -> None:
    """Apply every endpoint and choice to ``config`` (with the sweep's ``--set`` overrides) and report the
    first one the config rejects, naming the ``--param``, the value and the config's reason."""
    from core.config import load_config

    set_keys = {o.partition("=")[0].strip() for o in overrides}
    for p in params:
        if p.key in set_keys:
            raise SpaceError(f"--param {p.key}: the key is also set with --set. Fix: drop one of them.")
        if p.kind == "choice":
            probes = [("choice", v) for v in p.choices]
        else:
            probes = [("LOW", _typed(p, p.low)), ("HIGH", _typed(p, p.high))]
            if p.kind in ("uniform", "loguniform"):
                # a value strictly inside the range, with a fraction: an integer key rejects it here,
                # not in the middle of the sweep
                probes.append(("a value inside the range", _inside(p)))
        for what, value in probes:
            try:
                load_config(config, [*overrides, p.override(value)])
            except ConfigError as exc:
                text = str(exc)
                if "unknown key" in text or "is a value, not a section" in text:
                    raise SpaceError(text.replace(f"--set {p.key}", f"--param {p.spec}", 1)) from None
                reasons = [line.strip() for line in text.splitlines() if "(from --set)" in line]
                reason = "; ".join(r.replace(" (from --set)", "") for r in reasons) or text
                fix = f"choose a range that {p.key} accepts"
                if "valid integer" in reason and p.kind in ("uniform", "loguniform"):
                    fix = f"{p.key} is an integer: use int:{p.low:g}:{p.high:g} or logint"
                elif p.kind == "choice":
                    fix = f"list only values that {p.key} accepts"
                raise SpaceError(f"--param {p.spec}: {what} {format_value(value)} is rejected by the config: {reason}. "
                                 f"Fix: {fix}.") from None


def _typed(p: Param, value: float | None) -> Any:
    assert value is not None
    return int(value) if p.kind in ("int", "logint") else float(value)


def _inside(p: Param) -> float:
    assert p.low is not None and p.high is not None
    if p.kind == "loguniform":
        return math.exp(math.log(p.low) + 0.37 * (math.log(p.high) - math.log(p.low)))
    return p.low + 0.37 * (p.high - p.low)

