"""``ftui config check|show|schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from core.config import config_schema, config_to_yaml, load_config


def check(path: Path, overrides: list[str]) -> None:
    """Validate a config and print a one-line summary."""
    cfg = load_config(path, overrides)
    typer.echo(
        f"{path}: ok — run '{cfg.run.name}', data {cfg.data.source}, model {cfg.model.name}, "
        f"optim {cfg.optim.name} lr={cfg.optim.lr:g}, {cfg.trainer.epochs} epoch(s)"
    )


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
