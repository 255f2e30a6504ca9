"""``ftui config check|show|schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from core.config import config_schema, config_to_yaml, load_config


def check(path: Path, overrides: list[str]) -> None:
    """Validate a config and print a one-line summary."""
    from core.errors import ConfigError
    from core.usercode import named_code, parse_name

    cfg = load_config(path, overrides)
    code = []
    for key, value in named_code(cfg):
        name = parse_name(value, key=key)
        if name.path is not None and not name.path.is_file():
            raise ConfigError(
                f"{path}: {key}: {name.path} does not exist. Fix: a relative path is relative to the config file."
            )
        code.append(f"{key} {name.short}")
    typer.echo(
        f"{path}: ok — run '{cfg.run.name}', data {_short(cfg.data.source)}, model {_short(cfg.model.name)}, "
        f"optim {cfg.optim.name} lr={cfg.optim.lr:g}, {cfg.trainer.epochs} epoch(s)"
        + (f"; names your code (imported when it runs, not now): {', '.join(code)}" if code else "")
    )


def _short(value: str) -> str:
    from core.usercode import is_code_name, parse_name

    return parse_name(value, key="").short if is_code_name(value) else value


def show(path: Path, overrides: list[str]) -> None:
    """Print the resolved config as YAML."""
    cfg = load_config(path, overrides)
    typer.echo(f"# resolved from {path}" + (f" with --set {' --set '.join(overrides)}" if overrides else ""))
    typer.echo(config_to_yaml(cfg), nl=False)


def schema(out: Path | None) -> None:
    """Print or write the JSON Schema."""
    text = json.dumps(config_schema(), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
